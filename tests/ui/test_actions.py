"""The self-service hub and action forms in process: the hub per role, every input type drawn,
jq rules evaluated on the server, dependsOn clearing, errors by field (as the API words them),
secrets never written back, CSRF, and the run started as the signed-in person from the UI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.support.ui import BASE, PASSWORD, browser, hidden_field, sign_in, ui_app

from kiosk.auth.users import create_user
from kiosk.store.tables import action_runs
from kiosk.ui import actions as ui_actions

HOOK = '{type: WEBHOOK, url: "https://example.com/hook"}'
CONFIG = f"""
blueprints:
  - {{identifier: service, title: Service, schema: {{properties: {{}}}}}}
  - {{identifier: env, title: Environment, schema: {{properties: {{}}}}}}
entities:
  - {{blueprint: service, identifier: checkout, title: Checkout}}
  - {{blueprint: service, identifier: cart, title: Cart}}
  - {{blueprint: env, identifier: prod, title: Production}}
  - {{blueprint: env, identifier: staging}}
actions:
  - identifier: create_service
    title: Create service
    description: Scaffold a new service
    icon: GitHub
    trigger:
      type: self-service
      operation: CREATE
      blueprintIdentifier: service
      userInputs:
        order: [language, framework]
        properties:
          name: {{type: string, title: Name, minLength: 3, description: The service's name}}
          owner: {{type: string, format: email, title: Owner, default: {{jqQuery: ".user.email"}}}}
          homepage: {{type: string, format: url, title: Homepage}}
          due: {{type: string, format: date-time, title: Due}}
          notes: {{type: string, format: multi-line, title: Notes}}
          config: {{type: string, format: yaml, title: Config}}
          extra: {{type: object, title: Extra}}
          replicas: {{type: number, title: Replicas, minimum: 1}}
          public: {{type: boolean, title: Public, default: false}}
          language: {{type: string, title: Language, enum: [python, go]}}
          framework:
            type: string
            title: Framework
            dependsOn: [language]
            visible: {{jqQuery: '.form.language != null'}}
            enum: {{jqQuery: 'if .form.language == "go" then ["gin", "echo"] else ["django", "flask"] end'}}
          tags: {{type: array, items: {{type: string}}, title: Tags}}
          env: {{type: string, format: entity, blueprint: env, title: Environment}}
          token: {{type: string, format: secret, encryption: aes256-gcm, title: Token}}
          region: {{type: string, title: Region, default: eu, disabled: true}}
          internal: {{type: string, title: Internal, visible: false}}
        required: [name, language]
    invocationMethod: {HOOK}
  - identifier: restart
    title: Restart
    trigger:
      type: self-service
      operation: DAY-2
      blueprintIdentifier: service
      userInputs:
        properties:
          reason: {{type: string, title: Reason, default: {{jqQuery: '"restart " + .entity.identifier'}}}}
    invocationMethod: {HOOK}
    requiredApproval: true
  - identifier: retire
    title: Retire
    trigger: {{type: self-service, operation: DELETE, blueprintIdentifier: service}}
    invocationMethod: {HOOK}
  - identifier: on_new_service
    title: On new service
    trigger: {{type: automation, event: {{type: ENTITY_CREATED, blueprintIdentifier: service}}}}
    invocationMethod: {HOOK}
"""
FORM = "/ui/self-service/create_service"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[FastAPI]:
    app = ui_app(tmp_path, database_url, CONFIG)
    create_user(app.state.db, "ada@example.com", "admin", PASSWORD, name="Ada Admin")
    create_user(app.state.db, "max@example.com", "member", PASSWORD, name="Max Member")
    yield app
    app.state.db.dispose()


def signed_in(app: FastAPI, email: str = "max@example.com") -> TestClient:
    client = browser(app)
    assert sign_in(client, email).status_code == 303
    return client


def post_form(
    client: TestClient, path: str, fields: dict[str, str], *, intent: str = "update", token: str | None = None
) -> Any:
    """Post the form at ``path`` as the browser would: its token, the fields (``in.`` prefixed)."""
    page = client.get(path)
    csrf = token if token is not None else hidden_field(page.text, "csrf_token")
    data: dict[str, str] = {"csrf_token": csrf, "intent": intent}
    for name, value in fields.items():
        data[name if name in ("entity",) or name.startswith("was.") else f"in.{name}"] = value
    return client.post(path.split("?")[0], data=data, headers={"Origin": BASE})


def field_error(html: str, name: str) -> str | None:
    found = re.search(rf'<p class="field-error" id="in-{name}-error">([^<]*)</p>', html)
    return unescape(found.group(1)) if found else None


def selected(html: str, name: str) -> list[str]:
    """The selected options' labels of the select ``in.<name>``."""
    select = re.search(rf'<select id="in-{name}" name="in.{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select {name!r}"
    return re.findall(r'<option value="[^"]*" selected>([^<]*)</option>', select.group(1))


def options(html: str, name: str) -> list[str]:
    select = re.search(rf'<select id="in-{name}" name="in.{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select {name!r}"
    return re.findall(r'<option value="[^"]+"[^>]*>([^<]*)</option>', select.group(1))


def runs(app: FastAPI) -> list[Any]:
    with app.state.db.connect() as conn:
        return list(conn.execute(sa.select(action_runs).order_by(action_runs.c.created_at)).all())


# --------------------------------------------------------------------------------- hub


def test_the_hub_needs_a_session(app: FastAPI) -> None:
    answer = browser(app).get("/ui/self-service")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/sign-in?next=%2Fui%2Fself-service"
    form = browser(app).get(FORM)
    assert form.status_code == 303 and form.headers["location"].startswith("/ui/sign-in?next=")


@pytest.mark.parametrize("email", ["max@example.com", "ada@example.com"])
def test_hub_groups_self_service_actions_by_blueprint_and_operation(app: FastAPI, email: str) -> None:
    hub = signed_in(app, email).get("/ui/self-service")
    assert hub.status_code == 200, hub.text
    html = hub.text
    assert '<h2 id="hub-service">Service</h2>' in html
    # Port's order of operations, each with its cards.
    assert html.index("<h3>Create</h3>") < html.index("<h3>Day-2 operations</h3>") < html.index("<h3>Delete</h3>")
    assert html.index("<h3>Create</h3>") < html.index("Create service") < html.index("<h3>Day-2 operations</h3>")
    assert html.index("<h3>Day-2 operations</h3>") < html.index(">Restart</a>") < html.index("<h3>Delete</h3>")
    assert '<a href="/ui/self-service/create_service">Create service</a>' in html
    assert "<p>Scaffold a new service</p>" in html and '<span class="action-icon" aria-hidden="true">Gi</span>' in html
    assert "DAY-2 · needs an admin's approval" in html
    assert "On new service" not in html  # an automation is started by kiosk, not from the hub
    assert '<a href="/ui/self-service" aria-current="page">Self-service</a>' in html
    assert '<a href="/ui/runs?mine=1">My runs</a>' in html


def test_unknown_actions_and_automations_have_no_form(app: FastAPI) -> None:
    client = signed_in(app)
    assert client.get("/ui/self-service/nope").status_code == 404
    assert client.get("/ui/self-service/on_new_service").status_code == 404
    token = hidden_field(client.get("/ui/self-service").text, "csrf_token")
    for path in ("/ui/self-service/nope", "/ui/self-service/on_new_service"):
        posted = client.post(path, data={"csrf_token": token, "intent": "run"}, headers={"Origin": BASE})
        assert posted.status_code == 404, path
    assert runs(app) == []


# --------------------------------------------------------------------------------- the form


def test_every_input_type_is_drawn(app: FastAPI) -> None:
    page = signed_in(app).get(FORM)
    assert page.status_code == 200, page.text
    html = page.text
    assert '<input id="in-name" type="text" name="in.name" value="" aria-describedby="in-name-desc" required>' in html
    assert 'id="in-owner" type="email" name="in.owner" value="max@example.com"' in html  # jq default: .user.email
    assert 'id="in-homepage" type="url" name="in.homepage"' in html
    assert 'id="in-due" type="datetime-local" name="in.due"' in html
    for name in ("notes", "config", "extra", "tags"):
        assert f'<textarea id="in-{name}" name="in.{name}" rows="4"' in html
    assert 'id="in-replicas" type="text" inputmode="decimal" name="in.replicas"' in html
    assert '<input id="in-public" type="checkbox" name="in.public" value="true"' in html
    assert options(html, "language") == ["python", "go"] and selected(html, "language") == []
    assert options(html, "env") == ["Production (prod)", "staging"]  # an entity input of few entities: a select
    assert '<input id="in-token" type="password" name="in.token" autocomplete="off" hx-preserve="true"' in html
    assert 'id="in-region" type="text" name="in.region" value="eu" aria-describedby="in-region-hint"' not in html
    assert re.search(r'id="in-region" type="text" name="in.region" value="eu"[^>]* disabled>', html)
    assert 'name="in.internal"' not in html  # visible: false
    assert 'name="in.framework"' not in html  # jq visible: no language chosen yet
    # The order puts language and framework first; the others follow as defined.
    assert html.index('name="in.language"') < html.index('name="in.name"')
    assert "One item per line." in html and "In UTC." in html


def test_jq_rules_are_evaluated_on_the_server_when_the_form_is_updated(app: FastAPI) -> None:
    client = signed_in(app)
    go = post_form(client, FORM, {"language": '"go"'})
    assert go.status_code == 200, go.text
    assert selected(go.text, "language") == ["go"]
    assert options(go.text, "framework") == ["gin", "echo"]  # jq visible and jq enum over .form
    python = post_form(client, FORM, {"language": '"python"'})
    assert options(python.text, "framework") == ["django", "flask"]


def test_a_changed_parent_clears_its_dependents(app: FastAPI) -> None:
    client = signed_in(app)
    kept = post_form(client, FORM, {"language": '"go"', "was.language": '"go"', "framework": '"gin"'})
    assert selected(kept.text, "framework") == ["gin"]
    assert hidden_field(kept.text, "was.framework") == "&#34;gin&#34;"
    changed = post_form(client, FORM, {"language": '"python"', "was.language": '"go"', "framework": '"gin"'})
    assert selected(changed.text, "framework") == []  # cleared, and gin is no longer an option anyway
    assert options(changed.text, "framework") == ["django", "flask"]


def test_an_htmx_update_answers_the_fields_only(app: FastAPI) -> None:
    client = signed_in(app)
    page = client.get(FORM)
    answer = client.post(
        FORM,
        data={"csrf_token": hidden_field(page.text, "csrf_token"), "intent": "update", "in.language": '"go"'},
        headers={"Origin": BASE, "HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert answer.text.startswith('<div id="action-fields"') and "<html" not in answer.text
    assert options(answer.text, "framework") == ["gin", "echo"]


def test_validation_errors_are_shown_next_to_their_fields_in_the_apis_words(app: FastAPI) -> None:
    client = signed_in(app)
    answer = post_form(
        client,
        FORM,
        {
            "name": "ab",
            "homepage": "not a url",
            "replicas": "many",
            "extra": "[1]",
            "owner": "nobody",
            "token": "s3cr3t-value",
        },
        intent="run",
    )
    assert answer.status_code == 422
    html = answer.text
    assert field_error(html, "name") == "Name must be at least 3 characters"
    assert field_error(html, "homepage") == "Homepage must be a URL (http:// or https://)"
    assert field_error(html, "replicas") == "Replicas must be a number"
    assert field_error(html, "extra") == "Extra must be a JSON object"
    assert field_error(html, "owner") == "Owner must be an email address"
    assert field_error(html, "language") == "Language is required"
    assert field_error(html, "notes") is None
    assert 'aria-invalid="true"' in html and "6 fields need attention." in html
    assert "s3cr3t-value" not in html  # a secret is never written back into a page
    # What the field says is what the API says of the same value.
    api = app.state.actions
    with app.state.db.connect() as conn:
        inputs = api.load(conn, "create_service").inputs
    with pytest.raises(Exception, match=r"^properties\.homepage must be a URL \(http:// or https://\)$"):
        inputs.validate({"name": "abc", "language": "go", "homepage": "not a url"})
    assert runs(app) == []


def test_a_run_is_started_as_the_signed_in_person_from_the_ui(app: FastAPI) -> None:
    client = signed_in(app)
    answer = post_form(
        client,
        FORM,
        {
            "language": '"go"',
            "framework": '"gin"',
            "was.language": '"go"',
            "name": "payments",
            "homepage": "https://example.com/payments",
            "due": "2026-12-24T10:30",
            "notes": "line one\nline two",
            "config": "replicas: 2",
            "extra": '{"team": "core"}',
            "replicas": "3",
            "public": "true",
            "tags": "web\n\napi\n",
            "env": "prod",
            "token": "s3cr3t-value",
            "internal": "smuggled",
            "region": "us",
        },
        intent="run",
    )
    assert answer.status_code == 303, answer.text
    [run] = runs(app)
    assert answer.headers["location"] == f"/ui/runs/{run.id}"
    assert run.created_by == "max@example.com" and run.origin == "UI" and run.status == "IN_PROGRESS"
    assert run.properties == {
        "language": "go",
        "framework": "gin",
        "name": "payments",
        "owner": "max@example.com",
        "homepage": "https://example.com/payments",
        "due": "2026-12-24T10:30:00.000Z",
        "notes": "line one\nline two",
        "config": "replicas: 2",
        "extra": {"team": "core"},
        "replicas": 3,
        "public": True,
        "tags": ["web", "api"],
        "env": "prod",
        "token": "****",
        "region": "eu",
    }
    page = client.get(answer.headers["location"])
    assert page.status_code == 200 and "s3cr3t-value" not in page.text and "<code>****</code>" in page.text


def test_an_entity_the_catalog_lacks_is_refused_by_the_service_next_to_its_field(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui_actions, "MAX_ENTITY_OPTIONS", 1)  # env has 2 entities: a text field now
    client = signed_in(app)
    page = client.get(FORM)
    assert '<input id="in-env" type="text" name="in.env" value=""' in page.text
    answer = post_form(client, FORM, {"language": '"go"', "name": "payments", "env": "qa"}, intent="run")
    assert answer.status_code == 422
    assert field_error(answer.text, "env") == "Environment entity 'qa' of blueprint 'env' does not exist"
    assert runs(app) == []


def test_day2_action_runs_on_the_entity_in_the_url(app: FastAPI) -> None:
    client = signed_in(app)
    page = client.get("/ui/self-service/restart?entity=service/checkout")
    assert page.status_code == 200
    assert "Runs on <strong>Checkout</strong> (checkout)" in page.text
    assert '<option value="checkout" selected>Checkout (checkout)</option>' in page.text
    assert 'value="restart checkout"' in page.text  # jq default over .entity
    assert "an admin approves each run before it starts" in page.text
    missing = client.get("/ui/self-service/restart?entity=service/nope")
    assert "Entity There is no service entity &#39;nope&#39;." in missing.text
    no_entity = post_form(client, "/ui/self-service/restart", {"entity": ""}, intent="run")
    assert no_entity.status_code == 422 and "Entity is required: choose the entity to run on" in no_entity.text
    started = post_form(
        client, "/ui/self-service/restart?entity=service/checkout", {"entity": "checkout"}, intent="run"
    )
    assert started.status_code == 303, started.text
    [run] = runs(app)
    assert run.entity == "checkout" and run.status == "WAITING_FOR_APPROVAL"
    assert run.properties == {"reason": "restart checkout"}


def test_forms_without_the_sessions_token_or_from_elsewhere_are_refused(app: FastAPI) -> None:
    client = signed_in(app)
    fields = {"language": '"go"', "name": "payments"}
    assert post_form(client, FORM, fields, intent="run", token="forged").status_code == 403
    page = client.get(FORM)
    foreign = client.post(
        FORM,
        data={"csrf_token": hidden_field(page.text, "csrf_token"), "intent": "run", "in.language": '"go"'},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert runs(app) == []


def test_a_failing_rule_is_reported_and_the_field_kept(tmp_path: Path, database_url: str) -> None:
    broken = CONFIG.replace(
        "visible: {jqQuery: '.form.language != null'}", "visible: {jqQuery: '.form.language | ascii_downcase'}"
    )
    app = ui_app(tmp_path, database_url, broken)
    try:
        create_user(app.state.db, "max@example.com", "member", PASSWORD)
        page = signed_in(app).get(FORM)
        assert page.status_code == 200
        assert "The visible rule of Framework failed: " in page.text  # jq cannot downcase null
        assert 'name="in.framework"' in page.text  # a rule that fails hides nothing
    finally:
        app.state.db.dispose()


def test_the_input_definitions_port_documents_are_accepted() -> None:
    from kiosk.actions.inputs import compile_user_inputs
    from kiosk.errors import ValidationFailed

    inputs = compile_user_inputs(
        {
            "properties": {
                "notes": {"type": "string", "format": "multi-line"},
                "token": {"type": "string", "format": "secret", "encryption": "aes256-gcm"},
                "size": {"type": "string", "enum": {"jqQuery": '["s", "m"]'}, "default": {"jqQuery": '"s"'}},
            }
        }
    )
    # The API has no form to evaluate jq against: it takes the value given, with no default.
    assert inputs.validate({"notes": "a\nb", "size": "xl", "token": "t"}).masked() == {
        "notes": "a\nb",
        "size": "xl",
        "token": "****",
    }
    assert not inputs.specs["size"].has_default
    with pytest.raises(ValidationFailed, match=r"properties\.x\.enum\.jqQuery is not a valid jq expression"):
        compile_user_inputs({"properties": {"x": {"type": "string", "enum": {"jqQuery": "[[["}}}})
    with pytest.raises(ValidationFailed, match=r"properties\.x\.default\.jqQuery must be a jq expression"):
        compile_user_inputs({"properties": {"x": {"type": "string", "default": {"jqQuery": 3}}}})
