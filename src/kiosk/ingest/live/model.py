"""What an event handler gives back: per kind, the objects as Azure has them now, and those gone.

A handler never trusts the event's payload for content: it reads each object it names again
(the payload only says *which* objects), enriched exactly as that kind's fetcher enriches it
(``__project``, ``__repository``, ``__organizationUrl`` …), so the integration's mapping gives
the same entity a resync would. An object Azure says no longer exists (deleted, or a 404 on the
read again) is *gone*: its entities are deleted — found by the mark the resync or an earlier
event left for it (work items: keyed by id), else by mapping the gone item (as much of the object
as the handler knows: the event's resource, or what it rebuilt from it) to its identifier.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.mapping import ResourceConfig

__all__ = ["REPOSITORY_GONE", "EventHandler", "Refetched"]

#: The one field of a gone item that stands for *every* item of its kind in one repository (its
#: value: the repository as known, ``id`` and ``project.id`` at least), returned for the child kinds
#: of a repository that is deleted or disabled, whose items Azure no longer lists. Such an item is
#: never mapped (a mapping of it could name another entity): the processor deletes the entities of
#: the resource's blueprint that relate to the repository's entity, or leaves them to the next resync.
REPOSITORY_GONE = "__repositoryGone"


@dataclass
class Refetched:
    """What one event changed for one resource of ``kind`` (an Ocean kind: ``work-item`` …).

    ``items``: the objects as Azure has them now, as the kind's fetcher yields them; they are
    mapped by the resource (its ``selector.query`` applies: an item it no longer passes has its
    entity deleted). ``gone``: the objects that no longer exist (or left the resource's selector
    options), as far as known.
    """

    kind: str
    items: list[Item] = field(default_factory=list)
    gone: list[Item] = field(default_factory=list)


#: ``handler(ctx, resource, event)``: what ``event`` (the received envelope: ``eventType``,
#: ``resource``, ``resourceContainers`` …) changed in the kind of ``resource``, one resource of the
#: mapping, read with that resource's selector options (a work item's ``expand``, whether it still
#: matches the ``wiql``; a file's ``files`` paths …): an object outside them is *gone* for it.
#: The processor calls it for each resource whose kind the event type touches (the registry).
EventHandler = Callable[[FetchContext, ResourceConfig, Mapping[str, Any]], Awaitable[Refetched]]
