"""Watch reactions whose jq hits a limit fail for good, over HTTP on a live server (both engines).

A reaction's jq (an ``upsertEntity`` mapping, a ``runAction`` template) stopped by the time limit
is recorded as the reaction's failure naming the field, the program and the limit; the event
counts as processed and its job is done after one attempt: a limit hit is never retried.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from tests.support.events import ACR_UA, acr_push
from tests.support.kiosk_yaml import kiosk_yaml, run_action, self_service_action, watch
from tests.support.live_kiosk import LiveServer, hook_path, start_configured_server
from tests.support.polling import wait_for

from kiosk.store.tables import action_runs, jobs, receiver_event_reactions

SLOW = "[range(1e8)] | length"

CONFIG = kiosk_yaml(
    jq={"timeoutSeconds": 1, "memoryMiB": 4096},
    blueprints=[
        {"identifier": "service", "schema": {"properties": {}}},
        {"identifier": "image", "schema": {"properties": {"tag": {"type": "string"}}}},
    ],
    entities=[{"blueprint": "service", "identifier": "checkout"}],
    actions=[
        self_service_action(
            "deploy_service",
            inputs={"version": {"type": "string"}},
            invocation={"type": "WEBHOOK", "url": "http://127.0.0.1:9/deploy"},
        )
    ],
    receivers=[{"name": "acr", "type": "azure", "secret": {"env": "REACT_SECRET"}}],
    watches=[
        watch(
            "slow-run",
            "contoso.azurecr.io/checkout",
            ["*"],
            run_action("deploy_service", "checkout", {"version": "{{ " + SLOW + " | tostring }}"}),
        ),
        watch(
            "slow-upsert",
            "contoso.azurecr.io/checkout",
            ["*"],
            {
                "upsertEntity": {
                    "blueprint": '"image"',
                    "identifier": SLOW + " | tostring",
                    "properties": {"tag": ".tag"},
                }
            },
        ),
    ],
)
PATH = hook_path("acr", "react-secret")


@pytest.fixture
def live(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("REACT_SECRET", "react-secret")
    yield from start_configured_server(tmp_path, database_url, CONFIG)


def reactions(live: LiveServer) -> list[Any]:
    with live.app.state.db.connect() as conn:
        return list(conn.execute(sa.select(receiver_event_reactions).order_by(receiver_event_reactions.c.watch)))


def test_reactions_over_the_time_limit_are_recorded_failed_and_not_retried(live: LiveServer) -> None:
    headers = {"User-Agent": ACR_UA, "Content-Type": "application/json"}
    r = httpx.post(live.base_url + PATH, content=orjson.dumps(acr_push(tag="1.0.0")), headers=headers, timeout=30)
    assert r.status_code == 200 and r.json() == {"msg": "refreshed 2 watch(es)"}

    rows = wait_for(lambda: (found := reactions(live)) and len(found) == 2 and found, timeout=60)
    by_watch = {row.watch: row for row in rows}
    assert by_watch["slow-run"].status == "failed" and by_watch["slow-run"].run_id is None
    assert by_watch["slow-run"].error == (
        "watches[slow-run].reactions[0].runAction.properties.version: the template "
        f"'{{{{ {SLOW} | tostring }}}}' failed: jq program '{SLOW} | tostring' exceeded the time limit of 1 s "
        "(jq.timeoutSeconds)"
    )
    assert by_watch["slow-upsert"].status == "failed" and by_watch["slow-upsert"].entity is None
    assert by_watch["slow-upsert"].error == (
        f"upsertEntity.identifier: jq program '{SLOW} | tostring' exceeded the time limit of 1 s (jq.timeoutSeconds)"
    )

    shown = wait_for(lambda: (e := live.admin.get("/v1/receivers/acr/events").json()["events"][0])["processing"] and e)
    assert shown["processing"] == "done"
    with live.app.state.db.connect() as conn:
        (job,) = conn.execute(sa.select(jobs.c.status, jobs.c.attempts)).all()
        assert conn.execute(sa.select(sa.func.count()).select_from(action_runs)).scalar() == 0
    assert (job.status, job.attempts) == ("done", 1)  # one attempt: a limit hit is not retried
