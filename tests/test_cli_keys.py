"""``kiosk credentials revoke`` and ``kiosk keys rotate``, end to end on a SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.auth.legacy import BODY, BODY_SECRETS, DELIVERY_ID, RUN_ID, RUN_SECRETS, insert_run_and_body, stored
from typer.testing import CliRunner

from kiosk.actions.secrets import SecretBox
from kiosk.auth.clients import create_client, verify_client
from kiosk.auth.keys import KeyRing
from kiosk.cli import app
from kiosk.store import create_database, upgrade_to_head

runner = CliRunner()
OLD = "old-cli-master-key-" + "o" * 32
NEW = "new-cli-master-key-" + "n" * 32


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KIOSK_HOME", str(home))
    for name in ("KIOSK_DATABASE_URL", "KIOSK_CONFIG", "KIOSK_SECRET_KEY", "KIOSK_SECRET_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_credentials_revoke_and_list(home: Path) -> None:
    created = runner.invoke(app, ["credentials", "create", "--role", "member", "--name", "ci"])
    assert created.exit_code == 0, created.output
    fields = dict(line.split(":", 1) for line in created.stdout.splitlines())
    client_id, secret = fields["client id"].strip(), fields["client secret"].strip()

    revoked = runner.invoke(app, ["credentials", "revoke", client_id])
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout.startswith(f"revoked {client_id} (member) at ")
    listed = runner.invoke(app, ["credentials", "list"], terminal_width=200)
    assert "revoked" in listed.stdout and revoked.stdout.split(" at ")[1].strip()[:10] in listed.stdout

    db = create_database(f"sqlite:///{home / 'kiosk.db'}")
    try:
        assert verify_client(db, client_id, secret) is None  # the secret gets no token any more
    finally:
        db.dispose()
    missing = runner.invoke(app, ["credentials", "revoke", "kc_nobody"])
    assert missing.exit_code == 1 and missing.stderr == "error: no API client 'kc_nobody'\n"


def test_the_last_admin_cannot_be_revoked_from_the_cli(home: Path) -> None:
    home.mkdir(mode=0o700)
    db = create_database(f"sqlite:///{home / 'kiosk.db'}")
    try:
        upgrade_to_head(db)
        admin_id, _ = create_client(db, "admin")
    finally:
        db.dispose()
    result = runner.invoke(app, ["credentials", "revoke", admin_id])
    assert result.exit_code == 1 and "last active admin" in result.stderr


def test_keys_rotate_reseals_under_the_new_key(home: Path) -> None:
    first = runner.invoke(app, ["keys", "rotate"], env={"KIOSK_SECRET_KEY": OLD})
    assert first.exit_code == 0, first.output  # a new database: records the key, nothing to re-seal
    assert "re-sealed 0 run input set(s) and 0 delivery body(ies)" in first.stdout
    db = create_database(f"sqlite:///{home / 'kiosk.db'}")
    try:
        old_box = SecretBox.from_keyring(KeyRing.from_secrets([OLD.encode()]))
        insert_run_and_body(db, old_box.seal(RUN_ID, RUN_SECRETS), old_box.seal_body(DELIVERY_ID, BODY, BODY_SECRETS))

        rotated = runner.invoke(app, ["keys", "rotate"], env={"KIOSK_SECRET_KEY": f"{NEW},{OLD}"})
        assert rotated.exit_code == 0, rotated.output
        assert "re-sealed 1 run input set(s) and 1 delivery body(ies)" in rotated.stdout
        assert f"retired key(s) {old_box.key_id}" in rotated.stdout and "1 hour(s)" in rotated.stdout

        new_only = SecretBox.from_keyring(KeyRing.from_secrets([NEW.encode()]))
        run_secrets, body, _ = stored(db)
        assert new_only.open(RUN_ID, run_secrets) == RUN_SECRETS
        assert new_only.open_body(DELIVERY_ID, body).body == BODY
    finally:
        db.dispose()
    refused = runner.invoke(app, ["keys", "rotate"], env={"KIOSK_SECRET_KEY": OLD})  # the old key alone
    assert refused.exit_code == 2 and "is not the key this database uses" in refused.stderr
