"""The subscriptions a mapping needs, and the plan against what Azure holds (pure)."""

from __future__ import annotations

from typing import Any

from kiosk.ingest.hooks.catalogue import EVENTS, KIND_EVENTS, events_for_kinds
from kiosk.ingest.hooks.fingerprint import fingerprint, matches
from kiosk.ingest.hooks.plan import (
    ORGANISATION,
    Desired,
    Existing,
    Scope,
    build_plan,
    consumer_url,
    desired_subscriptions,
    hook_base_url,
)

URL = "https://kiosk.example.com/hooks/integrations/ado"
WEB = Scope("6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c", "web")
API = Scope("0f4c6b7a-2f8e-4d1c-9d8e-3a5b6c7d8e9f", "api")


def desired(kinds: tuple[str, ...] = ("work-item",), scopes: tuple[Scope, ...] = (WEB,), **kw: Any) -> Desired:
    args: dict[str, Any] = {"url": URL, "kinds": kinds, "scopes": scopes, "username": "port", "password": "s3cret"}
    return desired_subscriptions(**{**args, **kw})


def listed(
    event_type: str,
    *,
    project: str | None = WEB.project_id,
    url: str = URL,
    sub_id: str = "",
    status: str = "enabled",
    created: str = "2026-01-01T00:00:00Z",
    **consumer: str,
) -> Existing:
    """A subscription as Azure lists one kiosk made: server inputs added, the password masked."""
    event = EVENTS[event_type]
    publisher: dict[str, Any] = {"hostId": "host-guid"}
    if event.publisher_id == "tfs":
        publisher["tfsSubscriptionId"] = "tfs-guid"
    if project is not None:
        publisher["projectId"] = project
    inputs = {
        "url": url,
        "basicAuthUsername": "port",
        "basicAuthPassword": "********",
        "resourceDetailsToSend": "all",
        "messagesToSend": "none",
        "detailedMessagesToSend": "none",
        **consumer,
    }
    item = {
        "id": sub_id or f"{event_type}-{project}",
        "publisherId": event.publisher_id,
        "eventType": event_type,
        "status": status,
        "resourceVersion": event.resource_version,
        "consumerId": "webHooks",
        "consumerActionId": "httpRequest",
        "publisherInputs": publisher,
        "consumerInputs": inputs,
        "createdDate": created,
    }
    return Existing.from_azure(item, "core")


def actions(plan: Any) -> list[tuple[str, str, str]]:
    return [(s.action, s.event_type, s.scope) for s in plan.steps]


WORK_ITEM_EVENTS = KIND_EVENTS["work-item"]


def test_the_base_url_is_app_host_else_public_url_without_trailing_slash() -> None:
    assert hook_base_url("https://a.example/", "https://b.example") == "https://a.example"
    assert hook_base_url(None, "https://b.example/x/") == "https://b.example/x"
    assert hook_base_url(None, None) is None
    assert consumer_url("https://b.example/x/", "ado") == "https://b.example/x/hooks/integrations/ado"


def test_events_only_for_the_kinds_of_the_mapping_each_once_on_its_host() -> None:
    assert events_for_kinds(["project", "team", "user"]) == []
    events = events_for_kinds(["branch", "file", "release", "release-deployment", "build"])
    types = [e.event_type for e in events]
    assert len(types) == len(set(types))
    assert types[0] == "build.complete"  # tfs first, then pipelines, then rm
    assert "git.push" in types and "git.repo.deleted" in types
    hosts = {e.publisher_id: e.host for e in events}
    assert hosts == {"tfs": "core", "rm": "vsrm"}
    assert {e.event_type for e in events if e.publisher_id == "rm"} == {
        "ms.vss-release.release-created-event",
        "ms.vss-release.release-abandoned-event",
        "ms.vss-release.deployment-started-event",
        "ms.vss-release.deployment-completed-event",
    }
    pipelines = events_for_kinds(["pipeline-run", "pipeline-stage"])
    assert {e.publisher_id for e in pipelines} == {"pipelines"}
    assert {e.resource_version for e in pipelines} == {"5.1-preview.1"}


def test_one_set_per_scope_with_basic_auth_and_the_whole_resource() -> None:
    wanted = desired(scopes=(WEB, API))
    assert wanted.reason is None
    assert len(wanted.subscriptions) == 2 * len(WORK_ITEM_EVENTS)
    body = wanted.subscriptions[0].body(wanted.consumer_inputs)
    assert body["publisherInputs"] == {"projectId": WEB.project_id}
    assert body["consumerInputs"] == {
        "url": URL,
        "basicAuthUsername": "port",
        "basicAuthPassword": "s3cret",
        "resourceDetailsToSend": "all",
        "messagesToSend": "none",
        "detailedMessagesToSend": "none",
    }
    org_level = desired(scopes=(ORGANISATION,))
    assert {w.publisher_inputs() == {} for w in org_level.subscriptions} == {True}


def test_without_a_secret_nothing_is_needed_and_the_reason_says_why() -> None:
    for password in (None, ""):
        none = desired(password=password)
        assert none.subscriptions == () and none.reason is not None and "webhookSecret" in none.reason
        assert "basicAuthPassword" not in none.consumer_inputs
    spaced = desired(password="two words")
    assert spaced.subscriptions == () and spaced.reason is not None and "whitespace" in spaced.reason
    assert desired(kinds=("project",)).reason == "no kind of the mapping has live events"
    assert desired(scopes=()).subscriptions == ()


def test_first_plan_creates_every_subscription() -> None:
    plan = build_plan(desired(), [], inputs_applied=False)
    assert [a for a, _, _ in actions(plan)] == ["create"] * len(WORK_ITEM_EVENTS)
    assert {scope for _, _, scope in actions(plan)} == {"project web"}
    assert plan.changes and plan.summary().startswith(f"{len(WORK_ITEM_EVENTS)} to create")


def test_what_azure_adds_does_not_make_a_match_differ() -> None:
    existing = [listed(e) for e in WORK_ITEM_EVENTS]
    plan = build_plan(desired(), existing, inputs_applied=True)
    assert {a for a, _, _ in actions(plan)} == {"keep"}
    assert not plan.changes
    # Org level: the server's tfsSubscriptionId and hostId are not filters (the reference's duplicates).
    org = [listed(e, project=None) for e in WORK_ITEM_EVENTS]
    assert not build_plan(desired(scopes=(ORGANISATION,)), org, inputs_applied=True).changes


def test_a_disabled_one_is_re_enabled_and_a_changed_one_updated() -> None:
    existing = [listed(e) for e in WORK_ITEM_EVENTS]
    existing[0] = listed(WORK_ITEM_EVENTS[0], status="disabledBySystem")
    existing[1] = listed(WORK_ITEM_EVENTS[1], basicAuthUsername="someone")
    existing[2] = listed(WORK_ITEM_EVENTS[2], httpHeaders="X-A: b")
    plan = build_plan(desired(), existing, inputs_applied=True)
    updates = {s.event_type: s.reason for s in plan.of("update")}
    assert set(updates) == set(WORK_ITEM_EVENTS[:3])
    assert updates[WORK_ITEM_EVENTS[0]] == "status disabledBySystem"
    assert "basicAuthUsername" in updates[WORK_ITEM_EVENTS[1]]
    assert "httpHeaders" in updates[WORK_ITEM_EVENTS[2]]
    body = plan.of("update")[0].wanted.body(desired().consumer_inputs)  # type: ignore[union-attr]
    assert body["status"] == "enabled"


def test_credentials_not_known_to_be_applied_update_every_kept_one() -> None:
    existing = [listed(e) for e in WORK_ITEM_EVENTS]
    plan = build_plan(desired(), existing, inputs_applied=False)
    assert [s.action for s in plan.steps] == ["update"] * len(WORK_ITEM_EVENTS)
    assert "credentials" in plan.steps[0].reason


def test_duplicates_beyond_one_are_deleted_keeping_the_enabled_oldest() -> None:
    event = WORK_ITEM_EVENTS[0]
    others = [listed(e) for e in WORK_ITEM_EVENTS[1:]]
    twins = [
        listed(event, sub_id="b-newer", created="2026-02-01T00:00:00Z"),
        listed(event, sub_id="a-disabled", created="2025-01-01T00:00:00Z", status="disabledByUser"),
        listed(event, sub_id="c-oldest", created="2026-01-01T00:00:00Z"),
    ]
    plan = build_plan(desired(), [*others, *twins], inputs_applied=True)
    deleted = {s.subscription_id for s in plan.of("delete")}
    assert deleted == {"b-newer", "a-disabled"}
    kept = [s for s in plan.steps if s.event_type == event and s.action == "keep"]
    assert [s.subscription_id for s in kept] == ["c-oldest"]
    assert all("duplicate of c-oldest" in s.reason for s in plan.of("delete"))


def test_others_subscriptions_are_never_touched_and_own_stale_ones_are_deleted() -> None:
    foreign = [
        listed("git.push", url="https://kiosk.example.com/hooks/integrations/other", sub_id="f1"),
        listed("workitem.created", url="https://elsewhere.example/hook", sub_id="f2"),
        listed("workitem.created", url=URL + "/", sub_id="f3"),  # not this exact URL
    ]
    stale = listed("git.push", sub_id="stale-push")
    gone_project = listed("workitem.created", project=API.project_id, sub_id="stale-project")
    current = [listed(e) for e in WORK_ITEM_EVENTS]
    plan = build_plan(
        desired(), [*foreign, stale, gone_project, *current], inputs_applied=True, project_names={"x": "y"}
    )
    assert plan.foreign == 3
    assert {s.subscription_id: s.reason for s in plan.of("delete")} == {
        "stale-push": "no longer needed",
        "stale-project": "no longer needed",
    }
    assert len(plan.of("keep")) == len(WORK_ITEM_EVENTS)
    assert "3 other subscription(s) left alone" in plan.summary()


def test_the_same_subscription_listed_twice_is_one() -> None:
    one = listed(WORK_ITEM_EVENTS[0])
    plan = build_plan(desired(kinds=("work-item",)), [one, one], inputs_applied=True)
    assert not plan.of("delete")


def test_without_a_secret_own_subscriptions_go_with_the_reason() -> None:
    existing = [listed(e) for e in WORK_ITEM_EVENTS]
    plan = build_plan(desired(password=None), existing, inputs_applied=True)
    assert [s.action for s in plan.steps] == ["delete"] * len(WORK_ITEM_EVENTS)
    assert plan.steps[0].reason.startswith("none is needed: no webhookSecret")


def test_another_resource_version_or_filter_is_updated() -> None:
    existing = [listed(e) for e in KIND_EVENTS["build"]]
    raw = {
        "id": "b1",
        "publisherId": "tfs",
        "eventType": "build.complete",
        "status": "enabled",
        "resourceVersion": "1.0",
        "consumerId": "webHooks",
        "publisherInputs": {"projectId": WEB.project_id, "definitionName": "ci"},
        "consumerInputs": existing[0].consumer_inputs,
    }
    plan = build_plan(desired(kinds=("build",)), [Existing.from_azure(raw, "core")], inputs_applied=True)
    (step,) = plan.steps
    assert step.action == "update"
    assert "resource version 1.0 instead of 2.0" in step.reason and "filters" in step.reason


def test_the_fingerprint_matches_the_same_inputs_only_and_holds_no_secret() -> None:
    inputs = {"url": URL, "basicAuthUsername": "port", "basicAuthPassword": "s3cret"}
    mark = fingerprint(inputs)
    assert "s3cret" not in mark and mark != fingerprint(inputs)  # salted
    assert matches(mark, inputs)
    assert not matches(mark, {**inputs, "basicAuthPassword": "other"})
    assert not matches(None, inputs) and not matches("junk", inputs) and not matches("a$b$zz$yy", inputs)
