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
        _tfs("git.repo.renamed"),
        _tfs("git.repo.deleted"),
        _tfs("git.repo.statuschanged"),
        _tfs("workitem.created"),
        _tfs("workitem.updated"),
        _tfs("workitem.restored"),
        _tfs("workitem.commented"),
        _tfs("workitem.deleted"),
        _tfs("build.complete", "2.0"),
        _pipelines("ms.vss-pipelines.run-state-changed-event"),
        _pipelines("ms.vss-pipelines.stage-state-changed-event"),
        _pipelines("ms.vss-pipelines.job-state-changed-event"),
        _pipelines("ms.vss-pipelinechecks-events.approval-pending"),
        _pipelines("ms.vss-pipelinechecks-events.approval-completed"),
        _rm("ms.vss-release.release-created-event"),
        _rm("ms.vss-release.release-abandoned-event"),
        _rm("ms.vss-release.deployment-started-event"),
        _rm("ms.vss-release.deployment-completed-event"),
    )
}
"""Every event kiosk may subscribe to, by event type."""

_REPOSITORY_CHANGES: Final = ("git.repo.renamed", "git.repo.deleted", "git.repo.statuschanged")
_PULL_REQUESTS: Final = ("git.pullrequest.created", "git.pullrequest.updated", "git.pullrequest.merged")
_RELEASES: Final = ("ms.vss-release.release-created-event", "ms.vss-release.release-abandoned-event")
_DEPLOYMENTS: Final = ("ms.vss-release.deployment-started-event", "ms.vss-release.deployment-completed-event")

KIND_EVENTS: Final[dict[str, tuple[str, ...]]] = {
    "repository": ("git.repo.created", *_REPOSITORY_CHANGES),
    "branch": ("git.push", *_REPOSITORY_CHANGES),
    "file": ("git.push", *_REPOSITORY_CHANGES),
    "folder": ("git.push", *_REPOSITORY_CHANGES),
    "wiki": ("git.push",),
    "repository-policy": _REPOSITORY_CHANGES,
    "pull-request": (*_PULL_REQUESTS, *_REPOSITORY_CHANGES),
    "work-item": (
        "workitem.created",
        "workitem.updated",
        "workitem.restored",
        "workitem.commented",
        "workitem.deleted",
    ),
    "build": ("build.complete",),
    "test-run": ("build.complete",),
    "pipeline-run": ("ms.vss-pipelines.run-state-changed-event",),
    "pipeline-stage": (
        "ms.vss-pipelines.stage-state-changed-event",
        "ms.vss-pipelines.job-state-changed-event",
        "ms.vss-pipelinechecks-events.approval-pending",
        "ms.vss-pipelinechecks-events.approval-completed",
    ),
    "release": (*_RELEASES, *_DEPLOYMENTS),
    "release-definition": _RELEASES,
    "release-deployment": _DEPLOYMENTS,
}
"""The event types each kind changes with; a kind absent here (project, team, user, board…) has no
live events and is kept by the resync alone."""


def events_for_kinds(kinds: Iterable[str]) -> list[HookEvent]:
    """The events ``kinds`` need, each once, by publisher (in :data:`PUBLISHERS` order) then event type."""
    wanted = {EVENTS[event_type] for kind in kinds for event_type in KIND_EVENTS.get(kind, ())}
    return sorted(wanted, key=lambda e: (PUBLISHERS.index(e.publisher_id), e.event_type))
