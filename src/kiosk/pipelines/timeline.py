"""Timeline records and logs: what a run reports about itself, the way Azure shows it.

The runner reports to a :class:`RunListener` from the thread that called
:func:`~kiosk.pipelines.runner.run_pipeline`: a copy of a :class:`TimelineRecord` whenever one
changes (one per stage, job and step) and every log line, masked. :class:`Timeline` is the
runner's side of that: it keeps the records in tree order, hands out log ids and masks every line
and issue with the run's :class:`~kiosk.pipelines.variables.SecretMasker` before it leaves, so a
secret value never reaches a listener unmasked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Protocol

from kiosk.pipelines.variables import SecretMasker

__all__ = [
    "CollectingListener",
    "NullListener",
    "RunListener",
    "RunOutcome",
    "Timeline",
    "TimelineRecord",
    "job_record_id",
    "stage_record_id",
    "step_record_id",
    "worst_result",
]

_RANK: Final = {"succeeded": 0, "succeededWithIssues": 1, "failed": 2, "canceled": 3}


@dataclass
class TimelineRecord:
    """Azure's timeline record, one per stage, job and step (listeners receive copies).

    ``order`` is the 1-based position among its siblings in run order; ``log_id`` is set when a
    job or step starts (ids 1..n in start order; stages and skipped records have none).
    """

    id: str
    parent_id: str | None
    type: str  # "Stage" | "Job" | "Task"
    name: str
    display_name: str
    order: int
    state: str = "pending"  # pending | inProgress | completed
    result: str | None = None  # succeeded | succeededWithIssues | failed | canceled | skipped
    start_time: datetime | None = None
    finish_time: datetime | None = None
    log_id: int | None = None
    issues: list[str] = field(default_factory=list)  # "error: ..." / "warning: ..."


def stage_record_id(stage: str) -> str:
    """The id of a stage's record: ``stage:<stage>``."""
    return f"stage:{stage}"


def job_record_id(stage: str, job: str) -> str:
    """The id of a job's record: ``job:<stage>.<job>``."""
    return f"job:{stage}.{job}"


def step_record_id(stage: str, job: str, index: int) -> str:
    """The id of a step's record: ``step:<stage>.<job>.<index>`` (index from 1, as written)."""
    return f"step:{stage}.{job}.{index}"


class RunListener(Protocol):
    """What the runner reports to, from the thread that called :func:`~kiosk.pipelines.runner.run_pipeline`."""

    def record_changed(self, record: TimelineRecord) -> None: ...

    def log_line(self, log_id: int, line: str) -> None: ...


class NullListener:
    """Discards everything (for callers that only want the :class:`RunOutcome`)."""

    def record_changed(self, record: TimelineRecord) -> None:
        """Ignore the change."""

    def log_line(self, log_id: int, line: str) -> None:
        """Ignore the line."""


class CollectingListener:
    """Keeps every log line by log id and the latest copy of every record (CLI and tests)."""

    def __init__(self) -> None:
        self.logs: dict[int, list[str]] = {}
        self.records: dict[str, TimelineRecord] = {}

    def record_changed(self, record: TimelineRecord) -> None:
        self.records[record.id] = record

    def log_line(self, log_id: int, line: str) -> None:
        self.logs.setdefault(log_id, []).append(line)

    def lines(self, record_id: str | None = None) -> list[str]:
        """The lines of one record's log, or of every log in log-id order (``record_id=None``)."""
        if record_id is None:
            return [line for log_id in sorted(self.logs) for line in self.logs[log_id]]
        record = self.records[record_id]
        return list(self.logs.get(record.log_id, [])) if record.log_id is not None else []


@dataclass
class RunOutcome:
    """The run's result and its records in tree order (stage, its jobs, each job's steps)."""

    result: str
    records: list[TimelineRecord]


def worst_result(results: Sequence[str | None]) -> str | None:
    """Azure's roll-up: canceled > failed > succeededWithIssues > succeeded; skipped ones don't count."""
    ranked = [result for result in results if result in _RANK]
    return max(ranked, key=lambda result: _RANK[result]) if ranked else None


class Timeline:
    """The records of one run and its masked logs; every change goes to the listener at once."""

    def __init__(self, listener: RunListener, masker: SecretMasker) -> None:
        self.listener = listener
        self.masker = masker
        self.records: dict[str, TimelineRecord] = {}
        self.children: dict[str, list[str]] = {}
        self.next_log_id = 1

    def add(self, record: TimelineRecord) -> TimelineRecord:
        """Register a new record (under its parent) and report it."""
        self.records[record.id] = record
        if record.parent_id is not None:
            self.children.setdefault(record.parent_id, []).append(record.id)
        self.changed(record)
        return record

    def changed(self, record: TimelineRecord) -> None:
        """Report ``record`` as it is now (a copy, so later changes do not leak into the listener's)."""
        self.listener.record_changed(dataclasses.replace(record, issues=list(record.issues)))

    def start(self, record: TimelineRecord, *, with_log: bool) -> None:
        record.state = "inProgress"
        record.start_time = datetime.now(UTC)
        if with_log:
            record.log_id = self.next_log_id
            self.next_log_id += 1
        self.changed(record)

    def finish(self, record: TimelineRecord, result: str) -> None:
        record.state = "completed"
        record.result = result
        record.finish_time = datetime.now(UTC)
        self.changed(record)

    def log(self, log_id: int, text: str) -> None:
        for line in text.split("\n"):
            self.listener.log_line(log_id, self.masker.mask(line))

    def error(self, record: TimelineRecord, log_id: int | None, message: str) -> None:
        """An error line in the log and an issue on the record (Azure shows both)."""
        masked = self.masker.mask(message)
        record.issues.append(f"error: {masked}")
        if log_id is not None:
            self.log(log_id, f"##[error]{masked}")

    def child_results(self, record_id: str) -> list[str | None]:
        """The results of a record's children, in order."""
        return [self.records[child].result for child in self.children.get(record_id, [])]

    def tree(self) -> list[TimelineRecord]:
        """Every record in tree order: a stage, then its jobs, each job followed by its steps."""
        ordered: list[TimelineRecord] = []

        def visit(record_id: str) -> None:
            ordered.append(self.records[record_id])
            for child in self.children.get(record_id, []):
                visit(child)

        for record in list(self.records.values()):
            if record.parent_id is None:
                visit(record.id)
        return ordered
