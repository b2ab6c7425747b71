"""Port action documents: valid ones normalised, invalid ones a 422 naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kiosk.actions.model import parse_action
from kiosk.errors import ValidationFailed

DEPLOY: dict[str, Any] = {
    "identifier": "deploy_service",
    "title": "Deploy service",
    "trigger": {
        "type": "self-service",
        "operation": "DAY-2",
        "blueprintIdentifier": "service",
        "userInputs": {
            "properties": {"environment": {"type": "string", "enum": ["dev", "prod"]}, "version": {"type": "string"}},
            "required": ["environment"],
        },
    },
    "invocationMethod": {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "port_trigger"},
    "requiredApproval": False,
}


def changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``changes``: ``a__b=v`` sets ``doc["a"]["b"]``, ``a__b=...`` deletes it."""
    doc = copy.deepcopy(base)
    for path, value in changes.items():
        node = doc
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return doc


def with_changes(**changes: Any) -> dict[str, Any]:
    return changed(DEPLOY, changes)


def refused(raw: Any, **kwargs: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        parse_action(raw, **kwargs)
    return info.value


def test_reference_action_parses_whole() -> None:
    action = parse_action(DEPLOY)
    assert action.document == DEPLOY
    assert (action.identifier, action.operation, action.blueprint) == ("deploy_service", "DAY-2", "service")
    assert not action.requires_approval
    assert set(action.inputs.specs) == {"environment", "version"}


def test_webhook_defaults_are_filled_in() -> None:
    doc = with_changes(invocationMethod={"type": "WEBHOOK", "url": "https://hooks.example.com/x"})
    assert parse_action(doc).document["invocationMethod"] == {
        "type": "WEBHOOK",
        "url": "https://hooks.example.com/x",
        "method": "POST",
        "headers": {},
        "synchronized": False,
    }


def test_port_older_form_is_normalised() -> None:
    legacy = {
        "identifier": "create_service",
        "title": "Create",
        "blueprint": "service",
        "trigger": "CREATE",
        "userInputs": {"properties": {"name": {"type": "string"}}, "required": ["name"]},
        "invocationMethod": {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "hook", "payload": {"x": 1}},
    }
    doc = parse_action(legacy).document
    assert doc["trigger"] == {
        "type": "self-service",
        "operation": "CREATE",
        "blueprintIdentifier": "service",
        "userInputs": legacy["userInputs"],
    }
    # Port calls the Azure body ``payload``; kiosk stores it as ``body``
    assert doc["invocationMethod"]["body"] == {"x": 1}


@pytest.mark.parametrize(
    ("doc", "field", "fragment"),
    [
        (with_changes(identifier="has space"), "identifier", "pattern"),
        (with_changes(identifier="runs"), "identifier", "reserved"),
        (with_changes(identifier=...), "identifier", "Field required"),
        (with_changes(colour="red"), "colour", "Extra inputs"),
        (with_changes(trigger__type="manual"), "trigger", "self-service', 'automation"),
        (with_changes(trigger__operation="UPDATE"), "trigger.operation", "CREATE"),
        (with_changes(trigger__blueprintIdentifier=...), "trigger.blueprintIdentifier", "Field required"),
        (with_changes(trigger__condition={"type": "SEARCH"}), "trigger.condition", "Extra inputs"),
        (with_changes(invocationMethod__type="GITHUB"), "invocationMethod", "AZURE-DEVOPS"),
        (with_changes(invocationMethod__org="bad/org"), "invocationMethod.org", "pattern"),
        (with_changes(invocationMethod__webhook=...), "invocationMethod.webhook", "Field required"),
        (with_changes(requiredApproval="yes"), "requiredApproval", "boolean"),
        (
            with_changes(invocationMethod={"type": "WEBHOOK", "url": "ftp://example.com"}),
            "invocationMethod.url",
            "http:// or https://",
        ),
        (
            with_changes(invocationMethod={"type": "WEBHOOK", "url": "https://x.io", "method": "GET"}),
            "invocationMethod.method",
            "POST",
        ),
        (
            with_changes(invocationMethod={"type": "WEBHOOK", "url": "https://x.io", "headers": {"X-A": "a\nb"}}),
            "invocationMethod.headers",
            "line breaks",
        ),
        (
            with_changes(invocationMethod={"type": "WEBHOOK", "url": "https://x.io", "headers": {"a b": "1"}}),
            "invocationMethod.headers",
            "not a valid header name",
        ),
        (
            with_changes(trigger__userInputs__properties__environment={"type": "string", "format": "colour"}),
            "trigger.userInputs.properties.environment.format",
            "must be one of",
        ),
        (
            with_changes(invocationMethod__body={"ref": "{{ .inputs.version | }}"}),
            "invocationMethod.body.ref",
            "not a valid jq expression",
        ),
        (
            with_changes(
                invocationMethod={"type": "WEBHOOK", "url": "https://x.io", "headers": {"X-Env": "{{ .x ) }}"}}
            ),
            "invocationMethod.headers.X-Env",
            "not a valid jq expression",
        ),
        (with_changes(title="nul\x00here"), "", "NUL"),
    ],
)
def test_invalid_documents_name_the_field(doc: dict[str, Any], field: str, fragment: str) -> None:
    error = refused(doc)
    assert error.status_code == 422
    assert error.message.startswith("action"), error.message
    assert fragment in error.message, error.message
    if field:
        assert field in error.message
        details = error.details if isinstance(error.details, list) else [error.details]
        assert details[0]["field"] == field, details


def test_put_identifier_must_match() -> None:
    assert parse_action(with_changes(identifier=...), identifier="deploy_service").identifier == "deploy_service"
    assert "cannot be changed" in refused(DEPLOY, identifier="other").message
    assert refused([DEPLOY]).message == "an action must be a JSON object"


AUTOMATION: dict[str, Any] = {
    "identifier": "notify_prod_service",
    "title": "Tell the pipeline about production services",
    "trigger": {
        "type": "automation",
        "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"},
        "condition": {
            "type": "JQ",
            "expressions": ['.diff.after.properties.lifecycle == "production"'],
            "combinator": "or",
        },
    },
    "invocationMethod": {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "port_trigger"},
    "publish": True,
}


def automation_with(**changes: Any) -> dict[str, Any]:
    return changed(AUTOMATION, changes)


def test_port_automation_parses_whole() -> None:
    action = parse_action(AUTOMATION)
    assert action.document == {**AUTOMATION, "requiredApproval": False}
    assert action.is_automation and action.automation is not None
    spec = action.automation
    assert (spec.event, spec.blueprint, spec.action, spec.combinator, spec.enabled) == (
        "ENTITY_UPDATED",
        "service",
        None,
        "or",
        True,
    )
    assert spec.expressions == ('.diff.after.properties.lifecycle == "production"',)
    assert action.inputs.specs == {}
    with pytest.raises(TypeError, match="is an automation"):
        _ = action.blueprint
    with pytest.raises(TypeError, match="is an automation"):
        _ = action.operation


def test_automation_defaults_and_run_events() -> None:
    plain = automation_with(trigger__condition=..., publish=...)
    spec = parse_action(plain).automation
    assert spec is not None and spec.expressions == () and spec.enabled
    combined = parse_action(automation_with(trigger__condition__combinator=...)).document
    assert combined["trigger"]["condition"]["combinator"] == "and"
    runs = parse_action(automation_with(trigger__event={"type": "ANY_RUN_CHANGE", "actionIdentifier": "deploy"}))
    assert runs.automation is not None and runs.automation.action == "deploy" and not runs.automation.on_entities
    off = parse_action(automation_with(publish=False)).automation
    assert off is not None and not off.enabled
    assert not parse_action(DEPLOY).is_automation


@pytest.mark.parametrize(
    ("doc", "field", "fragment"),
    [
        (automation_with(trigger__event__type="ENTITY_RENAMED"), "trigger.event.type", "must be one of"),
        (automation_with(trigger__event__type="TIMER_PROPERTY_EXPIRED"), "trigger.event.type", "no timer properties"),
        (automation_with(trigger__event__blueprintIdentifier=...), "trigger.event.blueprintIdentifier", "required"),
        (
            automation_with(trigger__event__actionIdentifier="deploy"),
            "trigger.event.actionIdentifier",
            "does not belong to event type ENTITY_UPDATED",
        ),
        (
            automation_with(trigger__event={"type": "RUN_CREATED", "blueprintIdentifier": "service"}),
            "trigger.event.actionIdentifier",
            "is required for event type RUN_CREATED",
        ),
        (automation_with(trigger__event=...), "trigger.event", "Field required"),
        (automation_with(trigger__operation="DAY-2"), "trigger.operation", "Extra inputs"),
        (automation_with(trigger__condition__type="SEARCH"), "trigger.condition.type", "'JQ'"),
        (automation_with(trigger__condition__expressions=[]), "trigger.condition.expressions", "at least 1"),
        (automation_with(trigger__condition__combinator="xor"), "trigger.condition.combinator", "'and' or 'or'"),
        (
            automation_with(trigger__condition__expressions=[".ok", ".a |"]),
            "trigger.condition.expressions[1]",
            "not a valid jq expression",
        ),
        (automation_with(requiredApproval=True), "requiredApproval", "without approval"),
        (
            automation_with(invocationMethod__payload={"x": "{{ .event | }}"}),
            "invocationMethod.body.x",
            "not a valid jq expression",
        ),
    ],
)
def test_invalid_automations_name_the_field(doc: dict[str, Any], field: str, fragment: str) -> None:
    error = refused(doc)
    assert error.status_code == 422 and error.message.startswith("action 'notify_prod_service': "), error.message
    assert fragment in error.message and field in error.message, error.message
    details = error.details if isinstance(error.details, list) else [error.details]
    assert details[0]["field"] == field, details
