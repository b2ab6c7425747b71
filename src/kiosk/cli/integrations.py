"""``kiosk integrations list|status|resync|events|hooks|test-mapping|mapping``: the Azure DevOps integrations.

Like the other API-backed commands (:mod:`kiosk.cli.actions`), these talk to a running kiosk
through :class:`kiosk.cli.api.Api` (``--url`` / ``$KIOSK_URL``, the credentials of
``$KIOSK_CLIENT_ID``/``$KIOSK_CLIENT_SECRET`` or ``$KIOSK_HOME/credentials``). One does not:
``resync NAME --once`` runs the resync here, in the foreground, from kiosk.yaml and the database
of ``$KIOSK_HOME`` / ``$KIOSK_DATABASE_URL`` — no server needed — taking the same lease a
server's resync takes, so it never runs beside one (:mod:`kiosk.runtime.integrations`). ``hooks
NAME`` works the same way: it checks (or applies) the integration's service-hook subscriptions
from here, under the lease a server's reconcile takes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from kiosk.cli.api import Api, UrlOption
from kiosk.cli.errors import EXIT_FAILURE, reports_errors
from kiosk.cli.settings import load_settings, open_database, quiet_logging
from kiosk.errors import BadRequest, ConfigError

__all__ = ["incremental_view", "integrations_app", "state_view"]

integrations_app = typer.Typer(
    name="integrations", help="Azure DevOps integrations: state, resyncs, mapping.", no_args_is_help=True
)

NameArgument = Annotated[str, typer.Argument(help="The integration's identifier.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="kiosk.yaml (overrides $KIOSK_CONFIG); for --once.", dir_okay=False),
]
#: Resource columns of ``status``: the counters of kiosk.ingest.state.ResourceState.
COUNTERS = ("fetched", "filtered", "mapped", "created", "updated", "unchanged", "failed")


def _when(value: str | None) -> str:
    return "-" if not value else value.replace("T", " ").split(".")[0].removesuffix("Z")


@integrations_app.command("list")
@reports_errors
def integrations_list(url: UrlOption = "http://127.0.0.1:8000") -> None:
    """Every integration: type, organisations, listener, last resync (status, start, end) and the next one."""
    integrations = Api(url).call("GET", "/v1/integration")["integrations"]
    if not integrations:
        typer.echo("no integrations are configured (kiosk.yaml: integrations:)")
        return
    table = Table()
    for column in ("identifier", "type", "organizations", "listener", "status", "started", "ended", "next"):
        table.add_column(column)
    for item in integrations:
        state = item["resyncState"]
        kiosk = item["kiosk"]
        status = "running" if kiosk["running"] else (state["status"] or "never")
        table.add_row(
            item["identifier"],
            item["installationAppType"],
            "\n".join(kiosk["organizationUrls"]),
            kiosk["eventListener"],
            status,
            _when(state["lastResyncStart"]),
            _when(state["lastResyncEnd"]),
            _when(state["nextResync"]),
        )
    Console().print(table)


def _heading(state: dict[str, Any], label: str, next_key: str) -> str:
    """The first line of a resync's or an incremental pass's view (``label`` after the
    integration's name; ``next_key`` names the next run's moment): its status, why when there is
    a reason, its trigger and times."""
    reason = f" — {state['reason']}" if state.get("reason") else ""
    return (
        f"[bold]{state['integration']}[/]{label}: {state['status']}{reason} (trigger {state.get('trigger') or '-'}, "
        f"started {_when(state.get('started_at'))}, ended {_when(state.get('finished_at'))}, "
        f"next {_when(state.get(next_key))})"
    )


def _org_table(org: dict[str, Any], columns: tuple[str, ...], numeric: tuple[str, ...]) -> Table:
    """An organisation's table (titled by its URL, status and error), its ``numeric`` columns
    right-aligned."""
    table = Table(title=f"{org['url']}: {org['status']}" + (f" — {org['error']}" if org.get("error") else ""))
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    return table


def state_view(state: dict[str, Any]) -> Group:
    """A resync state (``ResyncState.to_json()``) as tables: per organisation, per resource, its
    counts and first error, then the delete phase."""
    parts: list[Any] = [_heading(state, "", "next_resync_at")]
    for org in state.get("organizations", []):
        table = _org_table(org, ("#", "kind", "blueprint", "status", *COUNTERS, "errors"), COUNTERS)
        for resource in org.get("resources", []):
            errors = resource.get("errors") or []
            skipped = resource.get("skipped") or {}
            note = errors[0] if errors else ""
            if len(errors) > 1:
                note += f" (+{len(errors) - 1} more)"
            if skipped:
                note = (note + "; " if note else "") + "skipped " + ", ".join(f"{k}: {v}" for k, v in skipped.items())
            table.add_row(
                str(resource["index"]),
                resource["kind"],
                resource.get("blueprint") or "",
                resource["status"],
                *(str(resource.get(name, 0)) for name in COUNTERS),
                note,
            )
        parts.append(table)
        deletion = org.get("deletion") or {}
        if deletion.get("ran"):
            parts.append(
                f"  deleted {deletion.get('deleted', 0)} of {deletion.get('candidates', 0)} candidate(s), "
                f"spared {deletion.get('spared', 0)} (relation targets), {deletion.get('existing', 0)} recorded"
            )
        elif deletion.get("reason"):
            parts.append(f"  no deletion: {deletion['reason']}")
    return Group(*parts)


def incremental_view(state: dict[str, Any]) -> Group:
    """An incremental pass's state (``IncrementalState.to_json()``) as tables: per organisation, per
    resource, what was read, written, left unchanged and failed, and the cursor before and after."""
    parts: list[Any] = [_heading(state, " incremental", "next_pass_at")]
    counts = ("read", "written", "unchanged", "failed")
    for org in state.get("organizations", []):
        table = _org_table(org, ("#", "kind", "status", *counts, "cursor before", "cursor after"), counts)
        for resource in org.get("resources", []):
            note = resource.get("skipped_reason") or ""
            errors = resource.get("errors") or []
            if errors:
                note = (note + "; " if note else "") + errors[0]
            table.add_row(
                str(resource["index"]),
                resource["kind"],
                resource["status"] + (f" ({note})" if note else ""),
                str(resource.get("fetched", 0)),
                str(resource.get("written", 0)),
                str(resource.get("unchanged", 0)),
                str(resource.get("failed", 0)),
                _when(resource.get("cursor_before")),
                _when(resource.get("cursor_after")),
            )
        parts.append(table)
    return Group(*parts)


@integrations_app.command("status")
@reports_errors
def integrations_status(
    name: NameArgument,
    follow: Annotated[bool, typer.Option(help="While a resync runs, follow it live.")] = True,
    every: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes while following.")] = 1.0,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """The latest resync per organisation and resource: counts, errors, the delete phase; live while it runs."""
    api = Api(url)
    path = f"/v1/integration/{name}"
    integration = api.call("GET", path)["integration"]
    console = Console()
    state = integration["kiosk"]["state"]
    passed = integration["kiosk"].get("incremental")
    if passed is not None:
        console.print(incremental_view(passed))
    if state is None:
        console.print(f"{name}: never resynced (next: {_when(integration['resyncState']['nextResync'])})")
        return
    if state["status"] == "running" and not integration["kiosk"]["running"]:
        # Saved as running, but no process holds the resync: the one running it stopped.
        console.print(state_view(state))
        console.print("no kiosk process is running this resync now (its process stopped); it runs again")
        return
    if not (follow and state["status"] == "running"):
        console.print(state_view(state))
        return
    # Refreshed from the saved state, which the resyncing process updates as it goes (any process),
    # while the resync holds its lease.
    with Live(state_view(state), console=console, refresh_per_second=4) as live:
        running = True
        while state["status"] == "running" and running:
            time.sleep(every)
            integration = api.call("GET", path)["integration"]
            state, running = integration["kiosk"]["state"], integration["kiosk"]["running"]
            live.update(state_view(state))


@integrations_app.command("resync")
@reports_errors
def integrations_resync(
    name: NameArgument,
    once: Annotated[
        bool, typer.Option("--once", help="Run it here, in the foreground, and exit (no server needed).")
    ] = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental", help="An incremental pass: read only what changed since the last read (never deletes)."
        ),
    ] = False,
    config: ConfigOption = None,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Ask the running server for a resync now — or, with --once, run one here and print its summary
    (exit code 1 when it failed). --incremental: an incremental pass instead of a full resync."""
    what = "an incremental pass" if incremental else "a resync"
    if not once:
        params = {"incremental": "true"} if incremental else None
        outcome = Api(url).call("POST", f"/v1/integration/{name}/resync", params=params)["resync"]
        messages = {
            "queued": f"{what.split(' ', 1)[1]} queued",
            "coalesced": f"{what} is already queued; it answers this request too",
            "running": f"{what} is running now; it answers this request too",
        }
        typer.echo(f"{name}: {messages.get(outcome, outcome)} (follow it: kiosk integrations status {name})")
        return
    if incremental:
        passed = _resync_here(name, config, incremental=True)
        Console().print(incremental_view(passed.to_json()))
        totals = passed.totals()
        typer.echo(
            f"{name}: incremental {passed.status} — {totals['fetched']} read, {totals['written']} written, "
            f"{totals['unchanged']} unchanged, {totals['failed']} failed, {totals['skipped']} resource(s) skipped"
        )
        if passed.status not in ("completed", "skipped"):
            raise typer.Exit(EXIT_FAILURE)
        return
    state = _resync_here(name, config)
    console = Console()
    console.print(state_view(state.to_json()))
    totals = state.totals()
    typer.echo(
        f"{name}: {state.status} — {totals['fetched']} fetched, {totals['created']} created, "
        f"{totals['updated']} updated, {totals['unchanged']} unchanged, {totals['failed']} failed, "
        f"{totals['deleted']} deleted"
    )
    if state.status != "completed":
        raise typer.Exit(EXIT_FAILURE)


def _resync_here(name: str, config: Path | None, *, incremental: bool = False) -> Any:
    """One resync (``incremental``: pass) of ``name`` in this process, wired as the server wires it."""
    import os

    from kiosk.actions.automations import Automations
    from kiosk.actions.service import Actions
    from kiosk.catalog.service import Catalog
    from kiosk.config import load_config
    from kiosk.config.integrations import resolve_integrations
    from kiosk.core import jq_engine
    from kiosk.ingest.store import IngestStore
    from kiosk.runtime.integrations import IntegrationRunner

    settings = load_settings(config)
    if settings.config_path is None:
        raise ConfigError("no config: pass --config FILE or set KIOSK_CONFIG (the integrations are in kiosk.yaml)")
    quiet_logging()
    loaded = load_config(settings.config_path)
    integrations = resolve_integrations(loaded, env=os.environ, base_dir=settings.config_path.resolve().parent)
    jq_engine.configure(loaded.jq.limits())
    try:
        with open_database(settings) as db:
            actions = Actions(
                db, azure_orgs=loaded.azureDevOps.orgs, sign_webhooks=loaded.delivery.signing_secret is not None
            )
            store = IngestStore(db, Catalog(db, listener=Automations(actions)))
            runner = IntegrationRunner(db, store, integrations)
            return runner.run_incremental_now(name) if incremental else runner.run_now(name)
    finally:
        jq_engine.shutdown()


@integrations_app.command("events")
@reports_errors
def integrations_events(
    name: NameArgument,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Events per page.")] = 50,
    cursor: Annotated[
        int | None, typer.Option("--from", min=1, max=2_147_483_647, help="The cursor a previous page printed.")
    ] = None,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """The live events the integration received, newest first: when, state, type, the object they are
    about; the stored events by state and what the server refused since it started."""
    params: dict[str, Any] = {"limit": limit}
    if cursor is not None:
        params["from"] = cursor
    answer = Api(url).call("GET", f"/v1/integration/{name}/events", params=params)
    counts = answer["counts"]
    here = answer["receivedByThisProcess"]
    refused = ", ".join(f"{reason} {n}" for reason, n in here["refused"].items())
    typer.echo(
        f"{name}: events at {answer['path']}; stored: "
        + ", ".join(f"{state} {n}" for state, n in counts.items())
        + f"; since the server started: {here['stored']} stored, {here['duplicates']} duplicate(s), refused {refused}"
    )
    processed = answer.get("processedByThisProcess")
    if processed is not None:
        typer.echo(
            f"processing: lag {float(answer.get('lagSeconds') or 0):.1f} s; since the server started: "
            f"{processed['processed']} processed, {processed['skipped']} skipped, {processed['failed']} failed, "
            f"{processed['retried']} retried"
        )
        for failure in processed["lastErrors"][:5]:
            typer.echo(f"  failed {_when(failure['at'])}  {failure['eventType']}  {failure['error']}")
    elif "processing" in answer:
        typer.echo("processing: none in this server (the integration's listener takes no events)")
    if not answer["events"]:
        typer.echo("no events")
    # One event per line (a table would cut object keys to the terminal's width).
    for e in answer["events"]:
        error = f"  ({e['error']})" if e.get("error") else ""
        typer.echo(
            f"{e['id']}  {_when(e['receivedAt'])}  {e['state']}  {e['eventType']}  "
            f"{e['objectKey'] or '-'}  {e['eventId']}{error}"
        )
    if answer.get("next"):
        typer.echo(f"more: kiosk integrations events {name} --from {answer['next']}")


@integrations_app.command("test-mapping")
@reports_errors
def integrations_test_mapping(
    name: NameArgument,
    kind: Annotated[str | None, typer.Option(help="Only the resources of this kind.")] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="Try this mapping file (YAML or JSON) instead of the integration's own (not saved).", dir_okay=False
        ),
    ] = None,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Map the raw examples the last resync kept, as Port's mapping editor does: each example's
    entities, or the jq error of each failing field."""
    body: dict[str, Any] = {}
    if kind is not None:
        body["kind"] = kind
    if mapping is not None:
        body["mapping"] = _read_mapping(mapping)
    resources = Api(url).call("POST", f"/v1/integration/{name}/test-mapping", json=body)["resources"]
    if not resources:
        typer.echo(f"no resource of the mapping has kind {kind!r}" if kind else "the mapping has no resources")
        return
    for resource in resources:
        typer.echo(f"resource {resource['resource']} ({resource['kind']}): {resource['examples']} example(s)")
        if not resource["examples"]:
            typer.echo("  no examples kept yet: they are kept by a resync (sendRawDataExamples)")
        for result in resource["results"]:
            typer.echo(f"  example {result['example']}:")
            for entity in result["entities"]:
                typer.echo("    entity " + orjson.dumps(entity, option=orjson.OPT_SORT_KEYS).decode())
            for failure in result["failures"]:
                typer.echo(f"    error {failure['field']}: {failure['message']}")
            for warning in result["warnings"]:
                typer.echo(f"    null {warning['field']}: {warning['message']}")
            if not result["entities"] and not result["failures"]:
                typer.echo("    no entity (the selector left it out)")


def _read_mapping(path: Path) -> dict[str, Any]:
    """A mapping document from a YAML (or JSON) file; an integration's ``port-app-config`` as a file."""
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BadRequest(f"{path}: not YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(document, dict):
        raise BadRequest(f"{path}: a mapping document is a mapping of options (resources: ...)")
    return document


@integrations_app.command("mapping")
@reports_errors
def integrations_mapping(
    name: NameArgument,
    set_: Annotated[
        Path | None, typer.Option("--set", help="Replace the mapping with this file (YAML or JSON).", dir_okay=False)
    ] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Drop the replacement: kiosk.yaml's mapping again.")] = False,
    url: UrlOption = "http://127.0.0.1:8000",
) -> None:
    """Print the integration's mapping (YAML), replace it (--set FILE) or go back to kiosk.yaml's (--reset).

    A replaced mapping is checked by the server (a bad one is refused with the field named) and used
    from the next resync on.
    """
    if set_ is not None and reset:
        raise BadRequest("give --set FILE or --reset, not both")
    api = Api(url)
    path = f"/v1/integration/{name}"
    if set_ is not None:
        integration = api.call("PATCH", path, json={"config": _read_mapping(set_)})["integration"]
    elif reset:
        integration = api.call("DELETE", f"{path}/config")["integration"]
    else:
        integration = api.call("GET", path)["integration"]
    source = integration["kiosk"]["mappingSource"]
    replaced = integration["kiosk"]["mappingReplaced"]
    where = f"replaced through the API at {_when(replaced['at'])} by {replaced['by']}" if source == "api" else source
    typer.echo(f"# mapping of {name}: {where}")
    typer.echo(yaml.safe_dump(integration["config"], sort_keys=False, allow_unicode=True), nl=False)


@integrations_app.command("hooks")
@reports_errors
def integrations_hooks(
    name: NameArgument,
    check: Annotated[
        bool, typer.Option("--check", help="Print the plan only (the default); exit code 1 when changes are needed.")
    ] = False,
    apply: Annotated[
        bool, typer.Option("--apply", help="Apply the plan and print what was done (exit code 1 if a step failed).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """The plan that makes the integration's service-hook subscriptions in Azure DevOps exactly what its
    mapping needs: what would be created, updated (re-enabled, new credentials) or deleted, and why.
    Runs here, from kiosk.yaml and the database; no server needed."""
    if check and apply:
        raise BadRequest("give --check or --apply, not both")
    report = _hooks_here(name, config, apply=apply)
    for line in report.lines():
        typer.echo(line)
    if apply:
        done = sum(len(org.results) for org in report.organizations) - report.failures
        typer.echo(f"{name}: {done} change(s) made, {report.failures} failed")
        if report.failures:
            raise typer.Exit(EXIT_FAILURE)
    elif report.changes:
        typer.echo(f"{name}: changes needed (apply them: kiosk integrations hooks {name} --apply)")
        raise typer.Exit(EXIT_FAILURE)
    else:
        typer.echo(f"{name}: the subscriptions match")


def _hooks_here(name: str, config: Path | None, *, apply: bool) -> Any:
    """Check or apply ``name``'s subscriptions in this process, wired as the server wires them."""
    import os

    from kiosk.catalog.service import Catalog
    from kiosk.config import load_config
    from kiosk.config.integrations import resolve_integrations
    from kiosk.ingest.store import IngestStore
    from kiosk.runtime.integrations import IntegrationRunner

    settings = load_settings(config)
    if settings.config_path is None:
        raise ConfigError("no config: pass --config FILE or set KIOSK_CONFIG (the integrations are in kiosk.yaml)")
    quiet_logging()
    loaded = load_config(settings.config_path)
    integrations = resolve_integrations(loaded, env=os.environ, base_dir=settings.config_path.resolve().parent)
    with open_database(settings) as db:
        runner = IntegrationRunner(
            db, IngestStore(db, Catalog(db)), integrations, public_url=loaded.azureDevOps.publicUrl
        )
        return runner.reconcile_hooks(name, apply=apply)
