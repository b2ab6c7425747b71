"""``kiosk actions|runs|deliveries``: self-service actions, their runs and deliveries, over kiosk's API.

Like every API-backed command, these reach the server through :class:`kiosk.cli.api.Api`
(``--url`` / ``$KIOSK_URL``, the credentials of ``$KIOSK_CLIENT_ID``/``$KIOSK_CLIENT_SECRET`` or
``$KIOSK_HOME/credentials``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from kiosk.cli.api import Api, UrlOption
from kiosk.cli.errors import EXIT_FAILURE, reports_errors
from kiosk.errors import BadRequest

__all__ = ["actions_app", "deliveries_app", "runs_app"]

actions_app = typer.Typer(name="actions", help="List and run self-service actions.", no_args_is_help=True)
runs_app = typer.Typer(name="runs", help="Follow action runs.", no_args_is_help=True)
deliveries_app = typer.Typer(name="deliveries", help="Outbound webhook deliveries.", no_args_is_help=True)

FINISHED = frozenset({"SUCCESS", "FAILURE", "DECLINED"})
DeliveryIdArgument = Annotated[str, typer.Argument(help="The delivery id (msg_…).")]


def _inputs(pairs: list[str] | None) -> dict[str, Any]:
    """``k=v`` pairs; a value that parses as JSON (number, true, [..], {..}) is taken as JSON."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise BadRequest(f"--input {pair!r} must be NAME=VALUE")
        try:
            out[name] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[name] = value
    return out


@actions_app.command("list")
@reports_errors
def actions_list(url: UrlOption = "http://127.0.0.1:8000") -> None:
    """The actions, with what they act on and where they run."""
    actions = Api(url).call("GET", "/v1/actions")["actions"]
    table = Table()
    for column in ("identifier", "title", "operation", "blueprint", "invocation"):
        table.add_column(column)
    for action in actions:
        trigger = action.get("trigger", {})
        method = action.get("invocationMethod", {})
        target = method.get("type", "")
        if target == "AZURE-DEVOPS":
            target += f" {method.get('org')}/{method.get('webhook')}"
        elif target == "WEBHOOK":
            target += f" {method.get('url')}"
        table.add_row(
            action.get("identifier", ""),
            action.get("title") or "",
            str(trigger.get("operation") or trigger.get("event", {}).get("type", "")),
            str(trigger.get("blueprintIdentifier") or ""),
            target,
        )
    Console().print(table)


@actions_app.command("run")
@reports_errors
def actions_run(
    action: Annotated[str, typer.Argument(help="The action's identifier.")],
    entity: Annotated[str | None, typer.Option(help="The entity a DAY-2 or DELETE action acts on.")] = None,
    input_: Annotated[list[str] | None, typer.Option("--input", "-i", help="NAME=VALUE, repeatable.")] = None,
    follow: Annotated[bool, typer.Option(help="Follow the run to its end.")] = False,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Run an action; print the run id (and follow it with --follow)."""
    api = Api(url)
    body: dict[str, Any] = {"properties": _inputs(input_)}
    if entity is not None:
        body["entity"] = entity
    run = api.call("POST", f"/v1/actions/{action}/runs", json=body)["run"]
    typer.echo(f"run {run['id']}: {run['status']}")
    if follow:
        _follow(api, run["id"])


@runs_app.command("show")
@reports_errors
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run id (r_…).")],
    follow: Annotated[bool, typer.Option(help="Keep printing status changes and logs until the run ends.")] = False,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """A run's status, links and logs."""
    api = Api(url)
    if follow:
        _follow(api, run_id)
        return
    run = api.call("GET", f"/v1/actions/runs/{run_id}")["run"]
    _print_run(run)
    for entry in api.call("GET", f"/v1/actions/runs/{run_id}/logs")["runLogs"]:
        typer.echo(f"{entry.get('createdAt', '')}  {entry.get('message', '')}")


def _print_run(run: dict[str, Any]) -> None:
    label = f" ({run['statusLabel']})" if run.get("statusLabel") else ""
    typer.echo(f"run {run['id']} of {run.get('action', {}).get('identifier', '?')}: {run['status']}{label}")
    for link in run.get("link") or []:
        typer.echo(f"  link: {link}")


def _follow(api: Api, run_id: str, poll: float = 1.0) -> None:
    """Print status changes and new log lines until the run is finished; exit 1 unless it succeeded."""
    seen_logs = 0
    last = None
    while True:
        run = api.call("GET", f"/v1/actions/runs/{run_id}")["run"]
        state = (run["status"], run.get("statusLabel"))
        if state != last:
            _print_run(run)
            last = state
        logs = api.call("GET", f"/v1/actions/runs/{run_id}/logs", params={"limit": 1000})["runLogs"]
        for entry in logs[seen_logs:]:
            typer.echo(f"{entry.get('createdAt', '')}  {entry.get('message', '')}")
        seen_logs = max(seen_logs, len(logs))
        if run["status"] in FINISHED:
            if run["status"] != "SUCCESS":
                raise typer.Exit(EXIT_FAILURE)
            return
        time.sleep(poll)


@deliveries_app.command("list")
@reports_errors
def deliveries_list(
    status: Annotated[str | None, typer.Option(help="pending, delivered, failed or dead.")] = None,
    run: Annotated[str | None, typer.Option(help="Only the deliveries of this run.")] = None,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Recent deliveries, newest first."""
    params = {k: v for k, v in {"status": status, "runId": run}.items() if v}
    deliveries = Api(url).call("GET", "/v1/deliveries", params=params)["deliveries"]
    table = Table()
    # Ids are what the user copies into the next command: never cut them short.
    table.add_column("id", no_wrap=True, min_width=len("msg_") + 26)
    for column in ("status", "attempts", "last", "url"):
        table.add_column(column)
    table.add_column("run", no_wrap=True)
    table.add_column("created")
    for d in deliveries:
        last = str(d.get("lastStatusCode") or d.get("lastError") or "")
        table.add_row(
            d["id"], d["status"], str(d["attempts"]), last[:40], d["url"], d.get("runId") or "", d["createdAt"]
        )
    Console().print(table)


@deliveries_app.command("show")
@reports_errors
def deliveries_show(
    delivery_id: DeliveryIdArgument,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """One delivery and every attempt (status, duration, the start of the answer)."""
    d = Api(url).call("GET", f"/v1/deliveries/{delivery_id}")["delivery"]
    typer.echo(f"delivery {d['id']}: {d['status']} after {d['attempts']} attempt(s) → {d['method']} {d['url']}")
    if d.get("nextAttemptAt"):
        typer.echo(f"  next attempt: {d['nextAttemptAt']}")
    for attempt in d.get("attemptLog", []):
        outcome = attempt.get("statusCode") or attempt.get("error") or ""
        typer.echo(f"  #{attempt['attempt']} {attempt['startedAt']} {attempt['durationMs']:.0f} ms: {outcome}")


@deliveries_app.command("redeliver")
@reports_errors
def deliveries_redeliver(
    delivery_id: DeliveryIdArgument,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Send a delivery again (same body, same webhook-id), whatever its state."""
    d = Api(url).call("POST", f"/v1/deliveries/{delivery_id}/redeliver")["delivery"]
    typer.echo(f"delivery {d['id']}: {d['status']}")
