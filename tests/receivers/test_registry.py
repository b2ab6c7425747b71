"""The receivers as their secrets stand now: lookup by path, rotation retiring old URLs at once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kiosk.receivers.config import ReceiverSpec
from kiosk.receivers.registry import ReceiverRegistry
from kiosk.receivers.urls import receiver_digest


def spec(**fields: Any) -> ReceiverSpec:
    return ReceiverSpec.model_validate({"name": "acr", "type": "azure", "secret": {"env": "S"}, **fields})


def test_resolve_finds_the_receiver_by_type_and_digest() -> None:
    registry = ReceiverRegistry([spec()], base_dir=Path("."), env={"S": "one"})
    digest = receiver_digest(None, "acr", "one")
    found = registry.resolve("azure", digest)
    assert found is not None and found.name == "acr" and found.path == f"/webhooks/azure/{digest}"
    assert registry.resolve("generic", digest) is None  # right digest, wrong type
    assert registry.resolve("azure", "0" * 64) is None
    assert registry.resolve("azure", digest[:-1]) is None
    assert registry.resolve("azure", "\x00" * 64) is None


def test_same_name_in_two_projects_are_two_receivers_with_their_own_urls() -> None:
    registry = ReceiverRegistry(
        [spec(project="payments"), spec(project="platform")], base_dir=Path("."), env={"S": "shared"}
    )
    pay = registry.resolve("azure", receiver_digest("payments", "acr", "shared"))
    plat = registry.resolve("azure", receiver_digest("platform", "acr", "shared"))
    assert pay is not None and plat is not None
    assert (pay.project, plat.project) == ("payments", "platform") and pay.path != plat.path
    assert registry.find("acr", "payments") is pay and registry.find("acr", None) is None


def test_rotating_a_file_secret_retires_the_old_url_at_once(tmp_path: Path) -> None:
    secret = tmp_path / "acr.secret"
    secret.write_text("first\n")
    registry = ReceiverRegistry([spec(secret={"file": "acr.secret"})], base_dir=tmp_path, env={})
    old = receiver_digest(None, "acr", "first")
    assert registry.resolve("azure", old) is not None
    secret.write_text("second-and-longer\n")
    assert registry.resolve("azure", old) is None
    assert registry.resolve("azure", receiver_digest(None, "acr", "second-and-longer")) is not None


def test_rotation_by_atomic_rename_of_a_same_length_secret(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("aaaa")
    registry = ReceiverRegistry([spec(secret={"file": "s"})], base_dir=tmp_path, env={})
    (tmp_path / "s.new").write_text("bbbb")
    os.replace(tmp_path / "s.new", tmp_path / "s")  # how secret mounts are updated: a new inode
    assert registry.resolve("azure", receiver_digest(None, "acr", "aaaa")) is None
    assert registry.resolve("azure", receiver_digest(None, "acr", "bbbb")) is not None


def test_losing_a_file_secret_disables_the_receiver(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("one")
    registry = ReceiverRegistry([spec(secret={"file": "s"})], base_dir=tmp_path, env={})
    (tmp_path / "s").unlink()  # unreadable: the receiver is disabled, not left on its last value
    assert registry.resolve("azure", receiver_digest(None, "acr", "one")) is None
    assert registry.current()[0].path is None
    (tmp_path / "s").write_text("")  # empty is unreadable too
    assert registry.current()[0].path is None
    (tmp_path / "s").write_text("two")
    assert registry.resolve("azure", receiver_digest(None, "acr", "two")) is not None


def test_an_env_secret_is_read_once() -> None:
    env = {"S": "one"}
    registry = ReceiverRegistry([spec()], base_dir=Path("."), env=env)
    env["S"] = "two"  # cannot happen to a running process; shown to pin the behaviour down
    assert registry.resolve("azure", receiver_digest(None, "acr", "one")) is not None


def test_the_url_digest_is_masked_in_logs() -> None:
    from kiosk.logs import redact_text

    ReceiverRegistry([spec()], base_dir=Path("."), env={"S": "log-me-not"})
    digest = receiver_digest(None, "acr", "log-me-not")
    line = redact_text(f'127.0.0.1 - "POST /webhooks/azure/{digest} HTTP/1.1" 200')
    assert digest not in line and "log-me-not" not in redact_text("secret log-me-not")
