"""The server's periodic tasks: their table, and the retention pruner wired into the server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.support.live_kiosk import start_configured_server
from tests.support.polling import wait_for

from kiosk.config.model import KioskConfig, RetentionConfig
from kiosk.receivers.intake import EventRecord
from kiosk.receivers.store import store_events
from kiosk.runtime.tasks import TaskContext, build_tasks, retention_pruner
from kiosk.store import Database, create_database, upgrade_to_head
from kiosk.store.queue import utcnow
from kiosk.store.tables import receiver_events


def test_retention_pruner_runs_every_interval(tmp_path: Path) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'kiosk.db'}")
    try:
        config = KioskConfig(retention=RetentionConfig.model_validate({"intervalMinutes": 15}))
        task = retention_pruner(TaskContext(db, config))
        assert task.name == "retention-pruner" and task.interval == 15 * 60
        assert 1.0 <= task.first_delay <= 5.0
        assert retention_pruner(TaskContext(db), interval=2.0).interval == 2.0
    finally:
        db.dispose()


def test_a_server_without_azure_runs_the_sweeper_and_the_pruner(tmp_path: Path) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'kiosk.db'}")
    try:
        assert [task.name for task in build_tasks(TaskContext(db))] == ["run-sweeper", "retention-pruner"]
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
    server = start_configured_server(tmp_path, database_url, CONFIG)
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
