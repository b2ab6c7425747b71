"""Who sent an event, and what it says: sender detection and payload parsing for every receiver type.

Detection follows the reference receiver: a ``User-Agent`` starting ``AzureContainerRegistry`` is
ACR, one starting ``VSServices`` is Azure DevOps, any other User-Agent is refused. ACR's own
documentation promises no User-Agent at all, though, so when the header is missing the payload's
shape decides (:func:`sender_from_shape`): an ``action`` without an ``eventType`` is ACR, an
``eventType`` with a ``resource`` is Azure DevOps.

Parsing turns a payload into a :class:`Parsed` event: the sender, the event type, the sender's
delivery id (ACR's ``id``, Azure DevOps' event ``id`` or else ``notificationId``, which a redelivery
repeats) and the :class:`~kiosk.watches.events.ArtifactEvent` the matcher reads. A payload kiosk
cannot use raises :class:`Rejected` with the status and the error text the reference gives.

* ACR ``push`` (and the older ``chart_push``): repository ``request.host + "/" + target.repository``;
  a Helm media type (``application/vnd.cncf.helm…``) makes it a chart, a known image media type an
  image, anything else both (as the reference does: an OCI manifest may be either).
* Azure DevOps ``git.push``: every ``refUpdates[]`` entry; a ``newObjectId`` of all zeros is a deleted
  ref (change ``delete``), anything else a push.
* ``git.pullrequest.merged``: only ``status: completed`` means the pull request landed (Azure raises
  the event for merge attempts that hit conflicts, too); it concerns the target branch.
* ``git.pullrequest.updated``: only an abandoned pull request concerns anyone (its target branch);
  any other update is understood and refreshes nothing.

No IO of its own; a generic receiver's jq mapping is evaluated by kiosk's jq workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kiosk.core import jq_engine
from kiosk.core.jq_engine import JqError, JqResult, JqStopped, JqUnavailable
from kiosk.core.jq_sandbox import compile_jq
from kiosk.receivers.config import GenericMapping
from kiosk.watches.events import ArtifactEvent, RefChange, Subject
from kiosk.watches.normalise import branch_ref, chart_key, git_key, image_key

__all__ = [
    "ACR",
    "AZURE_DEVOPS",
    "GENERIC",
    "GenericReader",
    "Parsed",
    "Rejected",
    "parse_acr",
    "parse_azure_devops",
    "sender_from_shape",
    "sender_from_user_agent",
]

ACR = "acr"
AZURE_DEVOPS = "azure-devops"
GENERIC = "generic"

ACR_USER_AGENT = "AzureContainerRegistry"
AZURE_DEVOPS_USER_AGENT = "VSServices"

#: Media types that can only be a container image (an OCI manifest may also be a chart).
IMAGE_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.container.image.v1+json",
    }
)
HELM_MEDIA_TYPE_PREFIX = "application/vnd.cncf.helm"

INVALID_BODY = "invalid request body"


class Rejected(Exception):
    """A request kiosk will not act on: ``status`` and ``error`` are the reply, ``reason`` the record."""

    def __init__(self, status: int, error: str, reason: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.reason = reason or error


@dataclass(frozen=True)
class Parsed:
    """An understood event. ``event`` is None for a ping."""

    sender: str
    event_type: str
    delivery_id: str | None
    event: ArtifactEvent | None
    summary: dict[str, Any] = field(default_factory=dict)


def sender_from_user_agent(user_agent: str) -> str | None:
    if user_agent.startswith(ACR_USER_AGENT):
        return ACR
    if user_agent.startswith(AZURE_DEVOPS_USER_AGENT):
        return AZURE_DEVOPS
    return None


def sender_from_shape(body: Any) -> str | None:
    """The sender a payload looks like, for requests without a User-Agent."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("eventType"), str) and isinstance(body.get("resource"), dict):
        return AZURE_DEVOPS
    if isinstance(body.get("action"), str) and "eventType" not in body:
        return ACR
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _delivery_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return _text(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _unsupported(event_type: Any) -> Rejected:
    shown = event_type if isinstance(event_type, str) else ""
    return Rejected(400, f"event type {shown} is not supported")


# ------------------------------------------------------------------------------------------ ACR


@lru_cache(maxsize=4096)
def _acr_subjects(url: str, media_type: str, action: str) -> tuple[Subject, ...]:
    """What an ACR push is about; memoised, as a registry pushes the same few repositories."""
    if action == "chart_push" or media_type.startswith(HELM_MEDIA_TYPE_PREFIX):
        return (Subject("chart", chart_key(url)),)
    if media_type in IMAGE_MEDIA_TYPES:
        return (Subject("image", image_key(url)),)
    return (Subject("image", image_key(url)), Subject("chart", chart_key(url)))


def parse_acr(body: Any) -> Parsed:
    """An Azure Container Registry webhook payload (``ping``, ``push``, ``chart_push``)."""
    if not isinstance(body, dict):
        raise Rejected(400, INVALID_BODY, "the body is not a JSON object")
    action = body.get("action")
    delivery_id = _delivery_id(body.get("id"))
    if action == "ping":
        return Parsed(ACR, "ping", delivery_id, None)
    if action not in ("push", "chart_push"):
        raise _unsupported(action)
    target, request = _mapping(body.get("target")), _mapping(body.get("request"))
    repository = _text(target.get("repository")) or _text(target.get("name"))
    host = _text(request.get("host"))
    if repository is None or host is None:
        raise Rejected(400, INVALID_BODY, "an ACR push must name target.repository and request.host")
    media_type = _text(target.get("mediaType")) or ""
    tag = _text(target.get("tag")) or _text(target.get("version"))
    digest = _text(target.get("digest"))
    subjects = _acr_subjects(f"{host}/{repository}", media_type, action)
    summary = {"repository": subjects[0].key, "tag": tag, "digest": digest, "mediaType": media_type or None}
    return Parsed(ACR, action, delivery_id, ArtifactEvent(subjects, tag=tag, digest=digest), summary)


# --------------------------------------------------------------------------------- Azure DevOps


def _is_zero(object_id: Any) -> bool:
    return isinstance(object_id, str) and bool(object_id) and object_id.strip("0") == ""


def _ref_updates(resource: Mapping[str, Any]) -> tuple[RefChange, ...]:
    updates = resource.get("refUpdates")
    out: list[RefChange] = []
    for update in updates if isinstance(updates, list) else []:
        update = _mapping(update)
        name = _text(update.get("name"))
        if name is None:
            continue
        new = update.get("newObjectId")
        if _is_zero(new):
            out.append(RefChange(name, "delete", _text(update.get("oldObjectId"))))
        else:
            out.append(RefChange(name, "push", _text(new)))
    return tuple(out)


def _commit(resource: Mapping[str, Any], key: str) -> str | None:
    return _text(_mapping(resource.get(key)).get("commitId"))


def _pull_request(event_type: str, resource: Mapping[str, Any]) -> tuple[tuple[RefChange, ...], str | None]:
    """(refs, note) of a pull-request event: what it concerns, or why it concerns nothing."""
    number = resource.get("pullRequestId")
    status = _text(resource.get("status")) or "unknown"
    target = _text(resource.get("targetRefName"))
    if target is None:
        return (), f"pull request {number} names no target branch"
    if event_type == "git.pullrequest.merged":
        if status != "completed":
            merge = _text(resource.get("mergeStatus")) or "unknown"
            return (), f"pull request {number} was not merged (status {status}, merge status {merge})"
        return (RefChange(target, "pullRequestMerged", _commit(resource, "lastMergeCommit")),), None
    if status != "abandoned":
        return (), f"pull request {number} was updated but not abandoned (status {status})"
    return (RefChange(target, "pullRequestAbandoned", _commit(resource, "lastMergeSourceCommit")),), None


def parse_azure_devops(body: Any) -> Parsed:
    """An Azure DevOps service-hook event (``git.push`` and two pull-request events)."""
    if not isinstance(body, dict):
        raise Rejected(400, INVALID_BODY, "the body is not a JSON object")
    event_type = body.get("eventType")
    if event_type not in ("git.push", "git.pullrequest.merged", "git.pullrequest.updated"):
        raise _unsupported(event_type)
    resource = _mapping(body.get("resource"))
    remote = _text(_mapping(resource.get("repository")).get("remoteUrl"))
    if remote is None:
        raise Rejected(400, INVALID_BODY, f"a {event_type} event must name resource.repository.remoteUrl")
    delivery_id = _delivery_id(body.get("id")) or _delivery_id(body.get("notificationId"))
    if event_type == "git.push":
        refs, note = _ref_updates(resource), None
    else:
        refs, note = _pull_request(event_type, resource)
    subject = Subject("git", git_key(remote))
    summary = {"repository": subject.key, "refs": [{"ref": r.ref, "change": r.change} for r in refs]}
    if note is not None:
        summary["note"] = note
    return Parsed(AZURE_DEVOPS, event_type, delivery_id, ArtifactEvent((subject,), refs=refs, note=note), summary)


# -------------------------------------------------------------------------------------- generic


class GenericReader:
    """Reads a generic sender's JSON with the receiver's jq mapping (checked once, at load).

    Every field of the mapping is evaluated in one round trip to kiosk's jq workers
    (:mod:`kiosk.core.jq_engine`), bounded in time and memory, so a costly mapping can neither
    freeze the server nor be retried forever: a field stopped by a limit rejects the event (422,
    recorded with the program and the limit), as a field that fails does (400). A field's error
    counts only where the field is read, as when they were evaluated one by one. Called from a
    worker thread (the receiver endpoint hands the whole judgement to the thread pool when the
    receiver has a mapping), never in the event loop.
    """

    def __init__(self, mapping: GenericMapping) -> None:
        self.kind = mapping.kind
        self._fields: dict[str, str] = {
            name: expression
            for name, expression in (
                ("repository", mapping.repository),
                ("tag", mapping.tag),
                ("refs", mapping.refs),
                ("id", mapping.id),
                ("type", mapping.type),
            )
            if expression is not None
        }
        for expression in self._fields.values():
            compile_jq(expression)  # refuse a syntax error now, not at the first event

    def _evaluate(self, body: Any) -> dict[str, JqResult]:
        """Every field of the mapping over ``body``, in one round trip."""
        if not self._fields:
            return {}
        names = list(self._fields)
        try:
            results = jq_engine.first_each([self._fields[name] for name in names], body)
        except JqStopped as exc:
            name = next((n for n in names if self._fields[n] == exc.expression), names[0])
            raise Rejected(422, f"mapping.{name}: {exc.message}") from None
        except JqUnavailable as exc:
            raise Rejected(503, "kiosk cannot read this event now; try again", f"jq: {exc}") from None
        except JqError as exc:
            raise Rejected(400, INVALID_BODY, f"the mapping cannot read the body: {exc}") from None
        return dict(zip(names, results, strict=True))

    def _value(self, name: str, results: Mapping[str, JqResult]) -> Any:
        result = results.get(name)
        if result is None:
            return None
        if result.error is not None:
            first = next((line.strip() for line in result.error.splitlines() if line.strip()), "error")
            raise Rejected(400, INVALID_BODY, f"mapping.{name} failed: {first}")
        return result.value

    def _string(self, name: str, results: Mapping[str, JqResult]) -> str | None:
        value = self._value(name, results)
        if value is None or isinstance(value, str):
            return value or None
        raise Rejected(400, INVALID_BODY, f"mapping.{name} must give a string, not {type(value).__name__}")

    def parse(self, body: Any) -> Parsed:
        results = self._evaluate(body)
        repository = self._string("repository", results)
        delivery_id = _delivery_id(self._value("id", results))
        event_type = self._string("type", results) or "generic"
        if repository is None:
            note = "the mapping gave no repository for this event"
            return Parsed(GENERIC, event_type, delivery_id, ArtifactEvent((), note=note), {"note": note})
        if self.kind == "git":
            raw = self._value("refs", results)
            names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
            refs = tuple(RefChange(branch_ref(n), "push") for n in names if isinstance(n, str) and n)
            subject = Subject("git", git_key(repository))
            summary: dict[str, Any] = {
                "repository": subject.key,
                "refs": [{"ref": r.ref, "change": "push"} for r in refs],
            }
            return Parsed(GENERIC, event_type, delivery_id, ArtifactEvent((subject,), refs=refs), summary)
        tag = self._string("tag", results)
        subject = Subject(self.kind, image_key(repository) if self.kind == "image" else chart_key(repository))
        summary = {"repository": subject.key, "tag": tag}
        return Parsed(GENERIC, event_type, delivery_id, ArtifactEvent((subject,), tag=tag), summary)
