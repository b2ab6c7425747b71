"""``python -m kiosk``: the same command as the ``kiosk`` script."""

from kiosk.cli import main

main()
