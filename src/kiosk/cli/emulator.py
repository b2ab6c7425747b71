"""``kiosk emulator``: serve the local Azure DevOps, or change a running one.

``kiosk emulator [--config FILE] [--generate …] [--activity 50/s] …`` runs the server (incoming
webhooks, pipelines, runs and logs, an organisation's REST API and its service-hook events). The
verbs change a running emulator's organisation through its ``/_emulator`` mutation API, so the
service hooks fire as they would on Azure — for trying a subscriber by hand, or from a script::

    kiosk emulator repo create "Ledger API" --org demo --project demo
    kiosk emulator push "Ledger API" --branch main --file README.md=@README.md --comment "Docs"
    kiosk emulator pr create "Ledger API" --source feature/x --title "Add x" --reviewer ana.garcia@contoso.example
    kiosk emulator workitem update 42 --state Active --field System.AssignedTo=ana.garcia@contoso.example

Each verb prints what changed and the events published (type and id). The emulator is ``--url``
(``$KIOSK_EMULATOR_URL``, default http://127.0.0.1:8001), the org ``--org``
(``$KIOSK_EMULATOR_ORG``), its PAT ``--pat`` (``$KIOSK_EMULATOR_PAT``), the project ``--project``
(``$KIOSK_EMULATOR_PROJECT``). The group runs the server when no verb is given, so
``kiosk emulator --config …`` is unchanged.
"""

from __future__ import annotations

import base64
import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from kiosk.cli.api import answer_json
from kiosk.cli.errors import reports_errors
from kiosk.cli.pipelines import name_value_pairs
from kiosk.cli.settings import display_host
from kiosk.errors import BadRequest, KioskError

if TYPE_CHECKING:
    from kiosk.emulator.service import Emulator

__all__ = ["emulator_app"]

emulator_app = typer.Typer(
    name="emulator",
    help="Run the Azure DevOps emulator (no verb), or change a running one's organisation (the verbs).",
    invoke_without_command=True,
    no_args_is_help=False,
)
repo_app = typer.Typer(
    name="repo", help="Create, rename, disable, enable or delete a repository.", no_args_is_help=True
)
pr_app = typer.Typer(name="pr", help="Create, edit, vote on, complete or abandon a pull request.", no_args_is_help=True)
workitem_app = typer.Typer(
    name="workitem", help="Create, update, comment on, delete or restore a work item.", no_args_is_help=True
)
release_app = typer.Typer(
    name="release", help="Create a release, or complete a deployment of one.", no_args_is_help=True
)
for _group in (repo_app, pr_app, workitem_app, release_app):
    emulator_app.add_typer(_group)


# ------------------------------------------------------------------------------------ the server


@emulator_app.callback()
@reports_errors
def emulator(
    ctx: typer.Context,
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
    work_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where runs' workspaces go (default: the config's settings.workDir, else $KIOSK_HOME/emulator).",
            file_okay=False,
        ),
    ] = None,
    generate: Annotated[
        str | None,
        typer.Option(
            help="Fill every configured org with a generated one, e.g. projects=50,repos=2000,workitems=100000,seed=7 "
            "(replaces the config's generate:).",
            show_default=False,
        ),
    ] = None,
    activity: Annotated[
        str | None,
        typer.Option(
            help="Make a realistic mix of changes (pushes, work items, pull requests, builds…) at this rate, "
            "e.g. 50/s or 300/min, with their service-hook events (replaces the config's activity: rate).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the Azure DevOps emulator: incoming webhooks, pipelines, runs and logs, an org's REST API and its events.

    With a verb (repo, push, pr, workitem, build, release), change a running emulator instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from kiosk.emulator.activity import ActivitySpec
    from kiosk.emulator.bootstrap import build_emulator
    from kiosk.emulator.config import EmulatorConfig, load_emulator_config, parse_generate_option
    from kiosk.emulator.errors import server_error_body
    from kiosk.errors import ConfigError
    from kiosk.logs import configure_logging
    from kiosk.settings import HttpLimits
    from kiosk.web.server import server_config

    configure_logging("INFO", json=False)
    loaded = load_emulator_config(config) if config is not None else EmulatorConfig()
    config_dir = config.resolve().parent if config is not None else Path.cwd()
    base_url = f"http://{display_host(host)}:{port}"
    generated = parse_generate_option(generate) if generate is not None else None
    if generated is not None and not loaded.orgs:
        raise ConfigError("--generate fills the orgs of the emulator's config: declare one in --config")
    changes = (
        ActivitySpec.from_option(activity, loaded.activity.seed if loaded.activity else 0)
        if activity is not None
        else None
    )
    server = build_emulator(
        loaded,
        config_dir=config_dir,
        base_url=base_url,
        work_dir=work_dir,
        execute_runs=execute,
        generate=generated,
        activity=changes,
    )
    sys.stdout.write(
        _emulator_banner(server.emulator, base_url, server.executor is not None, loaded.settings.allow_anonymous)
    )
    if changes or loaded.activity:
        shown = changes or loaded.activity
        assert shown is not None
        sys.stdout.write(f"  activity: {shown.rate} (seed {shown.seed}); counts at GET {base_url}/_emulator/activity\n")
    sys.stdout.flush()
    # A generated org is millions of objects that live as long as the server: moved out of the
    # collector's sight, full collections stop rescanning them (they were most of a mutation's cost
    # on a 100,000-work-item org, and stalled the first WIQL queries).
    gc.freeze()
    limits = HttpLimits.from_env()
    uvicorn.Server(
        server_config(
            server.app, host, port, limits, error_body=server_error_body, log_config=None, log_level="warning"
        )
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
        data = emu.organisation(org)
        if data.repositories or data.work_items:
            lines.append(
                f"  org {org}: {len(data.projects)} projects, {len(data.repositories)} repositories, "
                f"{len(data.work_items)} work items (generated)"
            )
    lines.append(f"  why no run: GET {base_url}/_emulator/triggers  (with a PAT: the records of its orgs)")
    lines.append(f"  change the org: kiosk emulator repo|push|pr|workitem|build|release --url {base_url} (see --help)")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ the verbs' client

Url = Annotated[
    str, typer.Option("--url", envvar="KIOSK_EMULATOR_URL", help="The running emulator.", show_default=True)
]
Org = Annotated[str, typer.Option("--org", envvar="KIOSK_EMULATOR_ORG", help="The organisation.", show_default=False)]
Pat = Annotated[
    str,
    typer.Option("--pat", envvar="KIOSK_EMULATOR_PAT", help="A personal access token of the org.", show_default=False),
]
ProjectOption = Annotated[
    str, typer.Option("--project", "-p", envvar="KIOSK_EMULATOR_PROJECT", help="The project (name or id).")
]
By = Annotated[
    str | None,
    typer.Option("--by", help="Who makes the change (user id, e-mail or display name; default: the org's first user)."),
]
DEFAULT_URL = "http://127.0.0.1:8001"


class _Emulator:
    """The mutation API of one org's project on a running emulator; errors become one-line KioskErrors."""

    def __init__(self, url: str, org: str, pat: str, project: str) -> None:
        self.url = url.rstrip("/")
        self.prefix = f"/_emulator/orgs/{quote(org, safe='')}/projects/{quote(project, safe='')}"
        self.auth = "Basic " + base64.b64encode(f":{pat}".encode()).decode()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        try:
            response = httpx.request(
                method, self.url + self.prefix + path, json=body, headers={"Authorization": self.auth}, timeout=30.0
            )
        except httpx.HTTPError as exc:
            raise KioskError(f"cannot reach the emulator at {self.url}: {exc}") from None
        answer = answer_json(response, method, path)
        if not isinstance(answer, dict):
            raise KioskError(f"{method} {path}: the emulator's answer is not the mutation API's JSON")
        return answer


def _report(answer: dict[str, Any], summary: str) -> None:
    """One line for the change, one per event published."""
    typer.echo(summary)
    for event in answer.get("events", []):
        typer.echo(f"  event {event['eventType']} {event['id']}")


def _path(name: str) -> str:
    return quote(name, safe="")


def _field_value(text: str) -> str | int | float | None:
    """A ``--field`` value: a number when it reads as one, nothing for an empty value (clears the field)."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# ------------------------------------------------------------------------------------ repo


@repo_app.command("create")
@reports_errors
def repo_create(name: str, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL, by: By = None) -> None:
    """Create an empty repository (git.repo.created); its first push makes the default branch."""
    answer = _Emulator(url, org, pat, project).call("POST", "/repositories", {"name": name, "by": by})
    _report(answer, f"repository {answer['value']['name']} ({answer['value']['id']}) created")


@repo_app.command("rename")
@reports_errors
def repo_rename(
    repository: str, new_name: str, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL, by: By = None
) -> None:
    """Rename a repository (git.repo.renamed)."""
    api = _Emulator(url, org, pat, project)
    answer = api.call("PATCH", f"/repositories/{_path(repository)}", {"name": new_name, "by": by})
    _report(answer, f"repository {repository} renamed to {answer['value']['name']}")


@repo_app.command("disable")
@reports_errors
def repo_disable(repository: str, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL) -> None:
    """Disable a repository (git.repo.statuschanged): its content answers 404 until enabled."""
    answer = _Emulator(url, org, pat, project).call("PATCH", f"/repositories/{_path(repository)}", {"isDisabled": True})
    _report(answer, f"repository {answer['value']['name']} disabled")


@repo_app.command("enable")
@reports_errors
def repo_enable(repository: str, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL) -> None:
    """Enable a disabled repository (git.repo.statuschanged)."""
    answer = _Emulator(url, org, pat, project).call(
        "PATCH", f"/repositories/{_path(repository)}", {"isDisabled": False}
    )
    _report(answer, f"repository {answer['value']['name']} enabled")


@repo_app.command("delete")
@reports_errors
def repo_delete(repository: str, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL) -> None:
    """Delete a repository (git.repo.deleted)."""
    answer = _Emulator(url, org, pat, project).call("DELETE", f"/repositories/{_path(repository)}")
    _report(answer, f"repository {answer['value']['name']} deleted")


# ------------------------------------------------------------------------------------ push


@emulator_app.command("push")
@reports_errors
def push(
    repository: str,
    org: Org,
    pat: Pat,
    project: ProjectOption,
    branch: Annotated[
        str | None, typer.Option(help="The branch to commit to (created from --base, else the default branch).")
    ] = None,
    base: Annotated[str | None, typer.Option(help="Where a new branch starts (default: the default branch).")] = None,
    file: Annotated[
        list[str] | None,
        typer.Option(help="PATH=TEXT or PATH=@LOCAL_FILE: add or edit a file, repeatable."),
    ] = None,
    delete: Annotated[list[str] | None, typer.Option(help="PATH: delete a file, repeatable.")] = None,
    comment: Annotated[str, typer.Option(help="The commit message.")] = "",
    create_branch: Annotated[
        str | None, typer.Option(help="Create this branch at --commit (no file changes).", show_default=False)
    ] = None,
    delete_branch: Annotated[str | None, typer.Option(help="Delete this branch.", show_default=False)] = None,
    commit: Annotated[str | None, typer.Option(help="The commit --create-branch points at.")] = None,
    url: Url = DEFAULT_URL,
    by: By = None,
) -> None:
    """Push to a repository (git.push): a commit of --file/--delete on --branch, or a branch created or deleted."""
    changes: list[dict[str, Any]] = []
    for path, value in name_value_pairs(file, "--file").items():
        text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
        changes.append({"path": path, "content": text})
    changes.extend({"path": path, "changeType": "delete"} for path in delete or [])
    body: dict[str, Any] = {"comment": comment, "by": by}
    if changes:
        if branch is None:
            raise BadRequest("--file/--delete need --branch: the branch the commit goes to")
        body.update({"branch": branch, "baseBranch": base, "changes": changes})
    elif create_branch is not None:
        if commit is None:
            raise BadRequest("--create-branch needs --commit: the commit the branch points at")
        body["refUpdates"] = [{"name": create_branch, "newObjectId": commit}]
    elif delete_branch is not None:
        body["refUpdates"] = [{"name": delete_branch, "newObjectId": "0" * 40}]
    else:
        raise BadRequest("nothing to push: give --file/--delete with --branch, --create-branch or --delete-branch")
    answer = _Emulator(url, org, pat, project).call(
        "POST", f"/repositories/{_path(repository)}/pushes", {k: v for k, v in body.items() if v is not None}
    )
    value = answer["value"]
    moved = ", ".join(f"{u['name']} {u['oldObjectId'][:7]}..{u['newObjectId'][:7]}" for u in value["refUpdates"])
    _report(answer, f"push {value['pushId']} to {value['repository']['name']}: {moved}")


# ------------------------------------------------------------------------------------ pull requests

Reviewer = Annotated[list[str] | None, typer.Option("--reviewer", help="A reviewer (id, e-mail or name), repeatable.")]


@pr_app.command("create")
@reports_errors
def pr_create(
    repository: str,
    org: Org,
    pat: Pat,
    project: ProjectOption,
    source: Annotated[str, typer.Option(help="The source branch.")],
    title: Annotated[str, typer.Option(help="The title.")],
    target: Annotated[str | None, typer.Option(help="The target branch (default: the default branch).")] = None,
    description: Annotated[str, typer.Option(help="The description.")] = "",
    reviewer: Reviewer = None,
    url: Url = DEFAULT_URL,
    by: By = None,
) -> None:
    """Open a pull request (git.pullrequest.created)."""
    body = {
        "sourceRefName": source,
        "targetRefName": target,
        "title": title,
        "description": description,
        "reviewers": {name: 0 for name in reviewer or []},
        "by": by,
    }
    answer = _Emulator(url, org, pat, project).call(
        "POST", f"/repositories/{_path(repository)}/pullrequests", {k: v for k, v in body.items() if v is not None}
    )
    value = answer["value"]
    _report(answer, f"pull request {value['pullRequestId']} ({value['sourceRefName']} into {value['targetRefName']})")


def _pr_update(url: str, org: str, pat: str, project: str, pull_request_id: int, body: dict[str, Any]) -> None:
    answer = _Emulator(url, org, pat, project).call(
        "PATCH", f"/pullrequests/{pull_request_id}", {k: v for k, v in body.items() if v is not None}
    )
    value = answer["value"]
    _report(answer, f"pull request {value['pullRequestId']}: {value['status']}")


@pr_app.command("update")
@reports_errors
def pr_update(
    pull_request_id: int,
    org: Org,
    pat: Pat,
    project: ProjectOption,
    title: Annotated[str | None, typer.Option(help="A new title.")] = None,
    description: Annotated[str | None, typer.Option(help="A new description.")] = None,
    reviewer: Reviewer = None,
    url: Url = DEFAULT_URL,
    by: By = None,
) -> None:
    """Edit a pull request or add reviewers (git.pullrequest.updated)."""
    votes = {name: 0 for name in reviewer or []}
    _pr_update(
        url,
        org,
        pat,
        project,
        pull_request_id,
        {"title": title, "description": description, "reviewers": votes, "by": by},
    )


@pr_app.command("vote")
@reports_errors
def pr_vote(
    pull_request_id: int,
    org: Org,
    pat: Pat,
    project: ProjectOption,
    vote: Annotated[int, typer.Option(help="10 approve, 5 with suggestions, 0 none, -5 wait, -10 reject.")] = 10,
    url: Url = DEFAULT_URL,
    by: By = None,
) -> None:
    """Vote on a pull request as --by (git.pullrequest.updated, ReviewerVoteNotification)."""
    if vote not in (-10, -5, 0, 5, 10):
        raise BadRequest("--vote must be one of 10, 5, 0, -5, -10")
    if by is None:
        raise BadRequest("--by names the reviewer who votes")
    _pr_update(url, org, pat, project, pull_request_id, {"reviewers": {by: vote}, "by": by})


@pr_app.command("complete")
@reports_errors
def pr_complete(
    pull_request_id: int, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL, by: By = None
) -> None:
    """Merge a pull request (git.push, git.pullrequest.merged, git.pullrequest.updated)."""
    _pr_update(url, org, pat, project, pull_request_id, {"status": "completed", "by": by})


@pr_app.command("abandon")
@reports_errors
def pr_abandon(
    pull_request_id: int, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL, by: By = None
) -> None:
    """Abandon a pull request (git.pullrequest.updated)."""
    _pr_update(url, org, pat, project, pull_request_id, {"status": "abandoned", "by": by})


# ------------------------------------------------------------------------------------ work items

Fields = Annotated[
    list[str] | None, typer.Option("--field", help="REFERENCE.NAME=VALUE (empty clears it), repeatable.")
]


def _item_summary(answer: dict[str, Any], verb: str) -> None:
    value = answer["value"]
    fields = value["fields"]
    _report(
        answer,
        f"{fields.get('System.WorkItemType')} {value['id']} {verb} (rev {value['rev']}, {fields.get('System.State')}): "
        f"{fields.get('System.Title')}",
    )


@workitem_app.command("create")
@reports_errors
def workitem_create(
    org: Org,
    pat: Pat,
    project: ProjectOption,
    title: Annotated[str, typer.Option(help="System.Title.")],
    kind: Annotated[str, typer.Option("--type", help="The work item type.")] = "Task",
    state: Annotated[str | None, typer.Option(help="Start in this state (default: the type's first).")] = None,
    field: Fields = None,
    url: Url = DEFAULT_URL,
    by: By = None,
) -> None:
    """Create a work item (workitem.created)."""
    fields: dict[str, Any] = {name: _field_value(v) for name, v in name_value_pairs(field, "--field").items()}
    fields["System.Title"] = title
    if state is not None:
        fields["System.State"] = state
    answer = _Emulator(url, org, pat, project).call(
        "POST", "/workitems", {"type": kind, "fields": fields, **({"by": by} if by else {})}
    )
    _item_summary(answer, "created")


@workitem_app.command("update")
@reports_errors
def workitem_update(
    work_item_id: int,
    org: Org,
    pat: Pat,
    project: ProjectOption,
    state: Annotated[str | None, typer.Option(help="A new state (Reason and dates follow).")] = None,
    title: Annotated[str | None, typer.Option(help="A new title.")] = None,
    field: Fields = None,
    url: Url = DEFAULT_URL,
    by: By = None,
) -> None:
    """Change fields of a work item (workitem.updated)."""
    fields: dict[str, Any] = {name: _field_value(v) for name, v in name_value_pairs(field, "--field").items()}
    if state is not None:
        fields["System.State"] = state
    if title is not None:
        fields["System.Title"] = title
    if not fields:
        raise BadRequest("nothing to change: give --state, --title or --field")
    answer = _Emulator(url, org, pat, project).call(
        "PATCH", f"/workitems/{work_item_id}", {"fields": fields, **({"by": by} if by else {})}
    )
    _item_summary(answer, "updated")


@workitem_app.command("comment")
@reports_errors
def workitem_comment(
    work_item_id: int, text: str, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL, by: By = None
) -> None:
    """Comment on a work item (workitem.commented, workitem.updated)."""
    answer = _Emulator(url, org, pat, project).call(
        "POST", f"/workitems/{work_item_id}/comments", {"text": text, **({"by": by} if by else {})}
    )
    _item_summary(answer, "commented on")


@workitem_app.command("delete")
@reports_errors
def workitem_delete(work_item_id: int, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL) -> None:
    """Move a work item to the recycle bin (workitem.deleted)."""
    _item_summary(_Emulator(url, org, pat, project).call("DELETE", f"/workitems/{work_item_id}"), "deleted")


@workitem_app.command("restore")
@reports_errors
def workitem_restore(
    work_item_id: int, org: Org, pat: Pat, project: ProjectOption, url: Url = DEFAULT_URL, by: By = None
) -> None:
    """Restore a deleted work item (workitem.restored)."""
    answer = _Emulator(url, org, pat, project).call(
        "POST", f"/workitems/{work_item_id}/restore", {"by": by} if by else {}
    )
    _item_summary(answer, "restored")


# ------------------------------------------------------------------------------------ builds and releases


@emulator_app.command("build")
@reports_errors
def build(
    definition_id: int,
    org: Org,
    pat: Pat,
    project: ProjectOption,
    result: Annotated[str, typer.Option(help="succeeded, partiallySucceeded, failed or canceled.")] = "succeeded",
    branch: Annotated[str | None, typer.Option(help="The source branch (default: the definition's).")] = None,
    url: Url = DEFAULT_URL,
    by: By = None,
) -> None:
    """A finished build of a definition (build.complete)."""
    body = {"definitionId": definition_id, "result": result, "sourceBranch": branch, "by": by}
    answer = _Emulator(url, org, pat, project).call("POST", "/builds", {k: v for k, v in body.items() if v is not None})
    value = answer["value"]
    _report(answer, f"build {value['id']} ({value['buildNumber']}) {value['result']}")


@release_app.command("create")
@reports_errors
def release_create(
    definition_id: int,
    org: Org,
    pat: Pat,
    project: ProjectOption,
    build_id: Annotated[int | None, typer.Option("--build", help="The build it deploys.")] = None,
    url: Url = DEFAULT_URL,
    by: By = None,
) -> None:
    """Create a release of a release definition (ms.vss-release.release-created-event)."""
    body = {"definitionId": definition_id, "buildId": build_id, "by": by}
    answer = _Emulator(url, org, pat, project).call(
        "POST", "/releases", {k: v for k, v in body.items() if v is not None}
    )
    value = answer["value"]
    stages = ", ".join(e["name"] for e in value.get("environments", []))
    _report(answer, f"release {value['id']} ({value['name']}); stages: {stages}")


@release_app.command("deploy")
@reports_errors
def release_deploy(
    release_id: int,
    stage: str,
    org: Org,
    pat: Pat,
    project: ProjectOption,
    status: Annotated[str, typer.Option(help="succeeded, partiallySucceeded, rejected or canceled.")] = "succeeded",
    url: Url = DEFAULT_URL,
    by: By = None,
) -> None:
    """Complete a deployment of one stage (ms.vss-release.deployment-completed-event)."""
    body = {"environment": stage, "status": status, "by": by}
    answer = _Emulator(url, org, pat, project).call(
        "POST", f"/releases/{release_id}/deployments", {k: v for k, v in body.items() if v is not None}
    )
    value = answer["value"]
    _report(answer, f"deployment {value['id']} of release {release_id}, stage {stage}: {value['deploymentStatus']}")
