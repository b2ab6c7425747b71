"""kiosk's files are private: KIOSK_HOME 0700, the SQLite database and its -wal/-shm 0600, the key
file 0600; created so, and repaired with a warning when an older version left them looser."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import httpx
import pytest
from tests.support.kiosk_server import KioskServer

from kiosk.store.engine import create_database, private_sqlite_files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _start(home: Path, config: Path) -> KioskServer:
    """A real server on a SQLite database in ``home``, with the key file kiosk generates there."""
    url = f"sqlite:///{home / 'kiosk.db'}"
    process = KioskServer(home, url, config, ("", ""), env={"KIOSK_SECRET_KEY": ""})
    process.start()
    credentials = json.loads((home / "credentials").read_text())
    process.admin = (credentials["clientId"], credentials["clientSecret"])
    return process


def test_a_real_start_leaves_every_file_private(tmp_path: Path) -> None:
    config = tmp_path / "kiosk.yaml"
    config.write_text("blueprints: []\n")
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # as a looser umask or an older version left it
    process = _start(home, config)
    try:
        created = process.client.post("/v1/blueprints", json={"identifier": "svc", "title": "Svc", "schema": {}})
        assert created.status_code in (200, 201), created.text  # a write: the WAL is in use
        assert _mode(home) == 0o700
        for name in ("kiosk.db", "kiosk.db-wal", "kiosk.db-shm", "secret.key", "credentials"):
            assert _mode(home / name) == 0o600, name
        assert "KIOSK_HOME was open to others" in process.output()
    finally:
        process.stop()

    # An older kiosk left everything readable: the next start repairs it and says so.
    home.chmod(0o755)
    (home / "kiosk.db").chmod(0o644)
    (home / "secret.key").chmod(0o644)
    process = _start(home, config)
    try:
        assert httpx.get(f"{process.base_url}/healthz").status_code == 200
        assert _mode(home) == 0o700 and _mode(home / "kiosk.db") == 0o600 and _mode(home / "secret.key") == 0o600
        for name in ("kiosk.db-wal", "kiosk.db-shm"):
            assert _mode(home / name) == 0o600, name
        output = process.output()
        assert "the database file was readable by others; setting it to 0600" in output
        assert "the key file was readable by others" in output
    finally:
        process.stop()


def test_loose_wal_and_shm_files_are_repaired_when_opened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "kiosk.db"
    for suffix in ("", "-wal", "-shm"):
        file = tmp_path / f"kiosk.db{suffix}"
        file.write_bytes(b"")
        file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="kiosk.store"):
        private_sqlite_files(f"sqlite:///{path}")
    assert [_mode(tmp_path / f"kiosk.db{s}") for s in ("", "-wal", "-shm")] == [0o600] * 3
    assert caplog.text.count("readable by others") == 3


def test_a_new_database_file_is_created_private(tmp_path: Path) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        db.ping()
        assert _mode(tmp_path / "new.db") == 0o600
    finally:
        db.dispose()
