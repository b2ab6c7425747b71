"""A resync engine that records its runs instead of reading Azure, for the tests of what runs
resyncs (the runner's schedule, leases, stop) and of what must wait for one (incremental passes)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from kiosk.ingest.config import Integration
from kiosk.ingest.mapping import PortAppConfig
from kiosk.ingest.resync import Resyncer
from kiosk.ingest.state import OrgState, ResyncState
from kiosk.ingest.store import IngestStore

__all__ = ["RecordingResyncer"]


class RecordingResyncer(Resyncer):
    """A resync that records who ran it and, when ``gate`` is given, waits for it before finishing
    (``started`` is set once it runs); it saves its state through the store as the engine does.
    ``status`` is the state it ends with, or ``raise`` for an error that is not Azure's."""

    def __init__(self, store: IngestStore, gate: threading.Event | None = None, status: str = "completed") -> None:
        super().__init__(store)
        self.gate = gate
        self.status = status
        self.runs: list[tuple[str, str, PortAppConfig | None]] = []
        self.started = threading.Event()

    async def run(
        self,
        integration: Integration,
        *,
        trigger: str = "manual",
        on_progress: Callable[[ResyncState], None] | None = None,
        mapping: PortAppConfig | None = None,
    ) -> ResyncState:
        self.runs.append((integration.identifier, trigger, mapping))
        state = ResyncState(
            integration.identifier,
            status="running",
            started_at=datetime.now(UTC),
            trigger=trigger,
            organizations=[OrgState(url=integration.spec.config.organization_urls()[0], status="running")],
        )
        await asyncio.to_thread(self.store.save_state, state)
        if on_progress is not None:
            on_progress(state)
        self.started.set()
        while self.gate is not None and not self.gate.is_set():
            await asyncio.sleep(0.02)
        if self.status == "raise":
            raise RuntimeError("the database went away")
        state.status = self.status  # type: ignore[assignment]
        state.organizations[0].status = self.status  # type: ignore[assignment]
        state.finished_at = datetime.now(UTC)
        await asyncio.to_thread(self.store.save_state, state)
        return state
