"""``kiosk sign`` and ``kiosk send``: the exact bytes and checksum an Azure Pipelines incoming webhook expects.

``kiosk sign`` prints the checksum of a body; ``kiosk send`` delivers it and, against kiosk's
emulator, says what the call queued or why it queued nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kiosk.cli.errors import EXIT_FAILURE, reports_errors
from kiosk.errors import BadRequest, KioskError

__all__ = ["send", "sign"]

SecretOption = Annotated[
    str,
    typer.Option(
        "--secret",
        envvar="KIOSK_WEBHOOK_SECRET",
        help="The incoming webhook's secret (or set $KIOSK_WEBHOOK_SECRET, which keeps it out of ps).",
        show_default=False,
    ),
]
BodyArgument = Annotated[Path, typer.Argument(help="The JSON body to sign (read as bytes).", show_default=False)]


def _webhook_body(path: Path, raw: bool) -> bytes:
    """The bytes to sign and send: the file minified (what Azure expects), or as it is with --raw."""
    from kiosk.core.signing import minify_json

    data = path.read_bytes()
    if raw:
        return data
    try:
        return minify_json(data)
    except ValueError as exc:
        raise BadRequest(f"{path}: {exc}") from None


@reports_errors
def sign(
    body: BodyArgument,
    secret: SecretOption,
    raw: Annotated[bool, typer.Option(help="Sign the file's bytes as they are instead of minified.")] = False,
) -> None:
    """Print the HMAC-SHA1 checksum Azure's incoming webhook expects for BODY."""
    from kiosk.core.signing import sign_azure_checksum

    typer.echo(sign_azure_checksum(secret, _webhook_body(body, raw)))


@reports_errors
def send(
    url: Annotated[
        str, typer.Argument(help="The incoming webhook URL (…/_apis/public/distributedtask/webhooks/NAME).")
    ],
    body: BodyArgument,
    secret: SecretOption,
    header: Annotated[str, typer.Option(help="Header that carries the checksum.")] = "X-Port-Signature",
    raw: Annotated[bool, typer.Option(help="Send the file's bytes as they are instead of minified.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.", min=0.1)] = 30.0,
    pat: Annotated[
        str | None,
        typer.Option(
            envvar="AZURE_DEVOPS_EXT_PAT",
            help="The org's personal access token, to read kiosk's emulator's record of the call (why no run). "
            "Or set $AZURE_DEVOPS_EXT_PAT. The trigger itself needs none.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Minify BODY, sign it and POST it to an Azure Pipelines incoming webhook; print the answer."""
    import httpx

    from kiosk.core.signing import sign_azure_checksum

    if not url.startswith(("http://", "https://")):
        raise BadRequest(f"URL must start with http:// or https://, not {url!r}")
    payload = _webhook_body(body, raw)
    headers = {"Content-Type": "application/json", header: sign_azure_checksum(secret, payload)}
    try:
        response = httpx.post(url, content=payload, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise KioskError(f"could not reach {url}: {exc}") from None
    typer.echo(f"HTTP {response.status_code}")
    if response.content:
        typer.echo(response.text)
    _explain_trigger(url, response, timeout, pat)
    if response.status_code >= 300:
        raise typer.Exit(EXIT_FAILURE)


def _explain_trigger(url: str, response: Any, timeout: float, pat: str | None) -> None:
    """Against kiosk's emulator, say what the call queued or why it queued nothing.

    Azure answers 200 either way; the emulator adds a trigger id header, and its record holds
    the reason (read with the org's PAT, as the emulator's REST API requires). Against Azure
    itself there is no such header and nothing more is printed.
    """
    import httpx

    trigger_id = response.headers.get("x-kiosk-trigger-id")
    if not trigger_id:
        return
    origin = url.split("/", 3)
    record_url = "/".join(origin[:3]) + f"/_emulator/triggers/{trigger_id}"
    if not pat:
        typer.echo(f"emulator trigger {trigger_id}: pass --pat (or $AZURE_DEVOPS_EXT_PAT) to read what it queued")
        return
    try:
        answer = httpx.get(record_url, timeout=timeout, auth=("", pat))
        record = answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return
    if not isinstance(record, dict):  # e.g. a PAT of another org
        typer.echo(f"emulator trigger {trigger_id}: its record could not be read (HTTP {answer.status_code})")
        return
    typer.echo(f"emulator trigger {trigger_id}: {record.get('summary', '')}")
    for run_id in record.get("queuedRuns", []):
        typer.echo(
            f"  run {run_id} log: {'/'.join(origin[:3])}/_emulator/runs/{record.get('org')}/{run_id}/log?follow=true"
        )
