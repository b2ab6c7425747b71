"""Which handler reads which kind for which event type: the table the processor looks events up in.

Merged from each handler module's own ``HANDLERS`` (event type → kind → handler); a kind whose
fetcher does not exist is left out, so an event never writes a kind the resync cannot read (nor
delete). The subscriptions kiosk makes (:mod:`kiosk.ingest.hooks.catalogue`) are derived from it:
kiosk subscribes to exactly the events it processes.
"""

from __future__ import annotations

from collections.abc import Mapping

from kiosk.ingest.fetch.registry import FETCHERS
from kiosk.ingest.live import (
    handlers_git,
    handlers_pipelines,
    handlers_pull_requests,
    handlers_release,
    handlers_work,
)
from kiosk.ingest.live.model import EventHandler

__all__ = ["HANDLERS", "handlers_for", "kind_events", "merge_tables"]

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
