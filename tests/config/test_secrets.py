"""Secrets by reference: {env: NAME} or {file: PATH}, literals refused, values never printed."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from kiosk.config import Secret, SecretRef, resolve_secret
from kiosk.config.secrets import LITERAL_SECRET_MESSAGE
from kiosk.errors import ConfigError


class Receiver(BaseModel):
    """A stand-in for the config sections that will hold secrets (``signingSecret: {env: X}``)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    signingSecret: SecretRef


def test_env_reference_resolves(tmp_path: Path) -> None:
    ref = SecretRef.model_validate({"env": "HOOK_SECRET"})
    secret = resolve_secret(ref, base_dir=tmp_path, env={"HOOK_SECRET": "s3cr3t-value"})
    assert isinstance(secret, Secret)
    assert secret.reveal() == "s3cr3t-value"


def test_file_reference_is_relative_to_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hook").write_text("from-a-file\n\n")
    ref = Receiver.model_validate({"signingSecret": {"file": "secrets/hook"}}).signingSecret
    secret = resolve_secret(ref, base_dir=tmp_path, env={})
    # Exactly one trailing newline goes (what `echo x > file` adds); the rest is the value.
    assert secret.reveal() == "from-a-file\n"


def test_absolute_file_reference(tmp_path: Path) -> None:
    target = tmp_path / "abs"
    target.write_text("absolute-value")
    ref = SecretRef(file=str(target))
    assert resolve_secret(ref, base_dir=Path("/elsewhere"), env={}).reveal() == "absolute-value"


def test_literal_value_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as info:
        Receiver.model_validate({"signingSecret": "hunter2-literal"})
    errors = info.value.errors(include_url=False, include_input=False)
    assert errors[0]["msg"] == LITERAL_SECRET_MESSAGE
    assert errors[0]["msg"] == "secrets must be references ({env: NAME} or {file: PATH}), not literal values"
    assert "hunter2-literal" not in str(info.value)
    with pytest.raises(ValidationError) as direct:
        SecretRef.model_validate("hunter2-literal")
    assert "hunter2-literal" not in str(direct.value)


@pytest.mark.parametrize(
    "raw",
    [{}, {"env": "A", "file": "b"}, {"env": "A", "extra": 1}, {"env": "not a name"}, {"file": ""}],
)
def test_malformed_references_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SecretRef.model_validate(raw)


def test_missing_env_var_names_the_variable_not_a_value(tmp_path: Path) -> None:
    ref = SecretRef(env="MISSING_SECRET")
    with pytest.raises(ConfigError) as info:
        resolve_secret(ref, base_dir=tmp_path, env={"OTHER": "other-value-123"})
    assert "MISSING_SECRET" in info.value.message
    assert "is not set" in info.value.message
    assert "other-value-123" not in info.value.message


def test_unreadable_file_names_the_reference(tmp_path: Path) -> None:
    ref = SecretRef(file="nope.txt")
    with pytest.raises(ConfigError, match=r"secret \{file: nope\.txt\}: cannot read .*nope\.txt"):
        resolve_secret(ref, base_dir=tmp_path, env={})


def test_empty_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\{env: EMPTY\} is empty"):
        resolve_secret(SecretRef(env="EMPTY"), base_dir=tmp_path, env={"EMPTY": ""})


def test_secret_does_not_print_itself() -> None:
    secret = Secret("do-not-print-me")
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "Secret('***')"
    assert "do-not-print-me" not in f"{secret} {secret!r} {[secret]} { ({'k': secret}) }"
    assert secret == Secret("do-not-print-me") and secret != Secret("other-value")
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_secret_is_exported_from_kiosk_config() -> None:
    import kiosk.config

    assert {"SecretRef", "Secret", "resolve_secret"} <= set(kiosk.config.__all__)
