"""The server's periodic tasks: ``Periodic`` itself, and the retention pruner wired into the server."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.receivers.live import start_receiver_server, wait_for

from kiosk.config.model import RetentionConfig
from kiosk.receivers.intake import EventRecord
from kiosk.receivers.store import store_events
from kiosk.store import Database, create_database, upgrade_to_head
from kiosk.store.queue import utcnow
from kiosk.store.tables import receiver_events
from kiosk.web.background import Periodic, retention_pruner


def test_periodic_waits_its_first_delay_and_stops_at_once() -> None:
    calls: list[float] = []
    task = Periodic("t", 60.0, lambda: bool(calls.append(time.monotonic())), first_delay=30.0).start()
    assert not task.stopping.is_set()
    started = time.monotonic()
    task.stop()
    assert time.monotonic() - started < 5 and calls == [] and task.stopping.is_set()


def test_periodic_runs_again_until_work_says_done() -> None:
    done = threading.Event()
    calls: list[int] = []

    def work() -> bool:
        calls.append(1)
        if len(calls) == 3:
            done.set()
            return True
        return False

    task = Periodic("t", 0.01, work).start()
    assert done.wait(10)
    task.stop()
    assert len(calls) == 3


def test_retention_pruner_runs_every_interval(tmp_path: Path) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'kiosk.db'}")
    try:
        task = retention_pruner(db, RetentionConfig.model_validate({"intervalMinutes": 15}))
        assert task.name == "retention-pruner" and task.interval == 15 * 60
        assert 1.0 <= task.first_delay <= 5.0
        assert retention_pruner(db, RetentionConfig(), interval=2.0).interval == 2.0
    finally:
        db.dispose()


CONFIG = """\
receivers:
  - {name: acr, type: azure, secret: {env: BG_ACR_SECRET}}
retention:
  receiverEvents: {maxAgeDays: 7}
"""


def _old_event(days: float) -> EventRecord:
    return EventRecord(
        receiver="acr",
        project=None,
        received_at=utcnow() - timedelta(days=days),
        outcome="no_match",
        status_code=200,
        payload="{}",
        accepted=True,
    )


def test_the_server_prunes_old_events_in_the_background(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BG_ACR_SECRET", "s3cret")
    db: Database = create_database(database_url)
    try:
        upgrade_to_head(db)
        with db.begin() as conn:
            old, recent = (s.event_id for s in store_events(conn, [_old_event(30), _old_event(1)]))
    finally:
        db.dispose()
    server = start_receiver_server(tmp_path, database_url, CONFIG)
    live = next(server)
    try:

        def left() -> set[int] | None:
            with live.app.state.db.connect() as conn:
                ids = {int(r.id) for r in conn.execute(sa.select(receiver_events.c.id))}
            return ids if old not in ids else None

        assert wait_for(left, timeout=30) == {recent}
        events = live.admin.get("/v1/receivers/acr/events").json()["events"]
        assert [e["id"] for e in events] == [recent]
    finally:
        server.close()
