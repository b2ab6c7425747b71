"""kiosk.yaml's ``actions``, ``azureDevOps``, ``egress`` and ``delivery`` sections: loaded with
file/line errors, actions applied idempotently after the blueprints they name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.support.config_files import apply_error, apply_text, config_error, write_config

from kiosk.actions.service import Actions
from kiosk.catalog import blueprint_store
from kiosk.catalog.service import Catalog
from kiosk.config import load_config
from kiosk.config.apply import apply_config
from kiosk.config.model import AzureDevOpsOrg
from kiosk.store import create_database, upgrade_to_head
from kiosk.store.tables import actions as actions_table

BASE = """
azureDevOps:
  orgs:
    contoso:
      signingSecret: {env: CONTOSO_SECRET}
    fabrikam:
      baseUrl: http://127.0.0.1:8001
      signatureHeader: X-Checksum
blueprints:
  - identifier: service
    schema: {properties: {lang: {type: string}}}
actions:
  - identifier: deploy
    title: Deploy
    trigger:
      type: self-service
      operation: DAY-2
      blueprintIdentifier: service
      userInputs:
        properties:
          env: {type: string, enum: [dev, prod], default: dev}
        required: [env]
    invocationMethod: {type: AZURE-DEVOPS, org: contoso, webhook: deploy_hook}
  - identifier: notify
    trigger: {type: self-service, operation: CREATE, blueprintIdentifier: service}
    invocationMethod:
      type: WEBHOOK
      url: https://hooks.example.com/notify
      body: {text: "created {{ .inputs.name }}"}
"""


def test_sections_load_with_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, BASE))
    orgs = config.azureDevOps.orgs
    assert orgs["contoso"] == AzureDevOpsOrg(
        baseUrl="https://dev.azure.com", signatureHeader="X-Port-Signature", signingSecret={"env": "CONTOSO_SECRET"}
    )
    assert orgs["fabrikam"].signingSecret is None and orgs["fabrikam"].signatureHeader == "X-Checksum"
    assert [a.identifier for a in config.actions] == ["deploy", "notify"]
    assert config.actions[0].azure_org() == "contoso" and config.actions[1].azure_org() is None
    # egress and delivery take their defaults when absent, or when present but empty
    assert config.egress.allow_loopback is False and config.delivery.signing_secret is None
    empty = load_config(write_config(tmp_path, "actions:\nazureDevOps:\negress:\ndelivery:\n"))
    assert empty.actions == [] and empty.azureDevOps.orgs == {}
    bare = load_config(write_config(tmp_path, "azureDevOps:\n  orgs:\n    contoso:\n"))
    assert bare.azureDevOps.orgs["contoso"].baseUrl == "https://dev.azure.com"
    full = load_config(
        write_config(
            tmp_path,
            """
            egress: {allowLoopback: true, allow: [10.0.0.0/8]}
            delivery: {timeoutSeconds: 5, signingSecret: {file: hook.secret}}
            """,
        )
    )
    assert full.egress.allow_loopback and full.delivery.signing_secret is not None


def test_unconfigured_org_is_named_with_its_line(tmp_path: Path) -> None:
    error = config_error(tmp_path, BASE.replace("org: contoso", "org: initech"))
    assert "kiosk.yaml:22: actions[0].invocationMethod.org" in error.message
    assert "'initech' is not configured under azureDevOps.orgs (contoso, fabrikam)" in error.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "azureDevOps:\n  orgs:\n    contoso:\n      signingSecret: hunter2-literal\n",
            "kiosk.yaml:4: azureDevOps.orgs.contoso.signingSecret: secrets must be references",
        ),
        (
            "azureDevOps:\n  orgs:\n    contoso:\n      pat: x\n",
            "kiosk.yaml:4: azureDevOps.orgs.contoso.pat: secrets must be",
        ),
        (
            "azureDevOps:\n  orgs:\n    contoso:\n      token: x\n",
            "kiosk.yaml:4: azureDevOps.orgs.contoso.token: unknown",
        ),
        ("azureDevOps:\n  orgs:\n    contoso:\n      baseUrl: dev.azure.com\n", "baseUrl: string should match"),
        ("azureDevOps:\n  orgs:\n    'bad org': {}\n", "kiosk.yaml:3: azureDevOps.orgs.bad org"),
        ("azureDevOps:\n  orgs:\n    c:\n      signatureHeader: 'a b'\n", "signatureHeader: string should match"),
        ("actions:\n  - identifier: a\n  - identifier: a\n", "kiosk.yaml:3: actions[1].identifier: duplicate"),
        ("actions:\n  - title: no identifier\n", "kiosk.yaml:2: actions[0].identifier: field required"),
        ("egress: {allow: ['not a host!']}\n", "egress.allow"),
        ("delivery: {timeoutSeconds: -1}\n", "delivery.timeoutSeconds"),
    ],
)
def test_section_errors_name_file_line_and_field(tmp_path: Path, text: str, fragment: str) -> None:
    error = config_error(tmp_path, text)
    assert fragment in error.message, error.message
    assert "hunter2-literal" not in error.message


def test_actions_apply_idempotently(catalog: Catalog, tmp_path: Path) -> None:
    first = apply_text(catalog, tmp_path, BASE)
    assert [(r.kind, r.identifier, r.status) for r in first.results] == [
        ("blueprint", "service", "created"),
        ("action", "deploy", "created"),
        ("action", "notify", "created"),
    ]
    second = apply_text(catalog, tmp_path, BASE)
    assert not second.changed and second.counts()["unchanged"] == 3
    third = apply_text(catalog, tmp_path, BASE.replace("title: Deploy", "title: Deploy it"))
    assert [(r.identifier, r.status) for r in third.results if r.kind == "action"] == [
        ("deploy", "updated"),
        ("notify", "unchanged"),
    ]
    stored = Actions(catalog.db).get_action("deploy")
    assert stored["title"] == "Deploy it" and stored["updatedBy"] == "config"
    assert stored["invocationMethod"] == {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "deploy_hook"}


def test_action_errors_point_into_the_file(catalog: Catalog, tmp_path: Path) -> None:
    bad_type = BASE.replace("env: {type: string, enum: [dev, prod], default: dev}", "env: {type: text}")
    error = apply_error(catalog, tmp_path, bad_type)
    assert "kiosk.yaml:20: actions[0].trigger.userInputs.properties.env.type: must be one of" in error.message
    # checked before anything is written
    assert catalog.list_blueprints() == []

    unknown_bp = BASE.replace("blueprintIdentifier: service\n      user", "blueprintIdentifier: svc\n      user")
    error = apply_error(catalog, tmp_path, unknown_bp)
    assert "kiosk.yaml:17: actions[0].trigger.blueprintIdentifier: blueprint 'svc' does not exist" in error.message

    bad_jq = BASE.replace('"created {{ .inputs.name }}"', '"{{ .inputs.name | }}"')
    error = apply_error(catalog, tmp_path, bad_jq)
    assert "kiosk.yaml:" in error.message and "not a valid jq expression" in error.message
    assert "invocationMethod.body.text" in error.message


def test_an_explicit_action_writer_is_used(catalog: Catalog, tmp_path: Path) -> None:
    seen: list[str] = []

    class Recorder:
        def upsert_action(self, raw: object, *, actor: str | None = None) -> str:
            assert isinstance(raw, dict)
            seen.append(raw["identifier"])
            return "created"

    report = apply_config(catalog, load_config(write_config(tmp_path, BASE)), actions=Recorder())  # type: ignore[arg-type]
    assert seen == ["deploy", "notify"] and report.counts()["created"] == 3


@pytest.mark.postgres
def test_an_action_another_process_inserted_meanwhile_is_upserted_again(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes starting together apply kiosk.yaml together: one's insert may find the other's row
    (PostgreSQL: SQLite's writers take the database one at a time, so its look and insert cannot be
    split by another's)."""
    db = create_database(pg_url)
    upgrade_to_head(db)
    catalog = Catalog(db)
    apply_text(catalog, tmp_path, BASE)
    with db.begin() as conn:
        (row,) = conn.execute(sa.select(actions_table).where(actions_table.c.identifier == "deploy")).mappings()
        conn.execute(sa.delete(actions_table).where(actions_table.c.identifier == "deploy"))
    theirs = {**row, "definition": {**row["definition"], "title": "By the other process"}}
    insert = Actions._insert
    raced: list[str] = []

    def insert_after_the_other_process(self: Actions, conn: Any, action: Any, actor: str | None) -> None:
        if not raced:  # the other process inserts first, committed, between this one's look and insert
            raced.append(action.identifier)
            with db.begin() as other:
                other.execute(sa.insert(actions_table).values(**theirs))
        insert(self, conn, action, actor)

    monkeypatch.setattr(Actions, "_insert", insert_after_the_other_process)
    report = apply_text(catalog, tmp_path, BASE)
    assert raced == ["deploy"]
    assert [(r.identifier, r.status) for r in report.results if r.kind == "action"] == [
        ("deploy", "updated"),
        ("notify", "unchanged"),
    ]
    assert Actions(catalog.db).get_action("deploy")["title"] == "Deploy"


@pytest.mark.postgres
def test_a_blueprint_another_process_inserted_meanwhile_is_upserted_again(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for actions: the blueprint insert that finds the other process's row upserts again."""
    db = create_database(pg_url)
    upgrade_to_head(db)
    catalog = Catalog(db)
    insert = blueprint_store.insert_blueprint
    raced: list[str] = []

    def insert_after_the_other_process(conn: Any, dialect: str, doc: dict[str, Any], actor: str | None) -> None:
        if not raced:  # the other process creates it first, committed, between this one's look and insert
            raced.append(doc["identifier"])
            Catalog(db).create_blueprint({"identifier": doc["identifier"], "title": "By the other process"})
        insert(conn, dialect, doc, actor)

    monkeypatch.setattr(blueprint_store, "insert_blueprint", insert_after_the_other_process)
    report = apply_text(catalog, tmp_path, BASE)
    assert raced == ["service"]
    first = report.results[0]
    assert (first.kind, first.identifier, first.status) == ("blueprint", "service", "updated")
    assert catalog.get_blueprint("service")["schema"]["properties"]["lang"] == {"type": "string"}
