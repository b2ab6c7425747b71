"""``kiosk receivers list|events``: a running kiosk's receivers and what reached them, over its API.

Like the other API-backed commands (:mod:`kiosk.cli.actions`), these talk to a server through
:class:`kiosk.cli.api.Api` (``--url`` / ``$KIOSK_URL``) with the credentials of
``$KIOSK_CLIENT_ID``/``$KIOSK_CLIENT_SECRET`` or ``$KIOSK_HOME/credentials``; both need an admin
client, because a receiver's URL holds its secret.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kiosk.cli.api import Api, UrlOption
from kiosk.cli.errors import reports_errors

__all__ = ["receivers_app"]

receivers_app = typer.Typer(name="receivers", help="Inbound webhook receivers and their events.", no_args_is_help=True)


@receivers_app.command("list")
@reports_errors
def receivers_list(url: UrlOption = "http://127.0.0.1:8000") -> None:
    """Every receiver with the URL to give its sender (it holds the secret: keep it private).

    One receiver per line, the URL last and whole (a table would cut it to the terminal's width).
    """
    receivers = Api(url).call("GET", "/v1/receivers")["receivers"]
    if not receivers:
        typer.echo("no receivers are configured (kiosk.yaml: receivers:)")
        return
    for r in receivers:
        auth = r.get("auth") or {}
        checks = [c for c in ("basic-auth" if auth.get("basic") else "", auth.get("header") or "") if c]
        where = f"project {r['project']}" if r.get("project") else "no project"
        extra = f", checks: {' + '.join(checks)}" if checks else ""
        typer.echo(
            f"{r['name']} ({r['type']}, {where}{extra}): {r.get('url') or 'disabled (its secret cannot be read)'}"
        )


def _detail(event: dict[str, Any]) -> str:
    if event["outcome"] == "refreshed":
        detail = f"refreshed {event['refreshed']}: {', '.join(event.get('watches') or [])}"
    else:
        detail = event.get("reason") or ""
    failed = [r for r in event.get("reactions") or [] if r.get("status") == "failed"]
    if failed:
        detail += f" ({len(failed)} reaction(s) failed: {failed[0].get('error')})"
    return detail


@receivers_app.command("events")
@reports_errors
def receivers_events(
    name: Annotated[str, typer.Argument(help="The receiver's name.")],
    project: Annotated[str | None, typer.Option(help="The receiver's project, if it has one.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Events per page.")] = 50,
    cursor: Annotated[str | None, typer.Option("--from", help="The cursor a previous page printed.")] = None,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Recent events of a receiver, newest first: outcome and why (refreshed, no match, duplicate, rejected)."""
    params: dict[str, Any] = {"limit": limit}
    if project:
        params["project"] = project
    if cursor:
        params["from"] = cursor
    answer = Api(url).call("GET", f"/v1/receivers/{name}/events", params=params)
    if not answer["events"]:
        typer.echo("no events")
    # One event per line (a table would cut reasons to the terminal's width): id, time, outcome and
    # status, what was sent, why; the processing state of accepted events last.
    for e in answer["events"]:
        sent = " ".join(part for part in (e.get("sender"), e.get("eventType")) if part) or "-"
        processing = f"  [{e['processing']}]" if e.get("processing") else ""
        typer.echo(f"{e['id']}  {e['receivedAt']}  {e['outcome']} {e['statusCode']}  {sent}  {_detail(e)}{processing}")
    if answer.get("next"):
        typer.echo(
            f"more: kiosk receivers events {name}{f' --project {project}' if project else ''} --from {answer['next']}"
        )
