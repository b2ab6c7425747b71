"""Automations on both engines: entity and run events fire a run and its delivery in the writer's
transaction, conditions over before/after, payloads and templates, depth 1, never breaking a write."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from tests.actions.deploy_action import AZURE_ORGS, DEPLOY, row_counts

from kiosk.actions.automations import (
    AUTOMATION,
    Automations,
    Event,
    condition_holds,
    default_body,
    listens,
    template_input,
)
from kiosk.actions.model import parse_action
from kiosk.actions.runs import Runs, expire_stale_runs, fail_run_for_delivery, finish_run_from_pipeline
from kiosk.actions.secrets import SecretBox
from kiosk.actions.service import Actions
from kiosk.catalog.service import Catalog
from kiosk.errors import NotFound, ValidationFailed
from kiosk.store import Database
from kiosk.store.tables import action_run_logs, action_runs, deliveries
from kiosk.store.tables import actions as actions_table

HOOK = {"type": "WEBHOOK", "url": "https://hooks.example.com/automation"}
SERVICE = {
    "identifier": "service",
    "schema": {
        "properties": {
            "lifecycle": {"type": "string", "enum": ["development", "production"]},
            "lang": {"type": "string"},
        }
    },
    "relations": {"owner": {"target": "team", "many": False}},
}


def automation(
    identifier: str,
    event: str,
    *,
    blueprint: str | None = None,
    action: str | None = None,
    expressions: list[str] | None = None,
    combinator: str | None = None,
    invocation: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    trigger: dict[str, Any] = {"type": "automation", "event": {"type": event}}
    if blueprint is not None:
        trigger["event"]["blueprintIdentifier"] = blueprint
    if action is not None:
        trigger["event"]["actionIdentifier"] = action
    if expressions is not None:
        trigger["condition"] = {"type": "JQ", "expressions": expressions}
        if combinator is not None:
            trigger["condition"]["combinator"] = combinator
    return {"identifier": identifier, "trigger": trigger, "invocationMethod": invocation or HOOK, **extra}


def azure_automation(identifier: str, *, org: str) -> dict[str, Any]:
    """An automation on created ``service`` entities that triggers webhook ``w`` of Azure DevOps ``org``."""
    invocation = {"type": "AZURE-DEVOPS", "org": org, "webhook": "w"}
    return automation(identifier, "ENTITY_CREATED", blueprint="service", invocation=invocation)


@dataclass
class Kit:
    db: Database
    catalog: Catalog
    actions: Actions
    runs: Runs
    automations: Automations
    notified: list[bool] = field(default_factory=list)

    def fired(self, action: str | None = None) -> list[dict[str, Any]]:
        """The automation runs, oldest first, each with its delivery's body (None: no delivery)."""
        with self.db.connect() as conn:
            query = sa.select(action_runs).where(action_runs.c.origin == AUTOMATION)
            if action is not None:
                query = query.where(action_runs.c.action == action)
            rows = conn.execute(query.order_by(action_runs.c.created_at, action_runs.c.id)).all()
            # A run with secret inputs (the deploy run) has its body sealed; automations never do.
            bodies = {
                r.run_id: orjson.loads(r.body)
                for r in conn.execute(sa.select(deliveries))
                if not r.target.get("sealed")
            }
        return [{**self.runs.get_run(r.id), "body": bodies.get(r.id), "blueprintColumn": r.blueprint} for r in rows]


@pytest.fixture
def kit(db: Database) -> Kit:
    actions = Actions(db, azure_orgs=AZURE_ORGS)
    automations = Automations(actions)
    catalog = Catalog(db, listener=automations)
    catalog.create_blueprint({"identifier": "team"})
    catalog.create_blueprint(SERVICE)
    runs = Runs(db, catalog, actions, SecretBox(bytes(range(32))), listener=automations)
    made = Kit(db, catalog, actions, runs, automations)
    automations.notify = lambda: made.notified.append(True)
    return made


def upsert(kit: Kit, identifier: str, actor: str = "kc_dev", **properties: Any) -> None:
    kit.catalog.upsert_entity(
        "service", {"identifier": identifier, "properties": properties}, upsert=True, merge=True, actor=actor
    )


# --------------------------------------------------------------------------------- entity events


def test_created_updated_deleted_each_fire_once_with_before_and_after(kit: Kit) -> None:
    for event in ("ENTITY_CREATED", "ENTITY_UPDATED", "ENTITY_DELETED"):
        kit.actions.create_action(automation(f"on_{event.lower()}", event, blueprint="service"))

    upsert(kit, "svc-a", lang="go")
    (created,) = kit.fired()
    assert created["action"]["identifier"] == "on_entity_created"
    assert created["status"] == "IN_PROGRESS" and created["source"] == AUTOMATION
    assert created["entity"] == {"identifier": "svc-a"} and created["blueprint"] == {"identifier": "service"}
    assert created["createdBy"] == "kc_dev" and kit.notified == [True]
    event = created["body"]["event"]
    assert event["type"] == "ENTITY_CREATED" and event["diff"]["before"] is None
    assert event["diff"]["after"]["properties"] == {"lang": "go"}

    upsert(kit, "svc-a", lang="rust")
    updated = kit.fired("on_entity_updated")
    assert len(updated) == 1
    diff = updated[0]["body"]["event"]["diff"]
    assert (diff["before"]["properties"], diff["after"]["properties"]) == ({"lang": "go"}, {"lang": "rust"})

    kit.catalog.delete_entity("service", "svc-a")
    (deleted,) = kit.fired("on_entity_deleted")
    diff = deleted["body"]["event"]["diff"]
    assert diff["after"] is None and diff["before"]["properties"] == {"lang": "rust"}
    assert len(kit.fired()) == 3 and row_counts(kit.db) == (3, 3, 3) and kit.notified == [True] * 3


def test_any_entity_change_and_an_update_that_changes_nothing(kit: Kit) -> None:
    kit.actions.create_action(automation("any", "ANY_ENTITY_CHANGE", blueprint="service"))
    upsert(kit, "svc-a", lang="go")
    upsert(kit, "svc-a", lang="go")  # the same again: only updatedAt would change, so no event
    kit.catalog.patch_entity("service", "svc-a", {"properties": {"lang": "c"}})
    kit.catalog.delete_entity("service", "svc-a")
    assert [r["body"]["event"]["type"] for r in kit.fired()] == ["ENTITY_CREATED", "ENTITY_UPDATED", "ENTITY_DELETED"]


def test_other_blueprints_and_disabled_automations_do_not_fire(kit: Kit) -> None:
    kit.actions.create_action(automation("teams", "ENTITY_CREATED", blueprint="team"))
    kit.actions.create_action(automation("off", "ENTITY_CREATED", blueprint="service", publish=False))
    upsert(kit, "svc-a")
    assert kit.fired() == [] and row_counts(kit.db) == (0, 0, 0) and kit.notified == []
    kit.catalog.upsert_entity("team", {"identifier": "platform"})
    assert [r["action"]["identifier"] for r in kit.fired()] == ["teams"]


def test_condition_over_before_and_after(kit: Kit) -> None:
    to_production = [
        '.diff.after.properties.lifecycle == "production"',
        '.diff.before.properties.lifecycle != "production"',
    ]
    kit.actions.create_action(automation("promoted", "ENTITY_UPDATED", blueprint="service", expressions=to_production))
    upsert(kit, "svc-a", lifecycle="development")
    upsert(kit, "svc-a", lang="go")  # an update, still development
    assert kit.fired() == []
    upsert(kit, "svc-a", lifecycle="production")
    upsert(kit, "svc-a", lang="rust")  # still production: the condition on before is false now
    (fired,) = kit.fired()
    assert fired["body"]["event"]["diff"]["after"]["properties"]["lifecycle"] == "production"


def test_or_combinator(kit: Kit) -> None:
    either = ['.entity.properties.lang == "go"', '.entity.properties.lang == "rust"']
    kit.actions.create_action(
        automation("systems", "ENTITY_CREATED", blueprint="service", expressions=either, combinator="or")
    )
    kit.actions.create_action(automation("both", "ENTITY_CREATED", blueprint="service", expressions=either))
    for ident, lang in (("a", "go"), ("b", "java"), ("c", "rust")):
        upsert(kit, ident, lang=lang)
    assert [r["entity"]["identifier"] for r in kit.fired("systems")] == ["a", "c"]
    assert kit.fired("both") == []  # "and": never both at once


def test_a_condition_that_errors_fires_nothing_and_does_not_break_the_write(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    # .lang is a string: indexing it fails at run time (the expression itself is valid jq)
    kit.actions.create_action(
        automation("broken", "ENTITY_CREATED", blueprint="service", expressions=[".entity.properties.lang.x"])
    )
    kit.actions.create_action(
        automation("not_boolean", "ENTITY_CREATED", blueprint="service", expressions=[".entity.properties"])
    )
    upsert(kit, "svc-a", lang="go")
    assert kit.catalog.get_entity("service", "svc-a")["properties"] == {"lang": "go"}
    assert kit.fired() == [] and row_counts(kit.db) == (0, 0, 0)
    messages = [r.getMessage() for r in caplog.records]
    assert "an automation's condition failed; counted as false" in messages
    assert "an automation's condition gave neither true nor false; counted as false" in messages


def test_bulk_upsert_fires_per_changed_entity(kit: Kit) -> None:
    kit.actions.create_action(automation("any", "ANY_ENTITY_CHANGE", blueprint="service"))
    upsert(kit, "same", lang="go")
    upsert(kit, "changed", lang="go")
    outcome = kit.catalog.bulk_upsert(
        "service",
        [
            {"identifier": "same", "properties": {"lang": "go"}},
            {"identifier": "changed", "properties": {"lang": "c"}},
            {"identifier": "new", "properties": {"lang": "go"}},
            {"identifier": "bad", "properties": {"lifecycle": "retired"}},  # refused: not in the enum
        ],
        upsert=True,
        merge=True,
    )
    assert [e["identifier"] for e in outcome.entities] == ["same", "changed", "new"] and len(outcome.errors) == 1
    events = [(r["entity"]["identifier"], r["body"]["event"]["type"]) for r in kit.fired()][2:]
    assert events == [("changed", "ENTITY_UPDATED"), ("new", "ENTITY_CREATED")]


def test_a_write_refused_by_validation_fires_nothing(kit: Kit) -> None:
    kit.actions.create_action(automation("any", "ANY_ENTITY_CHANGE", blueprint="service"))
    upsert(kit, "svc-a", lang="go")
    before = row_counts(kit.db)
    with pytest.raises(ValidationFailed):
        upsert(kit, "svc-b", lifecycle="retired")
    with pytest.raises(ValidationFailed):
        kit.catalog.patch_entity("service", "svc-a", {"properties": {"lifecycle": "retired"}})
    with pytest.raises(NotFound):
        kit.catalog.delete_entity("service", "nobody")
    assert row_counts(kit.db) == before == (1, 1, 1)


def test_the_automation_commits_or_rolls_back_with_the_write(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    kit.actions.create_action(automation("created", "ENTITY_CREATED", blueprint="service"))
    real = kit.automations.entities_changed

    def fire_then_fail(conn: Any, changes: Any) -> bool:
        assert real(conn, changes)
        # In the write's transaction: the entity, the run and its delivery are all there ...
        assert conn.execute(sa.select(sa.func.count()).select_from(action_runs)).scalar_one() == 1
        raise RuntimeError("... and the write fails before it commits")

    monkeypatch.setattr(kit.automations, "entities_changed", fire_then_fail)
    with pytest.raises(RuntimeError):
        upsert(kit, "svc-a")
    assert row_counts(kit.db) == (0, 0, 0) and kit.notified == []  # ... so none of them is kept
    with pytest.raises(NotFound):
        kit.catalog.get_entity("service", "svc-a")


def test_created_relation_targets_and_dependents(kit: Kit) -> None:
    kit.actions.create_action(automation("new_team", "ENTITY_CREATED", blueprint="team"))
    kit.actions.create_action(automation("gone", "ENTITY_DELETED", blueprint="team"))
    kit.catalog.upsert_entity(
        "service", {"identifier": "svc-a", "relations": {"owner": "platform"}}, create_missing=True
    )
    (made,) = kit.fired("new_team")
    assert made["entity"] == {"identifier": "platform"} and made["body"]["context"]["blueprintIdentifier"] == "team"
    kit.catalog.delete_entity("team", "platform")
    (gone,) = kit.fired("gone")
    assert gone["body"]["event"]["diff"]["before"]["identifier"] == "platform"


def test_deleting_a_blueprint_with_its_entities_fires_deletions(kit: Kit) -> None:
    kit.catalog.create_blueprint({"identifier": "scratch"})
    kit.actions.create_action(automation("gone", "ENTITY_DELETED", blueprint="scratch"))
    kit.catalog.bulk_upsert("scratch", [{"identifier": "a"}, {"identifier": "b"}])
    kit.catalog.delete_blueprint("scratch", delete_entities=True)
    assert sorted(r["entity"]["identifier"] for r in kit.fired("gone")) == ["a", "b"]


# --------------------------------------------------------------------------------- payloads


def test_default_payload_is_port_shaped(kit: Kit) -> None:
    kit.actions.create_action(automation("created", "ENTITY_CREATED", blueprint="service", title="On create"))
    upsert(kit, "svc-a", lang="go")
    (run,) = kit.fired()
    body = run["body"]
    assert set(body) == {"action", "resourceType", "status", "trigger", "event", "context"}
    assert (body["action"], body["resourceType"], body["status"]) == ("created", "entity", "TRIGGERED")
    assert body["trigger"]["origin"] == AUTOMATION and body["trigger"]["by"]["userId"] == "kc_dev"
    assert body["trigger"]["at"].endswith("Z")
    assert body["context"] == {
        "blueprintIdentifier": "service",
        "entityIdentifier": "svc-a",
        "runId": run["id"],
        "reportToken": "krt_****",  # stored as its placeholder: the delivery worker fills it in
    }
    after = body["event"]["diff"]["after"]
    assert after["identifier"] == "svc-a" and after["blueprint"] == "service" and after["createdAt"]


def test_a_jq_body_template(kit: Kit) -> None:
    body = {
        "service": "{{ .entity.identifier }}",
        "event": "{{ .event.type }}",
        "changed": "{{ .diff.before.properties.lang }} -> {{ .diff.after.properties.lang }}",
        "run": "{{ .run.id }}",
        "who": "{{ .trigger.by.userId }}",
        "automation": "{{ .action.identifier }}",
        "context": "{{ .event.context }}",
    }
    kit.actions.create_action(
        automation("templated", "ENTITY_UPDATED", blueprint="service", invocation={**HOOK, "body": body})
    )
    upsert(kit, "svc-a", lang="go")
    upsert(kit, "svc-a", lang="rust", actor="kc_ops")
    (run,) = kit.fired()
    assert run["body"] == {
        "service": "svc-a",
        "event": "ENTITY_UPDATED",
        "changed": "go -> rust",
        "run": run["id"],
        "who": "kc_ops",
        "automation": "templated",
        "context": {"blueprintIdentifier": "service", "entityIdentifier": "svc-a"},
    }


def test_a_template_that_fails_records_a_failed_run_and_keeps_the_write(kit: Kit) -> None:
    kit.actions.create_action(
        automation(
            "bad_template",
            "ENTITY_CREATED",
            blueprint="service",
            invocation={**HOOK, "body": {"x": "{{ .entity.properties.lang.deeper }}"}},
        )
    )
    upsert(kit, "svc-a", lang="go")
    assert kit.catalog.get_entity("service", "svc-a")
    (run,) = kit.fired()
    assert run["status"] == "FAILURE" and run["endedAt"] and run["body"] is None
    assert run["statusLabel"].startswith("not sent: invocationMethod.body.x: the template")
    with kit.db.connect() as conn:
        (entry,) = conn.execute(sa.select(action_run_logs)).all()
    assert entry.termination_status == "FAILURE" and "could not build" in entry.message
    assert row_counts(kit.db) == (1, 0, 0) and kit.notified == []


def test_azure_devops_automation_targets_the_org_webhook(kit: Kit, db: Database) -> None:
    kit.actions.create_action(azure_automation("azure", org="contoso"))
    upsert(kit, "svc-a")
    with db.connect() as conn:
        delivery = conn.execute(sa.select(deliveries)).one()
    assert delivery.source == "automation"
    assert delivery.target["url"].startswith("https://dev.azure.com/contoso/_apis/public/distributedtask/webhooks/w?")
    assert delivery.target["signing"]["scheme"] == "azure"


# --------------------------------------------------------------------------------- run events


@pytest.fixture
def deploy(kit: Kit) -> Kit:
    kit.actions.create_action(DEPLOY)
    upsert(kit, "svc-a")
    return kit


def start(kit: Kit, **properties: Any) -> dict[str, Any]:
    return kit.runs.start_run("deploy", {"entity": "svc-a", "properties": properties}, actor="kc_dev")


def test_run_created_and_updated_fire_on_another_actions_runs(deploy: Kit) -> None:
    kit = deploy
    kit.actions.create_action(automation("run_created", "RUN_CREATED", action="deploy"))
    kit.actions.create_action(
        automation("run_failed", "RUN_UPDATED", action="deploy", expressions=['.diff.after.status == "FAILURE"'])
    )
    run = start(kit, token="hunter2-run-secret")
    (created,) = kit.fired()
    body = created["body"]
    assert (body["resourceType"], body["event"]["type"]) == ("run", "RUN_CREATED")
    assert body["context"] == {
        "actionIdentifier": "deploy",
        "runIdentifier": run["id"],
        "runId": created["id"],
        "reportToken": "krt_****",
    }
    assert body["event"]["diff"]["before"] is None
    assert body["event"]["diff"]["after"]["properties"] == {"token": "****"}  # secrets stay masked
    assert "hunter2-run-secret" not in orjson.dumps(body).decode()
    assert created["entity"] is None and created["blueprint"] is None

    kit.runs.report(run["id"], {"statusLabel": "building"})  # an update, but not a failure
    kit.runs.add_log(run["id"], {"message": "a log is not an update"})
    kit.runs.add_log(run["id"], {"message": "broke", "terminationStatus": "FAILURE"})
    (failed,) = kit.fired("run_failed")
    diff = failed["body"]["event"]["diff"]
    assert (diff["before"]["status"], diff["after"]["status"]) == ("IN_PROGRESS", "FAILURE")
    assert diff["before"]["statusLabel"] == "building"


def test_every_run_status_change_is_an_update(deploy: Kit, db: Database) -> None:
    kit = deploy
    kit.actions.create_action(automation("updates", "RUN_UPDATED", action="deploy"))
    statuses: list[str] = []

    def seen() -> list[str]:
        return [r["body"]["event"]["diff"]["after"]["status"] for r in kit.fired("updates")]

    kit.runs.report(start(kit)["id"], {"status": "SUCCESS"})
    statuses.append("SUCCESS")
    assert fail_run_for_delivery(db, start(kit)["id"], "HTTP 404", listener=kit.automations)
    statuses.append("FAILURE")
    piped = start(kit)
    assert finish_run_from_pipeline(db, f"kiosk-{piped['id']}", "SUCCESS", None, "done", listener=kit.automations)
    statuses.append("SUCCESS")
    stale = start(kit)
    with db.begin() as conn:
        past = datetime.now(UTC) - timedelta(hours=3)
        conn.execute(sa.update(action_runs).where(action_runs.c.id == stale["id"]).values(updated_at=past))
    assert expire_stale_runs(db, timedelta(hours=1), listener=kit.automations) == 1
    statuses.append("FAILURE")
    assert seen() == statuses

    approval = {**DEPLOY, "identifier": "deploy", "requiredApproval": True}
    kit.actions.replace_action("deploy", approval)
    kit.runs.approve(start(kit)["id"], actor="kc_admin")
    kit.runs.decline(start(kit)["id"], {"reason": "not today"}, actor="kc_admin")
    assert seen() == [*statuses, "IN_PROGRESS", "DECLINED"]


def test_automation_runs_never_fire_run_automations(deploy: Kit) -> None:
    kit = deploy
    # A listens on deploy's runs; B listens on A's — refused when saved, and never fires anyway.
    kit.actions.create_action(automation("a", "ANY_RUN_CHANGE", action="deploy"))
    with pytest.raises(ValidationFailed, match="is an automation; automation runs never fire run automations"):
        kit.actions.create_action(automation("b", "ANY_RUN_CHANGE", action="a"))
    with pytest.raises(ValidationFailed, match="cannot watch its own runs"):
        kit.actions.create_action(automation("c", "ANY_RUN_CHANGE", action="c"))
    # Stored anyway (say, an older kiosk let it in): still depth 1.
    with kit.db.begin() as conn:
        now = datetime.now(UTC)
        conn.execute(
            sa.insert(actions_table).values(
                identifier="b",
                definition=parse_action(automation("b", "ANY_RUN_CHANGE", action="a")).document,
                created_at=now,
                updated_at=now,
            )
        )
    run = start(kit)
    kit.runs.report(run["id"], {"status": "SUCCESS"})
    fired = kit.fired()
    assert [r["action"]["identifier"] for r in fired] == ["a", "a"]  # created + updated; b never
    kit.runs.report(fired[0]["id"], {"status": "SUCCESS"})  # an automation run finishing: nothing
    assert len(kit.fired()) == 2


def test_an_automation_cannot_be_run_by_hand(kit: Kit) -> None:
    kit.actions.create_action(automation("created", "ENTITY_CREATED", blueprint="service"))
    with pytest.raises(ValidationFailed, match="is an automation") as info:
        kit.runs.start_run("created", {}, actor="kc_dev")
    assert info.value.code == "action_is_automation"


def test_the_actions_filter_and_checks_know_automations(kit: Kit) -> None:
    kit.actions.create_action(automation("created", "ENTITY_CREATED", blueprint="service"))
    assert [a["identifier"] for a in kit.actions.list_actions(blueprint="service")] == ["created"]
    with pytest.raises(ValidationFailed, match="blueprint 'nope' does not exist"):
        kit.actions.create_action(automation("x", "ENTITY_CREATED", blueprint="nope"))
    with pytest.raises(ValidationFailed, match="action 'nope' does not exist"):
        kit.actions.create_action(automation("x", "RUN_CREATED", action="nope"))
    with pytest.raises(ValidationFailed, match="not configured"):
        kit.actions.create_action(azure_automation("x", org="n"))


def test_parsed_actions_are_cached_per_version_and_unparsable_ones_skipped(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    kit.actions.create_action(automation("created", "ENTITY_CREATED", blueprint="service"))
    with kit.db.begin() as conn:
        first = kit.actions.all_parsed(conn)
        assert kit.actions.all_parsed(conn)[0] is first[0]
        now = datetime.now(UTC)
        conn.execute(
            sa.insert(actions_table).values(
                identifier="junk",
                definition={"identifier": "junk", "trigger": "nonsense"},
                created_at=now,
                updated_at=now,
            )
        )
        assert [a.identifier for a in kit.actions.all_parsed(conn)] == ["created"]
        assert [a.identifier for a in kit.actions.all_parsed(conn)] == ["created"]
    assert [r.getMessage() for r in caplog.records].count("a stored action no longer parses") == 1
    upsert(kit, "svc-a")  # the junk does not break writes
    assert len(kit.fired()) == 1


# --------------------------------------------------------------------------------- pure parts


def test_listens_and_conditions_are_pure() -> None:
    spec = parse_action(automation("x", "ANY_ENTITY_CHANGE", blueprint="service")).automation
    assert spec is not None
    event = Event("ENTITY_DELETED", "entity", "service", {"identifier": "a"}, None, {"entityIdentifier": "a"}, None)
    assert listens(spec, event)
    assert not listens(spec, Event("RUN_CREATED", "run", "service", None, {}, {}, None))
    assert not listens(spec, Event("ENTITY_DELETED", "entity", "team", None, None, {"entityIdentifier": "a"}, None))

    action = parse_action(
        automation("x", "ENTITY_DELETED", blueprint="service", expressions=['.entity.identifier == "a"'])
    )
    assert action.automation is not None
    data = template_input(action, event, {"origin": AUTOMATION}, "r_1")
    assert data["entity"] == {"identifier": "a"} and data["diff"] == {"before": {"identifier": "a"}, "after": None}
    assert data["run"] == {"id": "r_1", "reportToken": "krt_****"}
    assert data["action"] == {"identifier": "x", "title": None}
    assert condition_holds("x", action.automation, data)
    assert default_body(action, event, {}, "r_1")["context"] == {
        "entityIdentifier": "a",
        "runId": "r_1",
        "reportToken": "krt_****",
    }
    nulls = parse_action(automation("x", "ENTITY_DELETED", blueprint="service", expressions=[".nothing"])).automation
    assert nulls is not None and not condition_holds("x", nulls, data)  # null is false, quietly
