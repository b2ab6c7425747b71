"""The incremental sync: between full resyncs, read from Azure only what changed since a cursor,
and write it as the resync writes it. It never deletes: the full resync does.

For the kinds that change most (:data:`~kiosk.ingest.resync.INCREMENTAL_KINDS`: work-item, build,
pipeline-run, pull-request, release), per organisation and resource of the mapping:

* **The cursor** is the time, by Azure's clock, before which every change of the resource is in
  the catalog: ``ingest_resource_reads`` under the resource's hash
  (:func:`~kiosk.ingest.resync.resource_hash`, so a changed mapping or blueprint starts again from
  a full read). A full resync's complete read of the resource sets it to when that read began; a
  pass that read the resource without any error moves it to when its own read began (Azure's
  ``Date`` before the first list, or a WIQL answer's ``asOf``, whichever is earlier); a pass that
  failed anywhere for the resource — an Azure error, an item that could not be mapped or written,
  a list Azure answered "no data" — leaves it where it was, so the next pass reads that span
  again. A resource with no cursor yet is skipped (its state says so): the full resync reads it
  first.
* **The read** is the kind's changed-since function (:data:`CHANGED_READS`, in the kind's fetcher
  module), asked from the cursor less :data:`OVERLAP`: a change committed just before a query may
  not show in it yet, and Azure's clocks are several machines. Reading a little twice costs little:
  writes are idempotent and compare with the catalog first.
* **The write** is the resync's own (:meth:`~kiosk.ingest.resync.Resyncer.read_resource` with the
  changed-since read): the same mapping, the same item marks under the same resource hashes (so
  the next full resync proves these items unchanged cheaply), the same comparison with the
  catalog, and the same guard against undoing a live event: an entity a live event wrote after
  the pass began is left as it is. Entities refused for a missing relation target are written
  once more at the end, as the resync does.

Its state (:class:`~kiosk.ingest.state.IncrementalState`) is a record of its own, beside the full
resync's: per resource what was read, written and left unchanged, and the cursor before and after.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from kiosk.azure.errors import AzureRestError
from kiosk.ingest.config import Integration
from kiosk.ingest.fetch.base import Batch, FetchContext, Fetcher
from kiosk.ingest.fetch.git import fetch_changed_pull_requests
from kiosk.ingest.fetch.pipelines import fetch_changed_builds, fetch_changed_pipeline_runs
from kiosk.ingest.fetch.releases import fetch_changed_releases
from kiosk.ingest.fetch.work_items import fetch_changed_work_items
from kiosk.ingest.mapping import PortAppConfig, ResourceConfig
from kiosk.ingest.resync import (
    CHANGED_SINCE_MARGIN,
    INCREMENTAL_KINDS,
    OrganizationReader,
    Progress,
    Resyncer,
    resource_failed,
    run_organizations,
    shown_blueprint,
    take_skips,
)
from kiosk.ingest.state import IncrementalOrgState, IncrementalResourceState, IncrementalState, ResourceState
from kiosk.ingest.store import Source
from kiosk.ingest.transform import CompiledResource, compile_resource

__all__ = ["CHANGED_READS", "NO_CURSOR", "OVERLAP", "ChangedRead", "IncrementalSync", "incremental_resources"]

_log = logging.getLogger("kiosk.ingest.incremental")

#: How much earlier than its cursor a pass asks what changed (the resync's own margin).
OVERLAP: Final = CHANGED_SINCE_MARGIN

#: Why a resource without a cursor is skipped.
NO_CURSOR: Final = "no cursor yet: the next full resync reads it first"

#: A kind's changed-since read: the items of ``resource`` that may have changed at or after ``since``.
ChangedRead = Callable[[FetchContext, ResourceConfig, datetime], AsyncIterator[Batch]]

CHANGED_READS: Final[Mapping[str, ChangedRead]] = {
    "work-item": fetch_changed_work_items,
    "build": fetch_changed_builds,
    "pipeline-run": fetch_changed_pipeline_runs,
    "pull-request": fetch_changed_pull_requests,
    "release": fetch_changed_releases,
}
assert frozenset(CHANGED_READS) == INCREMENTAL_KINDS


def incremental_resources(config: PortAppConfig) -> list[int]:
    """The indexes of ``config``'s resources an incremental pass reads (of the incremental kinds)."""
    return [index for index, resource in enumerate(config.resources) if resource.kind in INCREMENTAL_KINDS]


def _since(read: ChangedRead, since: datetime) -> Fetcher:
    """``read`` as a fetcher (``ctx, resource``) asking from ``since``."""

    def fetch(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
        return read(ctx, resource, since)

    return fetch


def _now() -> datetime:
    return datetime.now(UTC)


class IncrementalSync(OrganizationReader):
    """Runs incremental passes of integrations into the catalog through ``store``; ``rest_options``
    and ``rest_factory`` as :class:`~kiosk.ingest.resync.OrganizationReader` takes them."""

    async def run(
        self,
        integration: Integration,
        *,
        trigger: str = "manual",
        on_progress: Callable[[IncrementalState], None] | None = None,
        mapping: PortAppConfig | None = None,
    ) -> IncrementalState:
        """One pass over every organisation of ``integration`` (with ``mapping`` when given: a
        mapping replaced through the API). Azure errors never raise: they are in the returned
        state, ``failed`` when any organisation failed."""
        config = mapping or integration.mapping
        started = _now()
        indexes = incremental_resources(config)
        state = IncrementalState(
            integration.identifier,
            status="running",
            started_at=started,
            updated_at=started,
            interval_minutes=integration.spec.incrementalSyncInterval,
            trigger=trigger,
            organizations=[
                IncrementalOrgState(
                    url=url,
                    resources=[
                        IncrementalResourceState(
                            index=i, kind=config.resources[i].kind, blueprint=shown_blueprint(config.resources[i])
                        )
                        for i in indexes
                    ],
                )
                for url in integration.spec.config.organization_urls()
            ],
        )
        progress = Progress(self.store, state, on_progress)
        await progress.save(force=True)
        compiled = {i: compile_resource(config.resources[i]) for i in indexes}
        # A writer of its own: its "began" per source is this pass's, never a running resync's.
        writer = Resyncer(self.store, rest_options=self._rest_options, rest_factory=self._rest_factory)

        async def organization(org: IncrementalOrgState) -> None:
            await self._organization(writer, integration, config, compiled, org, progress)

        state.status = await run_organizations(state.organizations, organization)
        state.finished_at = _now()
        await progress.save(force=True)
        return state

    async def _organization(
        self,
        writer: Resyncer,
        integration: Integration,
        config: PortAppConfig,
        compiled: Mapping[int, CompiledResource],
        org: IncrementalOrgState,
        progress: Progress,
    ) -> None:
        org.status = "running"
        org.started_at = _now()
        source = Source(integration.identifier, org.url)
        writer.writes_since(source, org.started_at)
        keys = await writer.resource_keys(integration, config)
        produced: dict[str, set[str]] = defaultdict(set)  # unused: an incremental pass deletes nothing
        deferred: list[tuple[ResourceState, dict[str, Any]]] = []
        # Resources read without an error, with when their read began: their cursors move at the end.
        advancing: list[tuple[IncrementalResourceState, str, datetime]] = []
        excluded = tuple(integration.spec.config.excludedTags)
        async with writer.client(org.url, integration.personal_access_token.reveal()) as rest:
            ctx = FetchContext(rest, org.url, excluded_tags=excluded)
            for position, resource_state in enumerate(org.resources):
                index = resource_state.index
                resource, key = config.resources[index], keys[index]
                cursor = await asyncio.to_thread(self.store.read_began, source, key)
                resource_state.cursor_before = resource_state.cursor_after = cursor
                if cursor is None:
                    resource_state.status = "skipped"
                    resource_state.skipped_reason = NO_CURSOR
                    continue
                resource_state.status = "running"
                read = _since(CHANGED_READS[resource.kind], cursor - OVERLAP)
                try:
                    await writer.read_resource(
                        ctx,
                        source,
                        config,
                        resource,
                        compiled[index],
                        resource_state,
                        produced,
                        progress,
                        False,
                        deferred,
                        key,
                        read=read,
                    )
                except AzureRestError as exc:
                    later = org.resources[position + 1 :]
                    if resource_failed(org, resource_state, later, exc, _log, f"incremental {integration.identifier}"):
                        break
                    continue
                unread = take_skips(ctx, resource_state)
                resource_state.status = "completed"
                if unread:
                    resource_state.error("cursor kept: some lists answered that they hold no data (not read)")
                elif ctx.read_began is None:
                    resource_state.error("cursor kept: Azure's answers gave no time to start the next pass from")
                else:
                    # Never backwards: the Date header is to the second, a WIQL ``asOf`` finer.
                    advancing.append((resource_state, key, max(cursor, ctx.read_began)))
                await progress.save()
            org.requests = rest.stats.requests
        await writer.write_deferred(source, config, deferred)
        for resource_state, key, began in advancing:
            if resource_state.failed:
                resource_state.error("cursor kept: some items could not be mapped or written")
                continue
            await asyncio.to_thread(self.store.save_read_began, source, key, began)
            resource_state.cursor_after = began
        org.status = "failed" if org.error is not None else "completed"
        org.finished_at = _now()
        await progress.save(force=True)
