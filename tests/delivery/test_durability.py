"""Delivery durability at the process level: kiosk as a real server process (uvicorn), killed and
restarted, or two of them on one PostgreSQL database, each with its own delivery worker.

* SIGKILL while deliveries are pending (both engines): every run answered 201 is delivered after a
  restart on the same database; a run may reach the receiver more than once, but only ever under
  one ``webhook-id`` (its idempotency key); the deliveries, their attempts and their jobs agree.
* Two processes, one PostgreSQL: no delivery is ever being sent by both at once (the receiver keeps
  the time span of every request per ``webhook-id``; none may overlap), every run is delivered,
  and — nothing failing — each exactly once. A variant kills one of the two mid-way: the survivor
  takes over its leased jobs and delivers everything.

The receiver is an ASGI app in this process (``tests.support.servers.serving``) that verifies each
request's Standard Webhooks signature. The worker's lease is shortened through the test knob
``KIOSK_TEST_LEASE_SECONDS`` (see ``tests/support/kiosk_server.py``) where a test needs leases of a
killed process to expire quickly: kiosk.yaml cannot set the lease (kiosk uses
``max(60 s, 6 * delivery.timeoutSeconds)``).

``pytest tests/delivery/test_durability.py -s`` prints what happened (duplicates, the split of
work between workers).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from tests.support.kiosk_server import LEASE_ENV, KioskServer, prepare_database
from tests.support.receiver import answer_lifespan, read_body, request_headers, signed_by
from tests.support.servers import serving

from kiosk.store import Database, create_database
from kiosk.store.tables import action_runs, deliveries, delivery_attempts, jobs

SECRET = "durability-test-signing-secret"
SECRET_ENV = "KIOSK_DURABILITY_SIGNING_SECRET"

#: Retries every 0.3 s, 40 times: nothing goes dead while the receiver is failing on purpose.
CONFIG = """\
egress: {{allowLoopback: true}}
delivery:
  signingSecret: {{env: {secret_env}}}
  timeoutSeconds: 5
  jitter: 0
  retrySchedule: [{schedule}]
blueprints:
  - identifier: service
actions:
  - identifier: notify
    title: Notify
    trigger: {{type: self-service, operation: CREATE, blueprintIdentifier: service}}
    invocationMethod: {{type: WEBHOOK, url: "{url}/hook"}}
"""


# ------------------------------------------------------------------------------------ receiver


@dataclass
class Arrival:
    """One request as the receiver saw it; ``ended`` is set once its answer was sent."""

    webhook_id: str
    run_id: str | None
    body: bytes
    signed: bool
    started: float
    ended: float | None = None
    status: int | None = None


#: request number (0-based) -> (status, seconds to wait before answering)
Plan = Callable[[int], tuple[int, float]]


def answer_ok(_n: int) -> tuple[int, float]:
    return 200, 0.0


class Recorder:
    """A webhook receiver that records every request and answers as ``plan`` says."""

    def __init__(self, plan: Plan = answer_ok) -> None:
        self.plan = plan
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await answer_lifespan(scope, receive, send):
            return
        started = time.monotonic()
        body = await read_body(receive)
        headers = request_headers(scope)
        webhook_id = headers.get("webhook-id", "")
        signed = signed_by(SECRET, body, headers)
        try:
            run_id = orjson.loads(body)["context"]["runId"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            run_id = None
        arrival = Arrival(webhook_id, run_id, body, signed, started)
        with self._lock:
            number = len(self.arrivals)
            self.arrivals.append(arrival)
        status, delay = self.plan(number)
        try:
            if delay:
                await asyncio.sleep(delay)
            await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            arrival.status = status
            arrival.ended = time.monotonic()

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)

    def in_flight(self) -> int:
        return sum(1 for a in self.snapshot() if a.ended is None)


# ------------------------------------------------------------------------------------- set-up


@dataclass
class Stack:
    """The receiver, the kiosk.yaml pointing at it, and a migrated database with an admin client."""

    recorder: Recorder
    database_url: str
    config_path: Path
    admin: tuple[str, str]
    tmp_path: Path
    processes: list[KioskServer] = field(default_factory=list)

    def kiosk(self, name: str, **env: str) -> KioskServer:
        process = KioskServer(
            self.tmp_path / name,
            self.database_url,
            self.config_path,
            self.admin,
            env={SECRET_ENV: SECRET, **env},
        )
        self.processes.append(process)
        return process

    def two_kiosks(self, **env: str) -> tuple[KioskServer, KioskServer]:
        """Processes ``a`` and ``b`` on the one database, launched side by side, both ready."""
        a, b = self.kiosk("a", **env), self.kiosk("b", **env)
        a.launch()
        b.launch()
        a.wait_ready()
        b.wait_ready()
        return a, b

    def settled(self, accepted: list[str]) -> tuple[State, list[Arrival]]:
        """The database's state and the receiver's arrivals once every accepted run is delivered,
        checked consistent with each other and for a delivery sent twice at once."""
        db = create_database(self.database_url)
        try:
            wait_all_delivered(db, len(accepted), timeout=20)
            time.sleep(0.3)  # a duplicate still on its way would show now
            state = read_state(db)
        finally:
            db.dispose()
        arrivals = self.recorder.snapshot()
        check_consistent(state, arrivals, accepted)
        assert not overlaps(arrivals), f"sent twice at once: {overlaps(arrivals)[:5]}"
        return state, arrivals


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[[str, Recorder], Stack]]:
    """Builds a :class:`Stack` on a database URL; stops the receiver and every kiosk afterwards."""
    made: list[Stack] = []
    receivers: list[Any] = []

    def build(database_url: str, recorder: Recorder) -> Stack:
        serving_cm = serving(recorder)
        url = serving_cm.__enter__()
        receivers.append(serving_cm)
        schedule = ", ".join(["0.3"] * 40)
        config_path = tmp_path / "kiosk.yaml"
        config_path.write_text(CONFIG.format(secret_env=SECRET_ENV, schedule=schedule, url=url))
        stack = Stack(recorder, database_url, config_path, prepare_database(database_url), tmp_path)
        made.append(stack)
        return stack

    try:
        yield build
    finally:
        for stack in made:
            for process in stack.processes:
                process.kill()
        for cm in receivers:
            cm.__exit__(None, None, None)


def post_run(to: KioskServer | httpx.Client) -> str:
    client = to.client if isinstance(to, KioskServer) else to
    response = client.post("/v1/actions/notify/runs", json={"properties": {}})
    assert response.status_code == 201, response.text
    return str(response.json()["run"]["id"])


@dataclass
class State:
    """What the database says, read directly (the server may be dead)."""

    runs: set[str]
    deliveries: dict[str, Any]  # delivery id -> row
    attempts: dict[str, list[Any]]  # delivery id -> rows, in id order
    jobs: dict[str, Any]  # delivery id -> job row

    def undelivered(self) -> list[str]:
        return [d for d, row in self.deliveries.items() if row.status != "delivered"]


def read_state(db: Database) -> State:
    with db.connect() as conn:
        runs = set(conn.execute(sa.select(action_runs.c.id)).scalars())
        rows = {r.id: r for r in conn.execute(sa.select(deliveries))}
        attempts: dict[str, list[Any]] = defaultdict(list)
        for r in conn.execute(sa.select(delivery_attempts).order_by(delivery_attempts.c.id)):
            attempts[r.delivery_id].append(r)
        job_rows = {str(r.dedupe_key): r for r in conn.execute(sa.select(jobs).where(jobs.c.kind == "delivery"))}
    return State(runs, rows, dict(attempts), job_rows)


def wait_all_delivered(db: Database, expected_runs: int, timeout: float) -> State:
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(db)
        if len(state.deliveries) >= expected_runs and not state.undelivered():
            return state
        if time.monotonic() > deadline:
            statuses = Counter(row.status for row in state.deliveries.values())
            raise AssertionError(f"not all delivered after {timeout}s: {dict(statuses)} of {len(state.runs)} runs")
        time.sleep(0.1)


def check_consistent(state: State, arrivals: list[Arrival], accepted: list[str]) -> dict[str, str]:
    """The invariants every scenario must keep; returns run id -> webhook-id."""
    # Every run has exactly one delivery, and every delivery belongs to a stored run.
    by_run: dict[str, list[str]] = defaultdict(list)
    for delivery_id, row in state.deliveries.items():
        by_run[row.run_id].append(delivery_id)
    assert set(by_run) == state.runs, "runs without a delivery, or deliveries without a run"
    assert all(len(ids) == 1 for ids in by_run.values()), "a run with more than one delivery"
    assert set(accepted) <= state.runs, "a run answered 201 is not in the database"
    webhook_of = {run: ids[0] for run, ids in by_run.items()}

    # The database: delivered, attempts numbered 1..n, the last one the 2xx and the only one.
    for delivery_id, row in state.deliveries.items():
        tried = state.attempts.get(delivery_id, [])
        assert row.status == "delivered" and row.delivered_at is not None and row.last_status_code == 200, row
        assert [a.attempt for a in tried] == list(range(1, row.attempts + 1)), (delivery_id, tried)
        assert [a.status_code for a in tried if a.status_code is not None and a.status_code < 300] == [200]
        assert tried[-1].status_code == 200
        job = state.jobs[delivery_id]
        assert (job.status, job.locked_by, job.locked_until) == ("done", None, None), job
        assert job.attempts >= row.attempts  # a claim a killed worker never acted on still counts
    assert len(state.jobs) == len(state.deliveries)

    # The receiver: signed, the right run under the right id, every accepted run reached it.
    assert all(a.signed for a in arrivals), "a request with a bad signature"
    for a in arrivals:
        assert webhook_of.get(str(a.run_id)) == a.webhook_id, f"run {a.run_id} arrived under {a.webhook_id}"
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for a in arrivals:
        bodies[a.webhook_id].add(a.body)
    assert all(len(b) == 1 for b in bodies.values()), "one webhook-id, different bodies"
    answered_ok = {a.run_id for a in arrivals if a.status == 200}
    missing = [run for run in state.runs if run not in answered_ok]
    assert not missing, f"runs that never reached the receiver with a 200 answer: {missing[:5]}"
    # Each recorded answer is an answer the receiver gave.
    seen = Counter(a.webhook_id for a in arrivals)
    for delivery_id, tried in state.attempts.items():
        assert sum(1 for a in tried if a.status_code is not None) <= seen[delivery_id]
    return webhook_of


def overlaps(arrivals: list[Arrival]) -> list[tuple[str, float]]:
    """(webhook-id, seconds of overlap) for every pair of requests for one id handled at the same time."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for a in arrivals:
        spans[a.webhook_id].append((a.started, a.ended if a.ended is not None else float("inf")))
    found = []
    for webhook_id, intervals in spans.items():
        intervals.sort()
        for (_s1, e1), (s2, _e2) in itertools.pairwise(intervals):
            if s2 < e1:
                found.append((webhook_id, e1 - s2))
    return found


# ------------------------------------------------------------------------------ SIGKILL, restart


def test_sigkill_with_deliveries_pending_then_restart_delivers_every_accepted_run(
    database_url: str, stack_factory: Callable[[str, Recorder], Stack]
) -> None:
    trouble = threading.Event()
    trouble.set()

    def plan(n: int) -> tuple[int, float]:
        # While "in trouble": a third fail at once (503), a third answer 200 after 0.5 s (when the
        # kill lands meanwhile, the receiver got the webhook but kiosk never learns), a third 503
        # after 0.5 s.
        if not trouble.is_set():
            return 200, 0.0
        return ((503, 0.0), (200, 0.5), (503, 0.5))[n % 3]

    recorder = Recorder(plan)
    stack = stack_factory(database_url, recorder)
    total = 50
    # The lease must outlast a claimed job's wait behind a full backlog (16 jobs / 4 threads x
    # 0.5 s) plus its own request, or a live worker would claim its own job again while sending it.
    first = stack.kiosk("home", **{LEASE_ENV: "4"}).start()
    accepted = [post_run(first) for _ in range(30)]

    # Keep posting while the process is killed: a POST cut off by the kill is not "accepted" (it
    # may or may not have committed; a committed one must be delivered all the same).
    cut_off: list[BaseException] = []
    own_client = httpx.Client(base_url=first.base_url, headers=first.client.headers, timeout=10)

    def keep_posting() -> None:
        try:
            while len(accepted) < total:
                accepted.append(post_run(own_client))
        except httpx.TransportError as exc:
            cut_off.append(exc)
        finally:
            own_client.close()

    deadline = time.monotonic() + 10
    while recorder.in_flight() < 2:
        assert time.monotonic() < deadline, "no request is in flight at the receiver"
        time.sleep(0.01)
    poster = threading.Thread(target=keep_posting)
    poster.start()
    time.sleep(0.05)
    in_flight_at_kill = recorder.in_flight()
    first.kill()
    poster.join(10)
    killed_at = len(accepted)

    db = create_database(database_url)
    try:
        before = read_state(db)
        pending = before.undelivered()
        assert in_flight_at_kill >= 1
        assert pending, "everything was delivered before the kill: the test proves nothing"
        running = sum(1 for d in pending if before.jobs[d].status == "running")

        first.start()  # the same database, the same port: a restart
        trouble.clear()
        while len(accepted) < total:
            accepted.append(post_run(first))
        state = wait_all_delivered(db, len(accepted), timeout=20)
    finally:
        db.dispose()

    arrivals = recorder.snapshot()
    check_consistent(state, arrivals, accepted)
    assert not overlaps(arrivals), f"sent twice at once: {overlaps(arrivals)[:5]}"
    per_id = Counter(a.webhook_id for a in arrivals)
    duplicated = {w: n for w, n in per_id.items() if n > 1}
    answered_ok_twice = [w for w in duplicated if sum(1 for a in arrivals if a.webhook_id == w and a.status == 200) > 1]
    workers = Counter(a.worker for rows in state.attempts.values() for a in rows)
    print(
        f"\n[{database_url.split(':')[0]}] {len(accepted)} runs accepted ({killed_at} before the kill, "
        f"{len(cut_off)} POST cut off), {len(state.runs)} stored; at the kill {len(pending)} undelivered "
        f"({running} leased), {in_flight_at_kill} request(s) in flight; {len(arrivals)} requests received, "
        f"{len(duplicated)} webhook-id(s) more than once, {len(answered_ok_twice)} answered 200 twice "
        f"(delivered, then again: kiosk died before recording it); attempts by worker: {dict(workers)}"
    )
    # Both lives of the process recorded attempts: the first its early 503s, the second the rest.
    assert len(workers) == 2, f"attempts by worker: {dict(workers)}"


# ------------------------------------------------------------------ two processes, one database


def slow_ok(_n: int) -> tuple[int, float]:
    return 200, random.uniform(0.1, 0.2)


@pytest.fixture
def slow_stack(pg_url: str, stack_factory: Callable[[str, Recorder], Stack]) -> Stack:
    """A stack on a PostgreSQL database whose receiver takes 0.1-0.2 s to answer each request."""
    return stack_factory(pg_url, Recorder(slow_ok))


@pytest.mark.postgres
def test_two_processes_on_one_postgres_never_send_a_delivery_twice_at_once(slow_stack: Stack) -> None:
    stack = slow_stack
    a, b = stack.two_kiosks()  # each with kiosk's own lease (60 s)
    # Three of four runs to a, so its backlog fills and b (told about its own runs, and polling)
    # claims a's too: both then take jobs from the same pending rows at the same moments.
    posted_to: dict[str, int] = {}
    for i in range(80):
        process = b if i % 4 == 3 else a
        posted_to[post_run(process)] = process.pid
    accepted = list(posted_to)
    state, arrivals = stack.settled(accepted)
    # Nothing failed, so nothing was sent twice at all.
    assert Counter(x.webhook_id for x in arrivals).most_common(1)[0][1] == 1
    assert all(len(rows) == 1 for rows in state.attempts.values())
    workers = Counter(x.worker for rows in state.attempts.values() for x in rows)
    # The worker id is host:pid:suffix.
    crossed = sum(
        1
        for delivery_id, rows in state.attempts.items()
        if int(str(rows[0].worker).split(":")[1]) != posted_to[state.deliveries[delivery_id].run_id]
    )
    print(
        f"\n[postgres, two processes] {len(accepted)} runs, attempts by worker: {dict(workers)}; "
        f"{crossed} sent by the process that did not take the POST"
    )
    assert len(workers) == 2, f"one worker did all the work: {dict(workers)}"
    assert crossed, "each process sent only its own runs: the workers never competed for a job"


@pytest.mark.postgres
def test_two_processes_one_killed_the_survivor_delivers_its_leased_jobs(slow_stack: Stack) -> None:
    stack, recorder = slow_stack, slow_stack.recorder
    # A lease of 3 s: well over a request (≤ 0.2 s) plus its wait behind a full backlog (16 / 4
    # threads x 0.2 s), so a live worker never loses a job, and a dead one's expire soon.
    a, b = stack.two_kiosks(**{LEASE_ENV: "3"})
    accepted = []
    for _ in range(30):
        accepted.append(post_run(a))
        accepted.append(post_run(b))
    deadline = time.monotonic() + 10
    while sum(1 for x in recorder.snapshot() if x.status == 200) < 10 or recorder.in_flight() == 0:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    b.kill()
    state, arrivals = stack.settled(accepted)
    workers = Counter(x.worker for rows in state.attempts.values() for x in rows)
    repeats = sum(1 for n in Counter(x.webhook_id for x in arrivals).values() if n > 1)
    print(
        f"\n[postgres, one of two killed] {len(accepted)} runs, {len(arrivals)} requests "
        f"({repeats} webhook-id(s) sent again after the kill), attempts by worker: {dict(workers)}"
    )
