"""The ``kiosk`` command, one module per command group; :mod:`kiosk.cli.app` gathers them.

Only :func:`main` is exported here: it is what the ``kiosk`` script (pyproject's
``[project.scripts]``: ``kiosk.cli:main``) and ``python -m kiosk`` call. The typer app itself is
``kiosk.cli.app.app`` (re-exporting it here would shadow the ``kiosk.cli.app`` module).
"""

from kiosk.cli.app import main

__all__ = ["main"]
