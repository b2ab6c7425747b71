"""The emulator's in-memory objects: orgs' projects, connections, pipelines, runs and trigger records.

The emulator keeps its state in memory, like a test double should: it starts from its config file
in milliseconds, leaves nothing behind, and a test or demo gets a clean Azure each time. Runs and
trigger records are kept up to a retention limit (settings ``retainRuns``/``retainTriggers``).
Mutation happens only inside :class:`kiosk.emulator.service.Emulator` under its lock.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.timeline import TimelineRecord
from kiosk.pipelines.variables import Variable
from kiosk.pipelines.webhooks import WebhookResource

__all__ = ["Connection", "Pipeline", "PipelineOutcome", "PipelineSource", "Project", "Run", "TriggerRecord"]


def stable_id(*parts: str) -> str:
    """A GUID that stays the same across restarts for the same names (Azure ids are GUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "kiosk-emulator:" + "/".join(parts)))


@dataclass(eq=False)
class Project:
    org: str
    name: str
    id: str


@dataclass(eq=False)
class Connection:
    """An "Incoming WebHook" service connection."""

    project: Project
    name: str
    webhook_name: str
    secret: str | None
    header: str | None
    id: str


@dataclass(eq=False)
class PipelineSource:
    """What a pipeline's YAML currently says, re-read when the file changes.

    Users edit the YAML between two ``kiosk send`` calls; re-reading on change (one ``stat`` per
    trigger) means they never have to restart the emulator to try the edit.
    """

    version: tuple[int, int]
    text: str
    resources: list[WebhookResource]
    error: PipelineError | None


@dataclass(eq=False)
class Pipeline:
    id: int
    project: Project
    name: str
    folder: str
    repository: Path
    path: str
    default_branch: str
    repository_name: str
    variables: dict[str, Variable]
    revision: int = 1
    source: PipelineSource | None = None
    loader: Callable[[str], str] | None = None  # reads templates from the repository (made once)


@dataclass(eq=False)
class Run:
    id: int
    pipeline: Pipeline
    name: str
    reason: str
    created: datetime
    document: dict[str, Any]
    variables: dict[str, Variable]
    template_parameters: dict[str, Any]
    source_branch: str
    source_version: str
    trigger_id: int | None = None
    state: str = "inProgress"  # Runs API: inProgress | canceling | completed
    result: str | None = None  # Build API result: succeeded | partiallySucceeded | failed | canceled
    finished: datetime | None = None
    records: dict[str, TimelineRecord] = field(default_factory=dict)
    logs: dict[int, list[str]] = field(default_factory=dict)
    log_created: dict[int, datetime] = field(default_factory=dict)
    log_changed: dict[int, datetime] = field(default_factory=dict)
    stream: list[str] = field(default_factory=list)  # every log line in arrival order, for followers
    cancel: threading.Event = field(default_factory=threading.Event)
    final_yaml: str | None = None


@dataclass(eq=False)
class PipelineOutcome:
    """What one trigger call did for one listening pipeline: a run, or the reason there is none."""

    pipeline_id: int
    pipeline_name: str
    project: str
    alias: str | None
    run_id: int | None = None
    reason: dict[str, Any] | None = None


@dataclass
class TriggerRecord:
    """One call of the incoming-webhook endpoint and everything it led to ("why no run")."""

    id: int
    received_at: datetime
    org: str
    webhook_name: str
    body_bytes: int
    status: int = 200
    error: dict[str, Any] | None = None
    connection: str | None = None
    outcomes: list[PipelineOutcome] = field(default_factory=list)
