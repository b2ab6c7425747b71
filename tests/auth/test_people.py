"""Local users, argon2 passwords, sessions and the pure parts of OIDC, on each engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kiosk.auth import passwords
from kiosk.auth.oidc import (
    OidcError,
    OidcProvider,
    begin_sign_in,
    check_claims,
    open_attempt,
    pkce_challenge,
    role_for,
    seal_attempt,
)
from kiosk.auth.sessions import SessionPolicy, Sessions, csrf_matches
from kiosk.auth.users import authenticate_local, create_user, list_users, set_role, upsert_oidc_user
from kiosk.errors import BadRequest, Conflict, NotFound
from kiosk.store import Database

PASSWORD = "correct horse battery staple"


def test_create_and_authenticate(db: Database) -> None:
    user = create_user(db, " Ann@Example.COM ", "member", PASSWORD, name="Ann")
    assert user.email == "ann@example.com" and user.local
    assert authenticate_local(db, "ANN@example.com", PASSWORD) == user
    assert authenticate_local(db, "ann@example.com", PASSWORD + "!") is None
    assert authenticate_local(db, "nobody@example.com", PASSWORD) is None
    with pytest.raises(Conflict):
        create_user(db, "ann@example.com", "admin", PASSWORD)
    with pytest.raises(BadRequest, match="at least 12"):
        create_user(db, "bob@example.com", "member", "short")
    with pytest.raises(BadRequest, match="role"):
        create_user(db, "bob@example.com", "root", PASSWORD)
    listed = list_users(db)
    assert [(u["email"], u["role"], u["kind"]) for u in listed] == [("ann@example.com", "member", "local")]
    assert listed[0]["lastSignInAt"] is not None
    assert set_role(db, "ann@example.com", "admin").role == "admin"
    with pytest.raises(NotFound):
        set_role(db, "nobody@example.com", "admin")


def test_password_is_stored_as_argon2id(db: Database) -> None:
    create_user(db, "ann@example.com", "member", PASSWORD)
    with db.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users").scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


class _CountingHasher:
    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def verify(self, stored: str, password: str) -> bool:
        self.calls += 1
        return bool(self.real.verify(stored, password))

    def hash(self, password: str) -> str:
        return str(self.real.hash(password))


def test_every_refusal_costs_one_argon2_verification(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    create_user(db, "ann@example.com", "member", PASSWORD)
    upsert_oidc_user(db, "oidc@example.com", "sub-1", None, "member")  # no password at all
    counting = _CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", counting)
    for email, password in (
        ("ann@example.com", "wrong password!!"),
        ("nobody@example.com", PASSWORD),
        ("oidc@example.com", PASSWORD),
        ("not an email", PASSWORD),
        ("ann@example.com", "x" * 5000),
    ):
        before = counting.calls
        assert authenticate_local(db, email, password) is None
        assert counting.calls == before + 1, email


def test_oidc_user_is_refreshed_at_each_sign_in(db: Database) -> None:
    first = upsert_oidc_user(db, "Bob@Example.com", "sub-b", "Bob", "member")
    again = upsert_oidc_user(db, "bob@example.com", "sub-b", None, "admin")
    assert again.id == first.id and again.role == "admin" and again.name == "Bob" and not again.local


def test_sessions_expire_idle_and_absolute(db: Database) -> None:
    user = create_user(db, "ann@example.com", "member", PASSWORD)
    sessions = Sessions(db, SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=2)))
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    sid = sessions.start(user, now=start)
    found = sessions.find(sid, now=start + timedelta(minutes=29))
    assert found is not None and found.user == user
    assert sessions.find(sid + "x", now=start) is None
    # Active every 20 minutes: the idle clock restarts, the absolute one does not.
    for minutes in (40, 60, 80, 100, 119):
        assert sessions.find(sid, now=start + timedelta(minutes=minutes)) is not None, minutes
    assert sessions.find(sid, now=start + timedelta(minutes=121)) is None
    idle = sessions.start(user, now=start)
    assert sessions.find(idle, now=start + timedelta(minutes=31)) is None
    assert sessions.find(idle, now=start) is None  # deleted when found expired


def test_session_end_and_prune(db: Database) -> None:
    user = create_user(db, "ann@example.com", "member", PASSWORD)
    sessions = Sessions(db)
    now = datetime.now(UTC)
    kept, ended = sessions.start(user, now=now), sessions.start(user, now=now)
    sessions.start(user, now=now - timedelta(days=8))
    sessions.end(ended)
    assert sessions.find(ended) is None
    assert sessions.prune(now=now) == 1
    found = sessions.find(kept)
    assert found is not None and csrf_matches(found.csrf_token, found.csrf_token)
    assert not csrf_matches(found.csrf_token, None) and not csrf_matches(found.csrf_token, found.csrf_token[:-1])


PROVIDER = OidcProvider(
    issuer="https://idp.example.com",
    client_id="kiosk",
    client_secret="x",
    admin_groups=frozenset({"admins"}),
    member_groups=frozenset({"devs"}),
    default_role=None,
)


def test_pkce_challenge_is_rfc7636_s256() -> None:
    # RFC 7636 appendix B's example.
    assert pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_sealed_attempt_round_trip_tamper_and_expiry() -> None:
    key = b"k" * 32
    attempt = begin_sign_in("/after", now=1000)
    sealed = seal_attempt(key, attempt)
    assert open_attempt(key, sealed, now=1001) == attempt
    with pytest.raises(OidcError, match="altered"):
        open_attempt(b"o" * 32, sealed, now=1001)
    with pytest.raises(OidcError, match="altered"):
        open_attempt(key, "A" + sealed[1:] if sealed[0] != "A" else "B" + sealed[1:], now=1001)
    with pytest.raises(OidcError, match="expired"):
        open_attempt(key, sealed, now=1000 + 601)
    with pytest.raises(OidcError, match="not found"):
        open_attempt(key, None)


def test_roles_from_groups() -> None:
    assert role_for(PROVIDER, {"groups": ["devs", "admins"]}) == "admin"
    assert role_for(PROVIDER, {"groups": ["devs"]}) == "member"
    with pytest.raises(OidcError, match="none of the groups"):
        role_for(PROVIDER, {"groups": ["sales"]})
    lenient = OidcProvider(issuer="https://i", client_id="k", client_secret="x")
    assert role_for(lenient, {}) == "member"


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": PROVIDER.issuer,
        "aud": "kiosk",
        "sub": "s",
        "exp": 2000,
        "iat": 1000,
        "nonce": "n",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://evil.example"}, "issuer"),
        ({"aud": "someone-else"}, "another client"),
        ({"aud": ["kiosk", "other"], "azp": "other"}, "authorized party"),
        ({"exp": 1000 - 61}, "expired"),
        ({"iat": 1500 + 61}, "future"),
        ({"nbf": 1500 + 61}, "not valid yet"),
        ({"nonce": "other"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"sub": None}, "subject"),
    ],
)
def test_id_token_claims_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(OidcError, match=reason):
        check_claims(PROVIDER, _claims(**changes), "n", now=1000 if "exp" in changes else 1500)


def test_id_token_claims_accepted() -> None:
    check_claims(PROVIDER, _claims(), "n", now=1500)
    check_claims(PROVIDER, _claims(aud=["kiosk", "other"], azp="kiosk"), "n", now=1500)
