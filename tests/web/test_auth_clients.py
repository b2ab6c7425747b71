"""API clients over HTTP: tokens honoured only for live clients with their current role, revocation,
and a database that holds nothing to mint a token or open a seal with."""

from __future__ import annotations

import base64
import binascii
import contextlib
import time
from collections.abc import Iterator

import httpx
import sqlalchemy as sa
from tests.support.deliveries import new_delivery
from tests.support.live_kiosk import LiveServer

from kiosk.actions.secrets import SecretBox
from kiosk.auth.clients import Principal, create_client
from kiosk.auth.keys import TOKEN_LABEL, KeyRing
from kiosk.auth.tokens import issue_token
from kiosk.delivery.outbox import Signing
from kiosk.store import create_database
from kiosk.store.tables import clients, metadata

BLUEPRINT = {"identifier": "service", "title": "Service", "schema": {"properties": {}}}


def _poll(deadline_seconds: float, check: object) -> bool:
    """True once ``check()`` is true, polling until a generous deadline (no timing asserted)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_revoked_client_is_refused_at_once_and_gets_no_new_token(live: LiveServer) -> None:
    member_id, member_secret = create_client(live.app.state.db, "member", "ci")
    token = live.token_for(member_id, member_secret)
    with live.client(token) as member:
        assert member.get("/v1/blueprints").status_code == 200
        refused = member.post(f"/v1/auth/clients/{member_id}/revoke")
        assert refused.status_code == 403 and refused.json()["error"] == "admin_required"

        revoked = live.admin.post(f"/v1/auth/clients/{member_id}/revoke")
        assert revoked.status_code == 200, revoked.text
        body = revoked.json()
        assert body["ok"] is True and body["client"]["clientId"] == member_id and body["client"]["revokedAt"]

        after = member.get("/v1/blueprints")  # the very next request on the process that revoked
        assert after.status_code == 401 and after.json()["error"] == "client_revoked"
    with live.client() as anonymous:
        again = anonymous.post("/v1/auth/access_token", json={"clientId": member_id, "clientSecret": member_secret})
    assert again.status_code == 401 and again.json()["error"] == "invalid_credentials"

    listed = {c["clientId"]: c for c in live.admin.get("/v1/auth/clients").json()["clients"]}
    assert listed[member_id]["revokedAt"] == body["client"]["revokedAt"] and listed[member_id]["role"] == "member"
    assert live.admin.post(f"/v1/auth/clients/{member_id}/revoke").json()["client"] == body["client"]  # no change
    missing = live.admin.post("/v1/auth/clients/kc_nobody/revoke")
    assert missing.status_code == 404 and missing.json()["error"] == "client_not_found"


def test_the_last_active_admin_cannot_be_revoked(live: LiveServer) -> None:
    other_id, other_secret = create_client(live.app.state.db, "admin", "second admin")
    with live.client(live.token_for(other_id, other_secret)) as other:
        assert other.post("/v1/blueprints", json=BLUEPRINT).status_code in (200, 201)
    assert live.admin.post(f"/v1/auth/clients/{other_id}/revoke").status_code == 200
    me = live.admin.get("/v1/auth/clients").json()["clients"][0]["clientId"]  # the bootstrap admin
    last = live.admin.post(f"/v1/auth/clients/{me}/revoke")
    assert last.status_code == 409 and last.json()["error"] == "last_admin"
    assert "last active admin" in last.json()["message"]
    assert live.admin.get("/v1/blueprints").status_code == 200  # still in charge


def test_a_token_carries_the_clients_current_role(live: LiveServer) -> None:
    admin_id, admin_secret = create_client(live.app.state.db, "admin", "soon a member")
    with live.client(live.token_for(admin_id, admin_secret)) as client:
        assert client.post("/v1/blueprints", json=BLUEPRINT).status_code in (200, 201)
        with live.app.state.db.begin() as conn:  # demoted behind the server's back
            conn.execute(sa.update(clients).where(clients.c.client_id == admin_id).values(role="member"))
        demoted = {"identifier": "team", "title": "Team", "schema": {"properties": {}}}
        assert _poll(10, lambda: client.post("/v1/blueprints", json=demoted).status_code == 403)
        assert client.get("/v1/blueprints").status_code == 200  # still a member


def test_a_validly_signed_token_for_no_client_is_refused(live: LiveServer) -> None:
    forged = issue_token(live.app.state.token_key, Principal("kc_forged", "admin"), 600)
    with live.client(forged) as client:
        answer = client.get("/v1/blueprints")
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"


def _values(database_url: str) -> Iterator[bytes]:
    """Every value stored in every table, as bytes (what someone holding the database can read)."""
    db = create_database(database_url)
    try:
        with db.connect() as conn:
            for table in metadata.sorted_tables:
                for row in conn.execute(sa.select(table)).all():
                    for value in row:
                        if isinstance(value, bytes | memoryview):
                            yield bytes(value)
                        elif value is not None:
                            yield str(value).encode()
    finally:
        db.dispose()


def _key_candidates(value: bytes) -> set[bytes]:
    """``value`` and what it decodes to (hex, base64), and each of those taken as a master key."""
    found = {value}
    text = value.decode(errors="ignore")
    for part in [text, *text.replace(":", " ").replace(",", " ").split()]:
        with contextlib.suppress(ValueError):
            found.add(bytes.fromhex(part))
        with contextlib.suppress(binascii.Error, ValueError):
            found.add(base64.b64decode(part + "=" * (-len(part) % 4), validate=True))
    derived = {KeyRing.from_secrets([c]).derive(TOKEN_LABEL) for c in found if c}
    return {c for c in found if c} | derived


def test_reading_the_database_is_not_enough_to_mint_a_token_or_open_a_seal(live: LiveServer) -> None:
    db = live.app.state.db
    box = SecretBox.from_keyring(live.app.state.keyring)  # the server's own box
    with db.begin() as conn:
        delivery_id = new_delivery(
            conn,
            "http://127.0.0.1:9/",
            run_id=None,
            headers={},
            body=b'{"token":"db-reader-cannot-see"}',
            signing=Signing("webhook", "webhook"),
            seal=lambda did, clear: box.seal_body(did, clear, ["db-reader-cannot-see"]),
        )
    admin_id = live.admin.get("/v1/auth/clients").json()["clients"][0]["clientId"]
    sealed = next(v for v in _values(live.settings.database_url) if v.startswith(b"kb2:"))

    candidates: set[bytes] = set()
    for value in _values(live.settings.database_url):
        candidates |= _key_candidates(value)
    assert len(candidates) > 10
    with httpx.Client(base_url=live.base_url, timeout=30) as client:
        for key in candidates:
            for who in (Principal("kc_forged", "admin"), Principal(admin_id, "admin")):
                forged = issue_token(key, who, 600)
                answer = client.get("/v1/blueprints", headers={"Authorization": f"Bearer {forged}"})
                assert answer.status_code == 401, f"a token signed with a value from the database was accepted: {key!r}"
            if len(key) in (16, 24, 32):
                for opener in (SecretBox(key, key_id=box.key_id), SecretBox(key, key_id="k0", legacy=key)):
                    try:
                        opener.open_body(delivery_id, sealed)
                    except ValueError:
                        continue
                    raise AssertionError(f"a sealed body opened with a value from the database: {key!r}")
    assert box.open_body(delivery_id, sealed).body == b'{"token":"db-reader-cannot-see"}'  # the key is elsewhere
