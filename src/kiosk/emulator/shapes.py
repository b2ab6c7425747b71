"""Azure DevOps' JSON shapes for the emulator's objects (Pipelines, Runs, Build timeline and logs).

Field names, casing and nesting follow Azure's REST responses so clients written against Azure
(kiosk's own integration included) read the emulator unchanged. Pure functions of the models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kiosk.emulator.models import Pipeline, PipelineOutcome, Project, Run, TriggerRecord, stable_id
from kiosk.emulator.shapes_core import azure_date
from kiosk.pipelines.timeline import TimelineRecord

__all__ = [
    "build_json",
    "log_json",
    "pipeline_definition_json",
    "pipeline_json",
    "project_json",
    "run_json",
    "run_outcome_json",
    "timeline_json",
    "trigger_json",
    "trigger_url",
]


def project_json(base: str, project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "url": f"{base}/{project.org}/_apis/projects/{project.id}",
        "state": "wellFormed",
        "revision": 1,
        "visibility": "private",
    }


def trigger_url(base: str, org: str, webhook_name: str) -> str:
    """The incoming-webhook URL a sender POSTs to."""
    return f"{base}/{org}/_apis/public/distributedtask/webhooks/{webhook_name}?api-version=6.0-preview"


def _pipeline_url(base: str, pipeline: Pipeline) -> str:
    project = pipeline.project
    return f"{base}/{project.org}/{project.id}/_apis/pipelines/{pipeline.id}?revision={pipeline.revision}"


def pipeline_json(base: str, pipeline: Pipeline) -> dict[str, Any]:
    web = f"{base}/{pipeline.project.org}/{pipeline.project.name}/_build/definition?definitionId={pipeline.id}"
    return {
        "_links": {"self": {"href": _pipeline_url(base, pipeline)}, "web": {"href": web}},
        "configuration": {
            "path": pipeline.path,
            "repository": {
                "id": stable_id(pipeline.project.org, "repo", pipeline.repository_name),
                "type": "azureReposGit",
            },
            "type": "yaml",
        },
        "url": _pipeline_url(base, pipeline),
        "id": pipeline.id,
        "revision": pipeline.revision,
        "name": pipeline.name,
        "folder": pipeline.folder,
    }


def pipeline_definition_json(base: str, pipeline: Pipeline) -> dict[str, Any]:
    """A configured pipeline as the Build API's full ``BuildDefinition`` (``_apis/build/definitions/{id}``): what an
    ingester reads for the pipeline's repository."""
    project = pipeline.project
    url = f"{base}/{project.org}/{project.id}/_apis/build/Definitions/{pipeline.id}?revision={pipeline.revision}"
    web = f"{base}/{project.org}/{project.name}/_build/definition?definitionId={pipeline.id}"
    return {
        "_links": {"self": {"href": url}, "web": {"href": web}},
        "quality": "definition",
        "id": pipeline.id,
        "name": pipeline.name,
        "url": url,
        "uri": f"vstfs:///Build/Definition/{pipeline.id}",
        "path": pipeline.folder,
        "type": "build",
        "queueStatus": "enabled",
        "revision": pipeline.revision,
        "project": project_json(base, project),
        "repository": {
            "id": stable_id(project.org, "repo", pipeline.repository_name),
            "type": "TfsGit",
            "name": pipeline.repository_name,
            "defaultBranch": pipeline.default_branch,
            "clean": None,
            "checkoutSubmodules": False,
        },
        "process": {"yamlFilename": pipeline.path, "type": 2},
        "triggers": [],
        "variables": {},
    }


RUN_RESULTS = {"succeeded": "succeeded", "partiallySucceeded": "succeeded", "failed": "failed", "canceled": "canceled"}


def run_outcome_json(result: str | None, finished: datetime | None) -> dict[str, Any]:
    """A Runs API ``Run``'s ``result`` and ``finishedDate``, each once the run has it: the same for
    a pipeline's own runs and for generated builds listed as runs."""
    fields: dict[str, Any] = {}
    if result is not None:
        fields["result"] = RUN_RESULTS.get(result, "unknown")
    if finished is not None:
        fields["finishedDate"] = azure_date(finished)
    return fields


"""Build results → the Runs API's RunResult (which has no partiallySucceeded)."""


def run_web_url(base: str, run: Run) -> str:
    return f"{base}/{run.pipeline.project.org}/{run.pipeline.project.name}/_build/results?buildId={run.id}"


def run_json(base: str, run: Run, *, final_yaml: str | None = None) -> dict[str, Any]:
    pipeline = run.pipeline
    project = pipeline.project
    url = f"{base}/{project.org}/{project.id}/_apis/pipelines/{pipeline.id}/runs/{run.id}"
    body: dict[str, Any] = {
        "_links": {
            "self": {"href": url},
            "web": {"href": run_web_url(base, run)},
            "pipeline.web": {
                "href": f"{base}/{project.org}/{project.name}/_build/definition?definitionId={pipeline.id}"
            },
            "pipeline": {"href": _pipeline_url(base, pipeline)},
        },
        "pipeline": {
            "url": _pipeline_url(base, pipeline),
            "id": pipeline.id,
            "revision": pipeline.revision,
            "name": pipeline.name,
            "folder": pipeline.folder,
        },
        "state": run.state,
        "createdDate": azure_date(run.created),
        "url": url,
        "resources": {
            "repositories": {
                "self": {
                    "repository": {
                        "id": stable_id(project.org, "repo", pipeline.repository_name),
                        "type": "azureReposGit",
                    },
                    "refName": run.source_branch,
                    "version": run.source_version,
                }
            }
        },
        "variables": {
            name: {"value": v.value} for name, v in run.variables.items() if not v.secret and "." not in name
        },
        "templateParameters": run.template_parameters,
        "id": run.id,
        "name": run.name,
    }
    body.update(run_outcome_json(run.result, run.finished))
    if final_yaml is not None:
        body["finalYaml"] = final_yaml
    return body


_BUILD_STATUS = {"inProgress": "inProgress", "canceling": "cancelling", "completed": "completed"}


def build_json(base: str, run: Run) -> dict[str, Any]:
    """The Build API's view of a run (``_apis/build/builds/{id}``), the fields clients read."""
    project = run.pipeline.project
    url = f"{base}/{project.org}/{project.id}/_apis/build/Builds/{run.id}"
    body: dict[str, Any] = {
        "_links": {"self": {"href": url}, "web": {"href": run_web_url(base, run)}},
        "id": run.id,
        "buildNumber": run.name,
        "status": _BUILD_STATUS.get(run.state, run.state),
        "queueTime": azure_date(run.created),
        "startTime": azure_date(run.created),
        "url": url,
        "definition": {"id": run.pipeline.id, "name": run.pipeline.name, "path": run.pipeline.folder, "type": "build"},
        "project": project_json(base, project),
        "reason": {"ResourceTrigger": "resourceTrigger", "Manual": "manual"}.get(run.reason, run.reason),
        "sourceBranch": run.source_branch,
        "sourceVersion": run.source_version,
        "logs": {"id": 0, "type": "Container", "url": f"{url}/logs"},
    }
    if run.result is not None:
        body["result"] = run.result
    if run.finished is not None:
        body["finishTime"] = azure_date(run.finished)
    return body


def log_json(base: str, run: Run, log_id: int, *, signed: bool = False) -> dict[str, Any]:
    project = run.pipeline.project
    url = f"{base}/{project.org}/{project.id}/_apis/pipelines/{run.pipeline.id}/runs/{run.id}/logs/{log_id}"
    body: dict[str, Any] = {
        "lineCount": len(run.logs.get(log_id, [])),
        "createdOn": azure_date(run.log_created.get(log_id)),
        "lastChangedOn": azure_date(run.log_changed.get(log_id)),
        "id": log_id,
        "url": url,
    }
    if signed:
        body["signedContent"] = {
            "signatureExpires": None,
            "url": f"{base}/{project.org}/{project.id}/_apis/build/builds/{run.id}/logs/{log_id}",
        }
    return body


def _issue(text: str) -> dict[str, str]:
    """The runner's ``"error: message"`` / ``"warning: message"`` → Azure's ``{type, message}``."""
    kind, sep, message = text.partition(": ")
    if sep and kind in ("error", "warning"):
        return {"type": kind, "message": message}
    return {"type": "error", "message": text}


def _record_json(base: str, run: Run, record: TimelineRecord) -> dict[str, Any]:
    project = run.pipeline.project
    parent = stable_id(project.org, str(run.id), record.parent_id) if record.parent_id else None
    issues = [_issue(text) for text in record.issues]
    body: dict[str, Any] = {
        "id": stable_id(project.org, str(run.id), record.id),
        "parentId": parent,
        "type": record.type,
        "name": record.display_name,
        "identifier": record.name,
        "startTime": azure_date(record.start_time),
        "finishTime": azure_date(record.finish_time),
        "state": record.state,
        "result": record.result,
        "order": record.order,
        "attempt": 1,
        "errorCount": sum(1 for issue in issues if issue["type"] == "error"),
        "warningCount": sum(1 for issue in issues if issue["type"] == "warning"),
        "issues": issues,
        "log": None,
    }
    if record.log_id is not None:
        body["log"] = {
            "id": record.log_id,
            "type": "Container",
            "url": f"{base}/{project.org}/{project.id}/_apis/build/builds/{run.id}/logs/{record.log_id}",
        }
    return body


def timeline_json(base: str, run: Run) -> dict[str, Any]:
    records = sorted(run.records.values(), key=lambda r: r.order)
    return {
        "records": [_record_json(base, run, record) for record in records],
        "id": stable_id(run.pipeline.project.org, str(run.id), "timeline"),
        "url": f"{base}/{run.pipeline.project.org}/{run.pipeline.project.id}/_apis/build/builds/{run.id}/Timeline",
    }


def _outcome_json(outcome: PipelineOutcome) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pipeline": {"id": outcome.pipeline_id, "name": outcome.pipeline_name, "project": outcome.project},
        "alias": outcome.alias,
        "queued": outcome.run_id is not None,
    }
    if outcome.run_id is not None:
        body["runId"] = outcome.run_id
    if outcome.reason is not None:
        body["reason"] = outcome.reason
    return body


def trigger_json(record: TriggerRecord) -> dict[str, Any]:
    """One trigger call and what it led to: the emulator's answer to "why was no run queued?"."""
    queued = [o.run_id for o in record.outcomes if o.run_id is not None]
    if record.error is not None:
        summary = record.error["message"]
    elif not record.outcomes:
        summary = "no pipeline listens on this webhook"
    elif queued:
        summary = f"{len(queued)} run(s) queued"
    else:
        summary = "no run queued: " + "; ".join(
            f"{o.pipeline_name}: {o.reason['message']}" for o in record.outcomes if o.reason is not None
        )
    return {
        "id": record.id,
        "receivedAt": azure_date(record.received_at),
        "org": record.org,
        "webhookName": record.webhook_name,
        "connection": record.connection,
        "bodyBytes": record.body_bytes,
        "status": record.status,
        "error": record.error,
        "queuedRuns": queued,
        "summary": summary,
        "pipelines": [_outcome_json(o) for o in record.outcomes],
    }
