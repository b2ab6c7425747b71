"""Run-state service hooks: the subscription kiosk asks Azure DevOps for, and reading its events.

An incoming-webhook call returns no run id, so kiosk cannot poll the run it started. Instead the
pipeline names its run after the kiosk run (``name: kiosk-${{ parameters.<alias>.context.runId }}``)
and Azure DevOps sends ``ms.vss-pipelines.run-state-changed-event`` for every run; kiosk matches
the event's ``resource.run.name`` to the action run and finishes it with the pipeline's result and
a link. Pure: no IO here (see :mod:`kiosk.azure.client` and the web route for that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kiosk.errors import BadRequest

__all__ = [
    "EVENT_TYPE",
    "RunStateEvent",
    "find_subscription",
    "parse_run_state_event",
    "run_state_subscription",
]

EVENT_TYPE: Final = "ms.vss-pipelines.run-state-changed-event"
RESULT_STATUS: Final = {"succeeded": "SUCCESS", "failed": "FAILURE", "canceled": "FAILURE"}
"""Azure's run results → kiosk's run status (a canceled pipeline did not do what was asked)."""


@dataclass(frozen=True)
class RunStateEvent:
    run_name: str
    state: str
    result: str | None
    run_id: int | None
    pipeline_name: str | None
    web_url: str | None

    @property
    def finished_status(self) -> str | None:
        """``SUCCESS``/``FAILURE`` once the run completed, else None (nothing to finish yet)."""
        if self.state != "completed":
            return None
        return RESULT_STATUS.get((self.result or "").lower(), "FAILURE")

    def label(self) -> str:
        pipeline = f"pipeline {self.pipeline_name} " if self.pipeline_name else "pipeline "
        number = f"run {self.run_name}"
        return f"{pipeline}{number} {self.result or self.state}"


def run_state_subscription(consumer_url: str, username: str, password: str) -> dict[str, Any]:
    """The body of ``POST {org}/_apis/hooks/subscriptions`` kiosk sends (completed runs only)."""
    return {
        "publisherId": "pipelines",
        "eventType": EVENT_TYPE,
        "resourceVersion": "5.1-preview.1",
        "consumerId": "webHooks",
        "consumerActionId": "httpRequest",
        "publisherInputs": {"runStateId": "Completed"},
        "consumerInputs": {
            "url": consumer_url,
            "basicAuthUsername": username,
            "basicAuthPassword": password,
            "resourceDetailsToSend": "all",
            "messagesToSend": "none",
            "detailedMessagesToSend": "none",
        },
    }


def find_subscription(existing: Sequence[Mapping[str, Any]], consumer_url: str) -> Mapping[str, Any] | None:
    """An existing subscription for the same event and URL: reuse it, never create a twin (a known fault)."""
    for subscription in existing:
        inputs = subscription.get("consumerInputs")
        if (
            subscription.get("eventType") == EVENT_TYPE
            and isinstance(inputs, Mapping)
            and str(inputs.get("url", "")).rstrip("/") == consumer_url.rstrip("/")
        ):
            return subscription
    return None


def parse_run_state_event(body: Any) -> RunStateEvent:
    """Read the fields kiosk needs; a body that is not such an event is a :class:`BadRequest` naming the field."""
    if not isinstance(body, Mapping):
        raise BadRequest("the event must be a JSON object", code="invalid_event")
    if body.get("eventType") != EVENT_TYPE:
        raise BadRequest(f"eventType must be {EVENT_TYPE}, not {body.get('eventType')!r}", code="invalid_event")
    resource = body.get("resource")
    run = resource.get("run") if isinstance(resource, Mapping) else None
    if not isinstance(run, Mapping):
        raise BadRequest("resource.run is missing", code="invalid_event")
    name, state = run.get("name"), run.get("state")
    if not isinstance(name, str) or not name:
        raise BadRequest("resource.run.name is missing", code="invalid_event")
    if not isinstance(state, str):
        raise BadRequest("resource.run.state is missing", code="invalid_event")
    result = run.get("result")
    links = run.get("_links")
    web = links.get("web") if isinstance(links, Mapping) else None
    pipeline = run.get("pipeline") if isinstance(run.get("pipeline"), Mapping) else None
    return RunStateEvent(
        run_name=name,
        state=state,
        result=result if isinstance(result, str) else None,
        run_id=run.get("id") if isinstance(run.get("id"), int) else None,
        pipeline_name=str(pipeline.get("name")) if pipeline and pipeline.get("name") else None,
        web_url=str(web.get("href")) if isinstance(web, Mapping) and web.get("href") else None,
    )
