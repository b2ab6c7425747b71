"""Which watches an event refreshes: a dictionary lookup by repository key, then the filters.

The receiver must answer with the number of watches refreshed (as the system it replaces does),
so matching runs inside the request. It is pure and in memory: :class:`WatchIndex` is built once
from the config, keyed by ``(kind, normalised repository)``, so an event costs one lookup plus the
filters of the few subscriptions on its repository however many watches exist — never a scan.

Scope: a receiver with a project refreshes only that project's watches; a receiver without one
refreshes every watch.

When nothing matches, :class:`MatchResult` says why (nobody follows the repository, or the tag or
refs passed none of the filters), because "refreshed 0 watch(es)" alone leaves a user guessing.

Pure: no IO.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from kiosk.watches.config import WatchSpec
from kiosk.watches.events import ArtifactEvent, Change, Kind, RefChange, Subject
from kiosk.watches.filters import FilterSet
from kiosk.watches.normalise import ref_parts

__all__ = ["MatchResult", "WatchIndex", "WatchMatch"]

#: Watches named in a "why nothing matched" reason before the rest are counted.
_NAMED_IN_REASON = 3


@dataclass(frozen=True)
class _Subscription:
    watch: str
    project: str | None
    kind: Kind
    key: str
    branches: FilterSet | None
    tags: FilterSet | None
    changes: frozenset[Change]


class WatchMatch(NamedTuple):
    """Why one watch is refreshed: the repository and the tag or ref that passed its filters.

    A named tuple: one is built per refreshed watch per event."""

    watch: str
    kind: Kind
    repository: str
    tag: str | None = None
    ref: str | None = None
    change: Change | None = None
    commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "watch": self.watch,
            "kind": self.kind,
            "repository": self.repository,
            "tag": self.tag,
            "ref": self.ref,
            "change": self.change,
            "commit": self.commit,
        }


@dataclass(frozen=True)
class MatchResult:
    """The watches refreshed (one match each, in the order found) or, if none, why not.

    ``react``: at least one of them has reactions to fire.
    """

    matches: tuple[WatchMatch, ...]
    reason: str | None = None
    react: bool = False

    @property
    def refreshed(self) -> int:
        return len(self.matches)

    @property
    def watches(self) -> list[str]:
        return [m.watch for m in self.matches]


def _compile(watch: WatchSpec) -> Iterable[_Subscription]:
    for sub in watch.subscriptions:
        branches, tags = sub.filter_sets()
        yield _Subscription(
            watch=watch.name,
            project=watch.project,
            kind=sub.kind,
            key=sub.key(),
            branches=branches,
            tags=tags,
            changes=frozenset(sub.changes()),
        )


def _ref_passes(sub: _Subscription, change: RefChange) -> bool:
    if change.change not in sub.changes:
        return False
    kind, name = ref_parts(change.ref)
    if kind == "branch":
        return sub.branches is not None and sub.branches.matches(name)
    if kind == "tag":
        return sub.tags is not None and sub.tags.matches(name)
    return False


class WatchIndex:
    """The configured watches, indexed by repository for :meth:`match`."""

    def __init__(self, watches: Sequence[WatchSpec]) -> None:
        self._by_subject: dict[tuple[str, str], list[_Subscription]] = {}
        self.names: tuple[str, ...] = tuple(w.name for w in watches)
        #: Watches with reactions: an event refreshing one of them has work for the event processor.
        self.reactive: frozenset[str] = frozenset(w.name for w in watches if w.reactions)
        for watch in watches:
            for sub in _compile(watch):
                self._by_subject.setdefault((sub.kind, sub.key), []).append(sub)

    def __len__(self) -> int:
        return len(self.names)

    def match(self, event: ArtifactEvent, *, project: str | None) -> MatchResult:
        """The watches ``event`` refreshes, for a receiver of ``project`` (None: every project)."""
        found: dict[str, WatchMatch] = {}
        candidates: list[_Subscription] = []
        for subject in event.subjects:
            for sub in self._by_subject.get((subject.kind, subject.key), ()):
                if project is not None and sub.project != project:
                    continue
                candidates.append(sub)
                if sub.watch not in found:
                    hit = self._match_one(sub, subject, event)
                    if hit is not None:
                        found[sub.watch] = hit
        if found:
            return MatchResult(tuple(found.values()), react=not self.reactive.isdisjoint(found))
        return MatchResult((), _why_not(event, candidates, project))

    @staticmethod
    def _match_one(sub: _Subscription, subject: Subject, event: ArtifactEvent) -> WatchMatch | None:
        if subject.kind != "git":
            if event.tag is None or sub.tags is None or not sub.tags.matches(event.tag):
                return None
            return WatchMatch(sub.watch, subject.kind, subject.key, tag=event.tag)
        for change in event.refs:
            if _ref_passes(sub, change):
                return WatchMatch(
                    sub.watch, "git", subject.key, ref=change.ref, change=change.change, commit=change.commit
                )
        return None


def _names(subs: Sequence[_Subscription]) -> str:
    names = list(dict.fromkeys(s.watch for s in subs))
    text = ", ".join(names[:_NAMED_IN_REASON])
    if len(names) > _NAMED_IN_REASON:
        text += f" and {len(names) - _NAMED_IN_REASON} more"
    return text


def _filters(subs: Sequence[_Subscription]) -> str:
    shown: list[str] = []
    for sub in subs[:_NAMED_IN_REASON]:
        parts = []
        if sub.branches is not None:
            parts.append(f"branches {sub.branches.describe()}")
        if sub.tags is not None:
            parts.append(f"{'versions' if sub.kind == 'chart' else 'tags'} {sub.tags.describe()}")
        if sub.kind == "git":
            parts.append(f"events {', '.join(sorted(sub.changes))}")
        shown.append(f"{sub.watch}: {'; '.join(parts)}")
    return " | ".join(shown)


def _why_not(event: ArtifactEvent, candidates: Sequence[_Subscription], project: str | None) -> str:
    if event.note is not None:
        return event.note
    if not candidates:
        where = f" in project {project}" if project is not None else ""
        what = " or ".join(f"{s.kind} {s.key}" for s in event.subjects) or "the repository"
        return f"no watch{where} subscribes to {what}"
    if event.subjects and event.subjects[0].kind != "git":
        if event.tag is None:
            return "the push names no tag (a push by digest only); tag filters need one"
        return f"tag {event.tag} matches no filter of watch(es) {_names(candidates)} ({_filters(candidates)})"
    if not event.refs:
        return "the event names no git refs"
    refs = ", ".join(f"{r.ref} ({r.change})" for r in event.refs[:_NAMED_IN_REASON])
    if len(event.refs) > _NAMED_IN_REASON:
        refs += f" and {len(event.refs) - _NAMED_IN_REASON} more"
    return f"{refs} match no filter of watch(es) {_names(candidates)} ({_filters(candidates)})"
