"""Executes the emulator's queued runs with the local runner, a few at a time.

Each run gets its own workspace under the emulator's work directory (removed when the run ends:
logs and the timeline are kept in memory, the files are not needed), and its timeline and log
lines flow into the :class:`~kiosk.emulator.models.Run` as they happen, so the logs API streams
them. A run that cannot start (a structure the runner refuses) ends ``failed`` with the reason
as its log, never as a crashed worker.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from kiosk.emulator.models import Run
from kiosk.emulator.service import Emulator
from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.runner import RunOptions, run_pipeline
from kiosk.pipelines.timeline import TimelineRecord

__all__ = ["RecordListener", "RunExecutor"]

log = logging.getLogger("kiosk.emulator")

RESULTS: Final = {
    "succeeded": "succeeded",
    "succeededWithIssues": "partiallySucceeded",
    "failed": "failed",
    "canceled": "canceled",
}
"""Runner results → Azure's build results."""


RecordListener = Callable[[Run, TimelineRecord], None]
"""Told every timeline record change of a run after it is stored (the service hooks' stage and job events)."""


class _RunLog:
    """The runner's listener for one run: timeline records and log lines into the emulator's Run."""

    def __init__(self, emulator: Emulator, run: Run, on_record: RecordListener | None = None) -> None:
        self.emulator = emulator
        self.run = run
        self.on_record = on_record

    def record_changed(self, record: TimelineRecord) -> None:
        self.run.records[record.id] = record
        if self.on_record is not None:
            try:
                self.on_record(self.run, record)
            except Exception:  # a listener's bug must not break the run
                log.exception("record listener failed", extra={"run_id": self.run.id})

    def log_line(self, log_id: int, line: str) -> None:
        self.emulator.append_log(self.run, log_id, line)


class RunExecutor:
    """A pool of worker threads running queued runs (``runWorkers`` at a time)."""

    def __init__(
        self, emulator: Emulator, work_dir: Path, workers: int = 2, *, on_record: RecordListener | None = None
    ) -> None:
        self.emulator = emulator
        self.work_dir = work_dir
        self.on_record = on_record
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kiosk-run")
        self._closed = False
        self._active: set[Run] = set()

    def submit(self, run: Run) -> None:
        if not self._closed:
            self._pool.submit(self._execute, run)

    def close(self) -> None:
        """Stop: queued runs are dropped, running ones canceled (their processes killed), workers joined."""
        self._closed = True
        for run in list(self._active):
            run.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _execute(self, run: Run) -> None:
        self._active.add(run)
        listener = _RunLog(self.emulator, run, self.on_record)
        workspace = self.work_dir / "runs" / run.pipeline.project.org / str(run.id)
        try:
            if run.cancel.is_set():
                self.emulator.complete_run(run, "canceled")
                return
            workspace.mkdir(parents=True, exist_ok=True)
            options = RunOptions(
                workspace=workspace,
                sources=run.pipeline.repository,
                variables=run.variables,
                cancel=run.cancel,
            )
            outcome = run_pipeline(run.document, options, listener)
            self.emulator.complete_run(run, RESULTS.get(outcome.result, "failed"))
        except PipelineError as exc:
            self.emulator.append_log(run, 1, f"##[error]{exc}")
            self.emulator.complete_run(run, "failed")
        except Exception as exc:  # a runner bug must end the run, not kill the worker silently
            log.exception("run %s crashed", run.id)
            self.emulator.append_log(run, 1, f"##[error]the emulator's runner failed: {type(exc).__name__}: {exc}")
            if run.state != "completed":
                self.emulator.complete_run(run, "failed")
        finally:
            self._active.discard(run)
            shutil.rmtree(workspace, ignore_errors=True)
