"""Port's default payload and jq body templates."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.actions.payload import RunContext, check_templates, default_payload, jq_input, render_template
from kiosk.errors import ValidationFailed

ACTION = {
    "identifier": "deploy_service",
    "title": "Deploy service",
    "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service"},
    "invocationMethod": {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "hook", "body": {"x": "{{ .run.id }}"}},
}
ENTITY = {"identifier": "svc-a", "blueprint": "service", "properties": {"lang": "go"}}
TRIGGER = {
    "by": {"orgId": "kiosk", "userId": "kc_1", "user": {"id": "kc_1", "email": None}},
    "origin": "API",
    "at": "T",
}


def context(**inputs: Any) -> RunContext:
    return RunContext("r_abc123", ACTION, ENTITY, inputs, TRIGGER)


def test_default_payload_has_ports_shape() -> None:
    payload = default_payload(context(environment="dev"))
    assert payload == {
        "action": "deploy_service",
        "resourceType": "run",
        "status": "TRIGGERED",
        "trigger": TRIGGER,
        # the report token as its placeholder: the delivery worker fills it in when it sends
        "context": {"entity": "svc-a", "blueprint": "service", "runId": "r_abc123", "reportToken": "krt_****"},
        "payload": {
            "entity": ENTITY,
            # the action's own body template is not sent to the receiver
            "action": {
                "invocationMethod": {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "hook"},
                "trigger": "DAY-2",
            },
            "properties": {"environment": "dev"},
        },
    }
    create = RunContext("r_1", ACTION, None, {}, TRIGGER)
    assert default_payload(create)["context"]["entity"] is None
    assert default_payload(create)["payload"]["entity"] is None


def render(template: Any, ctx: RunContext | None = None, secrets: dict[str, str] | None = None) -> Any:
    return render_template(template, jq_input(ctx or context(env="dev", n=3)), where="body", secrets=secrets or {})


def test_templates() -> None:
    assert render("{{ .inputs.env }}") == "dev"
    assert render("{{ .inputs.n }}") == 3  # exactly one template: the JSON value
    assert render("  {{ .inputs }}  ") == {"env": "dev", "n": 3}
    assert render("{{ {a: {b: .inputs.n}} }}") == {"a": {"b": 3}}  # an expression ending in }}
    assert render("deploy {{ .inputs.env }} x{{ .inputs.n }} {{ .entity.properties }}") == (
        'deploy dev x3 {"lang":"go"}'
    )
    assert render({"a": ["{{ .run.id }}", {"b": "{{ .action.identifier }}"}], "n": 1, "k": None}) == {
        "a": ["r_abc123", {"b": "deploy_service"}],
        "n": 1,
        "k": None,
    }
    assert render("{{ .trigger.operation }}/{{ .trigger.by.userId }}") == "DAY-2/kc_1"
    assert render("{{ .inputs.missing }}") is None
    assert render("{{ empty }}") is None
    assert render("{{ range(1e18) }}") == 0  # the first result, lazily
    assert render("no template {here}") == "no template {here}"
    assert render({"{{ .inputs.env }}": 1}) == {"{{ .inputs.env }}": 1}  # keys are not templates
    # the report token renders as its placeholder, which the delivery worker fills in at send time
    assert render({"t": "{{ .run.reportToken }}", "h": "Bearer {{ .run.reportToken }}"}) == {
        "t": "krt_****",
        "h": "Bearer krt_****",
    }


def test_jq_errors_name_the_template_and_mask_secrets() -> None:
    ctx = context(token="hunter2-value")
    with pytest.raises(ValidationFailed) as info:
        render({"deploy": {"n": "{{ .inputs.token + 1 }}"}}, ctx, {"token": "hunter2-value"})
    error = info.value
    assert error.status_code == 422 and error.code == "template_failed"
    assert error.details == {"field": "body.deploy.n"}
    assert "{{ .inputs.token + 1 }}" in error.message and "cannot be added" in error.message
    assert "hunter2-value" not in error.message and "****" in error.message


def test_check_templates_compiles_every_expression() -> None:
    check_templates({"a": ["x {{ .a }} y {{ .b }}", {"c": "{{ .c }}"}]}, "invocationMethod.body")
    with pytest.raises(ValidationFailed) as info:
        check_templates({"a": ["ok", {"c": "x {{ .c | }}"}]}, "invocationMethod.body")
    assert info.value.details == {"field": "invocationMethod.body.a[1].c"}


def test_a_template_cannot_read_the_servers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing secrets live in the environment ({env: NAME}); an action body must not post them."""
    monkeypatch.setenv("KIOSK_PAYLOAD_TEST_SECRET", "do-not-send-me")
    body = render({"a": "{{ $ENV.KIOSK_PAYLOAD_TEST_SECRET }}", "b": "{{ env | tostring }}"})
    assert "do-not-send-me" not in repr(body)
    with pytest.raises(ValidationFailed, match="modules"):
        check_templates({"x": '{{ import "secrets" as $s; $s }}'}, "invocationMethod.body")
