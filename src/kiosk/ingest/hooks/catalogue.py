"""Which service-hook events each kind needs, who publishes them and on which host (pure data).

The live-events table of issue 14 (item 3) joined with the reference's (azure-devops-ingestion.md
3.3): an event is subscribed to only when a kind of the integration's mapping changes with it.

- ``tfs`` (org host): pushes (branch, file, folder, wiki), pull requests, repositories, work items,
  completed builds (build, and test-run as the reference refreshes it).
- ``pipelines`` (org host): run, stage and job state changes, and the stage approvals the reference
  reads for pipeline-stage.
- ``rm`` (the ``vsrm`` host, where Azure keeps release subscriptions; the reference lists them on
  the org host and recreates them at every start): releases and deployments.

A repository's deletion, rename or disabling changes its children too (branches, files, folders,
pull requests, policies), so those kinds take the repository events even without the repository
kind. Not subscribed: ``advsec`` (Advanced Security alerts: the ``advsec`` publisher is not one of
the three kiosk manages), and ``ms.vss-pipelinechecks-events.check-updated-event``, which the
reference turns into a ``pipeline`` update by reading a check configuration id as a pipeline id.

Resource versions are the current ones Azure documents per event (reference azure-devops-rest.md
6.3): ``build.complete`` 2.0 (1.0 is the old XAML build shape), pipelines ``5.1-preview.1``,
releases ``3.0-preview.1``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from kiosk.azure.urls import Host
from kiosk.ingest.live.registry import kind_events

__all__ = ["EVENTS", "KIND_EVENTS", "PUBLISHERS", "HookEvent", "events_for_kinds"]

PUBLISHERS: Final = ("tfs", "pipelines", "rm")
"""The publishers whose subscriptions kiosk manages, in the order plans list them."""


@dataclass(frozen=True, order=True)
class HookEvent:
    """One event type of one publisher: the host its subscriptions live on, the payload version asked."""

    publisher_id: str
    event_type: str
    host: Host
    resource_version: str


def _tfs(event_type: str, version: str = "1.0") -> HookEvent:
    return HookEvent("tfs", event_type, "core", version)


def _pipelines(event_type: str) -> HookEvent:
    return HookEvent("pipelines", event_type, "core", "5.1-preview.1")


def _rm(event_type: str) -> HookEvent:
    return HookEvent("rm", event_type, "vsrm", "3.0-preview.1")


EVENTS: Final = {
    event.event_type: event
    for event in (
        _tfs("git.push"),
        _tfs("git.pullrequest.created"),
        _tfs("git.pullrequest.updated"),
        _tfs("git.pullrequest.merged"),
        _tfs("git.repo.created"),
        _tfs("git.repo.forked"),
        _tfs("git.repo.renamed"),
        _tfs("git.repo.deleted"),
        _tfs("git.repo.statuschanged"),
        _tfs("git.repo.undeleted"),
        _tfs("workitem.created"),
        _tfs("workitem.updated"),
        _tfs("workitem.restored"),
        _tfs("workitem.commented"),
        _tfs("workitem.deleted"),
        _tfs("build.complete", "2.0"),
        _pipelines("ms.vss-pipelines.run-state-changed-event"),
        _pipelines("ms.vss-pipelines.stage-state-changed-event"),
        _pipelines("ms.vss-pipelines.job-state-changed-event"),
        _rm("ms.vss-release.release-created-event"),
        _rm("ms.vss-release.release-abandoned-event"),
        _rm("ms.vss-release.deployment-started-event"),
        _rm("ms.vss-release.deployment-completed-event"),
    )
}
"""Every event kiosk subscribes to, by event type: its publisher, host and payload version."""

KIND_EVENTS: Final[dict[str, tuple[str, ...]]] = kind_events()
"""The event types each kind changes with: those the live-event handlers process for it
(:mod:`kiosk.ingest.live.registry`), so a subscription is made for every event kiosk processes and
none it would only skip. A kind absent here (project, team, user, board…) has no live events and is
kept by the resync alone."""

_UNPUBLISHED = {t for types in KIND_EVENTS.values() for t in types} - set(EVENTS)
if _UNPUBLISHED:  # a handler for an event kiosk could not subscribe to: a programming error
    raise RuntimeError(f"no publisher known for the handled event types {sorted(_UNPUBLISHED)}")


def events_for_kinds(kinds: Iterable[str]) -> list[HookEvent]:
    """The events ``kinds`` need, each once, by publisher (in :data:`PUBLISHERS` order) then event type."""
    wanted = {EVENTS[event_type] for kind in kinds for event_type in KIND_EVENTS.get(kind, ())}
    return sorted(wanted, key=lambda e: (PUBLISHERS.index(e.publisher_id), e.event_type))
