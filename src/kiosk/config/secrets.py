"""Secrets by reference: ``{env: NAME}`` or ``{file: PATH}``, never a literal in kiosk.yaml.

kiosk.yaml is meant to live in a repository, so a secret written into it is a leaked secret. A
secret field therefore accepts only a reference, and refuses a plain string outright rather than
"helpfully" using it. References are resolved late (when the server starts or the command runs),
into a :class:`Secret` whose ``repr``/``str`` cannot print the value, and which is registered
with the log redaction filter so it is masked even if some code logs it by mistake.

Error messages name the reference (the variable or the path), never the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from kiosk.errors import ConfigError
from kiosk.logs import register_secret

__all__ = ["LITERAL_SECRET_MESSAGE", "Secret", "SecretRef", "resolve_secret"]

LITERAL_SECRET_MESSAGE = "secrets must be references ({env: NAME} or {file: PATH}), not literal values"  # noqa: S105 - a message, not a secret


class Secret:
    """A resolved secret value that will not print itself.

    Not a ``str`` subclass on purpose: string formatting, concatenation or JSON encoding of a
    ``str`` subclass would expose the value; here the caller must ask with :meth:`reveal`.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The clear value, for the one place that needs it (signing, an outbound header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        # Pickling would write the clear value to wherever the pickle goes.
        raise TypeError("a Secret cannot be pickled")


class SecretRef(BaseModel):
    """Where a secret lives: exactly one of ``env`` (a variable name) or ``file`` (a path).

    A relative ``file`` is resolved against the directory of the config file that names it.
    """

    # The rejected input may be the very secret: keep it out of ValidationError's text. (A model
    # that embeds a SecretRef must set this too; pydantic applies the outermost model's setting.)
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    env: str | None = Field(default=None, min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _refuse_literals(cls, data: Any) -> Any:
        if isinstance(data, str | int | float | bytes) and not isinstance(data, bool):
            # No input echoed back: the "input" here is the very secret we must not print.
            raise PydanticCustomError("secret_literal", LITERAL_SECRET_MESSAGE)
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise PydanticCustomError("secret_reference", "give exactly one of {env: NAME} or {file: PATH}")
        return self

    def describe(self) -> str:
        """The reference as the user wrote it, for error messages."""
        return f"{{env: {self.env}}}" if self.env is not None else f"{{file: {self.file}}}"


def resolve_secret(ref: SecretRef, *, base_dir: Path, env: Mapping[str, str]) -> Secret:
    """Read the value ``ref`` points to.

    One trailing newline is stripped because ``echo secret > file`` and most secret mounts add
    one; anything else is kept verbatim. An unset variable, an unreadable file or an empty value
    is a :class:`ConfigError` naming the reference.
    """
    if ref.env is not None:
        if ref.env not in env:
            raise ConfigError(f"secret {ref.describe()}: environment variable {ref.env} is not set")
        value = env[ref.env]
    else:
        assert ref.file is not None
        path = Path(ref.file).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigError(f"secret {ref.describe()}: cannot read {path}: {reason}") from None
    if value.endswith("\n"):
        value = value[:-2] if value.endswith("\r\n") else value[:-1]
    if not value:
        raise ConfigError(f"secret {ref.describe()} is empty")
    return Secret(value)
