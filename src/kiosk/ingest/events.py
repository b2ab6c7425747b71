"""The live events an integration receives: Azure DevOps service-hook envelopes, checked and keyed.

Azure posts one envelope per event and subscription (reference 6.2): ``id`` (the event's GUID,
the same for every subscription it reaches), ``subscriptionId``, ``notificationId`` (counting up
per subscription), ``eventType``, ``publisherId``, ``resource`` (the changed object, whole for a
project-scoped subscription, its identifying keys only for an org-scoped one), ``resourceContainers``
(collection, account, project) and more. Delivery is at least once: a redelivery carries the same
``id`` and ``notificationId``.

This module holds the pure part of receiving them, apart from any IO:

* :func:`parse_event` checks what kiosk needs before it stores an event and names the field that
  is missing or wrong (:class:`EventRejected`);
* :func:`event_identity` is what makes a redelivery recognisable: the event's ``id``, else the
  subscription's ``notificationId``;
* :func:`ordering_key` names the object an event is about — a repository for ``git.*``, a work
  item, a pipeline run (a build is the same object: a run's id is its build's id), a release —
  so events about one object can be processed in the order they arrived while events about
  different objects run side by side. It is the same for every event type touching that object.

Storing and listing the events (job rows) is :mod:`kiosk.ingest.events_queue`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

__all__ = [
    "EVENT_JOB_PREFIX",
    "KNOWN_EVENT_TYPES",
    "MAX_EVENT_ID",
    "REDELIVERY_WINDOW",
    "EventRejected",
    "ReceivedEvent",
    "event_dedupe_key",
    "event_identity",
    "event_job_kind",
    "events_path",
    "kept_event_jobs",
    "ordering_key",
    "parse_event",
]

#: Job kinds of received events start with this; the rest is a digest of the integration's
#: identifier (identifiers may be 100 characters, a job kind 50), so each process can claim the
#: events of the integrations it is configured with, as resyncs are claimed.
EVENT_JOB_PREFIX: Final = "integration.event."
#: How long a received event's job (holding its dedupe key) outlives its processing: Azure goes on
#: redelivering a notification it saw fail for about a day and a half, and a redelivery arriving
#: after the job was pruned would be taken for a new event.
REDELIVERY_WINDOW: Final = timedelta(days=2)
#: The longest event id (``id`` or ``notificationId``) kept as such; Azure's are GUIDs and integers.
MAX_EVENT_ID: Final = 200


class EventRejected(ValueError):
    """An envelope kiosk cannot store: ``field`` is the first field missing or wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ReceivedEvent:
    """A checked envelope: the fields kiosk keys it by, and the whole ``body`` as it came."""

    event_type: str
    publisher_id: str
    identity: str
    resource: dict[str, Any]
    body: dict[str, Any]

    @property
    def known(self) -> bool:
        """Whether kiosk knows what object events of this type are about (others are stored, and
        processing skips them with a reason)."""
        return self.event_type in KNOWN_EVENT_TYPES

    @property
    def object_key(self) -> str | None:
        return ordering_key(self.event_type, self.resource, self.body.get("resourceContainers"))


def _text_field(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise EventRejected(name, "is required (a service-hook event names its type and publisher)")
    if not isinstance(value, str) or not value.strip():
        raise EventRejected(name, f"must be a non-empty string, not {_shown(value)}")
    if len(value) > MAX_EVENT_ID:
        raise EventRejected(name, f"is longer than {MAX_EVENT_ID} characters")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _id_text(name: str, value: Any) -> str | None:
    """``value`` as an event id (a non-empty string or an integer), None when absent; else refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventRejected(name, f"must be a string or an integer, not {_shown(value)}")
    text = str(value).strip()
    if not text:
        raise EventRejected(name, "must not be empty")
    if len(text) > MAX_EVENT_ID:
        raise EventRejected(name, f"is longer than {MAX_EVENT_ID} characters")
    return text


def event_identity(body: Mapping[str, Any]) -> str:
    """What a redelivery of ``body`` repeats: its ``id`` (the event's GUID, one per event whatever
    the subscription), else its ``notificationId`` within its ``subscriptionId``.

    Raises :class:`EventRejected` naming ``id`` when neither is there, or the field that is not an id.
    """
    event_id = _id_text("id", body.get("id"))
    notification = _id_text("notificationId", body.get("notificationId"))
    subscription = _id_text("subscriptionId", body.get("subscriptionId"))
    if event_id is not None:
        return event_id
    if notification is None:
        raise EventRejected("id", "is required: an event carries its id (or a notificationId)")
    return f"notification:{subscription or '-'}:{notification}"


def parse_event(body: Any) -> ReceivedEvent:
    """``body`` checked as a service-hook envelope: an object with ``eventType``, ``publisherId``,
    a ``resource`` object and an event id (``id`` or ``notificationId``).

    Raises :class:`EventRejected` naming the first field that is missing or wrong.
    """
    if not isinstance(body, dict):
        kind = "null" if body is None else type(body).__name__
        raise EventRejected("body", f"must be a JSON object (a service-hook event), not {kind}")
    event_type = _text_field(body, "eventType")
    publisher_id = _text_field(body, "publisherId")
    resource = body.get("resource")
    if resource is None:
        raise EventRejected("resource", "is required: the object the event is about")
    if not isinstance(resource, dict):
        raise EventRejected("resource", f"must be a JSON object, not {_shown(resource)}")
    containers = body.get("resourceContainers")
    if containers is not None and not isinstance(containers, dict):
        raise EventRejected("resourceContainers", f"must be a JSON object, not {_shown(containers)}")
    return ReceivedEvent(event_type, publisher_id, event_identity(body), resource, body)


def events_path(identifier: str) -> str:
    """Where the integration ``identifier`` takes its events, under kiosk's public URL (the consumer
    URL of its service-hook subscriptions). Identifiers are URL-safe (``IDENTIFIER_PATTERN``)."""
    return f"/hooks/integrations/{identifier}"


def kept_event_jobs(identifiers: Iterable[str]) -> dict[str, timedelta]:
    """The queue retention's rule for these integrations' event jobs: kept done at least
    :data:`REDELIVERY_WINDOW` (see :attr:`kiosk.store.queue_retention.JobPolicy.done_kept_at_least`)."""
    return {event_job_kind(identifier): REDELIVERY_WINDOW for identifier in identifiers}


def event_job_kind(identifier: str) -> str:
    """The job kind of ``identifier``'s received events (stable across processes and versions)."""
    return EVENT_JOB_PREFIX + hashlib.sha256(identifier.encode()).hexdigest()[:24]


#: The jobs table's dedupe key column holds 300 characters.
_MAX_DEDUPE_KEY: Final = 300


def event_dedupe_key(identifier: str, identity: str) -> str:
    """The job's dedupe key: the integration and the event's identity; a digest of the identity
    when both together would not fit the column (a long subscription id and notification id)."""
    key = f"{identifier}:{identity}"
    if len(key) <= _MAX_DEDUPE_KEY:
        return key
    return f"{identifier}:sha256:{hashlib.sha256(identity.encode()).hexdigest()}"


# ------------------------------------------------------------------------------ ordering keys


def _path(value: Any, *names: str) -> Any:
    for name in names:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _ident(value: Any) -> str | None:
    """An object id as text: a non-empty string, or an integer other than 0 (Azure's "none")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value != 0 else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _first(resource: Mapping[str, Any], *paths: tuple[str, ...]) -> str | None:
    for path in paths:
        found = _ident(_path(resource, *path))
        if found is not None:
            return found
    return None


def _from_url(resource: Mapping[str, Any], pattern: re.Pattern[str], *keys: str) -> str | None:
    """An id read from one of the resource's URLs: an org-scoped subscription gets only the
    resource's identifying keys (``id``, ``url``…), and the URL still names the object."""
    for key in keys:
        url = resource.get(key)
        if isinstance(url, str):
            match = pattern.search(url)
            if match:
                return match.group(1)
    return None


_REPOSITORY_IN_URL: Final = re.compile(r"/repositories/([^/?#]+)", re.IGNORECASE)
_WORK_ITEM_IN_URL: Final = re.compile(r"/(?:workItems|recyclebin)/(\d+)", re.IGNORECASE)
_RELEASE_IN_URL: Final = re.compile(r"/releases/(\d+)", re.IGNORECASE)
_RUN_IN_URL: Final = re.compile(r"/(?:runs|builds)/(\d+)", re.IGNORECASE)


def _repository(resource: Mapping[str, Any]) -> str | None:
    found = _first(
        resource,
        ("repository", "id"),
        ("repositoryId",),
        ("pullRequest", "repository", "id"),
        ("alert", "repository", "id"),
    )
    return found or _from_url(resource, _REPOSITORY_IN_URL, "url", "remoteUrl")


def _work_item(resource: Mapping[str, Any]) -> str | None:
    return _first(resource, ("id",)) or _from_url(resource, _WORK_ITEM_IN_URL, "url")


def _updated_work_item(resource: Mapping[str, Any]) -> str | None:
    # A WorkItemUpdate's own ``id`` is the update's number, not the item's.
    found = _first(resource, ("workItemId",), ("revision", "id"))
    return found or _from_url(resource, _WORK_ITEM_IN_URL, "url")


def _build(resource: Mapping[str, Any]) -> str | None:
    return _first(resource, ("id",)) or _from_url(resource, _RUN_IN_URL, "url")


def _run(resource: Mapping[str, Any]) -> str | None:
    found = _first(resource, ("runId",), ("run", "id"))
    return found or _from_url(resource, _RUN_IN_URL, "runUrl", "url")


def _release(resource: Mapping[str, Any]) -> str | None:
    found = _first(
        resource,
        ("release", "id"),
        ("environment", "releaseId"),
        ("deployment", "release", "id"),
        ("approval", "release", "id"),
    )
    return found or _from_url(resource, _RELEASE_IN_URL, "url")


def _created_release(resource: Mapping[str, Any]) -> str | None:
    # release-created / -abandoned: the resource's own ``id`` is the release's.
    return _release(resource) or _first(resource, ("id",))


def _each(
    kind: str, finder: Callable[[Mapping[str, Any]], str | None], event_types: tuple[str, ...]
) -> dict[str, tuple[str, Callable[[Mapping[str, Any]], str | None]]]:
    # Many event types name one object kind the same way: one row of _OBJECTS for each.
    return {event_type: (kind, finder) for event_type in event_types}


#: The object kind an event type is about, and how to find its id in the event's resource.
_OBJECTS: Final[dict[str, tuple[str, Callable[[Mapping[str, Any]], str | None]]]] = {
    **_each(
        "repository",
        _repository,
        (
            "git.push",
            "git.pullrequest.created",
            "git.pullrequest.updated",
            "git.pullrequest.merged",
            "ms.vss-code.git-pullrequest-comment-event",
            "git.repo.created",
            "git.repo.forked",
            "git.repo.renamed",
            "git.repo.deleted",
            "git.repo.undeleted",
            "git.repo.statuschanged",
            "ms.vss-alerts.alert-created-event",
            "ms.vss-alerts.alert-state-changed-event",
            "ms.vss-alerts.alert-updated-event",
        ),
    ),
    **_each(
        "work-item",
        _work_item,
        ("workitem.created", "workitem.deleted", "workitem.restored", "workitem.commented"),
    ),
    "workitem.updated": ("work-item", _updated_work_item),
    # A pipeline run and its build are one object in Azure (the run's id is the build's id), so
    # build.complete and the run's state changes share a key and are processed in order.
    "build.complete": ("run", _build),
    **_each(
        "run",
        _run,
        (
            "ms.vss-pipelines.run-state-changed-event",
            "ms.vss-pipelines.stage-state-changed-event",
            "ms.vss-pipelines.job-state-changed-event",
            "ms.vss-pipelinechecks-events.approval-pending",
            "ms.vss-pipelinechecks-events.approval-completed",
            "ms.vss-pipelinechecks-events.check-updated-event",
        ),
    ),
    **_each(
        "release",
        _created_release,
        ("ms.vss-release.release-created-event", "ms.vss-release.release-abandoned-event"),
    ),
    **_each(
        "release",
        _release,
        (
            "ms.vss-release.deployment-started-event",
            "ms.vss-release.deployment-completed-event",
            "ms.vss-release.deployment-approval-pending-event",
            "ms.vss-release.deployment-approval-completed-event",
        ),
    ),
}

#: The event types kiosk can key (and later process); others are stored and skipped with a reason.
KNOWN_EVENT_TYPES: Final = frozenset(_OBJECTS)


def _container(containers: Any, name: str) -> str | None:
    return _ident(_path(containers, name, "id"))


def ordering_key(event_type: str, resource: Mapping[str, Any], containers: Any = None) -> str | None:
    """The object an event is about, e.g. ``work-item:42@<collection id>``; None when the event type
    is unknown or its resource names no object (nothing to order it by).

    The collection (the organisation) is part of the key, so one integration reading several
    organisations keeps their work item 42s apart. A release is named with its project too (Azure
    reads a release within its project, ``{vsrm}/{project}/_apis/release/releases/{id}``);
    repositories (GUIDs), work items and runs are named by their id alone in an organisation.
    """
    found = _OBJECTS.get(event_type)
    if found is None:
        return None
    kind, locate = found
    ident = locate(resource)
    if ident is None:
        return None
    if kind == "release":
        project = _container(containers, "project") or _first(resource, ("project", "id"), ("projectId",))
        if project is not None:
            ident = f"{project}/{ident}"
    key = f"{kind}:{ident}"
    collection = _container(containers, "collection") or _container(containers, "account")
    return key if collection is None else f"{key}@{collection}"
