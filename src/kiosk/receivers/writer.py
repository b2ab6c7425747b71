"""Group commit for the receiver endpoint: events arriving together are stored in one transaction.

A durable write per event is what the intake promises (nothing is acknowledged before it is
stored), and a transaction per event would cap intake at the database's commit rate. So requests
hand their record to one writer thread and wait; the writer takes everything that has queued up
while its previous transaction ran, stores the lot in one transaction
(:func:`kiosk.receivers.store.store_events`, two statements whatever the batch size), commits,
and only then wakes each waiting request with its own outcome. Under light load a batch is one
event and the latency is one commit; under heavy load batches grow by themselves and the commit
cost is shared.

One writer thread also means the intake never contends with itself for SQLite's single write
lock. It keeps its own connection from batch to batch (a pool checkout per batch costs a
liveness round trip on PostgreSQL); after any error the connection is dropped and reopened.

If a batch fails, its records are retried one per transaction, so one record the database refuses
fails alone (its request gets a 500) instead of taking the batch down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kiosk.receivers.intake import EventRecord
from kiosk.receivers.store import Stored, store_events
from kiosk.store.engine import Database, HeldConnection

__all__ = ["EventWriter", "WriterStopped"]

log = logging.getLogger("kiosk.receivers")

#: Most records in one transaction: bounds the statement size and the wait of the first in line.
MAX_BATCH = 1000


class WriterStopped(RuntimeError):
    """The writer is not running (stopping, or never started): the event cannot be stored."""


@dataclass
class _Item:
    record: EventRecord
    future: asyncio.Future[Stored]
    loop: asyncio.AbstractEventLoop


def _settle(pairs: Sequence[tuple[asyncio.Future[Stored], Stored | BaseException]]) -> None:
    """Runs on the event loop: hand each waiting request its outcome."""
    for future, outcome in pairs:
        if future.done():  # the request was cancelled (client gone); the event is stored anyway
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class EventWriter:
    """The one thread that stores received events. ``start()``, ``await store(record)``, ``stop()``."""

    def __init__(self, db: Database, *, on_queued: Callable[[], None] | None = None) -> None:
        """``on_queued`` is called after a commit that left jobs pending (the event processor's notify)."""
        self.db = db
        self._on_queued = on_queued
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._held = HeldConnection(db, "event writer")

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the event writer is already running")
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name="kiosk-receiver-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Refuse new events, store those already handed over, and end the thread."""
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
                item.loop.call_soon_threadsafe(_settle, [(item.future, WriterStopped("the writer stopped"))])

    async def store(self, record: EventRecord) -> Stored:
        """Store ``record`` (batched with whatever else is waiting); returns after the commit."""
        if not self._accepting:
            raise WriterStopped("the receiver event writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Stored] = loop.create_future()
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

    def _write(self, batch: list[_Item]) -> None:
        outcomes: list[Stored | BaseException]
        try:
            outcomes = list(self._store([item.record for item in batch]))
        except Exception as exc:
            if len(batch) == 1:
                log.exception("storing a received event failed")
                outcomes = [exc]
            else:
                log.warning("storing a batch of %d events failed; storing them one by one", len(batch))
                outcomes = []
                for item in batch:
                    try:
                        outcomes.extend(self._store([item.record]))
                    except Exception as one:
                        log.exception("storing a received event failed")
                        outcomes.append(one)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Stored], Stored | BaseException]]] = {}
        for item, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append((item.future, outcome))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, pairs)
        if self._on_queued is not None and any(isinstance(o, Stored) and o.queued for o in outcomes):
            try:
                self._on_queued()
            except Exception:
                log.exception("waking the event processor failed")

    def _store(self, records: list[EventRecord]) -> list[Stored]:
        with self._held.transaction() as conn:
            return store_events(conn, records)
