"""Live clients: a token is honoured only while its client exists, is not revoked, with its current
role, and a revocation made on one process is honoured by every process within seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from tests.support.kiosk_server import KioskServer, prepare_database

from kiosk.auth.clients import Principal, create_client, revoke_client
from kiosk.auth.live import LiveClients
from kiosk.errors import Conflict, NotFound, Unauthorized
from kiosk.store import Database, create_database
from kiosk.store.tables import clients


def test_the_snapshot_follows_the_table(db: Database) -> None:
    admin_id, _ = create_client(db, "admin")
    member_id, _ = create_client(db, "member")
    live = LiveClients(db, max_age=3600)  # no refresher thread: reloads only when told, or on a miss
    live.reload()
    assert live.principal(Principal(member_id, "member")) == Principal(member_id, "member")
    # A token claiming admin for a member gets member: the role is the client's, not the token's.
    assert live.principal(Principal(member_id, "admin")) == Principal(member_id, "member")

    revoke_client(db, member_id)
    assert live.principal(Principal(member_id, "member")).role == "member"  # not reloaded yet
    live.reload()
    with pytest.raises(Unauthorized) as revoked:
        live.principal(Principal(member_id, "member"))
    assert revoked.value.code == "client_revoked"

    newcomer, _ = create_client(db, "member")  # made elsewhere right after the last reload
    assert live.principal(Principal(newcomer, "member")).client_id == newcomer  # a miss reloads once
    with pytest.raises(Unauthorized) as missing:
        live.principal(Principal("kc_forged", "admin"))
    assert missing.value.code == "invalid_token"
    assert live.principal(Principal(admin_id, "admin")).is_admin


def test_revoke_client_rules(db: Database) -> None:
    admin_id, _ = create_client(db, "admin")
    with pytest.raises(Conflict) as last:
        revoke_client(db, admin_id)
    assert last.value.code == "last_admin"
    with pytest.raises(NotFound):
        revoke_client(db, "kc_nobody")
    second, _ = create_client(db, "admin")
    assert revoke_client(db, admin_id)["revoked_at"] is not None
    with pytest.raises(Conflict):
        revoke_client(db, second)  # now the last one


def test_the_refresher_picks_up_changes_made_elsewhere(db: Database) -> None:
    member_id, _ = create_client(db, "member")
    live = LiveClients(db, max_age=0.2).start()
    try:
        with db.begin() as conn:  # another process changed the role
            conn.execute(sa.update(clients).where(clients.c.client_id == member_id).values(role="admin"))
        assert _poll(10, lambda: live.principal(Principal(member_id, "member")).is_admin)
    finally:
        live.stop()


def _poll(deadline_seconds: float, check: Callable[[], bool]) -> bool:
    """True once ``check()`` is true, polling until a generous deadline (no timing asserted)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def two_processes(database_url: str, tmp_path: Path) -> Iterator[tuple[KioskServer, KioskServer, str]]:
    config = tmp_path / "kiosk.yaml"
    config.write_text("blueprints: []\n")
    admin = prepare_database(database_url)
    first = KioskServer(tmp_path / "one", database_url, config, admin)
    second = KioskServer(tmp_path / "two", database_url, config, admin)
    try:
        first.launch()
        second.launch()
        first.wait_ready()
        second.wait_ready()
        yield first, second, database_url
    finally:
        first.stop()
        second.stop()


def test_a_revocation_on_one_process_is_honoured_by_the_other(
    two_processes: tuple[KioskServer, KioskServer, str],
) -> None:
    first, second, database_url = two_processes
    db = create_database(database_url)
    try:
        member_id, member_secret = create_client(db, "member", "ci")
    finally:
        db.dispose()
    # A token issued by the first process is good on the second (they share the master key).
    token = httpx.post(
        f"{first.base_url}/v1/auth/access_token", json={"clientId": member_id, "clientSecret": member_secret}
    ).json()["accessToken"]
    headers = {"Authorization": f"Bearer {token}"}
    seen = httpx.get(f"{second.base_url}/v1/blueprints", headers=headers)
    assert seen.status_code == 200, seen.text

    revoked = first.client.post(f"/v1/auth/clients/{member_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert httpx.get(f"{first.base_url}/v1/blueprints", headers=headers).status_code == 401  # at once here
    assert _poll(15, lambda: httpx.get(f"{second.base_url}/v1/blueprints", headers=headers).status_code == 401)
    answer = httpx.get(f"{second.base_url}/v1/blueprints", headers=headers)
    assert answer.json()["error"] == "client_revoked"
