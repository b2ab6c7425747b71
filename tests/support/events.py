"""Receiver events for the tests: sender payloads as ACR and Azure DevOps post them (the shapes of
the reference), and the ``receiver_events`` records kiosk stores for them."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from kiosk.receivers.intake import EventRecord
from kiosk.store.queue import utcnow

ACR_UA = "AzureContainerRegistry/1.0"
ADO_UA = "VSServices/16.255.35115.1"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
ZEROS = "0" * 40


def acr_push(
    repository: str = "checkout",
    tag: str | None = "1.2.3",
    *,
    host: str = "contoso.azurecr.io",
    media_type: str = DOCKER_MANIFEST,
    event_id: str | None = None,
) -> dict[str, Any]:
    target: dict[str, Any] = {
        "mediaType": media_type,
        "size": 524,
        "digest": "sha256:" + "ab" * 32,
        "length": 524,
        "repository": repository,
    }
    if tag is not None:
        target["tag"] = tag
    return {
        "id": event_id or str(uuid.uuid4()),
        "timestamp": "2026-11-24T12:00:00.000Z",
        "action": "push",
        "target": target,
        "request": {"id": str(uuid.uuid4()), "host": host, "method": "PUT", "useragent": "docker/27.0"},
    }


def acr_ping() -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "timestamp": "2026-11-24T12:00:00.000Z", "action": "ping"}


REMOTE = "https://contoso@dev.azure.com/contoso/payments/_git/checkout"


def _envelope(event_type: str, resource: dict[str, Any], event_id: str | None) -> dict[str, Any]:
    return {
        "subscriptionId": str(uuid.uuid4()),
        "notificationId": 7,
        "id": event_id or str(uuid.uuid4()),
        "eventType": event_type,
        "publisherId": "tfs",
        "message": {"text": "..."},
        "resource": resource,
        "resourceVersion": "1.0",
        "resourceContainers": {"project": {"id": str(uuid.uuid4())}},
        "createdDate": "2026-11-24T12:00:00Z",
    }


def _repository(remote: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": "checkout", "remoteUrl": remote, "defaultBranch": "refs/heads/main"}


def git_push(
    refs: list[tuple[str, str]] | None = None, *, remote: str = REMOTE, event_id: str | None = None
) -> dict[str, Any]:
    """``refs``: (ref name, new object id); a new id of all zeros is a deleted ref."""
    refs = refs if refs is not None else [("refs/heads/main", "c0ffee" + "0" * 34)]
    resource = {
        "commits": [],
        "refUpdates": [{"name": n, "oldObjectId": "1" * 40, "newObjectId": new} for n, new in refs],
        "repository": _repository(remote),
        "pushedBy": {"displayName": "Ana"},
        "pushId": 14,
    }
    return _envelope("git.push", resource, event_id)


def pull_request(
    event_type: str, status: str, *, target: str = "refs/heads/main", remote: str = REMOTE
) -> dict[str, Any]:
    resource = {
        "repository": _repository(remote),
        "pullRequestId": 42,
        "status": status,
        "title": "Checkout: faster",
        "sourceRefName": "refs/heads/feature/fast",
        "targetRefName": target,
        "mergeStatus": "succeeded" if status == "completed" else "conflicts",
        "lastMergeSourceCommit": {"commitId": "5" * 40},
        "lastMergeCommit": {"commitId": "6" * 40},
    }
    return _envelope(event_type, resource, None)


def acr_record(delivery_id: str | None, **fields: Any) -> EventRecord:
    """The record of an accepted ACR push to receiver ``acr`` that refreshed a watch, received now,
    with the dedupe key ``acr:acr:<delivery_id>`` (none without a sender id); ``fields`` replace
    any of its values (``matches``, ``react``, ``outcome``...)."""
    record = EventRecord(
        receiver="acr",
        project=None,
        received_at=utcnow(),
        outcome="refreshed",
        status_code=200,
        sender="acr",
        event_type="push",
        delivery_id=delivery_id,
        refreshed=1,
        payload="{}",
        accepted=True,
        dedupe_key=None if delivery_id is None else f"acr:acr:{delivery_id}",
    )
    return replace(record, **fields)
