"""What a receiver does with one request: the status, the reply and the record to store.

:func:`judge` is the whole decision, pure and synchronous, so it is tested without a server and the
endpoint around it only does IO (read the body, store the record, send the reply). In order:

1. a method other than POST → 405 (the reference let a GET reach its JSON parser);
2. a body over 2 MiB → 413, whether it was announced by Content-Length or arrived chunked (the
   reference answered a chunked oversize body with a 500);
3. the optional basic-auth / header checks → 401;
4. for ``azure`` receivers, a User-Agent that is neither ACR's nor Azure DevOps' → 400;
5. a body that is not JSON → 400 ``invalid request body``, and so is one nested deeper than
   :data:`~kiosk.core.json_depth.MAX_JSON_DEPTH` (the error names the limit): stored, it could never
   be processed (jq and the payload writers recurse), so it is refused while the sender can
   still be told;
6. with no User-Agent, the payload's shape names the sender (ACR promises no User-Agent);
7. the payload is parsed (unsupported event types → 400); an ACR ping → 200, always;
8. the event is **matched now**, in memory, so the reply can say how many watches it refreshed.

Why match in the request: the sender is owed the count (the reference replies
``refreshed N warehouse(s)``), and matching is a dictionary lookup on config held in memory, so it
costs microseconds. One transaction then stores the event with the names of the watches it matched,
records those watches' refresh (``lastRefreshedAt``, a one-row upsert per watch, shared by every
event of a group commit) and writes the event's job — so when the reply says "refreshed N
watch(es)" they have been, durably, and an acknowledged event is never lost. What takes time and
can fail — running actions, upserting entities — is left to the event processor, which works from
the job queue. An event whose watches have no reactions has nothing left to do: its job is written
already ``done``, which keeps its ``dedupe_key``. A redelivery (same sender id) finds that key taken,
is stored as a duplicate, refreshes nothing and is not processed again.

Error bodies are the reference's: ``{"error": "..."}``; success is ``{"msg": "refreshed N
watch(es)"}`` (the reference's wording, with kiosk's noun). Rejections are recorded (without their
body) once the request has reached a known receiver; unknown paths are not recorded at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from kiosk.core.json_depth import MAX_JSON_DEPTH, depth_message, exceeds_depth, too_deep_at
from kiosk.receivers.registry import Receiver
from kiosk.receivers.senders import (
    ACR,
    INVALID_BODY,
    Parsed,
    Rejected,
    parse_acr,
    parse_azure_devops,
    sender_from_shape,
    sender_from_user_agent,
)
from kiosk.watches.matching import WatchIndex

__all__ = [
    "MAX_BODY_BYTES",
    "EventRecord",
    "IncomingRequest",
    "Verdict",
    "duplicate_reply",
    "judge",
    "refreshed_reply",
]

#: The reference's limit, and kiosk's.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Longest dedupe key the jobs table holds; longer ones are hashed.
_MAX_DEDUPE_KEY = 300
_NUL_ESCAPE = b"\\u0000"

UNSUPPORTED_SENDER = "request does not appear to have originated from a supported service"
TOO_LARGE = f"content exceeds limit of {MAX_BODY_BYTES} bytes"
PING = "ping event received, webhook is configured correctly"
TOO_DEEP = f"{INVALID_BODY}: JSON nested deeper than {MAX_JSON_DEPTH} levels"


@dataclass(frozen=True)
class IncomingRequest:
    """What the endpoint read: header names lower-cased; ``body`` None when it passed the limit."""

    method: str
    headers: Mapping[str, str]
    body: bytes | None
    received_at: datetime


@dataclass(slots=True)
class EventRecord:
    """One ``receiver_events`` row to store.

    ``accepted`` events (understood, pings aside) also get a job, which carries the dedupe key, and
    their matched watches' refreshes recorded; the job is pending for the event processor when
    ``react`` (a matched watch has reactions), else written done.

    Not frozen: one is built per request on the hot path, and a frozen dataclass pays for
    ``object.__setattr__`` on every field. Treated as immutable all the same (:meth:`as_duplicate`
    returns a copy).
    """

    receiver: str
    project: str | None
    received_at: datetime
    outcome: str  # refreshed | no_match | duplicate | ping | rejected
    status_code: int
    sender: str | None = None
    event_type: str | None = None
    delivery_id: str | None = None
    reason: str | None = None
    refreshed: int = 0
    matches: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    payload: str | None = None  # the body's JSON text, as received
    accepted: bool = False
    react: bool = False
    dedupe_key: str | None = None

    def as_duplicate(self) -> EventRecord:
        """This event, recorded as a redelivery of one already received: nothing to process."""
        reason = f"event {self.delivery_id} was already received; not processed again"
        return replace(self, outcome="duplicate", refreshed=0, matches=[], reason=reason, accepted=False, react=False)


@dataclass(frozen=True)
class Verdict:
    """The reply (status, body) and the record to store before sending it."""

    status: int
    reply: dict[str, str]
    record: EventRecord


def refreshed_reply(count: int) -> dict[str, str]:
    return {"msg": f"refreshed {count} watch(es)"}


def duplicate_reply(delivery_id: str | None) -> dict[str, str]:
    return {"msg": f"event {delivery_id} was already received; not processed again"}


def dedupe_key(receiver: Receiver, parsed: Parsed) -> str | None:
    """The queue's dedupe key for an event with a sender id: one per receiver, sender and id."""
    if parsed.delivery_id is None:
        return None
    key = f"{receiver.key}:{parsed.sender}:{parsed.delivery_id}"
    if len(key) > _MAX_DEDUPE_KEY:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _reject(receiver: Receiver, request: IncomingRequest, rejected: Rejected, **known: Any) -> Verdict:
    record = EventRecord(
        receiver=receiver.name,
        project=receiver.project,
        received_at=request.received_at,
        outcome="rejected",
        status_code=rejected.status,
        reason=rejected.reason,
        **known,
    )
    return Verdict(rejected.status, {"error": rejected.error}, record)


def _read_json(body: bytes) -> Any:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson's own limit (1024), far past kiosk's
            raise Rejected(400, TOO_DEEP, depth_message("the body")) from None
        raise Rejected(400, INVALID_BODY, "the body is not valid JSON") from None
    # PostgreSQL cannot store NUL in jsonb; refused alike on every engine.
    if _NUL_ESCAPE in body:
        raise Rejected(400, INVALID_BODY, "strings must not contain the NUL character (\\u0000)")
    if exceeds_depth(value):
        raise Rejected(400, TOO_DEEP, depth_message("the body", too_deep_at(value)))
    return value


def _parse(receiver: Receiver, request: IncomingRequest) -> Parsed:
    """Steps 4-7: the sender, the JSON and the parsed event (Rejected on any failure)."""
    assert request.body is not None
    user_agent = request.headers.get("user-agent")
    sender = None
    if receiver.type == "azure" and user_agent:
        sender = sender_from_user_agent(user_agent)
        if sender is None:
            raise Rejected(400, UNSUPPORTED_SENDER, f"unsupported User-Agent {user_agent[:100]!r}")
    body = _read_json(request.body)
    if receiver.reader is not None:
        return receiver.reader.parse(body)
    if sender is None:
        sender = sender_from_shape(body)
        if sender is None:
            raise Rejected(400, UNSUPPORTED_SENDER, "no User-Agent, and the payload is neither ACR's nor Azure DevOps'")
    return parse_acr(body) if sender == ACR else parse_azure_devops(body)


def judge(receiver: Receiver, request: IncomingRequest, index: WatchIndex) -> Verdict:
    """Decide what to answer and what to store for ``request`` to ``receiver`` (see module docstring)."""
    if request.method != "POST":
        return _reject(receiver, request, Rejected(405, "method not allowed", f"method {request.method}"))
    if request.body is None:
        return _reject(receiver, request, Rejected(413, TOO_LARGE))
    refused = receiver.check_auth(request.headers)
    if refused is not None:
        return _reject(receiver, request, Rejected(401, "unauthorized", refused))
    try:
        parsed = _parse(receiver, request)
    except Rejected as rejected:
        return _reject(receiver, request, rejected)
    payload = request.body.decode()
    if parsed.event is None:
        ping = EventRecord(
            receiver=receiver.name,
            project=receiver.project,
            received_at=request.received_at,
            outcome="ping",
            status_code=200,
            sender=parsed.sender,
            event_type=parsed.event_type,
            delivery_id=parsed.delivery_id,
            payload=payload,
        )
        return Verdict(200, {"msg": PING}, ping)
    result = index.match(parsed.event, project=receiver.project)
    record = EventRecord(
        receiver=receiver.name,
        project=receiver.project,
        received_at=request.received_at,
        outcome="refreshed" if result.refreshed else "no_match",
        status_code=200,
        sender=parsed.sender,
        event_type=parsed.event_type,
        delivery_id=parsed.delivery_id,
        reason=result.reason,
        refreshed=result.refreshed,
        matches=[m.to_json() for m in result.matches],
        summary=parsed.summary or None,
        payload=payload,
        accepted=True,
        react=result.react,
        dedupe_key=dedupe_key(receiver, parsed),
    )
    return Verdict(200, refreshed_reply(result.refreshed), record)
