"""Reactions end to end over HTTP (both engines): an ACR push runs an action, a push upserts an
entity through a jq mapping; and the processor's idempotence and retries, on the store directly."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from tests.support.events import ACR_UA, acr_push, acr_record
from tests.support.kiosk_yaml import kiosk_yaml, run_action, self_service_action, watch
from tests.support.live_kiosk import LiveServer, hook_path, start_configured_server
from tests.support.polling import wait_for

from kiosk.actions.runs import Runs
from kiosk.actions.secrets import SecretBox
from kiosk.actions.service import Actions
from kiosk.catalog.service import Catalog
from kiosk.config import KioskConfig, load_config
from kiosk.config.apply import apply_config
from kiosk.receivers.intake import EventRecord
from kiosk.receivers.store import store_events
from kiosk.store import Database
from kiosk.store.tables import action_runs, deliveries, receiver_event_reactions, receiver_events
from kiosk.watches import store as watch_store
from kiosk.watches.processor import EventProcessor
from kiosk.watches.reactions import ReactionOutcome, Reactor, TransientReactionError, event_document, reaction_key

CHECKOUT = "contoso.azurecr.io/checkout"
CONFIG = kiosk_yaml(
    egress={"allowLoopback": True},  # the action's target refuses connections: the run stays in progress
    blueprints=[
        {"identifier": "service", "schema": {"properties": {"lifecycle": {"type": "string"}}}},
        {
            "identifier": "image",
            "schema": {
                "properties": {
                    "repository": {"type": "string"},
                    "tag": {"type": "string"},
                    "digest": {"type": "string"},
                    "pushedBy": {"type": "string"},
                }
            },
            "relations": {"service": {"target": "service", "many": False}},
        },
    ],
    entities=[{"blueprint": "service", "identifier": "checkout", "properties": {"lifecycle": "production"}}],
    actions=[
        self_service_action(
            "deploy_service",
            inputs={
                "environment": {"type": "string", "enum": ["development", "staging", "production"]},
                "version": {"type": "string", "default": "latest"},
            },
            required=["environment"],
            invocation={"type": "WEBHOOK", "url": "http://127.0.0.1:9/deploy"},
        )
    ],
    receivers=[{"name": "acr", "type": "azure", "secret": {"env": "REACT_SECRET"}}],
    watches=[
        watch(
            "checkout-staging",
            CHECKOUT,
            ["1.*"],
            run_action("deploy_service", "checkout", {"environment": "staging", "version": "{{ .tag }}"}),
        ),
        watch(
            "image-catalog",
            CHECKOUT,
            ["*"],
            {
                "upsertEntity": {
                    "blueprint": '"image"',
                    "identifier": '(.repository | split("/") | last) + "-" + .tag',
                    "title": '.repository + ":" + .tag',
                    "properties": {
                        "repository": ".repository",
                        "tag": ".tag",
                        "digest": ".digest",
                        "pushedBy": ".payload.request.useragent",
                    },
                    "relations": {"service": '"checkout"'},
                }
            },
        ),
        watch("broken", CHECKOUT, ["9.*"], run_action("deploy_service", "checkout", {"environment": "moon"})),
    ],
)
PATH = hook_path("acr", "react-secret")


@pytest.fixture
def live(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("REACT_SECRET", "react-secret")
    yield from start_configured_server(tmp_path, database_url, CONFIG)


def push(live: LiveServer, tag: str) -> dict[str, Any]:
    headers = {"User-Agent": ACR_UA, "Content-Type": "application/json"}
    r = httpx.post(live.base_url + PATH, content=orjson.dumps(acr_push(tag=tag)), headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def reactions(live: LiveServer) -> list[Any]:
    with live.app.state.db.connect() as conn:
        return list(conn.execute(sa.select(receiver_event_reactions).order_by(receiver_event_reactions.c.watch)))


def test_an_acr_push_with_tag_1_2_3_runs_the_deploy_action_and_upserts_an_image(live: LiveServer) -> None:
    assert push(live, "1.2.3") == {"msg": "refreshed 2 watch(es)"}
    done = wait_for(lambda: (rows := reactions(live)) and len(rows) == 2 and rows)
    by_watch = {r.watch: r for r in done}
    run_id = by_watch["checkout-staging"].run_id
    assert by_watch["checkout-staging"].status == "done" and run_id
    with live.app.state.db.connect() as conn:
        run = conn.execute(sa.select(action_runs).where(action_runs.c.id == run_id)).one()
        delivery = conn.execute(sa.select(deliveries).where(deliveries.c.run_id == run_id)).one()
    assert (run.action, run.entity, run.origin, run.created_by) == (
        "deploy_service",
        "checkout",
        "AUTOMATION",
        "watch:checkout-staging",
    )
    assert run.properties == {"environment": "staging", "version": "1.2.3"}
    assert delivery.source == "action" and delivery.target["url"] == "http://127.0.0.1:9/deploy"
    # The run is the portal's own: it shows in the runs API like any other.
    assert live.admin.get(f"/v1/actions/runs/{run_id}").json()["run"]["status"] == "IN_PROGRESS"

    assert by_watch["image-catalog"].entity == "image/checkout-1.2.3"
    entity = live.admin.get("/v1/blueprints/image/entities/checkout-1.2.3").json()["entity"]
    assert entity["title"] == "contoso.azurecr.io/checkout:1.2.3"
    assert entity["properties"] == {
        "repository": "contoso.azurecr.io/checkout",
        "tag": "1.2.3",
        "digest": "sha256:" + "ab" * 32,
        "pushedBy": "docker/27.0",
    }
    assert entity["relations"] == {"service": "checkout"}
    shown = live.admin.get("/v1/receivers/acr/events").json()["events"][0]
    assert sorted(r["watch"] for r in shown["reactions"]) == ["checkout-staging", "image-catalog"]
    assert shown["processing"] == "done"


def test_a_reaction_that_fails_for_good_is_recorded_and_the_event_still_processed(live: LiveServer) -> None:
    assert push(live, "9.0.0") == {"msg": "refreshed 2 watch(es)"}  # broken + image-catalog
    rows = wait_for(lambda: (found := reactions(live)) and len(found) == 2 and found)
    broken = next(r for r in rows if r.watch == "broken")
    assert broken.status == "failed" and "environment" in broken.error and broken.run_id is None
    shown = wait_for(lambda: (e := live.admin.get("/v1/receivers/acr/events").json()["events"][0])["processing"] and e)
    assert shown["processing"] == "done"
    with live.app.state.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(action_runs)).scalar() == 0


# --------------------------------------------------------------------- the processor on its own


class FlakyReactor(Reactor):
    """A reactor whose first ``fail`` reactions meet a database error; records what it fired."""

    def __init__(self, base: Reactor, fail: int) -> None:
        super().__init__([], base.runs, base.catalog)
        self._reactions = base._reactions
        self._mappings = base._mappings
        self.fail = fail
        self.fired: list[tuple[str, int]] = []

    def react(self, watch: str, position: int, data: Mapping[str, Any]) -> ReactionOutcome:
        if self.fail > 0 and position == 1:
            self.fail -= 1
            raise TransientReactionError("database error: OperationalError")
        self.fired.append((watch, position))
        return super().react(watch, position, data)


TWO_REACTIONS = """\
blueprints:
  - identifier: image
    schema: {properties: {tag: {type: string}}}
watches:
  - name: w
    subscriptions: [{image: r.io/app, tags: ["*"]}]
    reactions:
      - upsertEntity: {blueprint: '"image"', identifier: '"first-" + .tag', properties: {tag: .tag}}
      - upsertEntity: {blueprint: '"image"', identifier: '"second-" + .tag', properties: {tag: .tag}}
"""


def applied(db: Database, tmp_path: Path, text: str) -> tuple[KioskConfig, Catalog, Runs]:
    """``text`` as kiosk.yaml applied to ``db``, with the catalog and the runs a reactor works on."""
    (tmp_path / "kiosk.yaml").write_text(text)
    config = load_config(tmp_path / "kiosk.yaml")
    catalog = Catalog(db)
    actions = Actions(db, azure_orgs={}, sign_webhooks=False)
    apply_config(catalog, config, actions=actions)
    return config, catalog, Runs(db, catalog, actions, SecretBox(bytes(range(32))))


def test_a_retried_event_does_not_fire_recorded_reactions_again(db: Database, tmp_path: Path) -> None:
    config, catalog, runs = applied(db, tmp_path, TWO_REACTIONS)
    reactor = FlakyReactor(Reactor(config.watches, runs, catalog), fail=1)
    processor = EventProcessor(db, reactor, worker_id="t1")
    record = _push_record("7", "d1")
    with db.begin() as conn:
        [stored] = store_events(conn, [record])
    with db.begin() as conn:  # the same event redelivered in a later batch: a duplicate, no job
        [again] = store_events(conn, [record])
    assert stored.queued and again.duplicate and not again.queued

    assert processor.run_once() == 1  # reaction 0 fires, reaction 1 meets a database error
    assert reactor.fired == [("w", 0)]
    with db.connect() as conn:
        event = conn.execute(sa.select(receiver_events).where(receiver_events.c.id == stored.event_id)).one()
    assert event.processing == "pending"
    # Retry when due (not before: its run_after is a second away).
    assert processor.run_once() == 0
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE jobs SET run_after = created_at")
    assert processor.run_once() == 1
    assert reactor.fired == [("w", 0), ("w", 1)]  # reaction 0 was not fired a second time
    with db.connect() as conn:
        event = conn.execute(sa.select(receiver_events).where(receiver_events.c.id == stored.event_id)).one()
        states = conn.exec_driver_sql("SELECT watch, refreshes, last_event_id FROM watch_states").all()
    assert event.processing == "done" and event.processed_at is not None
    assert [tuple(s) for s in states] == [("w", 1, stored.event_id)]
    assert catalog.get_entity("image", "first-7")["properties"] == {"tag": "7"}
    assert catalog.get_entity("image", "second-7")["properties"] == {"tag": "7"}


RUN_ACTION = kiosk_yaml(
    egress={"allowLoopback": True},
    blueprints=[{"identifier": "service"}],
    entities=[{"blueprint": "service", "identifier": "checkout"}],
    actions=[
        self_service_action(
            "deploy",
            inputs={"version": {"type": "string"}},
            invocation={"type": "WEBHOOK", "url": "http://127.0.0.1:9/deploy"},
        )
    ],
    watches=[watch("w", "r.io/app", ["*"], run_action("deploy", "checkout", {"version": "{{ .tag }}"}))],
)


def _push_record(tag: str, delivery_id: str) -> EventRecord:
    """An accepted ACR push of ``r.io/app:<tag>`` that matched watch ``w`` and has reactions to fire."""
    match = {"watch": "w", "kind": "image", "repository": "r.io/app", "tag": tag}
    match.update(ref=None, change=None, commit=None)
    return acr_record(
        delivery_id,
        matches=[match],
        summary={"repository": "r.io/app", "tag": tag},
        payload='{"action": "push"}',
        react=True,
    )


def _store_push(db: Database, tag: str, delivery_id: str) -> int:
    record = _push_record(tag, delivery_id)
    with db.begin() as conn:
        [stored] = store_events(conn, [record])
    assert stored.event_id is not None
    return stored.event_id


def test_a_run_action_fired_again_after_a_crash_starts_no_second_run(db: Database, tmp_path: Path) -> None:
    """The window the processor cannot close itself: the run committed, then the process died
    before the reaction was recorded. The retried job fires the reaction again; the run's
    idempotency key makes that return the first run, with no second run and no second delivery."""
    config, catalog, runs = applied(db, tmp_path, RUN_ACTION)
    reactor = Reactor(config.watches, runs, catalog)
    event_id = _store_push(db, "1.4.0", "d-crash")

    # The first attempt: the reaction fired (its run and delivery committed), then the crash.
    with db.connect() as conn:
        event = watch_store.load_events(conn, [event_id])[event_id]
    data = event_document(event, event.matches[0], event.payload)
    first = reactor.react("w", 0, data)
    assert first.status == "done" and first.run_id is not None
    assert reactor.react("w", 0, data) == first  # fired twice in a row: still the one run

    # The retried job: the processor fires reaction 0 again (nothing recorded it) and records it.
    assert EventProcessor(db, reactor, worker_id="t-retry").run_once() == 1
    with db.connect() as conn:
        run_rows = conn.execute(sa.select(action_runs)).all()
        delivery_rows = conn.execute(sa.select(deliveries)).all()
        (recorded,) = conn.execute(sa.select(receiver_event_reactions)).all()
        processing = conn.execute(
            sa.select(receiver_events.c.processing).where(receiver_events.c.id == event_id)
        ).scalar_one()
    assert [r.id for r in run_rows] == [first.run_id] and [d.run_id for d in delivery_rows] == [first.run_id]
    assert recorded.status == "done" and recorded.run_id == first.run_id and processing == "done"
    assert run_rows[0].properties == {"version": "1.4.0"}

    # Another event, or another position, is another run.
    second_event = _store_push(db, "1.5.0", "d-next")
    assert reaction_key({"id": second_event}, "w", 0) != reaction_key({"id": event_id}, "w", 0)
    assert reaction_key({"id": event_id}, "w", 1) != reaction_key({"id": event_id}, "w", 0)
    assert EventProcessor(db, reactor, worker_id="t-next").run_once() == 1
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(action_runs)).scalar_one() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 2
