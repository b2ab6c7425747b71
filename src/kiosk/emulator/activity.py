"""The activity generator: a steady, realistic stream of changes to the emulated organisations.

``kiosk emulator --activity 50/s`` (or ``activity: {rate: "50/s", seed: 7}`` in the emulator config)
makes that many changes per second — pushes, work-item edits and comments, pull requests opened,
voted on, merged or abandoned, builds, releases and deployments, now and then a repository created
or renamed — through :mod:`kiosk.emulator.org.changes`, and publishes their events as the mutation
API does. It is for live demos and load tests of event consumers: the service hooks deliver what it
makes like any other change.

One asyncio task on the server's event loop (where the org routes run, so no locks), started and
stopped with the app's lifespan. The sequence of choices is deterministic for a seed (one
``random.Random`` picks the kind, the org, the targets and the new objects' GUIDs); only the
timestamps are the wall clock's. The pace is kept by counting changes due since the start, so a
slow tick catches up instead of drifting.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org import changes
from kiosk.emulator.org.changes import Change, FileEdit, Ids
from kiosk.emulator.org.model import GitRepository, Organisation, User
from kiosk.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kiosk.emulator.service import Emulator

__all__ = ["KINDS", "ActivityGenerator", "ActivitySpec", "attach_activity", "parse_rate"]

log = logging.getLogger("kiosk.emulator")

_UNITS: Final = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_RATE: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*([a-z]+)\s*$")
_MAX_RATE: Final = 10_000.0
_TICK: Final = 0.02
"""Seconds between ticks: each tick makes the changes that fell due since the last."""

KINDS: Final = {
    "push": 30,
    "workItemUpdate": 20,
    "workItemCreate": 10,
    "workItemComment": 8,
    "buildComplete": 8,
    "pullRequestCreate": 5,
    "pullRequestVote": 5,
    "pullRequestComplete": 3,
    "pullRequestAbandon": 1,
    "releaseDeploy": 3,
    "workItemDelete": 1,
    "workItemRestore": 1,
    "repositoryCreate": 1,
    "repositoryRename": 1,
}
"""The mix: each kind of change and its weight (a kind the org cannot make at the moment is skipped)."""

_WORDS: Final = ("retry", "cache", "login", "export", "search", "billing", "audit", "webhook", "ça-va", "Überblick")


def parse_rate(text: str) -> float:
    """``50/s``, ``300/min``, ``2/h`` → changes per second (more than 0, at most 10,000/s)."""
    match = _RATE.match(text.lower())
    unit = _UNITS.get(match.group(2)) if match else None
    if match is None or unit is None:
        raise ValueError(f"activity rate {text[:40]!r}: write it as N/s, N/min or N/h (e.g. 50/s)")
    rate = float(match.group(1)) / unit
    if not 0 < rate <= _MAX_RATE:
        raise ValueError(f"activity rate {text[:40]!r}: more than 0 and at most {_MAX_RATE:g}/s")
    return rate


class ActivitySpec(BaseModel):
    """``activity:`` in the emulator config (``--activity RATE`` sets the rate)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    rate: str = Field(description="Changes per second, minute or hour: 50/s, 300/min, 2/h.")
    seed: int = Field(default=0, ge=0, description="The same seed makes the same sequence of changes.")

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @classmethod
    def from_option(cls, text: str, seed: int = 0) -> ActivitySpec:
        """``--activity 50/s`` as a spec (a ConfigError naming the option when it does not parse)."""
        try:
            parse_rate(text)
        except ValueError as exc:
            raise ConfigError(f"--activity: {exc}") from None
        return cls(rate=text, seed=seed)


class ActivityGenerator:
    """Makes the mix of :data:`KINDS` across the emulator's orgs, :meth:`step` by step."""

    def __init__(self, emulator: Emulator, spec: ActivitySpec, *, clock: Callable[[], datetime] | None = None) -> None:
        self.emulator = emulator
        self.spec = spec
        self.rate = parse_rate(spec.rate)
        self.rng = random.Random(f"activity:{spec.seed}")
        self.ids = Ids(self.rng)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.kinds: collections.Counter[str] = collections.Counter()
        self.events: collections.Counter[str] = collections.Counter()
        self.skipped = 0
        self.failed = 0
        self._task: asyncio.Task[None] | None = None
        self._usable: dict[str, tuple[int, list[GitRepository]]] = {}
        self._makers: dict[str, Callable[[Organisation, datetime], Change[Any] | None]] = {
            "push": self._push,
            "workItemUpdate": self._update_work_item,
            "workItemCreate": self._create_work_item,
            "workItemComment": self._comment_work_item,
            "buildComplete": self._complete_build,
            "pullRequestCreate": self._create_pull_request,
            "pullRequestVote": self._vote_pull_request,
            "pullRequestComplete": self._complete_pull_request,
            "pullRequestAbandon": self._abandon_pull_request,
            "releaseDeploy": self._release_or_deploy,
            "workItemDelete": self._delete_work_item,
            "workItemRestore": self._restore_work_item,
            "repositoryCreate": self._create_repository,
            "repositoryRename": self._rename_repository,
        }
        self._names = list(KINDS)
        self._weights = [KINDS[k] for k in self._names]

    # -- one change

    def step(self) -> str | None:
        """Make one change of a kind drawn from the mix; its kind, or None when none could be made."""
        orgs = [o for o in (self.emulator.organisation(n) for n in self.emulator.org_names()) if o.projects]
        if not orgs:
            self.skipped += 1
            return None
        org = orgs[self.rng.randrange(len(orgs))]
        for kind in self.rng.choices(self._names, self._weights, k=4):  # a few tries: some kinds need targets
            try:
                change = self._makers[kind](org, self.clock())
            except AzureError:  # the random target turned out unfit (a stale branch, a name taken): count it
                self.failed += 1
                continue
            if change is None:
                continue
            self.kinds[kind] += 1
            for event in change.events:
                self.events[event.event_type] += 1
                self.emulator.publish(org.name, event)
            return kind
        self.skipped += 1
        return None

    def describe(self) -> dict[str, Any]:
        """What ``GET /_emulator/activity`` shows."""
        return {
            "running": self._task is not None and not self._task.done(),
            "rate": self.spec.rate,
            "perSecond": self.rate,
            "seed": self.spec.seed,
            "total": sum(self.kinds.values()),
            "kinds": dict(sorted(self.kinds.items())),
            "events": dict(sorted(self.events.items())),
            "eventsTotal": sum(self.events.values()),
            "skipped": self.skipped,
            "refused": self.failed,
        }

    # -- the task

    def start(self) -> None:
        """Start making changes on the running loop (the app's lifespan calls this)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kiosk-emulator-activity")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        started = time.monotonic()
        done = 0
        burst = max(1, int(self.rate * 0.25))  # never more than a quarter second's worth in one tick
        while True:
            due = int((time.monotonic() - started) * self.rate) - done
            for _ in range(min(due, burst)):
                try:
                    self.step()
                except Exception:  # a bug in one change must not stop the stream
                    self.failed += 1
                    log.exception("activity: a change failed")
            done += max(due, 0)  # what could not be made in time is dropped, not queued up
            await asyncio.sleep(_TICK)

    # -- the kinds (each returns None when the org has nothing to apply it to)

    def _pick(self, items: list[Any]) -> Any:
        return items[self.rng.randrange(len(items))] if items else None

    def _user(self, org: Organisation) -> User:
        return self._pick(list(org.users.values())) or changes.find_user(org, None)

    def _repos(self, org: Organisation) -> list[GitRepository]:
        """The repositories a change can go to (enabled, with a branch), kept until the org's set of
        repositories changes size: scanning 2,000 of them on every tick would cost more than the change.
        One disabled behind the generator's back makes its change refused, nothing worse."""
        cached = self._usable.get(org.id)
        if cached is None or cached[0] != len(org.repositories):
            usable = [r for r in org.repositories.values() if not r.is_disabled and r.default_branch and r.refs]
            cached = self._usable[org.id] = (len(org.repositories), usable)
        return [r for r in cached[1] if r.id in org.repositories and not r.is_disabled]

    def _push(self, org: Organisation, at: datetime) -> Change[Any] | None:
        repo = self._pick(self._repos(org))
        if repo is None:
            return None
        branch = self._pick([n for n in repo.refs if n.startswith("refs/heads/")])
        if self.rng.random() < 0.15:
            branch = f"refs/heads/feature/{self._pick(list(_WORDS))}-{self.rng.randrange(1000)}"
        head = repo.head(branch) or repo.head()
        path = self._pick(sorted(head.files)) if head is not None and head.files else "/README.md"
        exists = head is not None and path in head.files
        old = head.files[path].content.decode("utf-8", "replace") if exists and head is not None else ""
        text = old + f"\n{self._pick(list(_WORDS))} {self.rng.randrange(10_000)}\n"
        edit = FileEdit(path, text, "edit" if exists else "add")
        comment = f"Update {path.rsplit('/', 1)[-1]}: {self._pick(list(_WORDS))}"
        return changes.push(
            org, repo, by=self._user(org), at=at, ids=self.ids, branch=branch, edits=[edit], comment=comment
        )

    def _live_items(self, org: Organisation) -> list[Any]:
        # The newest items only: picking among 100,000 on every tick would cost more than the change.
        return [item for item in itertools.islice(reversed(org.work_items.values()), 500) if not item.is_deleted]

    def _update_work_item(self, org: Organisation, at: datetime) -> Change[Any] | None:
        item = self._pick(self._live_items(org))
        if item is None:
            return None
        states = next((t for t in org.work_item_types.get(item.project_id, []) if t.name == item.work_item_type), None)
        fields: dict[str, Any] = {}
        if states is not None and self.rng.random() < 0.6:
            fields["System.State"] = self._pick([s.name for s in states.states])
        else:
            fields["Microsoft.VSTS.Common.Priority"] = 1 + self.rng.randrange(4)
        if self.rng.random() < 0.3:
            fields["System.AssignedTo"] = self._user(org).id
        return changes.update_work_item(org, item, fields, by=self._user(org), at=at, ids=self.ids)

    def _create_work_item(self, org: Organisation, at: datetime) -> Change[Any] | None:
        project = self._pick(list(org.projects.values()))
        types = org.work_item_types.get(project.id, [])
        if not types:
            return None
        kind = self._pick([t.name for t in types])
        title = f"{self._pick(['Fix', 'Add', 'Investigate', 'Document'])} {self._pick(list(_WORDS))}"
        return changes.create_work_item(
            org, project, kind, {"System.Title": title}, by=self._user(org), at=at, ids=self.ids
        )

    def _comment_work_item(self, org: Organisation, at: datetime) -> Change[Any] | None:
        item = self._pick(self._live_items(org))
        if item is None:
            return None
        text = f"Looked at {self._pick(list(_WORDS))}: {self._pick(['works here', 'still failing', 'needs review'])}."
        return changes.comment_work_item(org, item, text, by=self._user(org), at=at, ids=self.ids)

    def _delete_work_item(self, org: Organisation, at: datetime) -> Change[Any] | None:
        item = self._pick(self._live_items(org))
        return None if item is None else changes.delete_work_item(org, item, by=self._user(org), at=at, ids=self.ids)

    def _restore_work_item(self, org: Organisation, at: datetime) -> Change[Any] | None:
        item = self._pick([i for i in itertools.islice(reversed(org.work_items.values()), 2000) if i.is_deleted])
        return None if item is None else changes.restore_work_item(org, item, by=self._user(org), at=at, ids=self.ids)

    def _active_prs(self, org: Organisation) -> list[Any]:
        usable = {r.id for r in self._repos(org)}
        recent = itertools.islice(reversed(org.pull_requests.values()), 1000)  # the newest: where activity is
        return [p for p in recent if p.status == "active" and p.repository_id in usable]

    def _create_pull_request(self, org: Organisation, at: datetime) -> Change[Any] | None:
        repo = self._pick(self._repos(org))
        if repo is None:
            return None
        sources = [n for n in repo.refs if n.startswith("refs/heads/") and n != repo.default_branch]
        source = self._pick(sources)
        if source is None:
            return None
        reviewer = self._user(org)
        by = self._user(org)
        votes = {reviewer.id: 0} if reviewer is not by else {}
        title = f"{self._pick(['Add', 'Fix', 'Refactor'])} {self._pick(list(_WORDS))}"
        return changes.create_pull_request(
            org, repo, source=source, target=None, title=title, reviewers=votes, by=by, at=at, ids=self.ids
        )

    def _vote_pull_request(self, org: Organisation, at: datetime) -> Change[Any] | None:
        pr = self._pick(self._active_prs(org))
        if pr is None:
            return None
        voter = self._pick([u for u in org.users.values() if u.id != pr.created_by])
        if voter is None:
            return None
        vote = self._pick([10, 5, -5, -10, 10])
        return changes.update_pull_request(org, pr, reviewers={voter.id: vote}, by=voter, at=at, ids=self.ids)

    def _complete_pull_request(self, org: Organisation, at: datetime) -> Change[Any] | None:
        pr = self._pick(self._active_prs(org))
        return None if pr is None else changes.complete_pull_request(org, pr, by=self._user(org), at=at, ids=self.ids)

    def _abandon_pull_request(self, org: Organisation, at: datetime) -> Change[Any] | None:
        pr = self._pick(self._active_prs(org))
        return None if pr is None else changes.abandon_pull_request(org, pr, by=self._user(org), at=at, ids=self.ids)

    def _complete_build(self, org: Organisation, at: datetime) -> Change[Any] | None:
        usable = {r.id for r in self._repos(org)}
        definitions = [
            d
            for d in org.build_definitions.values()
            if d.project_id in org.projects and not org.projects[d.project_id].configured and d.repository_id in usable
        ]
        definition = self._pick(definitions)
        if definition is None:
            return None
        result = self._pick(["succeeded", "succeeded", "succeeded", "failed", "partiallySucceeded", "canceled"])
        project = org.projects[definition.project_id]
        return changes.complete_build(org, project, definition.id, result, by=self._user(org), at=at, ids=self.ids)

    def _release_or_deploy(self, org: Organisation, at: datetime) -> Change[Any] | None:
        """A release, or the next stage of an active release not deployed yet."""
        pending = [
            r
            for r in itertools.islice(reversed(org.releases.values()), 200)
            if r.status == "active" and any(e.status == "notStarted" for e in r.environments)
        ]
        release = self._pick(pending) if self.rng.random() < 0.6 else None
        if release is not None:
            stage = next(e for e in release.environments if e.status == "notStarted")
            status = self._pick(["succeeded", "succeeded", "succeeded", "rejected", "partiallySucceeded"])
            return changes.complete_deployment(
                org, release, str(stage.id), status, by=self._user(org), at=at, ids=self.ids
            )
        definition = self._pick(
            [d for d in org.release_definitions.values() if not d.is_deleted and d.project_id in org.projects]
        )
        if definition is None:
            return None
        project = org.projects[definition.project_id]
        return changes.create_release(org, project, definition.id, by=self._user(org), at=at, ids=self.ids)

    def _create_repository(self, org: Organisation, at: datetime) -> Change[Any] | None:
        project = self._pick(list(org.projects.values()))
        name = f"{self._pick(list(_WORDS))}-{self.rng.randrange(100_000)}"
        by = self._user(org)
        created = changes.create_repository(org, project, name, by=by, at=at, ids=self.ids)
        first = changes.push(
            org, created.value, by=by, at=at, ids=self.ids, branch="main",
            edits=[FileEdit("/README.md", f"# {name}\n", "add")], comment="Initial commit",
        )  # fmt: skip
        return Change(created.value, created.events + first.events)

    def _rename_repository(self, org: Organisation, at: datetime) -> Change[Any] | None:
        repo = self._pick(self._repos(org))
        if repo is None:
            return None
        name = f"{re.sub(r'-r[0-9]+$', '', repo.name)[:200]}-r{self.rng.randrange(1000)}"
        return changes.rename_repository(org, repo, name, by=self._user(org), at=at, ids=self.ids)


def attach_activity(app: FastAPI, generator: ActivityGenerator) -> None:
    """Run ``generator`` for as long as ``app`` serves: started after, stopped before the app's own lifespan.

    Wraps the app's lifespan instead of adding to it, so the app factory need not know about it;
    ``app.state.activity`` is what ``GET /_emulator/activity`` reports.
    """
    inner = app.router.lifespan_context
    app.state.activity = generator

    @asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        async with inner(served) as state:
            generator.start()
            try:
                yield state
            finally:
                await generator.stop()

    app.router.lifespan_context = lifespan
