"""Self-service action documents in Port's format: parsing, normalising and checking them.

Pure (no IO), so the API, ``kiosk apply`` and the tests share one definition of a valid action.
Checks that need the database or the configuration (the blueprint exists, the Azure DevOps
organisation is configured) are the service's, made on top of :func:`parse_action`.

Port's older form — ``trigger: "DAY-2"`` with ``userInputs`` and ``blueprint`` beside it — is
accepted and normalised to the current one, so documents pasted from either era work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from kiosk.actions.inputs import UserInputs, compile_user_inputs
from kiosk.actions.payload import check_templates
from kiosk.catalog.identifiers import SCHEMA_IDENTIFIER
from kiosk.catalog.validation import is_url
from kiosk.errors import ValidationFailed

__all__ = [
    "AZURE_ORG_NAME",
    "HEADER_NAME",
    "Action",
    "ActionDoc",
    "AzureDevOpsInvocation",
    "WebhookInvocation",
    "parse_action",
]

Operation = Literal["CREATE", "DAY-2", "DELETE"]
OPERATIONS: tuple[str, ...] = ("CREATE", "DAY-2", "DELETE")
#: Identifiers the routes use as path words (``/v1/actions/runs``), so no action may take them.
RESERVED_IDENTIFIERS = frozenset({"runs"})
#: Azure DevOps organisation names: letters, digits and hyphens (they are a URL path segment).
AZURE_ORG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,49}$")
#: Incoming-webhook names as Azure accepts them; also a URL path segment.
AZURE_WEBHOOK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
#: An HTTP header name (RFC 9110 token).
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")


class SelfServiceTrigger(BaseModel):
    """``trigger`` of a self-service action: who may start it on what."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["self-service"]
    operation: Operation
    blueprintIdentifier: str = Field(pattern=SCHEMA_IDENTIFIER.pattern, min_length=1, max_length=100)
    userInputs: dict[str, Any] = Field(default_factory=lambda: {"properties": {}, "required": []})


class AzureDevOpsInvocation(BaseModel):
    """POST the payload to an Azure Pipelines incoming webhook of a configured organisation."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["AZURE-DEVOPS"]
    org: str = Field(pattern=AZURE_ORG_NAME.pattern)
    webhook: str = Field(pattern=AZURE_WEBHOOK_NAME.pattern)
    #: A body template; Port calls it ``payload`` on this method, so both names are accepted.
    body: Any = Field(default=None, validation_alias=AliasChoices("body", "payload"))


class WebhookInvocation(BaseModel):
    """Send the payload to any HTTP endpoint, signed with kiosk's webhook secret."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["WEBHOOK"]
    url: str = Field(max_length=2000)
    method: Literal["POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    #: Port's flag: the run's outcome is the endpoint's answer (the delivery layer reports it).
    synchronized: StrictBool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not is_url(value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if any(c in text for c in "\r\n\x00"):
                raise ValueError(f"the value of {name!r} must not contain line breaks")
        return value


Invocation = Annotated[AzureDevOpsInvocation | WebhookInvocation, Field(discriminator="type")]


class ActionDoc(BaseModel):
    """A Port self-service action. Unknown keys are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(pattern=SCHEMA_IDENTIFIER.pattern, min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=1000)
    icon: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10000)
    trigger: SelfServiceTrigger
    invocationMethod: Invocation
    requiredApproval: StrictBool = False
    publish: StrictBool | None = None

    @field_validator("identifier")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_IDENTIFIERS:
            raise ValueError(f"{value!r} is reserved (it is a path word of the actions API)")
        return value

    def to_document(self) -> dict[str, Any]:
        doc = self.model_dump(exclude_none=True)
        invocation = self.invocationMethod.model_dump()  # keep an explicit ``body: null`` out, keep the rest
        if invocation.get("body") is None:
            invocation.pop("body", None)
        doc["invocationMethod"] = invocation
        return doc


@dataclass(frozen=True)
class Action:
    """A parsed action: its normalised document and its compiled inputs."""

    document: dict[str, Any]
    inputs: UserInputs

    @property
    def identifier(self) -> str:
        return str(self.document["identifier"])

    @property
    def title(self) -> str | None:
        title = self.document.get("title")
        return str(title) if title is not None else None

    @property
    def operation(self) -> str:
        return str(self.document["trigger"]["operation"])

    @property
    def blueprint(self) -> str:
        return str(self.document["trigger"]["blueprintIdentifier"])

    @property
    def invocation(self) -> dict[str, Any]:
        return dict(self.document["invocationMethod"])

    @property
    def requires_approval(self) -> bool:
        return bool(self.document.get("requiredApproval"))


def _legacy_to_current(raw: dict[str, Any]) -> dict[str, Any]:
    """Port's older action form (``trigger: "CREATE"``, ``userInputs`` and ``blueprint`` beside it)."""
    trigger = raw.get("trigger")
    if not isinstance(trigger, str) or trigger not in OPERATIONS:
        return raw
    doc = {k: v for k, v in raw.items() if k not in ("trigger", "userInputs", "blueprint")}
    doc["trigger"] = {
        "type": "self-service",
        "operation": trigger,
        "blueprintIdentifier": raw.get("blueprint"),
        "userInputs": raw.get("userInputs", {"properties": {}, "required": []}),
    }
    return doc


def _format_error(error: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for e in error.errors(include_url=False, include_input=False):
        # pydantic puts the union member's tag into the location: invocationMethod.WEBHOOK.url
        loc = [str(p) for p in e["loc"] if p not in ("AZURE-DEVOPS", "WEBHOOK")]
        msg = e["msg"].removeprefix("Value error, ")
        details.append({"field": ".".join(loc), "message": msg, "type": e["type"]})
    first = details[0]
    return f"{first['field']}: {first['message']}", details


def parse_action(raw: Any, *, identifier: str | None = None) -> Action:
    """Validate an action document; any problem is a 422 whose message names the field.

    ``identifier`` is the one in the URL (PUT): the body may omit it but not contradict it.
    """
    if not isinstance(raw, dict):
        raise ValidationFailed("an action must be a JSON object", code="invalid_action")
    raw = _legacy_to_current(raw)
    if identifier is not None:
        if "identifier" in raw and raw["identifier"] != identifier:
            raise ValidationFailed(
                "an action's identifier cannot be changed", code="invalid_action", details={"field": "identifier"}
            )
        raw = {**raw, "identifier": identifier}
    ident = raw.get("identifier") if isinstance(raw.get("identifier"), str) else None
    prefix = f"action {ident!r}: " if ident else "action: "
    try:
        doc = ActionDoc.model_validate(raw)
    except ValidationError as exc:
        message, details = _format_error(exc)
        raise ValidationFailed(prefix + message, code="invalid_action", details=details) from None
    document = doc.to_document()
    try:
        inputs = compile_user_inputs(doc.trigger.userInputs)
        body = document["invocationMethod"].get("body")
        if body is not None:
            check_templates(body, "invocationMethod.body")
        if isinstance(doc.invocationMethod, WebhookInvocation):
            check_templates(doc.invocationMethod.headers, "invocationMethod.headers")
    except ValidationFailed as exc:
        raise ValidationFailed(prefix + exc.message, code=exc.code, details=exc.details) from None
    # PostgreSQL cannot store NUL in jsonb; refuse it on every engine alike.
    if b"\\u0000" in orjson.dumps(document):
        raise ValidationFailed(prefix + "strings must not contain the NUL character", code="invalid_action")
    return Action(document=document, inputs=inputs)
