"""``kiosk pipeline expand|run``: Azure Pipelines on this machine.

``kiosk pipeline expand`` and ``kiosk pipeline run`` answer, offline, the questions Azure leaves a
webhook user alone with: does this payload pass the filters, does the YAML still expand with it,
and what do the steps print. ``kiosk emulator`` (:mod:`kiosk.cli.emulator`) serves the local Azure
DevOps that runs them on webhooks.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from kiosk.cli.errors import EXIT_FAILURE, reports_errors
from kiosk.errors import BadRequest

if TYPE_CHECKING:
    pass

__all__ = ["name_value_pairs", "pipeline_app"]

pipeline_app = typer.Typer(
    name="pipeline", help="Expand or run an Azure Pipelines YAML file locally.", no_args_is_help=True
)


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


def name_value_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """Repeated ``NAME=VALUE`` options as a dict (``kiosk emulator``'s ``--file``/``--field`` too);
    ``what`` names the option in the error for an item without ``=`` or a name."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BadRequest(f"{what} {item!r} must be NAME=VALUE")
        out[name.strip()] = value
    return out


def _no_run(reason: str) -> NoReturn:
    """Azure would queue no run: say why on stderr (a verdict on the pipeline, not an ``error:``), exit 1."""
    typer.echo(f"no run would be queued: {reason}", err=True)
    raise typer.Exit(EXIT_FAILURE)


def _expand_for_cli(
    pipeline: Path,
    root: Path | None,
    webhook: str | None,
    payload: Path | None,
    parameters: dict[str, str],
    variables: dict[str, str],
) -> tuple[dict[str, Any], str | None]:
    """The expanded document and the triggering alias, or the reason no run would be queued (exit 1)."""
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
        _no_run(str(exc))
    payloads: dict[str, Any] = {}
    alias: str | None = None
    if webhook is not None or payload is not None:
        if payload is None:
            raise BadRequest("--webhook needs --payload BODY.json (the body the webhook would receive)")
        if not resources:
            _no_run(f"{file} declares no resources.webhooks")
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
            _no_run(f"webhook {resource.alias}: {mismatch.describe()}")
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
        _no_run(str(exc))
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

    document, _ = _expand_for_cli(
        pipeline,
        root,
        webhook,
        payload,
        name_value_pairs(parameter, "--parameter"),
        name_value_pairs(variable, "--variable"),
    )
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

    from kiosk.pipelines.runner import RunOptions, run_pipeline
    from kiosk.pipelines.timeline import TimelineRecord
    from kiosk.pipelines.variables import Variable

    variables = name_value_pairs(variable, "--variable")
    secrets: dict[str, str] = {}
    for name, env_name in name_value_pairs(secret_variable, "--secret-variable").items():
        if env_name not in os.environ:
            raise BadRequest(f"--secret-variable {name}: environment variable {env_name} is not set")
        secrets[name] = os.environ[env_name]
    document, alias = _expand_for_cli(
        pipeline, root, webhook, payload, name_value_pairs(parameter, "--parameter"), variables
    )
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
