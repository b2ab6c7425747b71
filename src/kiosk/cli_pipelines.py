"""The ``kiosk`` commands around Azure Pipelines: the emulator server, local expand/run, sign and send.

``kiosk pipeline expand`` and ``kiosk pipeline run`` answer, offline, the questions Azure leaves a
webhook user alone with: does this payload pass the filters, does the YAML still expand with it,
and what do the steps print. ``kiosk sign``/``kiosk send`` produce and deliver the exact bytes and
checksum an incoming webhook expects.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kiosk.cli_errors import EXIT_FAILURE, reports_errors
from kiosk.errors import BadRequest, KioskError

if TYPE_CHECKING:
    from kiosk.emulator.service import Emulator

__all__ = ["emulator", "pipeline_app", "send", "sign"]

pipeline_app = typer.Typer(
    name="pipeline", help="Expand or run an Azure Pipelines YAML file locally.", no_args_is_help=True
)

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


# ------------------------------------------------------------------------------------ emulator


@reports_errors
def emulator(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Emulator config (orgs, connections, pipelines).", dir_okay=False),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8001,
    execute: Annotated[
        bool | None,
        typer.Option(
            "--execute/--no-execute",
            help="Run queued pipelines' scripts on this machine (default: the config's executeRuns).",
            show_default=False,
        ),
    ] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Where runs' workspaces go.", file_okay=False)] = None,
) -> None:
    """Run the Azure DevOps emulator: incoming webhooks, pipelines, runs and logs, on its own port."""
    import uvicorn

    from kiosk.emulator.bootstrap import build_emulator
    from kiosk.emulator.config import EmulatorConfig, load_emulator_config
    from kiosk.logs import configure_logging
    from kiosk.settings import HttpLimits
    from kiosk.web.server import azure_error_body, server_config

    configure_logging("INFO", json=False)
    loaded = load_emulator_config(config) if config is not None else EmulatorConfig()
    config_dir = config.resolve().parent if config is not None else Path.cwd()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - display only
    base_url = f"http://{shown}:{port}"
    server = build_emulator(loaded, config_dir=config_dir, base_url=base_url, work_dir=work_dir, execute_runs=execute)
    sys.stdout.write(
        _emulator_banner(server.emulator, base_url, server.executor is not None, loaded.settings.allow_anonymous)
    )
    sys.stdout.flush()
    limits = HttpLimits.from_env()
    uvicorn.Server(
        server_config(server.app, host, port, limits, error_body=azure_error_body, log_config=None, log_level="warning")
    ).run()


def _emulator_banner(emu: Emulator, base_url: str, executing: bool, anonymous: bool = False) -> str:
    from kiosk.emulator.shapes import trigger_url

    lines = [f"kiosk Azure DevOps emulator on {base_url}  (runs {'executed' if executing else 'queued only'})"]
    if anonymous:
        lines.append("  WARNING: settings.allowAnonymous: the REST API answers anyone who reaches this port")
    else:
        lines.append("  REST API: an org's personal access token, Basic auth with an empty user (curl -u :PAT)")
    for org in emu.org_names():
        for connection in emu.connections(org):
            url = trigger_url(base_url, org, connection.webhook_name)
            check = f"checksum in {connection.header}" if connection.secret is not None else "no secret"
            lines.append(f"  webhook {connection.name}: POST {url}  ({check})")
        for project in emu.projects(org):
            for pipeline in emu.pipelines(org, project.name):
                lines.append(f"  pipeline {org}/{project.name}/{pipeline.name} (id {pipeline.id}): {pipeline.path}")
    lines.append(f"  why no run: GET {base_url}/_emulator/triggers  (with a PAT: the records of its orgs)")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ pipeline expand | run

PipelineArgument = Annotated[
    Path, typer.Argument(help="The pipeline's YAML file.", exists=True, dir_okay=False, show_default=False)
]
WebhookOption = Annotated[
    str | None,
    typer.Option("--webhook", "-w", help="The webhook alias to trigger (default: the only one declared)."),
]
PayloadOption = Annotated[
    Path | None,
    typer.Option("--payload", "-p", help="The webhook's JSON body.", exists=True, dir_okay=False),
]
RootOption = Annotated[
    Path | None,
    typer.Option(help="Repository root for template paths (default: the pipeline file's directory).", file_okay=False),
]
PairsOption = Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable.")]


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BadRequest(f"{what} {item!r} must be NAME=VALUE")
        out[name.strip()] = value
    return out


class _NoRun(KioskError):
    """Azure would queue no run; the message says why."""


def _expand_for_cli(
    pipeline: Path,
    root: Path | None,
    webhook: str | None,
    payload: Path | None,
    parameters: dict[str, str],
    variables: dict[str, str],
) -> tuple[dict[str, Any], str | None]:
    """The expanded document (and the triggering alias) or a _NoRun naming the reason."""
    import orjson

    from kiosk.pipelines.errors import PipelineError
    from kiosk.pipelines.expand import expand_pipeline
    from kiosk.pipelines.webhooks import check_filters, webhook_resources
    from kiosk.pipelines.yaml_source import directory_loader, parse_yaml, to_plain

    base = (root or pipeline.parent).resolve()
    try:
        file = pipeline.resolve().relative_to(base).as_posix()
    except ValueError:
        raise BadRequest(f"{pipeline} is not inside the repository root {base}") from None
    text = pipeline.read_text(encoding="utf-8")
    try:
        document = to_plain(parse_yaml(text, file))
        resources = webhook_resources(document if isinstance(document, dict) else {}, file=file)
    except PipelineError as exc:
        raise _NoRun(f"no run would be queued: {exc}") from None
    payloads: dict[str, Any] = {}
    alias: str | None = None
    if webhook is not None or payload is not None:
        if payload is None:
            raise BadRequest("--webhook needs --payload BODY.json (the body the webhook would receive)")
        if not resources:
            raise _NoRun(f"no run would be queued: {file} declares no resources.webhooks")
        chosen = [r for r in resources if webhook is None or r.alias.lower() == webhook.lower()]
        if not chosen:
            known = ", ".join(r.alias for r in resources)
            raise BadRequest(f"{file} has no webhook resource {webhook!r} (declared: {known})")
        if len(chosen) > 1:
            raise BadRequest(
                f"{file} declares several webhooks; pick one with --webhook ({', '.join(r.alias for r in chosen)})"
            )
        resource = chosen[0]
        try:
            body = orjson.loads(payload.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"{payload}: not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest(f"{payload}: the webhook body must be a JSON object")
        mismatch = check_filters(body, resource.filters)
        if mismatch is not None:
            raise _NoRun(f"no run would be queued: webhook {resource.alias}: {mismatch.describe()}")
        payloads[resource.alias] = body
        alias = resource.alias
    try:
        expanded = expand_pipeline(
            text,
            file=file,
            parameters=parameters,
            webhook_payloads=payloads,
            variables=variables,
            load=directory_loader(base),
        )
    except PipelineError as exc:
        raise _NoRun(f"no run would be queued: {exc}") from None
    return expanded, alias


@pipeline_app.command("expand")
@reports_errors
def pipeline_expand(
    pipeline: PipelineArgument,
    webhook: WebhookOption = None,
    payload: PayloadOption = None,
    root: RootOption = None,
    parameter: PairsOption = None,
    variable: PairsOption = None,
) -> None:
    """Print the expanded YAML Azure would run, or the precise reason no run would be queued."""
    from kiosk.pipelines.expand import dump_yaml

    try:
        document, _ = _expand_for_cli(
            pipeline, root, webhook, payload, _pairs(parameter, "--parameter"), _pairs(variable, "--variable")
        )
    except _NoRun as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    sys.stdout.write(dump_yaml(document))


@pipeline_app.command("run")
@reports_errors
def pipeline_run(
    pipeline: PipelineArgument,
    webhook: WebhookOption = None,
    payload: PayloadOption = None,
    root: RootOption = None,
    parameter: PairsOption = None,
    variable: PairsOption = None,
    secret_variable: Annotated[
        list[str] | None,
        typer.Option(help="NAME=ENV_VAR: a secret variable read from the environment (masked in logs), repeatable."),
    ] = None,
) -> None:
    """Expand the pipeline and run its steps on this machine, streaming the logs; exit 0 on success."""
    import os

    from kiosk.pipelines.runner import RunOptions, TimelineRecord, Variable, run_pipeline

    variables = _pairs(variable, "--variable")
    secrets: dict[str, str] = {}
    for name, env_name in _pairs(secret_variable, "--secret-variable").items():
        if env_name not in os.environ:
            raise BadRequest(f"--secret-variable {name}: environment variable {env_name} is not set")
        secrets[name] = os.environ[env_name]
    try:
        document, alias = _expand_for_cli(pipeline, root, webhook, payload, _pairs(parameter, "--parameter"), variables)
    except _NoRun as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    run_variables = {name: Variable(value) for name, value in variables.items()}
    run_variables.update({name: Variable(value, secret=True) for name, value in secrets.items()})
    run_variables.update(
        {
            "Build.Reason": Variable("ResourceTrigger" if alias else "Manual"),
            "Build.BuildId": Variable("1"),
            "Build.DefinitionName": Variable(pipeline.stem),
            "System.TeamProject": Variable("local"),
            "Build.Repository.Name": Variable((root or pipeline.parent).resolve().name),
        }
    )
    if alias:
        run_variables["resources.triggeringAlias"] = Variable(alias)

    class Printer:
        def record_changed(self, record: TimelineRecord) -> None:
            if record.state == "completed" and record.type != "Task":
                typer.echo(f"== {record.type.lower()} {record.display_name}: {record.result}")

        def log_line(self, log_id: int, line: str) -> None:
            typer.echo(line)

    with tempfile.TemporaryDirectory(prefix="kiosk-run-") as workspace:
        options = RunOptions(
            workspace=Path(workspace), sources=(root or pipeline.parent).resolve(), variables=run_variables
        )
        outcome = run_pipeline(document, options, Printer())
    typer.echo(f"run result: {outcome.result}")
    if outcome.result not in ("succeeded", "succeededWithIssues"):
        raise typer.Exit(EXIT_FAILURE)
