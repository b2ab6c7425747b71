"""``kiosk demo``: the portal and the Azure DevOps emulator in one process, as ``make demo`` runs them.

One process so one Ctrl-C stops both, and so a new user types one command. The emulator's webhook
secret is generated on first start into ``$KIOSK_HOME/demo-webhook-secret`` (0600) and reaches
the emulator config, which names it by reference, through ``KIOSK_DEMO_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from kiosk.cli_errors import reports_errors

__all__ = ["demo"]

DEMO_DIR = Path(__file__).parent / "demo"
SECRET_ENV = "KIOSK_DEMO_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret


def demo_webhook_secret(home: Path) -> str:
    """The demo connection's secret, created once (random, private file) and reused after."""
    path = home / "demo-webhook-secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(20) + "\n")
    return path.read_text().strip()


def _display(path: Path) -> str:
    """A path as short as possible for a command the user will paste."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


@reports_errors
def demo(
    host: Annotated[str, typer.Option(help="Address both servers listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The portal's port.", min=1, max=65535)] = 8000,
    emulator_port: Annotated[int, typer.Option(help="The Azure DevOps emulator's port.", min=1, max=65535)] = 8001,
) -> None:
    """Run the demo: kiosk on PORT (SQLite, demo catalog) and the Azure DevOps emulator on EMULATOR_PORT."""
    import uvicorn

    from kiosk.cli import _settings, serve_banner
    from kiosk.emulator.bootstrap import build_emulator
    from kiosk.emulator.config import load_emulator_config
    from kiosk.emulator.shapes import trigger_url
    from kiosk.logs import configure_logging
    from kiosk.web.app import create_app
    from kiosk.web.runtime import tune_for_server

    settings = _settings(DEMO_DIR / "kiosk.yaml")
    configure_logging("WARNING", json=False)
    os.environ[SECRET_ENV] = demo_webhook_secret(settings.home)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - display only
    emulator_url = f"http://{shown}:{emulator_port}"
    emulator_config = DEMO_DIR / "emulator.yaml"
    emulator = build_emulator(
        load_emulator_config(emulator_config),
        config_dir=DEMO_DIR,
        base_url=emulator_url,
        work_dir=settings.home / "emulator",
    )
    portal = create_app(settings)
    tune_for_server()

    secret_file = _display(settings.home / "demo-webhook-secret")
    url = trigger_url(emulator_url, "demo", "IncomingWH")
    sys.stdout.write(
        serve_banner(settings, shown, port)
        + f"Azure DevOps emulator on {emulator_url}  (org demo, project demo, pipeline hello)\n\n"
        + "Trigger the webhook pipeline (signed with the demo secret; the body is minified before signing):\n"
        + f'  KIOSK_WEBHOOK_SECRET="$(cat {secret_file})" .venv/bin/kiosk send \\\n'
        + f"    '{url}' \\\n"
        + f"    {_display(DEMO_DIR / 'webhook-body.json')} --header X-WH-Checksum\n"
        + f"Then read its log:   curl -s {emulator_url}/_emulator/runs/demo/1/log\n"
        + f"Why no run?          curl -s {emulator_url}/_emulator/triggers\n"
    )
    sys.stdout.flush()

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # both servers stop on the process's own handler below

    servers = [
        Server(uvicorn.Config(app, host=host, port=p, log_config=None, log_level="warning", server_header=False))
        for app, p in ((portal, port), (emulator.app, emulator_port))
    ]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    async def run_both() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await asyncio.gather(*(s.serve() for s in servers))

    asyncio.run(run_both())
