"""The mutable state of a run in progress: whether it was canceled, the running job, the running step.

Shared by the runner (stages and jobs), step execution and the logging commands' effects, which
all change it from the one thread that runs the pipeline.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from kiosk.pipelines.plan import Job, Stage, Step
from kiosk.pipelines.processes import Deadline
from kiosk.pipelines.timeline import TimelineRecord
from kiosk.pipelines.variables import VariableSet

__all__ = ["Cancellation", "JobState", "StepState"]


class Cancellation:
    """Whether the run saw a cancel while running.

    A cancel set after the last step changes nothing: the run is canceled only if a stage, job or
    step saw it (:meth:`requested`) or a step's process was stopped by it (:meth:`seen`).
    """

    def __init__(self, event: threading.Event | None) -> None:
        self.event = event
        self.canceled = False

    def requested(self) -> bool:
        """Check the cancel event now; once seen, the run stays canceled."""
        if not self.canceled and self.event is not None and self.event.is_set():
            self.canceled = True
        return self.canceled

    def seen(self) -> None:
        """A step's process was stopped by the cancel."""
        self.canceled = True


@dataclass
class JobState:
    """A running job: its variables, its deadline and what its steps changed so far."""

    stage: Stage
    job: Job
    record: TimelineRecord
    variables: VariableSet
    deadline: Deadline | None
    timeout_minutes: float | None
    status: str = "succeeded"  # worst step result so far (canceling is in `stop`)
    stop: str | None = None  # "canceled" | "job-timeout": the remaining steps are canceled
    outputs: dict[str, str] = field(default_factory=dict)
    path_prepends: list[str] = field(default_factory=list)
    leftover_groups: list[int] = field(default_factory=list)


@dataclass
class StepState:
    """A running step (one attempt of it: retries reset the last two fields)."""

    step: Step
    record: TimelineRecord
    log_id: int
    complete_result: str | None = None
    stderr_lines: list[str] = field(default_factory=list)
