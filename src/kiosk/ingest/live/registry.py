"""Which handler reads which kind for which event type: the table the processor looks events up in.

Merged from each handler module's own ``HANDLERS`` (event type → kind → handler); a kind whose
fetcher does not exist is left out, so an event never writes a kind the resync cannot read (nor
delete). The subscriptions kiosk makes (:mod:`kiosk.ingest.hooks.catalogue`) are derived from it:
kiosk subscribes to exactly the events it processes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

from kiosk.ingest.fetch.registry import FETCHERS
from kiosk.ingest.live import (
    handlers_git,
    handlers_pipelines,
    handlers_pull_requests,
    handlers_release,
    handlers_work,
)
from kiosk.ingest.live.event_fields import MalformedEvent
from kiosk.ingest.live.model import EventHandler

__all__ = ["HANDLERS", "handlers_for", "kind_events", "merge_tables", "read_subject"]

Table = Mapping[str, Mapping[str, EventHandler]]


def merge_tables(*tables: Table) -> dict[str, dict[str, EventHandler]]:
    """One table of ``tables``; the same (event type, kind) twice is a programming error."""
    merged: dict[str, dict[str, EventHandler]] = {}
    for table in tables:
        for event_type, kinds in table.items():
            into = merged.setdefault(event_type, {})
            for kind, handler in kinds.items():
                if kind not in FETCHERS:
                    continue
                if kind in into and into[kind] is not handler:
                    raise ValueError(f"two handlers of {kind!r} for {event_type!r}")
                into[kind] = handler
    return merged


#: event type → kind → handler.
HANDLERS: dict[str, dict[str, EventHandler]] = merge_tables(
    handlers_work.HANDLERS,
    handlers_pull_requests.HANDLERS,
    handlers_pipelines.HANDLERS,
    handlers_git.HANDLERS,
    handlers_release.HANDLERS,
)


def handlers_for(event_type: str) -> dict[str, EventHandler]:
    """kind → handler of the kinds ``event_type`` changes (empty: none kiosk handles)."""
    return HANDLERS.get(event_type, {})


def kind_events() -> dict[str, tuple[str, ...]]:
    """kind → the event types that change it (sorted): what a mapping of that kind subscribes to."""
    out: dict[str, set[str]] = {}
    for event_type, kinds in HANDLERS.items():
        for kind in kinds:
            out.setdefault(kind, set()).add(event_type)
    return {kind: tuple(sorted(types)) for kind, types in sorted(out.items())}


#: The event types whose handlers read only the current state of the one object the event names
#: (found by these), whatever else the payload says: of two such events naming one object, with
#: the same handlers, the later one's read serves both. Not pushes (each names its own commits and
#: refs) nor repository events (their children are read from what the event says).
_SUBJECTS: dict[str, Callable[[Mapping[str, Any]], Hashable]] = {
    **dict.fromkeys(handlers_work.HANDLERS, handlers_work.work_item_id),
    **dict.fromkeys(handlers_pull_requests.HANDLERS, handlers_pull_requests.pull_request_id),
    "build.complete": handlers_pipelines.build_id,
    **dict.fromkeys(handlers_pipelines.RUN_EVENTS, handlers_pipelines.run_ids),
}


def read_subject(event_type: str, event: Mapping[str, Any]) -> Hashable | None:
    """What processing ``event`` reads, when that is all it does: the handlers and the object's id
    (None otherwise, or when the event names no object). Two events of one object with the same
    subject are processed by reading the object once, after the later one."""
    subject = _SUBJECTS.get(event_type)
    if subject is None:
        return None
    try:
        ident = subject(event)
    except MalformedEvent:
        return None
    return (frozenset(handlers_for(event_type).items()), ident)
