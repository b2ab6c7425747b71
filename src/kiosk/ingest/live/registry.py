"""Which handler reads which kind for which event type: the table the processor looks events up in.

Merged from each handler module's own ``HANDLERS`` (event type → kind → handler). The git and
release modules are another helper's and joined when present; a kind whose fetcher does not exist
is left out, so an event never writes a kind the resync cannot read (nor delete).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, cast

from kiosk.ingest.fetch.registry import FETCHERS
from kiosk.ingest.live import handlers_pipelines, handlers_pull_requests, handlers_work
from kiosk.ingest.live.model import EventHandler

__all__ = ["HANDLERS", "OPTIONAL_MODULES", "handlers_for", "merge_tables"]

Table = Mapping[str, Mapping[str, EventHandler]]

#: Handler modules joined when they exist (each exposes ``HANDLERS`` of the same shape).
OPTIONAL_MODULES = ("kiosk.ingest.live.handlers_git", "kiosk.ingest.live.handlers_release")


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


def _optional_tables() -> list[Table]:
    tables: list[Table] = []
    for name in OPTIONAL_MODULES:
        try:
            module: Any = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it imports does not
                raise
            continue
        tables.append(cast(Table, module.HANDLERS))
    return tables


#: event type → kind → handler.
HANDLERS: dict[str, dict[str, EventHandler]] = merge_tables(
    handlers_work.HANDLERS, handlers_pull_requests.HANDLERS, handlers_pipelines.HANDLERS, *_optional_tables()
)


def handlers_for(event_type: str) -> dict[str, EventHandler]:
    """kind → handler of the kinds ``event_type`` changes (empty: none kiosk handles)."""
    return HANDLERS.get(event_type, {})
