"""``kiosk credentials create|list|revoke`` and ``kiosk keys rotate``, end to end on a SQLite database."""

from __future__ import annotations

from pathlib import Path

from tests.auth.legacy import BODY, BODY_SECRETS, DELIVERY_ID, RUN_ID, RUN_SECRETS, insert_run_and_body, stored
from typer.testing import CliRunner

from kiosk.actions.secrets import SecretBox
from kiosk.auth.clients import create_client, verify_client
from kiosk.auth.keys import KeyRing
from kiosk.cli.app import app
from kiosk.store import create_database, upgrade_to_head

runner = CliRunner()
OLD = "old-cli-master-key-" + "o" * 32
NEW = "new-cli-master-key-" + "n" * 32


def test_credentials_create_and_list(home: Path) -> None:
    created = runner.invoke(app, ["credentials", "create", "--role", "member", "--name", "ci"])
    assert created.exit_code == 0, created.output
    fields = dict(line.split(":", 1) for line in created.stdout.splitlines())
    client_id, secret = fields["client id"].strip(), fields["client secret"].strip()
    assert client_id.startswith("kc_") and len(secret) >= 32

    listed = runner.invoke(app, ["credentials", "list"])
    assert listed.exit_code == 0, listed.output
    assert client_id in listed.stdout and "member" in listed.stdout and "ci" in listed.stdout
    assert secret not in listed.stdout


def test_credentials_role_is_checked(home: Path) -> None:
    result = runner.invoke(app, ["credentials", "create", "--role", "root"])
    assert result.exit_code == 2
    assert "--role" in result.output


def test_unreachable_database_is_one_line(home: Path) -> None:
    result = runner.invoke(app, ["credentials", "list"], env={"KIOSK_DATABASE_URL": "postgresql://x@127.0.0.1:1/none"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: database: ")
    assert result.stderr.count("\n") == 1


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
