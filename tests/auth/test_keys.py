"""The master key: where it comes from, the keys derived from it, rotation of token keys."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from kiosk.auth.clients import Principal
from kiosk.auth.keys import (
    CHECK_LABEL,
    SEAL_LABEL,
    TOKEN_LABEL,
    KeyRing,
    derive_key,
    load_keyring,
)
from kiosk.auth.tokens import issue_token, verify_token
from kiosk.errors import ConfigError, Unauthorized
from kiosk.settings import Settings

OLD = "old-master-secret-" + "o" * 32
NEW = "new-master-secret-" + "n" * 32


def test_each_purpose_gets_its_own_key() -> None:
    master = b"m" * 32
    keys = {derive_key(master, label) for label in (TOKEN_LABEL, SEAL_LABEL, CHECK_LABEL, b"kiosk run report tokens")}
    assert len(keys) == 4 and all(len(k) == 32 for k in keys)
    assert derive_key(master, TOKEN_LABEL) == derive_key(master, TOKEN_LABEL)  # stable: every process agrees
    assert derive_key(b"n" * 32, TOKEN_LABEL) != derive_key(master, TOKEN_LABEL)
    ring = KeyRing.from_secrets([master])
    assert ring.derive(TOKEN_LABEL) == derive_key(master, TOKEN_LABEL)
    # The public facts of a key (its id, its check value) are not any of its keys.
    assert master not in repr(ring).encode()
    assert bytes.fromhex(ring.current.check) not in keys


def test_a_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_keyring(home)
    path = home / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.source == str(path) and not first.retired
    again = load_keyring(home)
    assert again.current.check == first.current.check  # the same key on every start


def test_a_loose_key_file_is_repaired_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "home"
    load_keyring(home)
    path = home / "secret.key"
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="kiosk.auth"):
        load_keyring(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "readable by others" in caplog.text


def test_keys_from_the_environment_and_from_a_file(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "unused", secret_key=f" {NEW} , {OLD} ")
    assert ring.source == "KIOSK_SECRET_KEY" and len(ring.keys) == 2
    assert ring.current.secret == NEW.encode() and ring.retired[0].secret == OLD.encode()
    assert not (tmp_path / "unused" / "secret.key").exists()  # no key file when a key is given

    key_file = tmp_path / "kiosk.key"
    key_file.write_text(f"# rotated on 2026-12-06\n{NEW}\n\n{OLD}\n")
    from_file = load_keyring(tmp_path / "unused", secret_key_file=key_file)
    assert [k.check for k in from_file.keys] == [k.check for k in ring.keys]


@pytest.mark.parametrize(
    ("secret_key", "message"),
    [
        ("too-short", "at least 32"),
        (f"{NEW},{NEW}", "repeats"),
        (" , ", "holds no key"),
    ],
)
def test_bad_keys_are_one_line_config_errors(tmp_path: Path, secret_key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_keyring(tmp_path, secret_key=secret_key)
    assert "\n" not in err.value.message and "KIOSK_SECRET_KEY" in err.value.message


def test_env_and_file_together_or_a_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        load_keyring(tmp_path, secret_key=NEW, secret_key_file=tmp_path / "k")
    with pytest.raises(ConfigError, match="cannot read"):
        load_keyring(tmp_path, secret_key_file=tmp_path / "missing.key")


def test_tokens_of_a_retired_key_stay_valid_until_they_expire() -> None:
    old_ring = KeyRing.from_secrets([OLD.encode()])
    rotated = KeyRing.from_secrets([NEW.encode(), OLD.encode()])
    who = Principal("kc_1", "admin")
    token = issue_token(old_ring.derive(TOKEN_LABEL), who, 60, now=1000)
    assert verify_token(rotated.derive_all(TOKEN_LABEL), token, now=1030) == who
    with pytest.raises(Unauthorized) as expired:
        verify_token(rotated.derive_all(TOKEN_LABEL), token, now=1060)
    assert expired.value.code == "token_expired"
    with pytest.raises(Unauthorized):  # once the old key is dropped, its tokens are gone
        verify_token(KeyRing.from_secrets([NEW.encode()]).derive_all(TOKEN_LABEL), token, now=1030)


def test_settings_read_the_key_source_and_never_show_the_key(tmp_path: Path) -> None:
    key_file = tmp_path / "mounted.key"
    key_file.write_text(NEW + "\n")
    from_file = Settings.from_env({"KIOSK_HOME": str(tmp_path / "h"), "KIOSK_SECRET_KEY_FILE": str(key_file)})
    assert from_file.keyring().current.secret == NEW.encode()
    from_env = Settings.from_env({"KIOSK_HOME": str(tmp_path / "h"), "KIOSK_SECRET_KEY": f"{NEW},{OLD}"})
    assert len(from_env.keyring().keys) == 2
    assert NEW not in repr(from_env) and NEW not in repr(from_env.keyring())
    assert not (tmp_path / "h" / "secret.key").exists()
