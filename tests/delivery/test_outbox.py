"""The outbox: deliveries stored with their job, listed, read back and redelivered (both engines)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from tests.support.deliveries import new_delivery

from kiosk.delivery.outbox import (
    DELIVERY_JOB,
    Signing,
    get_delivery,
    list_deliveries,
    redeliver,
)
from kiosk.errors import BadRequest, Conflict, NotFound
from kiosk.store import Database
from kiosk.store.queue import JobQueue
from kiosk.store.tables import deliveries, jobs, server_state


def _create(db: Database, **kw: Any) -> str:
    options: dict[str, Any] = {"method": "post", "body": b'{"a": 1}', **kw}
    with db.begin() as conn:
        return new_delivery(conn, "https://example.com/hook", **options)


def test_create_stores_the_delivery_and_enqueues_its_job(db: Database) -> None:
    signing = Signing("azure", "azureDevOps:myorg", "X-Port-Signature")
    delivery_id = _create(db, signing=signing, body=b'{"b":2}\n')
    assert re.fullmatch(r"msg_[0-9a-f]{26}", delivery_id)
    with db.connect() as conn:
        row = conn.execute(sa.select(deliveries)).one()
        job = conn.execute(sa.select(jobs)).one()
        detail = get_delivery(conn, delivery_id)
    assert row.target == {
        "method": "POST",
        "url": "https://example.com/hook",
        "headers": {"Content-Type": "application/json"},
        "signing": {"scheme": "azure", "secretRef": "azureDevOps:myorg", "header": "X-Port-Signature"},
    }
    assert bytes(row.body) == b'{"b":2}\n'  # the exact bytes
    assert (row.status, row.attempts, row.source, row.run_id) == ("pending", 0, "action", "r_1")
    assert (job.kind, job.payload, job.dedupe_key, job.status) == (
        DELIVERY_JOB,
        {"delivery": delivery_id},
        delivery_id,
        "pending",
    )
    assert detail is not None
    d = detail.delivery
    assert (d.id, d.method, d.url, d.signing, d.body, d.headers) == (
        delivery_id,
        "POST",
        "https://example.com/hook",
        signing,
        b'{"b":2}\n',
        {"Content-Type": "application/json"},
    )
    assert d.created_at.tzinfo is not None
    assert detail.attempts == []


def test_create_is_part_of_the_callers_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError), db.begin() as conn:
        new_delivery(conn, "https://x.example", run_id=None, headers={}, body=b"")
        conn.execute(sa.insert(server_state).values(key="k", value="v"))
        raise RuntimeError("the run could not be stored")
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar() == 0


@pytest.mark.parametrize(
    ("headers", "signing"),
    [
        ({"webhook-id": "mine"}, None),
        ({"Webhook-Signature": "v1,x"}, None),
        ({"X-Port-Signature": "abc"}, None),
        ({"Host": "evil.example"}, None),
        ({"X-Custom-Sig": "abc"}, Signing("azure", "ref", "x-custom-sig")),
    ],
)
def test_headers_kiosk_sets_cannot_be_given(db: Database, headers: dict[str, str], signing: Signing | None) -> None:
    with pytest.raises(BadRequest, match="headers set by kiosk cannot be given"):
        _create(db, headers=headers, signing=signing)


def test_list_newest_first_with_filters_and_cursor(db: Database) -> None:
    ids = [_create(db, run_id=f"r_{n % 2}") for n in range(5)]
    page, cursor = list_deliveries_(db, limit=2)
    assert [d.id for d in page] == ids[::-1][:2]
    assert cursor is not None
    page2, cursor2 = list_deliveries_(db, limit=2, cursor=cursor)
    page3, cursor3 = list_deliveries_(db, limit=2, cursor=cursor2)
    assert [d.id for d in page + page2 + page3] == ids[::-1]
    assert cursor3 is None
    runs, _ = list_deliveries_(db, run_id="r_0")
    assert [d.id for d in runs] == [ids[4], ids[2], ids[0]]
    pending, _ = list_deliveries_(db, status="pending")
    assert len(pending) == 5
    assert list_deliveries_(db, status="dead") == ([], None)
    with pytest.raises(BadRequest):
        list_deliveries_(db, status="lost")
    with pytest.raises(BadRequest):
        list_deliveries_(db, cursor="nonsense")


def list_deliveries_(db: Database, **kw: object) -> tuple[list[object], str | None]:
    with db.connect() as conn:
        page, cursor = list_deliveries(conn, **kw)  # type: ignore[arg-type]
    return list(page), cursor


def test_get_unknown_delivery(db: Database) -> None:
    with db.connect() as conn:
        assert get_delivery(conn, "msg_nope") is None


def test_redeliver_refusals(db: Database) -> None:
    with pytest.raises(NotFound):
        redeliver(db, "msg_nope")
    delivery_id = _create(db)
    with pytest.raises(Conflict, match="already waiting"):
        redeliver(db, delivery_id)
    # In flight: a worker holds the job while the delivery waits for a retry.
    queue = JobQueue(db, "w")
    [job] = queue.claim([DELIVERY_JOB])
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).values(status="failed"))
    with pytest.raises(Conflict, match="being sent right now"):
        redeliver(db, delivery_id)
    queue.dead(job.id, "x")
    assert redeliver(db, delivery_id).status == "pending"
    [again] = queue.claim([DELIVERY_JOB])
    assert (again.id, again.attempts) == (job.id, 1)  # the same job, a fresh schedule


def test_redeliver_recreates_a_missing_job(db: Database) -> None:
    delivery_id = _create(db)
    with db.begin() as conn:
        conn.execute(sa.delete(jobs))  # e.g. finished jobs cleaned up
        conn.execute(sa.update(deliveries).values(status="delivered"))
    redeliver(db, delivery_id)
    [job] = JobQueue(db, "w").claim([DELIVERY_JOB])
    assert job.payload == {"delivery": delivery_id}


@pytest.mark.parametrize(
    "headers",
    [{"Bad Name": "x"}, {"X-Ok": "line\r\nInjected: yes"}, {"X-Ok": "nul\x00"}, {"": "x"}, {"X-Emoji": "🙂"}],
)
def test_headers_that_could_never_be_sent_are_refused(db: Database, headers: dict[str, str]) -> None:
    with pytest.raises(BadRequest, match="not a valid HTTP field"):
        _create(db, headers=headers)
