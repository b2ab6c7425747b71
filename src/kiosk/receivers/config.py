"""The ``receivers:`` section of kiosk.yaml, as pydantic models.

::

    receivers:
      - name: acr                          # unique within its project
        type: azure                        # azure (ACR + Azure DevOps) or generic (any JSON sender)
        secret: {env: KIOSK_ACR_SECRET}    # by reference; part of the URL, never sent by Azure
        project: payments                  # optional: scopes the URL and which watches it refreshes
        auth:                              # optional checks, for senders that can send them
          basic: {username: kiosk, password: {env: KIOSK_ADO_HOOK_PASSWORD}}
          header: {name: X-Kiosk-Token, value: {env: KIOSK_ACR_TOKEN}}
      - name: builds
        type: generic
        secret: {file: secrets/builds}
        mapping:                           # jq over the body: what the event is about
          kind: image                      # git, image or chart (a literal)
          repository: .image.repository
          tag: .image.tag                  # image/chart; for git: refs (a ref or a list of refs)
          id: .id                          # optional: redeliveries with the same id are duplicates

The URL is ``/webhooks/<type>/<sha256(project + name + secret)>`` (see :mod:`kiosk.receivers.urls`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kiosk.actions.model import HEADER_NAME
from kiosk.config.secrets import SecretRef
from kiosk.watches.config import NAME_PATTERN, check_jq

__all__ = ["BasicAuthSpec", "GenericMapping", "HeaderAuthSpec", "ReceiverAuth", "ReceiverSpec"]

#: Secrets are references; a pasted literal must never be echoed in an error.
_MODEL = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class BasicAuthSpec(BaseModel):
    """HTTP basic auth the sender must present (Azure DevOps service hooks can send it)."""

    model_config = _MODEL

    username: StrictStr = Field(min_length=1, max_length=100, pattern=r"^[^:\s]+$")
    password: SecretRef


class HeaderAuthSpec(BaseModel):
    """A header whose value the sender must present (ACR webhooks and Azure DevOps can add headers)."""

    model_config = _MODEL

    name: StrictStr = Field(pattern=HEADER_NAME.pattern)
    value: SecretRef

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() in {"content-length", "content-type", "host", "transfer-encoding", "user-agent"}:
            raise PydanticCustomError("reserved_header", "this header is set by the sender's HTTP stack, not by you")
        return value


class ReceiverAuth(BaseModel):
    """Checks on top of the secret URL; each one given must pass."""

    model_config = _MODEL

    basic: BasicAuthSpec | None = None
    header: HeaderAuthSpec | None = None


class GenericMapping(BaseModel):
    """How a generic receiver reads its sender's JSON: jq expressions over the body."""

    model_config = _MODEL

    kind: Literal["git", "image", "chart"]
    repository: StrictStr
    tag: StrictStr | None = None
    refs: StrictStr | None = None
    id: StrictStr | None = None
    type: StrictStr | None = None

    @field_validator("repository", "tag", "refs", "id", "type")
    @classmethod
    def _jq(cls, value: str | None) -> str | None:
        return None if value is None else check_jq(value)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> GenericMapping:
        if self.kind == "git" and self.refs is None:
            raise PydanticCustomError("mapping", "a git mapping needs refs (a jq expression giving a ref or a list)")
        if self.kind != "git" and self.tag is None:
            raise PydanticCustomError("mapping", "an image or chart mapping needs tag")
        if self.kind != "git" and self.refs is not None:
            raise PydanticCustomError("mapping", "refs applies to git mappings only; images and charts have tag")
        if self.kind == "git" and self.tag is not None:
            raise PydanticCustomError("mapping", "tag applies to image and chart mappings; git has refs")
        return self


class ReceiverSpec(BaseModel):
    """One receiver: a hard-to-guess URL that takes events and refreshes the watches they concern."""

    model_config = _MODEL

    name: StrictStr = Field(pattern=NAME_PATTERN)
    type: Literal["azure", "generic"]
    secret: SecretRef
    project: StrictStr | None = Field(default=None, pattern=NAME_PATTERN)
    auth: ReceiverAuth | None = None
    mapping: GenericMapping | None = None

    @model_validator(mode="after")
    def _mapping_for_generic(self) -> ReceiverSpec:
        if self.type == "generic" and self.mapping is None:
            raise PydanticCustomError("mapping", "a generic receiver needs a mapping (kind, repository, tag or refs)")
        if self.type != "generic" and self.mapping is not None:
            raise PydanticCustomError("mapping", "mapping applies to generic receivers only")
        return self

    @property
    def key(self) -> str:
        """``project/name``, or ``name`` for a receiver without a project (unique in the config)."""
        return f"{self.project}/{self.name}" if self.project else self.name
