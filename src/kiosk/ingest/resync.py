"""The resync: read every organisation of an integration, map it, write what changed, and delete
what is gone — only when the whole organisation was read without an error.

Per organisation (several at once, each on its own client, so one that is down neither deletes
nor blocks another's entities), per resource in the mapping's order:

1. the kind's fetcher (:mod:`kiosk.ingest.fetch`) streams batches of raw items, reading many lists
   at once under the client's rate-limit pacing;
2. items are gathered into chunks of :data:`CHUNK` and handed to a writer task (at most
   :data:`WRITE_AHEAD` chunks wait for it, so reading goes on while a chunk is mapped and written,
   and memory stays bounded), which maps them by the resource's compiled mapping
   (:mod:`kiosk.ingest.transform`) in a worker thread;
3. the entities go to :class:`~kiosk.ingest.store.IngestStore`, which compares them with the
   catalog and writes only what changed (kiosk's own storage layer, no HTTP to itself), recording
   this integration and organisation as their source.

**The unchanged resync.** A resync that changes nothing must cost far less than the first, so
what can be proven unchanged is neither read in full nor mapped nor compared. With each write the
store records, per (source, resource, item), an item *mark*: the item's version and the entities
made of it, each with what the catalog held right after (row id, ``updated_at``, edge count).
The resource is named by :func:`resource_hash` — its mapping, its place, the write options,
kiosk's version, every blueprint's definition and the excluded tags — so a change to any of these
matches no mark and everything is read, mapped and written again.

* *Work items* (:data:`MARKED_KINDS`): the WIQL id lists are still read whole. When the resource's
  last complete read began at a known time (Azure's, :meth:`IngestStore.read_began`), the
  organisation is asked which items changed since (less :data:`CHANGED_SINCE_MARGIN`); the others
  are held as marked without another request. The rest have their revisions read cheaply
  (``workitemsbatch`` with two fields), and only items whose version (revision + a fingerprint of
  the project stamped on them) differs from the mark, or whose entities are not exactly as the
  mark left them, are read in full. A complete read records when it began, for the next.
* *Every other kind* is read whole from its lists anyway; an item whose whole content hashes to a
  mark (:func:`content_mark`) whose entities are untouched is not mapped nor compared.

What is *proven*: the item exists (it is in this resync's lists) and is at the same revision, or
has the same content; its entities are the same rows, written by nobody since (same
``updated_at``), with the same relation edges (a deleted target drops an edge without touching
the entity), still recorded for this source. What is *trusted*: that a mapping is a function of
its item (jq programs without ``now`` or ``env``), that Azure bumps a work item's revision
whenever its ``$expand=All`` answer changes (fields, relations, links), and that it sets
``System.ChangedDate`` with every revision. An item skipped this way
contributes its marked entities to what the resync produced, so they are not deleted; an item
gone from the lists contributes nothing, so its entities are deleted exactly as before — the
delete phase still compares the whole produced set with what this source recorded. Marks of
items no longer listed are dropped after a complete read of the resource, marks of resources
no longer in the mapping after a complete read of the organisation; an item whose mapping or
write failed gets no mark (read again next time).

*Cursors of the incremental sync* (:mod:`kiosk.ingest.incremental`): a complete read of a resource
of :data:`INCREMENTAL_KINDS` records when it began by Azure's clock (the ``Date`` of a small answer
asked before the first list; a work item's WIQL ``asOf``), so the incremental passes that follow
read only what changed since. The incremental sync writes through :meth:`Resyncer.read_resource`
with its changed-since read: the same marks, comparison and guard against undoing live events.

After the last resource, the delete phase removes this source's entities that the resync did not
produce — **only** if every call of the organisation succeeded (an Azure error on any list is an
error, never "empty") and every item could be mapped to an identifier (an item whose identifier
failed might be any entity of its blueprint). The store spares relation targets of entities that
stay and applies ``entityDeletionThreshold``; the delete runs in one transaction.

Entities the catalog refused (a property of the wrong type) still count as produced: the object
exists in Azure DevOps, so its older entity stays rather than being deleted for a mapping problem.
The state (:class:`~kiosk.ingest.state.ResyncState`) is saved as the resync goes, at most every
:data:`SAVE_EVERY` seconds, and at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import orjson

from kiosk import __version__
from kiosk.azure.errors import AuthenticationFailed, AzureRestError
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.ingest.config import Integration
from kiosk.ingest.examples import sample_examples
from kiosk.ingest.fetch.base import FetchContext, Fetcher, Item, Unchanged
from kiosk.ingest.fetch.registry import FETCHERS, fetcher_for
from kiosk.ingest.fetch.server_time import azure_now
from kiosk.ingest.fetch.work_items import work_item_mark
from kiosk.ingest.mapping import PortAppConfig, ResourceConfig
from kiosk.ingest.state import (
    IncrementalOrgState,
    IncrementalState,
    OrgState,
    ResourceState,
    ResyncState,
    ResyncStatus,
)
from kiosk.ingest.store import EntityKey, IngestStore, ItemMark, MarkBatch, Source, WriteOutcome
from kiosk.ingest.transform import CompiledResource, MappedBatch, compile_resource

__all__ = [
    "CHUNK",
    "INCREMENTAL_KINDS",
    "MARKED_KINDS",
    "ORG_CONCURRENCY",
    "WRITE_AHEAD",
    "OrganizationReader",
    "Progress",
    "Resyncer",
    "content_mark",
    "literal_blueprint",
    "resource_failed",
    "resource_hash",
    "run_organizations",
    "shown_blueprint",
    "take_skips",
]

_log = logging.getLogger("kiosk.ingest.resync")

#: An organisation's part of a resync or of an incremental pass.
_Org = TypeVar("_Org", OrgState, IncrementalOrgState)

#: Raw items mapped and written together: big enough that a write is a few large statements,
#: small enough that the chunk being written, the one waiting and the one being gathered stay a
#: small part of a resync's memory (100,000 work items are never held, only these chunks).
CHUNK: Final = 500
#: Chunks read ahead of the writer: reading goes on while the previous chunk is mapped and written,
#: and at most this many more chunks are held waiting (peak memory grows by as many chunks).
WRITE_AHEAD: Final = 1
#: Organisations resynced at once (the reference's limit).
ORG_CONCURRENCY: Final = 3
#: Seconds between saves of the running state.
SAVE_EVERY: Final = 1.0
#: The catalog's code for an entity whose relation points at an entity that does not exist.
MISSING_TARGET: Final = "related_entity_not_found"
#: Raw items kept per kind for test-mapping.
EXAMPLES: Final = 5
#: Look-ups of marks at once on PostgreSQL (SQLite: one).
LOOKUPS_AT_ONCE_POSTGRES: Final = 3
#: How much earlier than the last complete read began the next resync asks Azure what changed:
#: a change committed just before a query may not show in it, and Azure's clocks are several
#: machines. Items changed in this window are only read cheaply again (their revisions).
CHANGED_SINCE_MARGIN: Final = timedelta(minutes=10)

#: Mapping failures on these fields leave the item's entity unknown, so deleting is unsafe.
_IDENTITY_FIELDS: Final = frozenset({"identifier", "blueprint", "selector.query", "itemsToParse"})
_LITERAL: Final = re.compile(r'^\s*"((?:[^"\\]|\\.)*)"\s*$')

RestFactory = Callable[[str, str], AzureDevOpsRest]
#: (key, version) of a raw item read in full, as its fetcher also reads it cheaply; None: unknown.
Marker = Callable[[Item], "tuple[str, str] | None"]

#: The kinds whose fetcher proves items unchanged cheaply (``ctx.unchanged``), with their marker.
#: Every other kind's items are read whole anyway and marked by their content (:func:`content_mark`).
MARKED_KINDS: Final[Mapping[str, Marker]] = {"work-item": work_item_mark}

#: The kinds the incremental sync reads (:mod:`kiosk.ingest.incremental`): a complete read of a
#: resource of these kinds records when it began, by Azure's clock — the incremental's cursor.
INCREMENTAL_KINDS: Final = frozenset({"work-item", "build", "pipeline-run", "pull-request", "release"})


def content_mark(item: Item) -> tuple[str, str] | None:
    """(key, version) of an item read whole from a list: the key is a hash of its whole content
    (organisation stamps and enrichments included), the version empty — an item that differs in
    anything is another item, its mark the old one's successor. None: not JSON (never skipped)."""
    try:
        encoded = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None
    return hashlib.blake2b(encoded, digest_size=16).hexdigest(), ""


def resource_hash(index: int, resource: ResourceConfig, config: PortAppConfig, context: str) -> str:
    """What a resource's marks are valid for: its place and whole mapping, the write options
    that change what is written, kiosk's version (the mapping engine) and ``context`` (the
    blueprints' fingerprint, the organisation's excluded tags). Any change voids every mark."""
    document = {
        "index": index,
        "resource": resource.model_dump(mode="json"),
        "merge": config.enableMergeEntity,
        "createMissing": config.createMissingRelatedEntities,
        "kiosk": __version__,
        "context": context,
    }
    return hashlib.blake2b(orjson.dumps(document, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def literal_blueprint(program: str) -> str | None:
    """The blueprint a mapping's ``blueprint`` program always gives (``'"service"'``), or None
    when it depends on the item. A resource with a literal blueprint owns that blueprint's
    entities of this source even when it produced none this time (every repository deleted)."""
    found = _LITERAL.match(program)
    if found is None or "\\" in found.group(1):
        return None
    return found.group(1)


def _now() -> datetime:
    return datetime.now(UTC)


class OrganizationReader:
    """What a resync and an incremental pass (:mod:`kiosk.ingest.incremental`) both hold: the store
    they write through and how they open an organisation's client.

    ``rest_options`` go to each organisation's :class:`AzureDevOpsRest` (tests shorten retries);
    ``rest_factory`` replaces the client entirely.
    """

    def __init__(
        self,
        store: IngestStore,
        *,
        rest_options: Mapping[str, Any] | None = None,
        rest_factory: RestFactory | None = None,
    ) -> None:
        self.store = store
        self._rest_options = dict(rest_options or {})
        self._rest_factory = rest_factory
        # When each organisation's running writes began (a Resyncer's: see IngestStore.write's newer_since).
        self._began: dict[Source, datetime] = {}

    def client(self, organization_url: str, pat: str) -> AzureDevOpsRest:
        if self._rest_factory is not None:
            return self._rest_factory(organization_url, pat)
        return AzureDevOpsRest(organization_url, pat, **self._rest_options)


class Resyncer(OrganizationReader):
    """Runs resyncs of integrations into the catalog through ``store`` (``rest_options`` and
    ``rest_factory`` as :class:`OrganizationReader` takes them)."""

    def writes_since(self, source: Source, moment: datetime) -> None:
        """What ``source``'s writes read began at ``moment``: an entity a live event wrote after it
        is newer than what is being written, and is left as it is (``IngestStore.write``'s ``newer_since``)."""
        self._began[source] = moment

    async def resource_keys(self, integration: Integration, config: PortAppConfig) -> list[str]:
        """Each resource's :func:`resource_hash` in an organisation of ``integration`` (the keys of
        its marks and of its read times), as a resync of ``config`` names them now."""
        excluded = tuple(integration.spec.config.excludedTags)
        context = await asyncio.to_thread(self.store.blueprints_fingerprint) + "|" + "\x1f".join(excluded)
        return [resource_hash(i, resource, config, context) for i, resource in enumerate(config.resources)]

    async def run(
        self,
        integration: Integration,
        *,
        trigger: str = "manual",
        on_progress: Callable[[ResyncState], None] | None = None,
        mapping: PortAppConfig | None = None,
    ) -> ResyncState:
        """Resync every organisation of ``integration`` (with ``mapping`` instead of its own when
        given: a mapping replaced through the API). Azure errors never raise: they are in the
        returned state, whose status is ``failed`` when any organisation failed."""
        config = mapping or integration.mapping
        spec = integration.spec
        started = _now()
        state = ResyncState(
            integration.identifier,
            status="running",
            started_at=started,
            interval_minutes=spec.scheduledResyncInterval,
            updated_at=started,
            trigger=trigger,
            organizations=[
                OrgState(
                    url=url,
                    resources=[
                        ResourceState(index=i, kind=resource.kind, blueprint=shown_blueprint(resource))
                        for i, resource in enumerate(config.resources)
                    ],
                )
                for url in spec.config.organization_urls()
            ],
        )
        progress = Progress(self.store, state, on_progress)
        await progress.save(force=True)
        compiled = [compile_resource(resource) for resource in config.resources]
        kinds_with_examples: set[str] = set()

        async def organization(org: OrgState) -> None:
            await self._organization(integration, config, compiled, org, progress, kinds_with_examples)

        state.status = await run_organizations(state.organizations, organization)
        state.finished_at = _now()
        if spec.scheduledResyncInterval is not None and spec.eventListener.type == "POLLING":
            state.next_resync_at = state.finished_at + timedelta(minutes=spec.scheduledResyncInterval)
        await progress.save(force=True)
        return state

    async def _organization(
        self,
        integration: Integration,
        config: PortAppConfig,
        compiled: Sequence[CompiledResource],
        org: OrgState,
        progress: Progress,
        kinds_with_examples: set[str],
    ) -> None:
        org.status = "running"
        org.started_at = _now()
        source = Source(integration.identifier, org.url)
        # What live events write from now on is newer than what this resync reads: not undone.
        self._began[source] = org.started_at
        produced: dict[str, set[str]] = defaultdict(set)
        owned: set[str] = set()
        # Blueprints some of whose items were not read or not identified: nothing of theirs is
        # deleted this time; None in the set means a resource whose blueprint depends on the item.
        unsure: dict[str | None, list[str]] = defaultdict(list)
        # Entities refused because a relation target did not exist yet (a resource of the
        # mapping that comes later makes it): written once more after the last resource.
        deferred: list[tuple[ResourceState, dict[str, Any]]] = []
        pat = integration.personal_access_token.reveal()
        excluded = tuple(integration.spec.config.excludedTags)
        keys = await self.resource_keys(integration, config)
        async with self.client(org.url, pat) as rest:
            ctx = FetchContext(rest, org.url, excluded_tags=excluded)
            for resource, mapper, resource_state, key in zip(
                config.resources, compiled, org.resources, keys, strict=True
            ):
                blueprint = literal_blueprint(resource.port.entity.mappings.blueprint)
                if blueprint is not None:
                    owned.add(blueprint)
                if resource.kind not in FETCHERS:
                    # A kind of Ocean's that kiosk does not read yet: say so, and keep whatever
                    # this resource wrote before (its blueprint is kept whole), deleting the rest.
                    resource_state.status = "failed"
                    resource_state.error(f"kiosk does not read the kind {resource.kind!r} yet")
                    unsure[blueprint].append(resource.kind)
                    continue
                resource_state.status = "running"
                keep_examples = integration.spec.sendRawDataExamples and resource.kind not in kinds_with_examples
                if keep_examples:
                    kinds_with_examples.add(resource.kind)
                try:
                    await self.read_resource(
                        ctx,
                        source,
                        config,
                        resource,
                        mapper,
                        resource_state,
                        produced,
                        progress,
                        keep_examples,
                        deferred,
                        key,
                    )
                except AzureRestError as exc:
                    later = org.resources[resource_state.index + 1 :]
                    if resource_failed(org, resource_state, later, exc, _log, f"resync {integration.identifier}"):
                        break
                    continue
                unread = take_skips(ctx, resource_state)
                if resource_state.unidentified or unread:
                    unsure[blueprint].append(resource.kind)
                resource_state.status = "completed"
                await progress.save()
            org.requests = rest.stats.requests
        await self.write_deferred(source, config, deferred)
        if org.error is None:
            await asyncio.to_thread(self.store.forget_resources, source, keys)
        if org.error is not None:
            org.status = "failed"
            org.deletion.reason = "not run: the organisation was not read completely (" + org.error + ")"
        elif None in unsure:
            org.status = "completed"
            org.deletion.reason = "not run: some items of " + ", ".join(unsure[None]) + " were not read or identified"
        else:
            org.status = "completed"
            blueprints = (owned | set(produced)) - set(unsure)
            org.deletion = await asyncio.to_thread(
                self.store.delete_stale,
                source,
                produced,
                blueprints,
                threshold=config.entityDeletionThreshold,
                delete_dependents=config.deleteDependentEntities,
                written_since=org.started_at,
            )
            if unsure and org.deletion.reason is None:
                kinds = sorted({kind for kinds in unsure.values() for kind in kinds})
                org.deletion.reason = (
                    f"{', '.join(sorted(b for b in unsure if b))} kept whole: some items of {', '.join(kinds)} "
                    "were not read or identified"
                )
        org.finished_at = _now()
        await progress.save(force=True)

    async def read_resource(
        self,
        ctx: FetchContext,
        source: Source,
        config: PortAppConfig,
        resource: ResourceConfig,
        mapper: CompiledResource,
        state: ResourceState,
        produced: dict[str, set[str]],
        progress: Progress,
        keep_examples: bool,
        deferred: list[tuple[ResourceState, dict[str, Any]]],
        key: str,
        *,
        read: Fetcher | None = None,
    ) -> None:
        """Read the resource's items and hand them, a chunk at a time, to a writer task that maps
        and writes them while the reading goes on (at most :data:`WRITE_AHEAD` chunks wait).

        ``read``: the incremental sync's changed-since read instead of the kind's full read. Its
        items are marked as the full read's are (so the next resync stays cheap), but nothing is
        proven unchanged by asking Azure, no mark is forgotten (an item not read may well exist)
        and no read time is recorded here: the incremental pass decides whether its cursor moves.
        """
        incremental = read is not None
        # Its fetcher skips what it proves unchanged (never in an incremental read).
        proven = resource.kind in MARKED_KINDS and not incremental
        content_marked = resource.kind not in MARKED_KINDS
        marker = MARKED_KINDS.get(resource.kind, content_mark)
        seen = _Seen()  # every item key read, cheaply or in full
        queue: asyncio.Queue[list[Item] | None] = asyncio.Queue(maxsize=WRITE_AHEAD)
        failure: list[BaseException] = []

        async def write_chunks() -> None:
            # Always consumes until the end mark, so the reader never waits on a dead writer;
            # after a failure the rest is dropped and the reader raises it.
            while (items := await queue.get()) is not None:
                if failure:
                    continue
                try:
                    if holds and content_marked:
                        items = await unchanged_content(items)
                    found = [marker(item) for item in items]  # before the mapping sees them
                    mapped = await asyncio.to_thread(mapper.map, items)
                    marks = _marks(found, mapped, key, seen)
                    await self._write(source, config, mapped, state, produced, deferred, marks)
                    await progress.save()
                except Exception as exc:  # handed to the reader, which raises it
                    failure.append(exc)

        # On SQLite one look-up at a time: each thread would take a database connection of its
        # own, and every SQLite connection keeps its own page cache (tens of MB each on a large
        # catalog). PostgreSQL does the work in its own processes: a few at once overlap.
        looking_up = asyncio.Semaphore(LOOKUPS_AT_ONCE_POSTGRES if self.store.db.is_postgres else 1)

        def vouched(lookup: Callable[[Source, str, dict[str, str]], dict[str, tuple[EntityKey, ...]]]) -> Unchanged:
            # The fetcher's question to the marks: which of these items does the catalog hold as
            # they are (each key asked is an item Azure listed, so it is seen).
            async def ask(versions: dict[str, str]) -> set[str]:
                seen.update(versions)
                async with looking_up:
                    held = await asyncio.to_thread(lookup, source, key, versions)
                _count_unchanged(state, produced, held.values(), read=True)
                return set(held)

            return ask

        async def unchanged_content(items: list[Item]) -> list[Item]:
            # The items whose content this resource holds marked are neither mapped nor compared.
            keys = [found[0] if (found := content_mark(item)) is not None else None for item in items]
            versions = {k: "" for k in keys if k is not None}
            seen.update(versions)
            held = await asyncio.to_thread(self.store.unchanged_items, source, key, versions)
            _count_unchanged(state, produced, held.values(), read=False)
            return [item for item, k in zip(items, keys, strict=True) if k is None or k not in held]

        def stop_asking() -> None:
            ctx.unchanged = ctx.as_marked = None
            ctx.changed_since = None

        async def finish() -> None:
            # The writer finishes what is queued (each write is whole), then ends.
            stop_asking()
            await queue.put(None)
            await writer

        holds = await asyncio.to_thread(self.store.has_marks, source, key)
        began = await asyncio.to_thread(self.store.read_began, source, key) if holds and proven else None
        ctx.read_began = None
        if incremental or (resource.kind in INCREMENTAL_KINDS and resource.kind not in MARKED_KINDS):
            # Azure's clock before anything is listed: where the next incremental pass starts.
            # (A work item's full read learns it from its WIQL answers' ``asOf``.)
            clock = await azure_now(ctx.rest)
            if clock is not None:
                ctx.server_time(clock)
        writer = asyncio.ensure_future(write_chunks())
        if holds and proven:
            ctx.unchanged = vouched(self.store.unchanged_items)
            if began is not None:
                ctx.changed_since = began - CHANGED_SINCE_MARGIN
                ctx.as_marked = vouched(self.store.unchanged_as_marked)
        pending: list[Item] = []
        try:
            async for batch in (read or fetcher_for(resource.kind))(ctx, resource):
                state.fetched += len(batch)
                if keep_examples:
                    keep_examples = False
                    examples = sample_examples(batch, limit=EXAMPLES)
                    await asyncio.to_thread(self.store.save_examples, source.integration, resource.kind, examples)
                pending.extend(batch)
                if len(pending) >= CHUNK:
                    await queue.put(pending)
                    pending = []
                if failure:
                    break
            if pending and not failure:
                await queue.put(pending)
        except asyncio.CancelledError:
            stop_asking()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            raise
        except Exception:
            await finish()
            raise
        await finish()
        if failure:
            raise failure[0]
        if incremental:
            return
        await asyncio.to_thread(self.store.forget_items, source, key, seen.keys())
        if (proven or resource.kind in INCREMENTAL_KINDS) and ctx.read_began is not None:
            # Read whole: its marks are exact as of then, and the incremental sync starts there.
            await asyncio.to_thread(self.store.save_read_began, source, key, ctx.read_began)

    async def _write(
        self,
        source: Source,
        config: PortAppConfig,
        mapped: MappedBatch,
        state: ResourceState,
        produced: dict[str, set[str]],
        deferred: list[tuple[ResourceState, dict[str, Any]]],
        marks: MarkBatch | None = None,
    ) -> None:
        state.filtered += mapped.filtered
        state.mapped += len(mapped.entities)
        # One entity may fail on several fields: count items, show every field's message.
        failed_items: set[int] = set()
        unidentified_items: set[int] = set()
        for failure in mapped.failures:
            failed_items.add(failure.item)
            shown = f" ({failure.identifier})" if failure.identifier else ""
            state.error(f"{failure.field}{shown}: {failure.message}")
            if failure.field in _IDENTITY_FIELDS:
                unidentified_items.add(failure.item)
        state.failed += len(failed_items)
        state.unidentified += len(unidentified_items)
        for entity in mapped.entities:
            produced[str(entity["blueprint"])].add(str(entity["identifier"]))
        if not mapped.entities and (marks is None or not marks.items):
            return
        outcome = await asyncio.to_thread(
            self.store.write,
            source,
            mapped.entities,
            merge=config.enableMergeEntity,
            create_missing=config.createMissingRelatedEntities,
            marks=marks,
            newer_since=self._began.get(source),
        )
        _count_written(state, outcome)
        by_key = {(str(e["blueprint"]), str(e["identifier"])): e for e in mapped.entities}
        for error in outcome.failed:
            key = (str(error.get("blueprint")), str(error.get("identifier")))
            if error.get("code") == MISSING_TARGET and key in by_key:
                deferred.append((state, by_key[key]))
                continue
            _failed(state, error)

    async def write_deferred(
        self, source: Source, config: PortAppConfig, deferred: list[tuple[ResourceState, dict[str, Any]]]
    ) -> None:
        """Write the entities refused for a missing relation target once more, now that every
        resource ran (Ocean retries them so too); what fails again is a failure."""
        groups: dict[int, tuple[ResourceState, list[dict[str, Any]]]] = {}
        for state, entity in deferred:
            groups.setdefault(id(state), (state, []))[1].append(entity)
        for state, entities in groups.values():
            outcome = await asyncio.to_thread(
                self.store.write,
                source,
                entities,
                merge=config.enableMergeEntity,
                create_missing=config.createMissingRelatedEntities,
                newer_since=self._began.get(source),
            )
            _count_written(state, outcome)
            for error in outcome.failed:
                _failed(state, error)


def _marks(found: Sequence[tuple[str, str] | None], mapped: MappedBatch, resource: str, seen: _Seen) -> MarkBatch:
    """The marks of a chunk mapped: each item's (key, version) in ``found`` (None: not marked),
    with the entities made of it (none for an item the selector left out); an item that failed
    to map gets no mark (it is read and mapped again next time)."""
    failed = {failure.item for failure in mapped.failures}
    made: dict[int, list[EntityKey]] = defaultdict(list)
    for owner, entity in zip(mapped.owners, mapped.entities, strict=True):
        made[owner].append((str(entity["blueprint"]), str(entity["identifier"])))
    out: list[ItemMark] = []
    seen.update(mark[0] for mark in found if mark is not None)
    for index, mark in enumerate(found):
        if mark is None:
            continue
        if index not in failed:
            out.append(ItemMark(mark[0], mark[1], tuple(made.get(index, ()))))
    return MarkBatch(resource, out)


def _count_unchanged(
    state: ResourceState, produced: dict[str, set[str]], held: Iterable[tuple[EntityKey, ...]], *, read: bool
) -> None:
    """Items proven unchanged count as read (``read``: not counted yet), and their entities as
    mapped and unchanged; the entities are produced, so the delete phase keeps them."""
    for keys in held:
        if read:
            state.fetched += 1
        state.mapped += len(keys)
        state.unchanged += len(keys)
        for blueprint, identifier in keys:
            produced[blueprint].add(identifier)


def _count_written(state: ResourceState, outcome: WriteOutcome) -> None:
    state.created += outcome.created
    state.updated += outcome.updated
    state.unchanged += outcome.unchanged


def _failed(state: ResourceState, error: Mapping[str, Any]) -> None:
    state.failed += 1
    state.error(f"{error.get('blueprint', '')}/{error.get('identifier')}: {error.get('message')}")


async def run_organizations(
    organizations: Sequence[_Org], organization: Callable[[_Org], Awaitable[None]]
) -> ResyncStatus:
    """Run ``organization`` on each of ``organizations``, at most :data:`ORG_CONCURRENCY` at once
    (a resync's and an incremental pass's); the run's status: ``completed`` when every
    organisation completed, else ``failed``."""
    gate = asyncio.Semaphore(ORG_CONCURRENCY)

    async def one(org: _Org) -> None:
        async with gate:
            await organization(org)

    await asyncio.gather(*(one(org) for org in organizations))
    return "completed" if all(org.status == "completed" for org in organizations) else "failed"


def resource_failed(
    org: OrgState | IncrementalOrgState,
    state: ResourceState,
    later: Sequence[ResourceState],
    error: AzureRestError,
    log: logging.Logger,
    what: str,
) -> bool:
    """Record the Azure ``error`` that stopped the read of ``state``'s resource (in its state and
    as the organisation's first error), and log it as ``what``'s. True when the organisation
    refused the token: then the ``later`` resources are failed unread, and the caller stops."""
    state.status = "failed"
    state.error(str(error))
    org.error = org.error or f"{state.kind}: {error}"
    log.warning("%s %s: %s failed: %s", what, org.url, state.kind, error)
    if not isinstance(error, AuthenticationFailed):
        return False
    for resource in later:
        resource.status = "failed"
        resource.error("not read: the organisation refused the token")
    return True


def take_skips(ctx: FetchContext, state: ResourceState) -> bool:
    """Move the "no data" answers the read of ``state``'s resource skipped from ``ctx`` into
    ``state`` (``ctx`` is shared by the organisation's resources); True when some list was left
    unread by them (its items are not known)."""
    state.skipped = dict(ctx.skipped)
    unread = bool(ctx.unread)
    ctx.skipped.clear()
    ctx.unread.clear()
    return unread


def shown_blueprint(resource: ResourceConfig) -> str:
    """The blueprint a resource's state names: its literal blueprint, else its jq program."""
    program = resource.port.entity.mappings.blueprint
    return literal_blueprint(program) or program


class _Seen:
    """The item keys a resource read, kept as one string per chunk until the end: 100,000 small
    strings kept alive among each chunk's garbage would pin memory the chunks free (CPython
    frees an allocator pool only when all of it is free), one large string per chunk does not."""

    SEPARATOR: Final = "\x1f"

    def __init__(self) -> None:
        self._chunks: list[str] = []

    def update(self, keys: Iterable[str]) -> None:
        joined = self.SEPARATOR.join(keys)
        if joined:
            self._chunks.append(joined)

    def keys(self) -> set[str]:
        return {key for chunk in self._chunks for key in chunk.split(self.SEPARATOR)}


class Progress:
    """Saves the running state at most every :data:`SAVE_EVERY` seconds (and when forced): a
    resync's as the integration's state, an incremental pass's in its own record."""

    def __init__(
        self,
        store: IngestStore,
        state: ResyncState | IncrementalState,
        on_progress: Callable[[Any], None] | None,
    ) -> None:
        self._store = store
        self._state = state
        self._on_progress = on_progress
        self._last = 0.0

    async def save(self, *, force: bool = False) -> None:
        moment = time.monotonic()
        if not force and moment - self._last < SAVE_EVERY:
            return
        self._last = moment
        self._state.updated_at = _now()
        if isinstance(self._state, IncrementalState):
            await asyncio.to_thread(self._store.save_incremental_state, self._state)
        else:
            await asyncio.to_thread(self._store.save_state, self._state)
        if self._on_progress is not None:
            self._on_progress(self._state)
