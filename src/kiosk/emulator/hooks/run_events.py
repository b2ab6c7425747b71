"""Events of the pipeline runs the emulator executes, as :class:`~kiosk.emulator.org.events.OrgEvent`.

Runs report through the same path as every other change of an org: a run's state changes
(queued → ``inProgress``, ``canceling``, ``completed``) publish
``ms.vss-pipelines.run-state-changed-event`` and, once completed, ``build.complete``; its stages
and jobs starting and finishing (the runner's timeline records) publish
``ms.vss-pipelines.stage-state-changed-event`` and ``…job-state-changed-event``. The resources are
Azure's (reference 6.3): the run and pipeline in the Runs API's shapes, the build in the Build
API's, a stage or job with its timeline record id, state, result and times.

:class:`RunEvents` is the emulator's run listener and the executor's record listener; it builds
the event and hands it to ``Emulator.publish`` — from the thread the change happened on (the
executor's worker, or the request that queued the run), so event sinks must be thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from kiosk.emulator.models import Run, stable_id
from kiosk.emulator.org.events import OrgEvent
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes import RUN_RESULTS, build_json, pipeline_json, run_json, run_web_url
from kiosk.pipelines.timeline import TimelineRecord

__all__ = [
    "BUILD_COMPLETE",
    "JOB_STATE_CHANGED",
    "RUN_STATE_CHANGED",
    "STAGE_STATE_CHANGED",
    "RunEvents",
    "build_complete_event",
    "job_state_event",
    "run_state_event",
    "stage_state_event",
]

RUN_STATE_CHANGED: Final = "ms.vss-pipelines.run-state-changed-event"
STAGE_STATE_CHANGED: Final = "ms.vss-pipelines.stage-state-changed-event"
JOB_STATE_CHANGED: Final = "ms.vss-pipelines.job-state-changed-event"
BUILD_COMPLETE: Final = "build.complete"
_PIPELINES_VERSION: Final = "5.1-preview.1"
_BUILD_STATUS: Final = {
    "succeeded": "Succeeded",
    "partiallySucceeded": "PartiallySucceeded",
    "failed": "Failed",
    "canceled": "Stopped",
}
"""Build results → the ``buildStatus`` filter's values."""
_STAGE_STATES: Final = {"pending": "notStarted", "inProgress": "running", "completed": "completed"}
_JOB_STATES: Final = {"pending": "waiting", "inProgress": "running", "completed": "completed"}
_JOB_RESULTS: Final = {"succeededWithIssues": "succeeded"}


def _date(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _run_resource(base: str, run: Run) -> dict[str, Any]:
    """What every pipelines event carries about its run: run, pipeline, ids, the repository."""
    pipeline = pipeline_json(base, run.pipeline)
    project = run.pipeline.project
    run_body = run_json(base, run)
    repository_id = stable_id(project.org, "repo", run.pipeline.repository_name)
    return {
        "run": run_body,
        "pipeline": {k: pipeline[k] for k in ("url", "id", "revision", "name", "folder")},
        "runId": run.id,
        "runUrl": run_body["url"],
        "projectId": project.id,
        "repositories": [
            {
                "alias": "self",
                "id": repository_id,
                "type": "Git",
                "change": {"message": f"Run {run.name}", "version": run.source_version},
                "url": f"{base}/{project.org}/{project.id}/_apis/git/repositories/{repository_id}",
            }
        ],
    }


def _pipelines_event(
    event_type: str,
    run: Run,
    resource: dict[str, Any],
    text: str,
    filters: Mapping[str, tuple[str, ...]],
    detailed_message: str = "",
) -> OrgEvent:
    """An event of the ``pipelines`` publisher about ``run``: every one is filtered by its pipeline id
    (``pipelineid``, first) and belongs to the run's project."""
    return OrgEvent(
        event_type=event_type,
        publisher_id="pipelines",
        resource_version=_PIPELINES_VERSION,
        resource=resource,
        project_id=run.pipeline.project.id,
        message=text,
        detailed_message=detailed_message,
        filters={"pipelineid": (str(run.pipeline.id),), **filters},
    )


def run_state_event(base: str, run: Run) -> OrgEvent:
    """``ms.vss-pipelines.run-state-changed-event`` for ``run`` as it is now."""
    text = f"Run {run.name} {run.result}." if run.state == "completed" else f"Run {run.name} is {run.state}."
    result = RUN_RESULTS.get(run.result or "", "") if run.result else ""
    filters = {"runstateid": (run.state,), "runresultid": (result,) if result else ()}
    return _pipelines_event(
        RUN_STATE_CHANGED, run, _run_resource(base, run), text, filters, f"{text} Pipeline {run.pipeline.name}."
    )


def build_complete_event(base: str, run: Run) -> OrgEvent:
    """``build.complete`` (publisher ``tfs``, resource version 2.0: the Build API's build)."""
    result = run.result or ""
    text = f"Build {run.name} {result}"
    resource = build_json(base, run)
    resource["uri"] = f"vstfs:///Build/Build/{run.id}"
    return OrgEvent(
        event_type=BUILD_COMPLETE,
        publisher_id="tfs",
        resource_version="2.0",
        resource=resource,
        project_id=run.pipeline.project.id,
        message=text,
        detailed_message=f"{text}. Pipeline {run.pipeline.name}, branch {run.source_branch}.",
        filters={
            "definitionname": (run.pipeline.name,),
            "buildstatus": (_BUILD_STATUS[result],) if result in _BUILD_STATUS else (),
        },
    )


def _record_body(base: str, run: Run, record: TimelineRecord, states: dict[str, str]) -> dict[str, Any]:
    project = run.pipeline.project
    result = record.result if record.state == "completed" else None
    return {
        "id": stable_id(project.org, str(run.id), record.id),
        "name": record.name,
        "displayName": record.display_name,
        "attempt": 1,
        "state": states.get(record.state, record.state),
        "result": result,
        "startTime": _date(record.start_time),
        "finishTime": _date(record.finish_time),
        "_links": {"web": {"href": run_web_url(base, run)}},
    }


def stage_state_event(base: str, run: Run, stage: TimelineRecord) -> OrgEvent:
    """``ms.vss-pipelines.stage-state-changed-event`` for a stage's timeline record."""
    body = _record_body(base, run, stage, _STAGE_STATES)
    text = f"Run {run.name} stage {stage.display_name} {body['result'] or body['state']}."
    resource = {"stage": body, **_run_resource(base, run), "stageName": stage.name}
    filters = {
        "stagenameid": (stage.name,),
        "stagestateid": (body["state"],),
        "stageresultid": (body["result"],) if body["result"] else (),
    }
    return _pipelines_event(STAGE_STATE_CHANGED, run, resource, text, filters)


def job_state_event(base: str, run: Run, job: TimelineRecord, stage: TimelineRecord | None) -> OrgEvent:
    """``ms.vss-pipelines.job-state-changed-event`` for a job's timeline record (``stage``: its parent)."""
    body = _record_body(base, run, job, _JOB_STATES)
    if body["result"] is not None:
        body["result"] = _JOB_RESULTS.get(body["result"], body["result"])
    stage_body = _record_body(base, run, stage, _STAGE_STATES) if stage is not None else None
    text = f"Run {run.name} job {job.display_name} {body['result'] or body['state']}."
    resource = {"job": body, "stage": stage_body, **_run_resource(base, run)}
    filters = {
        "stagenameid": (stage.name,) if stage is not None else (),
        "jobnameid": (job.name,),
        "jobstateid": (body["state"],),
        "jobresultid": (body["result"],) if body["result"] else (),
    }
    return _pipelines_event(JOB_STATE_CHANGED, run, resource, text, filters)


class RunEvents:
    """Publishes the events of runs: the emulator's run listener and the executor's record listener."""

    def __init__(self, emulator: Emulator, *, wanted: Callable[[str, str], bool] | None = None) -> None:
        """``wanted(org, event type)``: whether anything would receive such an event; an event nobody
        wants is not built (the trigger queues runs at thousands a second; their events cost time)."""
        self.emulator = emulator
        self.base = emulator.options.base_url
        self.wanted = wanted or (lambda _org, _event_type: True)
        self._states: dict[tuple[str, int, str], str] = {}  # (org, run id, record id) → the last state published
        self._lock = threading.Lock()

    def run_changed(self, run: Run) -> None:
        org = run.pipeline.project.org
        if self.wanted(org, RUN_STATE_CHANGED):
            self.emulator.publish(org, run_state_event(self.base, run))
        if run.state == "completed":
            if self.wanted(org, BUILD_COMPLETE):
                self.emulator.publish(org, build_complete_event(self.base, run))
            with self._lock:
                for key in [k for k in self._states if k[:2] == (org.lower(), run.id)]:
                    del self._states[key]

    def record_changed(self, run: Run, record: TimelineRecord) -> None:
        """A stage or job started or finished (steps, and records still pending, publish nothing)."""
        if record.type not in ("Stage", "Job") or record.state == "pending":
            return
        org = run.pipeline.project.org
        if not self.wanted(org, STAGE_STATE_CHANGED if record.type == "Stage" else JOB_STATE_CHANGED):
            return
        key = (org.lower(), run.id, record.id)
        with self._lock:
            if self._states.get(key) == record.state:
                return
            self._states[key] = record.state
        if record.type == "Stage":
            self.emulator.publish(org, stage_state_event(self.base, run, record))
        else:
            parent = run.records.get(record.parent_id) if record.parent_id else None
            self.emulator.publish(org, job_state_event(self.base, run, record, parent))
