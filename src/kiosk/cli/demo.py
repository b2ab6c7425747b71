"""``kiosk demo``: the portal and the Azure DevOps emulator in one process, as ``make demo`` runs them.

One process so one Ctrl-C stops both, and so a new user types one command. The demo configs
(``src/kiosk/demo/kiosk.yaml`` and ``emulator.yaml``) name ``127.0.0.1:8000`` and ``:8001``; they are
read with the chosen host and ports put in their place. Their secrets are references to
``KIOSK_DEMO_*`` variables, which this command fills from files it generates once under
``$KIOSK_HOME`` (mode 0600): the webhook signing secret the emulator's service connections and
kiosk's Azure DevOps org share, the emulator's PAT and the service-hook password. The deploy
pipeline reports back with the report token in its run's payload, so it needs no API client.
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

from kiosk.cli.errors import reports_errors
from kiosk.cli.settings import display_host, load_settings, serve_banner

__all__ = ["demo", "demo_secret"]

DEMO_DIR = Path(__file__).parents[1] / "demo"  # src/kiosk/demo/
KIOSK_URL = "http://127.0.0.1:8000"
EMULATOR_URL = "http://127.0.0.1:8001"


def demo_secret(home: Path, name: str) -> str:
    """``$KIOSK_HOME/demo-<name>``: created once (random, private), then reused across restarts."""
    path = home / f"demo-{name}"
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


def _render(text: str, kiosk_url: str, emulator_url: str) -> str:
    return text.replace(KIOSK_URL, kiosk_url).replace(EMULATOR_URL, emulator_url)


@reports_errors
def demo(
    host: Annotated[str, typer.Option(help="Address both servers listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The portal's port.", min=1, max=65535)] = 8000,
    emulator_port: Annotated[int, typer.Option(help="The Azure DevOps emulator's port.", min=1, max=65535)] = 8001,
) -> None:
    """Run the demo: kiosk on PORT (SQLite, demo catalog) and the Azure DevOps emulator on EMULATOR_PORT."""
    import uvicorn

    from kiosk.emulator.bootstrap import build_emulator
    from kiosk.emulator.config import parse_emulator_config
    from kiosk.emulator.errors import server_error_body
    from kiosk.emulator.shapes import trigger_url
    from kiosk.logs import configure_logging
    from kiosk.receivers.urls import receiver_digest
    from kiosk.runtime.tuning import tune_for_server
    from kiosk.web.app import create_app
    from kiosk.web.server import kiosk_error_body, server_config

    shown = display_host(host)
    kiosk_url, emulator_url = f"http://{shown}:{port}", f"http://{shown}:{emulator_port}"
    home = load_settings().home
    for variable, name in (
        ("KIOSK_DEMO_WEBHOOK_SECRET", "webhook-secret"),
        ("KIOSK_DEMO_PAT", "pat"),
        ("KIOSK_DEMO_HOOK_PASSWORD", "hook-password"),
        ("KIOSK_DEMO_RECEIVER_SECRET", "receiver-secret"),
    ):
        os.environ[variable] = demo_secret(home, name)
    config = home / "demo-kiosk.yaml"
    config.write_text(_render((DEMO_DIR / "kiosk.yaml").read_text(), kiosk_url, emulator_url))
    settings = load_settings(config)
    configure_logging("WARNING", json=False)
    portal = create_app(settings)
    tune_for_server()

    emulator_text = _render((DEMO_DIR / "emulator.yaml").read_text(), kiosk_url, emulator_url)
    emulator = build_emulator(
        parse_emulator_config(emulator_text, DEMO_DIR / "emulator.yaml"),
        config_dir=DEMO_DIR,
        base_url=emulator_url,
        work_dir=home / "emulator",
    )

    secret_file = _display(home / "demo-webhook-secret")
    pat_file = _display(home / "demo-pat")
    pat_auth = f'-u ":$(cat {pat_file})"'
    digest = receiver_digest(None, "acr", os.environ["KIOSK_DEMO_RECEIVER_SECRET"])  # the demo receiver
    url = trigger_url(emulator_url, "demo", "IncomingWH")
    env_prefix = "" if home.resolve() == (Path.cwd() / ".kiosk").resolve() else f"KIOSK_HOME={_display(home)} "
    sys.stdout.write(
        serve_banner(settings, shown, port)
        + f"Azure DevOps emulator on {emulator_url}  (org demo, project demo: pipelines hello and deploy)\n"
        + f"  Personal access token of org demo: {os.environ['KIOSK_DEMO_PAT']}  (saved in {pat_file})\n"
        + "  Every emulator route but the webhook trigger needs it: Basic auth, empty user name (curl -u :PAT).\n\n"
        + "1. Trigger the webhook pipeline (signed with the demo secret; the body is minified first):\n"
        + f'  KIOSK_WEBHOOK_SECRET="$(cat {secret_file})" AZURE_DEVOPS_EXT_PAT="$(cat {pat_file})" \\\n'
        + f"    .venv/bin/kiosk send '{url}' \\\n"
        + f"    {_display(DEMO_DIR / 'webhook-body.json')} --header X-WH-Checksum\n"
        + f"   Why no run?  curl -s {pat_auth} {emulator_url}/_emulator/triggers\n\n"
        + "2. Run the Deploy service action: kiosk signs and delivers it to the emulator's deploy pipeline,\n"
        + "   which reports back to kiosk with curl and the run's report token from its payload\n"
        + "   (and the run-state service hook would finish it too):\n"
        + f"  {env_prefix}.venv/bin/kiosk actions run deploy_service --entity checkout "
        + f"--input environment=staging --follow --url {kiosk_url}\n\n"
        + "3. Imitate an Azure Container Registry push of checkout:1.2.3 (the watch deploys it to staging):\n"
        + f"  curl -sS -X POST '{kiosk_url}/webhooks/azure/{digest}' \\\n"
        + "    -H 'Content-Type: application/json' -H 'User-Agent: AzureContainerRegistry/1.0' \\\n"
        + f"    -d @{_display(DEMO_DIR / 'acr-push.json')}\n"
    )
    sys.stdout.flush()

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # both servers stop on the process's own handler below

    servers = [
        Server(server_config(app, host, p, settings.http, error_body=errors, log_config=None, log_level="warning"))
        for app, p, errors in ((portal, port, kiosk_error_body), (emulator.app, emulator_port, server_error_body))
    ]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    async def run_both() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        # The emulator first: the portal's integration resyncs the emulator's org at start.
        portal_server, emulator_server = servers
        emulated = asyncio.create_task(emulator_server.serve())
        while not emulator_server.started and not emulated.done():
            await asyncio.sleep(0.02)
        await asyncio.gather(emulated, portal_server.serve())

    asyncio.run(run_both())
