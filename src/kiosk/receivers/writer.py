"""Group commit for the receiver endpoint: events arriving together are stored in one transaction.

The receivers' :class:`~kiosk.store.group_commit.GroupCommit`: a batch is stored by
:func:`kiosk.receivers.store.store_events` (two statements whatever the batch size), and a commit
that left jobs pending (a reactive event) wakes the watch processor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kiosk.receivers.intake import EventRecord
from kiosk.receivers.store import Stored, store_events
from kiosk.store.engine import Database
from kiosk.store.group_commit import GroupCommit, WriterStopped

__all__ = ["EventWriter", "WriterStopped"]


class EventWriter(GroupCommit[EventRecord, Stored]):
    """The one thread that stores received events. ``start()``, ``await store(record)``, ``stop()``."""

    def __init__(self, db: Database, *, on_queued: Callable[[], None] | None = None) -> None:
        """``on_queued`` is called after a commit that left jobs pending (the event processor's notify)."""
        self._on_queued = on_queued
        super().__init__(db, store_events, name="receiver event writer", committed=self._wake)

    def _wake(self, outcomes: Sequence[Stored]) -> None:
        if self._on_queued is not None and any(outcome.queued for outcome in outcomes):
            self._on_queued()
