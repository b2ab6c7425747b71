"""The master key and the database: one key per database, old installs migrated, re-seal on rotation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from tests.auth.legacy import (
    BODY,
    BODY_SECRETS,
    DELIVERY_ID,
    RUN_ID,
    RUN_SECRETS,
    insert_run_and_body,
    legacy_seal,
    legacy_seal_body,
    prepare_legacy_database,
    stored,
)
from tests.support.servers import serving

from kiosk.actions.secrets import SecretBox
from kiosk.auth.clients import Principal, create_client
from kiosk.auth.keys import KeyRing
from kiosk.auth.keystore import CHECK_ROW, bind_keyring, migrate_legacy_keys, reseal_stored
from kiosk.auth.tokens import issue_token
from kiosk.errors import ConfigError
from kiosk.settings import Settings
from kiosk.store import Database, create_database, upgrade_to_head
from kiosk.store.tables import server_state
from kiosk.web.app import create_app

OLD = KeyRing.from_secrets([b"o" * 32], "KIOSK_SECRET_KEY")
NEW = KeyRing.from_secrets([b"n" * 32], "KIOSK_SECRET_KEY")
ROTATED = KeyRing.from_secrets([b"n" * 32, b"o" * 32], "KIOSK_SECRET_KEY")


def _state(db: Database) -> dict[str, str]:
    with db.connect() as conn:
        return dict(conn.execute(sa.select(server_state.c.key, server_state.c.value)).all())


def test_the_database_records_only_a_check_value_and_refuses_another_key(db: Database) -> None:
    bind_keyring(db, OLD)
    assert _state(db) == {CHECK_ROW: OLD.current.check}
    bind_keyring(db, OLD)  # the same key again: fine
    with pytest.raises(ConfigError) as err:
        bind_keyring(db, NEW)
    assert "is not the key this database uses" in err.value.message and "\n" not in err.value.message
    assert _state(db) == {CHECK_ROW: OLD.current.check}


def test_a_rotated_keyring_moves_the_database_to_the_new_key(db: Database) -> None:
    bind_keyring(db, OLD)
    bind_keyring(db, ROTATED)  # new first, old retired: accepted, and the database now uses the new key
    assert _state(db) == {CHECK_ROW: NEW.current.check}
    bind_keyring(db, NEW)
    with pytest.raises(ConfigError):
        bind_keyring(db, OLD)  # a process still on the old key alone is refused from now on


def test_rotate_reseals_what_the_retired_key_sealed(db: Database) -> None:
    old_box = SecretBox.from_keyring(OLD)
    insert_run_and_body(db, old_box.seal(RUN_ID, RUN_SECRETS), old_box.seal_body(DELIVERY_ID, BODY, BODY_SECRETS))
    box = SecretBox.from_keyring(ROTATED)
    report = reseal_stored(db, box)
    assert (report.runs, report.bodies, report.unopened) == (1, 1, ())
    run_secrets, body, _ = stored(db)
    assert run_secrets.startswith(f"v2:{NEW.current.key_id}:")
    assert body.startswith(b"kb2:" + NEW.current.key_id.encode() + b":")
    # The new key alone opens everything now: the old key may be dropped.
    new_only = SecretBox.from_keyring(NEW)
    assert new_only.open(RUN_ID, run_secrets) == RUN_SECRETS
    assert new_only.open_body(DELIVERY_ID, body).body == BODY
    assert reseal_stored(db, box).resealed == 0  # nothing left to do


def test_seals_no_key_opens_are_reported_not_lost(db: Database) -> None:
    stranger = SecretBox.from_keyring(KeyRing.from_secrets([b"s" * 32]))
    sealed = stranger.seal(RUN_ID, RUN_SECRETS)
    insert_run_and_body(db, sealed, stranger.seal_body(DELIVERY_ID, BODY, BODY_SECRETS))
    report = reseal_stored(db, SecretBox.from_keyring(NEW))
    assert report.resealed == 0 and len(report.unopened) == 2
    assert stored(db)[0] == sealed  # left as it was


def test_a_database_of_the_old_kind_is_migrated(database_url: str) -> None:
    db = create_database(database_url)
    try:
        install = prepare_legacy_database(db)
        upgrade_to_head(db)
        bind_keyring(db, NEW)
        report = migrate_legacy_keys(db, NEW)
        assert report is not None and (report.runs, report.bodies) == (1, 1)
        run_secrets, body, state = stored(db)
        assert state == {CHECK_ROW: NEW.current.check}  # both old key rows are gone
        assert install.sealing_key.hex() not in repr(state) and install.token_key.hex() not in repr(state)
        box = SecretBox.from_keyring(NEW)
        assert box.open(RUN_ID, run_secrets) == RUN_SECRETS
        opened = box.open_body(DELIVERY_ID, body)
        assert opened.body == BODY and list(opened.secret_values) == BODY_SECRETS
        with pytest.raises(ValueError):  # the old key opens nothing any more
            SecretBox(install.sealing_key).open(RUN_ID, run_secrets)
        assert migrate_legacy_keys(db, NEW) is None  # done once
    finally:
        db.dispose()


def test_a_legacy_seal_that_does_not_open_keeps_the_old_key(db: Database) -> None:
    with db.begin() as conn:
        conn.execute(sa.insert(server_state).values(key="action_secrets_key", value=(b"k" * 32).hex()))
    insert_run_and_body(
        db, legacy_seal(b"x" * 32, RUN_ID, RUN_SECRETS), legacy_seal_body(b"k" * 32, DELIVERY_ID, BODY, [])
    )
    with pytest.raises(ConfigError, match="old key stays"):
        migrate_legacy_keys(db, NEW)
    assert "action_secrets_key" in _state(db)


def test_an_old_install_starts_migrated_and_its_old_tokens_stop_working(database_url: str, tmp_path: Path) -> None:
    """Upgrade path end to end: a database of the old kind, a real start, real HTTP."""
    db = create_database(database_url)
    try:
        install = prepare_legacy_database(db)
        client_id, secret = create_client(db, "admin", "from before")
    finally:
        db.dispose()
    old_token = issue_token(install.token_key, Principal(client_id, "admin"), 3600)  # a token of the old key

    settings = Settings.from_env({"KIOSK_HOME": str(tmp_path / "home"), "KIOSK_DATABASE_URL": database_url})
    app = create_app(settings)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        stale = http.get("/v1/blueprints", headers={"Authorization": f"Bearer {old_token}"})
        assert stale.status_code == 401 and stale.json()["error"] == "invalid_token"
        fresh = http.post("/v1/auth/access_token", json={"clientId": client_id, "clientSecret": secret})
        assert fresh.status_code == 200  # the client itself lives on: it just asks for a new token
        token = fresh.json()["accessToken"]
        assert http.get("/v1/blueprints", headers={"Authorization": f"Bearer {token}"}).status_code == 200

        run_secrets, body, state = stored(app.state.db)
        assert set(state) == {CHECK_ROW}  # no key material left in the database
        box = SecretBox.from_keyring(app.state.keyring)
        assert box.open(RUN_ID, run_secrets) == RUN_SECRETS and box.open_body(DELIVERY_ID, body).body == BODY


def test_a_process_with_another_key_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env = {**base_env, "KIOSK_DATABASE_URL": url, "KIOSK_SECRET_KEY": "first-process-key-" + "a" * 32}
    first = subprocess.run(
        [sys.executable, "-m", "kiosk", "keys", "rotate"],
        env={**env, "KIOSK_HOME": str(tmp_path / "one")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr  # the database now uses the first key
    other = {**env, "KIOSK_HOME": str(tmp_path / "two"), "KIOSK_SECRET_KEY": "second-process-key-" + "b" * 32}
    served = subprocess.run(
        [sys.executable, "-m", "kiosk", "serve", "--port", "0", "--log-level", "error"],
        env=other,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 2
    assert served.stderr.startswith("error: the master key from KIOSK_SECRET_KEY"), served.stderr
    assert "is not the key this database uses" in served.stderr and served.stderr.count("\n") == 1
