"""What an inbound event says changed, in the terms watches subscribe to.

Receivers turn a sender's payload (ACR, Azure DevOps, a generic JSON sender) into an
:class:`ArtifactEvent`; the matcher reads nothing else. Keeping the senders' shapes out of the
matcher is what lets one watch be refreshed by any sender that speaks of its repository.

Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

__all__ = ["CHANGES", "EVENT_JOB", "KINDS", "ArtifactEvent", "Change", "Kind", "RefChange", "Subject"]

#: The job kind of an accepted event in the durable queue: the receiver intake enqueues it, the
#: event processor claims it.
EVENT_JOB = "receiver_event"

Kind = Literal["git", "image", "chart"]
KINDS: tuple[Kind, ...] = ("git", "image", "chart")

#: What happened to a git ref: pushed to (created or moved), deleted, or the target of a pull
#: request that was merged or abandoned.
Change = Literal["push", "delete", "pullRequestMerged", "pullRequestAbandoned"]
CHANGES: tuple[Change, ...] = ("push", "delete", "pullRequestMerged", "pullRequestAbandoned")


class Subject(NamedTuple):
    """A repository as the matcher looks it up: its kind and normalised key (see ``normalise``).

    Named tuples here and for :class:`RefChange`: built for every event, and a tuple is the
    cheapest immutable value to build."""

    kind: Kind
    key: str


class RefChange(NamedTuple):
    """One git ref an event is about (``refs/heads/main``), what happened to it, and the commit."""

    ref: str
    change: Change
    commit: str | None = None


@dataclass(frozen=True)
class ArtifactEvent:
    """An event reduced to what matching needs.

    ``subjects`` usually holds one repository; an ACR push whose media type does not say whether
    it is an image or a chart holds both readings. ``tag`` is the pushed tag or chart version
    (None for a push by digest only); ``refs`` are the git refs concerned. ``note`` says why an
    event that was understood concerns nothing (a pull request updated but not abandoned).
    """

    subjects: tuple[Subject, ...]
    tag: str | None = None
    digest: str | None = None
    refs: tuple[RefChange, ...] = field(default=())
    note: str | None = None
