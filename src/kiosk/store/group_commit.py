"""Group commit: records that arrive together are stored in one transaction, each caller answered
with its own outcome after the commit.

A webhook intake promises that nothing is acknowledged before it is stored, and a transaction per
request caps the intake at the database's commit rate — on SQLite, worse: every request takes the
single write lock, and under load the requests queue on it (and on the pool) behind the other
writers. So requests hand their record to one writer thread and wait; the writer takes everything
that queued up while its previous transaction ran, stores the lot in one transaction (the
``store`` function the owner gives), commits, and only then wakes each waiting request. Under
light load a batch is one record and the latency is one commit; under heavy load batches grow by
themselves and the commit is shared.

One writer thread also means an intake never contends with itself for SQLite's write lock. It
keeps its own connection from batch to batch (:class:`~kiosk.store.engine.HeldConnection`); after
any error the connection is dropped and reopened. If a batch fails, its records are stored again
one per transaction, so one record the database refuses fails alone (its request gets the error)
instead of taking the batch down with it.

Used by the receivers' intake (:mod:`kiosk.receivers.writer`) and the integrations' service-hook
endpoint (:mod:`kiosk.ingest.events_queue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.engine import Connection

from kiosk.store.engine import Database, HeldConnection

__all__ = ["MAX_BATCH", "GroupCommit", "WriterStopped"]

log = logging.getLogger("kiosk.store")

#: Most records in one transaction: bounds the statement size and the wait of the first in line.
MAX_BATCH = 1000

RecordT = TypeVar("RecordT")
OutcomeT = TypeVar("OutcomeT")


class WriterStopped(RuntimeError):
    """The writer is not running (stopping, or never started): the record cannot be stored."""


@dataclass
class _Item(Generic[RecordT, OutcomeT]):
    record: RecordT
    future: asyncio.Future[OutcomeT]
    loop: asyncio.AbstractEventLoop


def _settle(pairs: Sequence[tuple[asyncio.Future[OutcomeT], OutcomeT | BaseException]]) -> None:
    """Runs on the event loop: hand each waiting request its outcome."""
    for future, outcome in pairs:
        if future.done():  # the request was cancelled (client gone); the record is stored anyway
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class GroupCommit(Generic[RecordT, OutcomeT]):
    """The one thread that stores one intake's records. ``start()``, ``await store(record)``, ``stop()``.

    ``store(conn, records)`` stores ``records`` in the caller's transaction and returns one outcome
    per record, in order. ``committed(outcomes)``, when given, runs on the writer thread after each
    commit (waking a processor); its errors are logged, never raised. ``name`` names the thread
    and the log lines.
    """

    def __init__(
        self,
        db: Database,
        store: Callable[[Connection, list[RecordT]], Sequence[OutcomeT]],
        *,
        name: str,
        committed: Callable[[Sequence[OutcomeT]], None] | None = None,
    ) -> None:
        self.db = db
        self.name = name
        self._store_batch = store
        self._committed = committed
        self._queue: queue.SimpleQueue[_Item[RecordT, OutcomeT] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._held = HeldConnection(db, name)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} is already running")
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name=f"kiosk-{self.name}"[:60], daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._accepting

    def stop(self, timeout: float = 30.0) -> bool:
        """Refuse new records, store those already handed over, and end the thread."""
        thread = self._thread
        self._accepting = False
        if thread is None:
            return True
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None
        if thread.is_alive():
            return False
        # A request that checked ``_accepting`` just before it turned False may have queued its
        # record behind the stop marker: tell it, rather than leave it waiting forever.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return True
            if item is not None:
                item.loop.call_soon_threadsafe(_settle, [(item.future, WriterStopped(f"the {self.name} stopped"))])

    async def store(self, record: RecordT) -> OutcomeT:
        """Store ``record`` (batched with whatever else is waiting); returns after the commit."""
        if not self._accepting:
            raise WriterStopped(f"the {self.name} is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[OutcomeT] = loop.create_future()
        self._queue.put(_Item(record, future, loop))
        return await future

    # ------------------------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._write(batch)
                if stop:
                    return
        finally:
            self._held.close()

    def _write(self, batch: list[_Item[RecordT, OutcomeT]]) -> None:
        outcomes: list[OutcomeT | BaseException]
        try:
            outcomes = list(self._transaction([item.record for item in batch]))
        except Exception as exc:
            if len(batch) == 1:
                log.exception("%s: storing a record failed", self.name)
                outcomes = [exc]
            else:
                log.warning("%s: storing a batch of %d failed; storing them one by one", self.name, len(batch))
                outcomes = []
                for item in batch:
                    try:
                        outcomes.extend(self._transaction([item.record]))
                    except Exception as one:
                        log.exception("%s: storing a record failed", self.name)
                        outcomes.append(one)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[OutcomeT], OutcomeT | BaseException]]] = {}
        for item, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append((item.future, outcome))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, pairs)
        stored = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
        if self._committed is not None and stored:
            try:
                self._committed(stored)
            except Exception:
                log.exception("%s: the after-commit call failed", self.name)

    def _transaction(self, records: list[RecordT]) -> Sequence[OutcomeT]:
        with self._held.transaction() as conn:
            outcomes = self._store_batch(conn, records)
        if len(outcomes) != len(records):
            raise RuntimeError(f"{self.name}: {len(outcomes)} outcomes for {len(records)} records")
        return outcomes
