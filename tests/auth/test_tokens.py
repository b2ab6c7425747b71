"""Bearer tokens and API clients."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kiosk.auth.clients import Principal, bootstrap_admin, create_client, list_clients, verify_client
from kiosk.auth.tokens import issue_token, verify_token
from kiosk.errors import BadRequest, Unauthorized
from kiosk.store import Database

KEY = b"k" * 32


def test_token_round_trip_and_expiry() -> None:
    who = Principal("kc_1", "member")
    token = issue_token(KEY, who, 60, now=1000)
    assert verify_token(KEY, token, now=1059) == who
    with pytest.raises(Unauthorized) as err:
        verify_token(KEY, token, now=1060)
    assert err.value.code == "token_expired"


@pytest.mark.parametrize("mutate", [lambda t: t + "x", lambda t: "x" + t, lambda t: t.split(".")[0], lambda t: ""])
def test_tampered_tokens_are_refused(mutate: object) -> None:
    token = issue_token(KEY, Principal("kc_1", "admin"), 60)
    with pytest.raises(Unauthorized):
        verify_token(KEY, mutate(token))  # type: ignore[operator]
    with pytest.raises(Unauthorized):
        verify_token(b"other-key" * 4, token)


def test_clients_bootstrap_and_verify(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "home" / "credentials"
    pair = bootstrap_admin(db, path)
    assert pair is not None
    assert bootstrap_admin(db, path) is None  # only the very first start
    saved = json.loads(path.read_text())
    assert saved == {"clientId": pair[0], "clientSecret": pair[1]}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert verify_client(db, pair[0], pair[1]) == Principal(pair[0], "admin")
    assert verify_client(db, pair[0], pair[1] + "x") is None
    assert verify_client(db, "kc_unknown", pair[1]) is None
    member_id, member_secret = create_client(db, "member", "ci")
    assert verify_client(db, member_id, member_secret) == Principal(member_id, "member")
    listed = list_clients(db)
    assert {c["role"] for c in listed} == {"admin", "member"}
    assert all(pair[1] not in json.dumps(c, default=str) for c in listed)  # secrets never listed
    with pytest.raises(BadRequest):
        create_client(db, "root")
