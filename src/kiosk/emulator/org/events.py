"""A change of an organisation, as the service hooks publish it.

The org's mutations (the ``/_emulator`` mutation API, the activity generator, pipeline runs)
describe each change as one :class:`OrgEvent`: the ``resource`` exactly as Azure sends it for
that event type (reference section 6.3) plus the values its publisher-input filters match on.
The service hooks (:mod:`kiosk.emulator.hooks`) turn an event into one envelope per matching
subscription and deliver it. Mutations never know about subscriptions, hooks never build resources.

Pure data; :meth:`kiosk.emulator.service.Emulator.publish` hands events to whoever subscribed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["EventSink", "OrgEvent"]


def _now() -> datetime:
    return datetime.now(UTC)


def _event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class OrgEvent:
    """One event of one organisation, before it is matched against subscriptions.

    ``filters`` maps a publisher-input name, lower-cased (``repository``, ``branch``,
    ``areapath``, ``workitemtype``, ``changedfields``, ``definitionname``, ``buildstatus``,
    ``pipelineid``, ``runstateid``, ``releasedefinitionid``…), to every value this event has for
    it: a subscription's filter matches when its value is one of them (how each input compares —
    equality, ``under`` for area paths, any-of for changed fields — is the hooks' business).
    ``projectId`` is not among them: it is :attr:`project_id`.
    """

    event_type: str
    """Azure's event id, e.g. ``git.push``, ``workitem.updated``, ``ms.vss-release.deployment-completed-event``."""
    publisher_id: str
    """``tfs``, ``pipelines`` or ``rm``."""
    resource_version: str
    resource: dict[str, Any]
    """The full resource (``resourceDetailsToSend: all``); the hooks trim it per subscription."""
    project_id: str | None
    message: str
    """``message.text`` (the hooks derive html and markdown from it)."""
    detailed_message: str = ""
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    id: str = field(default_factory=_event_id)
    """The event's GUID: the same for every subscription it is delivered to."""
    created: datetime = field(default_factory=_now)


EventSink = Callable[[str, OrgEvent], None]
"""Told ``(org name, event)`` for every event published (see ``Emulator.on_event``)."""
