"""What one handler's answer does to the catalog: items mapped and written, the gone deleted.

For one resource of the mapping (:class:`PreparedResource`: its compiled mapping and the hash the
resync names its marks by) and one :class:`~kiosk.ingest.live.model.Refetched`:

* ``items`` are mapped by the resource's mapping, selector included, and written through
  :meth:`IngestStore.write` with their marks (the resync's marker for the kind: a work item's
  revision, any other item's content), so the next resync finds them unchanged and skips them;
* an item the selector now leaves out, and every ``gone`` item, has its entities deleted — those
  its mark names (a deleted work item is found so under whatever identifier the mapping gave it),
  else those the mapping gives it with the selector set aside — but only entities recorded for
  this source; an entity another source wrote too only loses this source's record.

A mapping failure, or an entity the catalog refuses, is an :class:`ApplyFailed`: the event failed,
for a reason a retry cannot change, so it is not retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from kiosk.ingest.fetch.base import Item
from kiosk.ingest.live.model import REPOSITORY_GONE, Refetched
from kiosk.ingest.mapping import PortAppConfig, ResourceConfig
from kiosk.ingest.resync import MARKED_KINDS, content_mark, literal_blueprint, resource_hash
from kiosk.ingest.store import EntityKey, IngestStore, ItemMark, MarkBatch, Source
from kiosk.ingest.transform import CompiledResource, MappedBatch, compile_resource

__all__ = ["Applied", "ApplyFailed", "PreparedResource", "apply_refetched", "prepare_resources"]

_log = logging.getLogger("kiosk.ingest.live")


class ApplyFailed(Exception):
    """The event's objects could not be mapped or written: a fault of the mapping or the data."""


@dataclass(frozen=True)
class PreparedResource:
    """One resource of the mapping, ready for events: its place, compiled mapping (and the same
    mapping with ``selector.query`` set aside, to find a left-out item's entities) and mark hash."""

    index: int
    resource: ResourceConfig
    mapper: CompiledResource
    unfiltered: CompiledResource
    key: str


def prepare_resources(config: PortAppConfig, context: str) -> list[PreparedResource]:
    """Every resource of ``config`` prepared; ``context`` as the resync builds it (the blueprints'
    fingerprint, ``|``, the excluded tags joined by ``\\x1f``), so the hashes are the resync's."""
    prepared = []
    for index, resource in enumerate(config.resources):
        selector = resource.selector.model_copy(update={"query": "true"})
        unfiltered = resource.model_copy(update={"selector": selector})
        prepared.append(
            PreparedResource(
                index=index,
                resource=resource,
                mapper=compile_resource(resource),
                unfiltered=compile_resource(unfiltered),
                key=resource_hash(index, resource, config, context),
            )
        )
    return prepared


@dataclass
class Applied:
    """What one resource's share of an event did."""

    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    unrecorded: int = 0
    errors: list[str] = field(default_factory=list)


def _marker(kind: str, item: Item) -> tuple[str, str] | None:
    marker = MARKED_KINDS.get(kind, content_mark)
    return marker(item)


def _mark_key(kind: str, item: Item) -> str | None:
    """The key an item's mark is stored under, also for an item known only in part (a deleted work
    item is its id): a kind marked by version is keyed by id, any other by its whole content (so a
    gone item, known only in part, matches no mark and is found by its mapping instead)."""
    if kind in MARKED_KINDS:
        item_id = item.get("id")
        return None if item_id is None or isinstance(item_id, bool) else str(item_id)
    found = content_mark(item)
    return None if found is None else found[0]


def _entities_by_item(mapped: MappedBatch) -> dict[int, list[EntityKey]]:
    made: dict[int, list[EntityKey]] = defaultdict(list)
    for owner, entity in zip(mapped.owners, mapped.entities, strict=True):
        made[owner].append((str(entity["blueprint"]), str(entity["identifier"])))
    return made


async def _entities_of(
    store: IngestStore, source: Source, prepared: PreparedResource, items: Sequence[Item]
) -> set[EntityKey]:
    """The entities ``items`` (gone, or left out by the selector) stand for: their marks' entities
    for the items a mark names, the unfiltered mapping's for the others."""
    if not items:
        return set()
    marks = [_mark_key(prepared.resource.kind, item) for item in items]
    keys = [mark for mark in marks if mark is not None]
    marked = await asyncio.to_thread(store.marked_entities, source, prepared.key, keys) if keys else {}
    found: set[EntityKey] = set()
    unmarked: list[Item] = []
    for item, mark in zip(items, marks, strict=True):
        if mark is not None and mark in marked:
            found.update(marked[mark])
        else:
            unmarked.append(item)
    if unmarked:
        mapped = await asyncio.to_thread(prepared.unfiltered.map, unmarked)
        failed = {failure.item for failure in mapped.failures if failure.field in ("identifier", "blueprint")}
        for owner, entity in zip(mapped.owners, mapped.entities, strict=True):
            if owner not in failed:
                found.add((str(entity["blueprint"]), str(entity["identifier"])))
    return found


async def _children_of_gone_repositories(
    store: IngestStore,
    source: Source,
    prepared: PreparedResource,
    repositories: Sequence[PreparedResource],
    markers: Sequence[Item],
) -> set[EntityKey] | None:
    """The entities of ``prepared``'s blueprint that relate to the entity of a repository Azure no
    longer has (:data:`~kiosk.ingest.live.model.REPOSITORY_GONE` markers): a gone repository's
    branches, files, pull requests … cannot be listed any more, and a marker is never mapped itself
    (a mapping of a marker could name another entity). None when they cannot be found this way — the
    resource's blueprint depends on the item, or the mapping names no repository entity — and the
    next resync, which lists what exists, deletes them."""
    blueprint = literal_blueprint(prepared.resource.port.entity.mappings.blueprint)
    # Each repository as known, with the organisation fields the marker was stamped with.
    stamped = [
        {**marker[REPOSITORY_GONE], **{k: v for k, v in marker.items() if k != REPOSITORY_GONE}}
        for marker in markers
        if isinstance(marker.get(REPOSITORY_GONE), dict)
    ]
    if blueprint is None or not stamped:
        return None
    targets: set[EntityKey] = set()
    for repository_resource in repositories:
        mapped = await asyncio.to_thread(repository_resource.unfiltered.map, stamped)
        failed = {failure.item for failure in mapped.failures if failure.field in ("identifier", "blueprint")}
        targets.update(
            (str(entity["blueprint"]), str(entity["identifier"]))
            for owner, entity in zip(mapped.owners, mapped.entities, strict=True)
            if owner not in failed
        )
    if not targets:
        return None
    return await asyncio.to_thread(store.related_entities, source, blueprint, targets)


async def apply_refetched(
    store: IngestStore,
    source: Source,
    config: PortAppConfig,
    prepared: PreparedResource,
    refetched: Refetched,
    repositories: Sequence[PreparedResource] = (),
) -> Applied:
    """Write ``refetched.items`` by ``prepared``'s mapping and delete what is gone or left out.
    ``repositories``: the mapping's repository resources, which say what entity a gone repository
    was, so that its children are found by their relation to it. Raises :class:`ApplyFailed`
    (after writing and deleting what it could) when an item failed to map or an entity was refused."""
    applied = Applied()
    markers = [item for item in refetched.gone if REPOSITORY_GONE in item]
    gone = [item for item in refetched.gone if REPOSITORY_GONE not in item]
    kind = prepared.resource.kind
    doomed: set[EntityKey] = set()
    # Never deleted by the same event: what it just wrote for another item (two items, one identifier).
    written: set[EntityKey] = set()
    if refetched.items:
        items = list(refetched.items)
        found = [_marker(kind, item) for item in items]  # before the mapping sees the items
        mapped = await asyncio.to_thread(prepared.mapper.map, items)
        failed = {failure.item for failure in mapped.failures}
        for failure in mapped.failures:
            shown = f" ({failure.identifier})" if failure.identifier else ""
            applied.errors.append(f"{kind}: {failure.field}{shown}: {failure.message}")
        made = _entities_by_item(mapped)
        written = {key for keys in made.values() for key in keys}
        marks = [
            ItemMark(mark[0], mark[1], tuple(made.get(index, ())))
            for index, mark in enumerate(found)
            if mark is not None and index not in failed
        ]
        left_out = [item for index, item in enumerate(items) if index not in made and index not in failed]
        # Found before the write: the write leaves a left-out item's mark empty.
        doomed = await _entities_of(store, source, prepared, left_out)
        outcome = await asyncio.to_thread(
            store.write,
            source,
            mapped.entities,
            merge=config.enableMergeEntity,
            create_missing=config.createMissingRelatedEntities,
            marks=MarkBatch(prepared.key, marks),
            live=True,
        )
        applied.written = outcome.created + outcome.updated
        applied.unchanged = outcome.unchanged
        applied.errors.extend(
            f"{error.get('blueprint')}/{error.get('identifier')}: {error.get('message')}" for error in outcome.failed
        )
    doomed |= await _entities_of(store, source, prepared, gone)
    if markers:
        children = await _children_of_gone_repositories(store, source, prepared, repositories, markers)
        if children is None:
            _log.info(
                "%s: the entities of a gone repository's items cannot be found from the event;"
                " the next resync deletes them",
                kind,
            )
        else:
            doomed |= children
    if doomed or gone:
        # A left-out item keeps the (empty) mark just written; a gone item's mark goes with it.
        forget = [key for item in gone if (key := _mark_key(kind, item)) is not None]
        deleted, unrecorded = await asyncio.to_thread(
            store.delete_entities, source, doomed - written, resource=prepared.key, items=forget
        )
        applied.deleted, applied.unrecorded = deleted, unrecorded
    if applied.errors:
        raise ApplyFailed("; ".join(applied.errors[:5]))
    return applied
