"""Action documents in Port's format: parsing, normalising and checking them.

Two kinds share one document shape and one ``invocationMethod``, as in Port:

- a *self-service* action (``trigger.type: self-service``): a person or a client starts it,
  on an entity (DAY-2 / DELETE) or none (CREATE), with ``userInputs``;
- an *automation* (``trigger.type: automation``): kiosk starts it when a catalog event
  (``ENTITY_CREATED`` / ``ENTITY_UPDATED`` / ``ENTITY_DELETED`` / ``ANY_ENTITY_CHANGE`` on a
  blueprint) or a run event (``RUN_CREATED`` / ``RUN_UPDATED`` / ``ANY_RUN_CHANGE`` of an action)
  happens and its optional jq ``condition`` holds. See :mod:`kiosk.actions.automations`.

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
from kiosk.core.jq_sandbox import compile_jq
from kiosk.core.json_depth import MAX_JSON_DEPTH, depth_message, exceeds_depth, too_deep_at
from kiosk.errors import BadRequest, ValidationFailed

__all__ = [
    "AZURE_ORG_NAME",
    "ENTITY_EVENTS",
    "HEADER_NAME",
    "RUN_EVENTS",
    "Action",
    "ActionDoc",
    "AutomationSpec",
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
#: Automation events on a blueprint's entities (``trigger.event.blueprintIdentifier``).
ENTITY_EVENTS: tuple[str, ...] = ("ENTITY_CREATED", "ENTITY_UPDATED", "ENTITY_DELETED", "ANY_ENTITY_CHANGE")
#: Automation events on an action's runs (``trigger.event.actionIdentifier``).
RUN_EVENTS: tuple[str, ...] = ("RUN_CREATED", "RUN_UPDATED", "ANY_RUN_CHANGE")
#: Port event types kiosk knows but does not fire, with the reason given to the user.
UNSUPPORTED_EVENTS = {"TIMER_PROPERTY_EXPIRED": "kiosk has no timer properties"}
#: Discriminator tags pydantic puts into error locations (``trigger.automation.event``); dropped.
UNION_TAGS = frozenset({"AZURE-DEVOPS", "WEBHOOK", "self-service", "automation"})
MAX_CONDITION_EXPRESSIONS = 50


class SelfServiceTrigger(BaseModel):
    """``trigger`` of a self-service action: who may start it on what."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["self-service"]
    operation: Operation
    blueprintIdentifier: str = Field(pattern=SCHEMA_IDENTIFIER.pattern, min_length=1, max_length=100)
    userInputs: dict[str, Any] = Field(default_factory=lambda: {"properties": {}, "required": []})


class AutomationEvent(BaseModel):
    """``trigger.event`` of an automation: which event, on which blueprint's entities or action's runs.

    Which of ``blueprintIdentifier`` / ``actionIdentifier`` an event type needs is checked in
    :func:`parse_action`, so the message names the missing field itself.
    """

    model_config = ConfigDict(extra="forbid")

    type: str
    blueprintIdentifier: str | None = Field(
        default=None, pattern=SCHEMA_IDENTIFIER.pattern, min_length=1, max_length=100
    )
    actionIdentifier: str | None = Field(default=None, pattern=SCHEMA_IDENTIFIER.pattern, min_length=1, max_length=100)

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value in UNSUPPORTED_EVENTS:
            raise ValueError(f"{value} is not supported ({UNSUPPORTED_EVENTS[value]})")
        if value not in (*ENTITY_EVENTS, *RUN_EVENTS):
            raise ValueError(f"must be one of {', '.join((*ENTITY_EVENTS, *RUN_EVENTS))}")
        return value


class JqCondition(BaseModel):
    """``trigger.condition``: jq expressions over the event; all must hold (``and``) or any (``or``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["JQ"]
    expressions: list[Annotated[str, Field(min_length=1, max_length=10_000)]] = Field(
        min_length=1, max_length=MAX_CONDITION_EXPRESSIONS
    )
    combinator: Literal["and", "or"] = "and"


class AutomationTrigger(BaseModel):
    """``trigger`` of an automation: kiosk starts it when ``event`` happens and ``condition`` holds."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["automation"]
    event: AutomationEvent
    condition: JqCondition | None = None


Trigger = Annotated[SelfServiceTrigger | AutomationTrigger, Field(discriminator="type")]


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
    """A Port action or automation. Unknown keys are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(pattern=SCHEMA_IDENTIFIER.pattern, min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=1000)
    icon: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10000)
    trigger: Trigger
    invocationMethod: Invocation
    requiredApproval: StrictBool = False
    #: Port's flag; on an automation ``false`` switches it off (it is kept but never fires).
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
class AutomationSpec:
    """An automation's trigger, read once: what it listens to and when it fires."""

    #: One of :data:`ENTITY_EVENTS` or :data:`RUN_EVENTS`.
    event: str
    #: The blueprint whose entities it watches (entity events), else None.
    blueprint: str | None
    #: The action whose runs it watches (run events), else None.
    action: str | None
    #: jq expressions that must hold (all with ``and``, any with ``or``); empty: always fires.
    expressions: tuple[str, ...]
    combinator: Literal["and", "or"]
    #: ``publish: false`` keeps the automation but switches it off.
    enabled: bool

    @property
    def on_entities(self) -> bool:
        return self.event in ENTITY_EVENTS


@dataclass(frozen=True)
class Action:
    """A parsed action: its normalised document, its compiled inputs, and — for an automation —
    its trigger (``automation``; None for a self-service action)."""

    document: dict[str, Any]
    inputs: UserInputs
    automation: AutomationSpec | None = None

    @property
    def identifier(self) -> str:
        return str(self.document["identifier"])

    @property
    def title(self) -> str | None:
        title = self.document.get("title")
        return str(title) if title is not None else None

    @property
    def is_automation(self) -> bool:
        return self.automation is not None

    @property
    def operation(self) -> str:
        """CREATE / DAY-2 / DELETE: a self-service fact; an automation has none (TypeError)."""
        self._self_service("operation")
        return str(self.document["trigger"]["operation"])

    @property
    def blueprint(self) -> str:
        """The blueprint a self-service action acts on; for an automation see ``automation`` (TypeError)."""
        self._self_service("blueprint")
        return str(self.document["trigger"]["blueprintIdentifier"])

    def _self_service(self, what: str) -> None:
        # Callers branch on ``is_automation`` first; reaching here with an automation is a bug.
        if self.automation is not None:
            raise TypeError(f"action {self.identifier!r} is an automation; it has no {what}")

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
        loc = [str(p) for p in e["loc"] if p not in UNION_TAGS]
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
    if exceeds_depth(raw):  # the API's bodies are checked already; kiosk.yaml's are not
        where = too_deep_at(raw)
        raise BadRequest(
            depth_message("the action", where), code="json_too_deep", details={"field": where, "limit": MAX_JSON_DEPTH}
        )
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
        automation = None
        if isinstance(doc.trigger, AutomationTrigger):
            automation = _automation_spec(doc.trigger, doc)
            inputs = compile_user_inputs(None)
        else:
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
    return Action(document=document, inputs=inputs, automation=automation)


def _automation_spec(trigger: AutomationTrigger, doc: ActionDoc) -> AutomationSpec:
    """The rules of an automation pydantic cannot say with a field-naming message."""
    event = trigger.event
    if event.type in ENTITY_EVENTS:
        needed, other = "blueprintIdentifier", "actionIdentifier"
        missing, extra = event.blueprintIdentifier is None, event.actionIdentifier is not None
    else:
        needed, other = "actionIdentifier", "blueprintIdentifier"
        missing, extra = event.actionIdentifier is None, event.blueprintIdentifier is not None
    if missing:
        raise _field_error(f"trigger.event.{needed}", f"is required for event type {event.type}")
    if extra:
        raise _field_error(f"trigger.event.{other}", f"does not belong to event type {event.type} (it takes {needed})")
    if doc.requiredApproval:
        raise _field_error("requiredApproval", "an automation runs without approval; it must be false")
    expressions: tuple[str, ...] = ()
    combinator: Literal["and", "or"] = "and"
    if trigger.condition is not None:
        expressions = tuple(trigger.condition.expressions)
        combinator = trigger.condition.combinator
        for i, expression in enumerate(expressions):
            try:
                compile_jq(expression)
            except ValueError as exc:
                first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "error")
                raise _field_error(
                    f"trigger.condition.expressions[{i}]", f"{expression!r} is not a valid jq expression: {first}"
                ) from None
    return AutomationSpec(
        event=event.type,
        blueprint=event.blueprintIdentifier,
        action=event.actionIdentifier,
        expressions=expressions,
        combinator=combinator,
        enabled=doc.publish is not False,
    )


def _field_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", code="invalid_action", details={"field": field})
