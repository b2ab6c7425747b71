"""The resync: read every organisation of an integration, map it, write what changed, and delete
what is gone — only when the whole organisation was read without an error.

Per organisation (several at once, each on its own client, so one that is down neither deletes
nor blocks another's entities), per resource in the mapping's order:

1. the kind's fetcher (:mod:`kiosk.ingest.fetch`) streams batches of raw items, reading many lists
   at once under the client's rate-limit pacing;
2. items are gathered into chunks of :data:`CHUNK` and mapped by the resource's compiled mapping
   (:mod:`kiosk.ingest.transform`) in a worker thread;
3. the entities go to :class:`~kiosk.ingest.store.IngestStore`, which compares them with the
   catalog and writes only what changed (kiosk's own storage layer, no HTTP to itself), recording
   this integration and organisation as their source.

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
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from kiosk.azure.errors import AuthenticationFailed, AzureRestError
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.ingest.config import Integration
from kiosk.ingest.examples import sample_examples
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.fetch.registry import fetcher_for
from kiosk.ingest.mapping import PortAppConfig, ResourceConfig
from kiosk.ingest.state import OrgState, ResourceState, ResyncState
from kiosk.ingest.store import IngestStore, Source
from kiosk.ingest.transform import CompiledResource, MappedBatch, compile_resource

__all__ = ["CHUNK", "ORG_CONCURRENCY", "Resyncer", "literal_blueprint"]

_log = logging.getLogger("kiosk.ingest.resync")

#: Raw items mapped and written together: big enough that a write is a few large statements,
#: small enough that a resync of 100,000 work items never holds more than a chunk of them mapped.
CHUNK: Final = 2_000
#: Organisations resynced at once (the reference's limit).
ORG_CONCURRENCY: Final = 3
#: Seconds between saves of the running state.
SAVE_EVERY: Final = 1.0
#: The catalog's code for an entity whose relation points at an entity that does not exist.
MISSING_TARGET: Final = "related_entity_not_found"
#: Raw items kept per kind for test-mapping.
EXAMPLES: Final = 5

#: Mapping failures on these fields leave the item's entity unknown, so deleting is unsafe.
_IDENTITY_FIELDS: Final = frozenset({"identifier", "blueprint", "selector.query", "itemsToParse"})
_LITERAL: Final = re.compile(r'^\s*"((?:[^"\\]|\\.)*)"\s*$')

RestFactory = Callable[[str, str], AzureDevOpsRest]


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


class Resyncer:
    """Runs resyncs of integrations into the catalog through ``store``.

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

    def _client(self, organization_url: str, pat: str) -> AzureDevOpsRest:
        if self._rest_factory is not None:
            return self._rest_factory(organization_url, pat)
        return AzureDevOpsRest(organization_url, pat, **self._rest_options)

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
                        ResourceState(index=i, kind=resource.kind, blueprint=_shown_blueprint(resource))
                        for i, resource in enumerate(config.resources)
                    ],
                )
                for url in spec.config.organization_urls()
            ],
        )
        progress = _Progress(self.store, state, on_progress)
        await progress.save(force=True)
        compiled = [compile_resource(resource) for resource in config.resources]
        gate = asyncio.Semaphore(ORG_CONCURRENCY)
        kinds_with_examples: set[str] = set()

        async def one(org: OrgState) -> None:
            async with gate:
                await self._organization(integration, config, compiled, org, progress, kinds_with_examples)

        await asyncio.gather(*(one(org) for org in state.organizations))
        state.finished_at = _now()
        state.status = "completed" if all(org.status == "completed" for org in state.organizations) else "failed"
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
        progress: _Progress,
        kinds_with_examples: set[str],
    ) -> None:
        org.status = "running"
        org.started_at = _now()
        source = Source(integration.identifier, org.url)
        produced: dict[str, set[str]] = defaultdict(set)
        owned: set[str] = set()
        # Blueprints some of whose items were not read or not identified: nothing of theirs is
        # deleted this time; None in the set means a resource whose blueprint depends on the item.
        unsure: dict[str | None, list[str]] = defaultdict(list)
        # Entities refused because a relation target did not exist yet (a resource of the
        # mapping that comes later makes it): written once more after the last resource.
        deferred: list[tuple[ResourceState, dict[str, Any]]] = []
        pat = integration.personal_access_token.reveal()
        async with self._client(org.url, pat) as rest:
            ctx = FetchContext(rest, org.url, excluded_tags=tuple(integration.spec.config.excludedTags))
            for resource, mapper, resource_state in zip(config.resources, compiled, org.resources, strict=True):
                blueprint = literal_blueprint(resource.port.entity.mappings.blueprint)
                if blueprint is not None:
                    owned.add(blueprint)
                resource_state.status = "running"
                keep_examples = integration.spec.sendRawDataExamples and resource.kind not in kinds_with_examples
                if keep_examples:
                    kinds_with_examples.add(resource.kind)
                try:
                    await self._resource(
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
                    )
                except AzureRestError as exc:
                    resource_state.status = "failed"
                    resource_state.error(str(exc))
                    org.error = org.error or f"{resource.kind}: {exc}"
                    _log.warning("resync %s %s: %s failed: %s", integration.identifier, org.url, resource.kind, exc)
                    if isinstance(exc, AuthenticationFailed):
                        _skip_rest(org, resource_state.index, "not read: the organisation refused the token")
                        break
                    continue
                resource_state.skipped = dict(ctx.skipped)
                ctx.skipped.clear()
                if resource_state.unidentified or resource_state.skipped:
                    unsure[blueprint].append(resource.kind)
                resource_state.status = "completed"
                await progress.save()
            org.requests = rest.stats.requests
        await self._write_deferred(source, config, deferred)
        if org.error is not None:
            org.status = "failed"
            org.deletion.reason = "not run: the organisation was not read completely (" + org.error + ")"
        elif None in unsure:
            org.status = "completed"
            org.deletion.reason = "not run: some items of " + ", ".join(unsure[None]) + " were not read or identified"
        else:
            org.status = "completed"
            blueprints = (owned | set(produced)) - set(unsure)
            plan = await asyncio.to_thread(self.store.plan_deletion, source, produced, blueprints)
            org.deletion = await asyncio.to_thread(
                self.store.delete,
                source,
                plan,
                threshold=config.entityDeletionThreshold,
                delete_dependents=config.deleteDependentEntities,
            )
            if unsure and org.deletion.reason is None:
                kinds = sorted({kind for kinds in unsure.values() for kind in kinds})
                org.deletion.reason = (
                    f"{', '.join(sorted(b for b in unsure if b))} kept whole: some items of {', '.join(kinds)} "
                    "were not read or identified"
                )
        org.finished_at = _now()
        await progress.save(force=True)

    async def _resource(
        self,
        ctx: FetchContext,
        source: Source,
        config: PortAppConfig,
        resource: ResourceConfig,
        mapper: CompiledResource,
        state: ResourceState,
        produced: dict[str, set[str]],
        progress: _Progress,
        keep_examples: bool,
        deferred: list[tuple[ResourceState, dict[str, Any]]],
    ) -> None:
        pending: list[Item] = []

        async def flush() -> None:
            items = pending[:]
            pending.clear()
            mapped = await asyncio.to_thread(mapper.map, items)
            await self._write(source, config, mapped, state, produced, deferred)
            await progress.save()

        async for batch in fetcher_for(resource.kind)(ctx, resource):
            state.fetched += len(batch)
            if keep_examples:
                keep_examples = False
                examples = sample_examples(batch, limit=EXAMPLES)
                await asyncio.to_thread(self.store.save_examples, source.integration, resource.kind, examples)
            pending.extend(batch)
            if len(pending) >= CHUNK:
                await flush()
        if pending:
            await flush()

    async def _write(
        self,
        source: Source,
        config: PortAppConfig,
        mapped: MappedBatch,
        state: ResourceState,
        produced: dict[str, set[str]],
        deferred: list[tuple[ResourceState, dict[str, Any]]],
    ) -> None:
        state.filtered += mapped.filtered
        state.mapped += len(mapped.entities)
        for failure in mapped.failures:
            state.failed += 1
            shown = f" ({failure.identifier})" if failure.identifier else ""
            state.error(f"item {failure.item}{shown}: {failure.field}: {failure.message}")
            if failure.field in _IDENTITY_FIELDS:
                state.unidentified += 1
        for entity in mapped.entities:
            produced[str(entity["blueprint"])].add(str(entity["identifier"]))
        if not mapped.entities:
            return
        outcome = await asyncio.to_thread(
            self.store.write,
            source,
            mapped.entities,
            merge=config.enableMergeEntity,
            create_missing=config.createMissingRelatedEntities,
        )
        state.created += outcome.created
        state.updated += outcome.updated
        state.unchanged += outcome.unchanged
        by_key = {(str(e["blueprint"]), str(e["identifier"])): e for e in mapped.entities}
        for error in outcome.failed:
            key = (str(error.get("blueprint")), str(error.get("identifier")))
            if error.get("code") == MISSING_TARGET and key in by_key:
                deferred.append((state, by_key[key]))
                continue
            _failed(state, error)

    async def _write_deferred(
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
            )
            state.created += outcome.created
            state.updated += outcome.updated
            state.unchanged += outcome.unchanged
            for error in outcome.failed:
                _failed(state, error)


def _failed(state: ResourceState, error: Mapping[str, Any]) -> None:
    state.failed += 1
    state.error(f"{error.get('blueprint', '')}/{error.get('identifier')}: {error.get('message')}")


def _skip_rest(org: OrgState, after: int, reason: str) -> None:
    for resource in org.resources[after + 1 :]:
        resource.status = "failed"
        resource.error(reason)


def _shown_blueprint(resource: ResourceConfig) -> str:
    program = resource.port.entity.mappings.blueprint
    return literal_blueprint(program) or program


class _Progress:
    """Saves the running state at most every :data:`SAVE_EVERY` seconds (and when forced)."""

    def __init__(
        self, store: IngestStore, state: ResyncState, on_progress: Callable[[ResyncState], None] | None
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
        await asyncio.to_thread(self._store.save_state, self._state)
        if self._on_progress is not None:
            self._on_progress(self._state)
