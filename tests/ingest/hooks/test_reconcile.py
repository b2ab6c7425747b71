"""Reconciling subscriptions against the emulator over real HTTP: the exact set, idempotence, repairs,
others' subscriptions left alone, a changed secret, releases on their own host, a listing failure."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator
from tests.emulator.hooks.conftest import org_event, publish
from tests.ingest.hooks.conftest import (
    APP_HOST,
    EVENTS_PER_SCOPE,
    KINDS,
    SECRET,
    hooked_integration,
    keys,
    listed,
    project_ids,
    subscribe,
)
from tests.support.receiver import Receiver
from tests.support.servers import serving

from kiosk.azure.ratelimit import RetryPolicy
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.azure.urls import OrgUrls
from kiosk.ingest.fetch.base import PROJECT_TAG_PREFIX
from kiosk.ingest.hooks.catalogue import EVENTS, KIND_EVENTS, events_for_kinds
from kiosk.ingest.hooks.reconcile import HookListingError, HookReconciler, ReconcileReport
from kiosk.ingest.hooks.store import HookStore
from kiosk.store import Database

URL = f"{APP_HOST}/hooks/integrations/ado"


def reconciler(db: Database, **options: Any) -> HookReconciler:
    return HookReconciler(
        db, public_url=None, rest_options={"retry": RetryPolicy(max_attempts=2, base_delay=0.01)}, **options
    )


def apply(db: Database, integration: Any, **options: Any) -> ReconcileReport:
    found = reconciler(db, **options)
    return found.run(found.target(integration), apply=True)


def check(db: Database, integration: Any) -> ReconcileReport:
    found = reconciler(db)
    return found.run(found.target(integration), apply=False)


def expected_keys(project_list: list[str]) -> list[tuple[str, str, str]]:
    events = events_for_kinds(KINDS)
    return sorted((p, e.publisher_id, e.event_type) for p in project_list for e in events)


def test_first_apply_creates_the_exact_set_per_project_and_ten_more_change_nothing(
    azure: LiveEmulator, sqlite_db: Database
) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam")
    assert check(sqlite_db, integration).changes
    report = apply(sqlite_db, integration)
    projects = project_ids(azure)
    assert len(projects) == 3
    assert keys(listed(azure), URL) == expected_keys(projects)
    assert len(report.organizations[0].plan.of("create")) == 3 * EVENTS_PER_SCOPE and report.failures == 0
    first = {s["id"] for s in listed(azure)}
    auth = {(s["consumerInputs"]["basicAuthUsername"], s["consumerInputs"]["basicAuthPassword"]) for s in listed(azure)}
    assert auth == {("port", "********")}
    for _ in range(10):
        again = apply(sqlite_db, integration)
        assert not again.changes, again.lines()
    assert {s["id"] for s in listed(azure)} == first
    assert not check(sqlite_db, integration).changes


def test_org_level_subscriptions_are_matched_despite_what_azure_adds(azure: LiveEmulator, sqlite_db: Database) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam", projects_limited=False)
    apply(sqlite_db, integration)
    subscriptions = listed(azure)
    assert keys(subscriptions, URL) == expected_keys([""])
    assert all("tfsSubscriptionId" in s["publisherInputs"] for s in subscriptions if s["publisherId"] == "tfs")
    assert not apply(sqlite_db, integration).changes
    assert len(listed(azure)) == EVENTS_PER_SCOPE


def test_excluded_projects_get_no_subscriptions(azure: LiveEmulator, sqlite_db: Database) -> None:
    web = next(p for p in azure.organisation().projects.values() if p.name == "web")
    web.properties[f"{PROJECT_TAG_PREFIX}archived"] = "true"
    integration = hooked_integration(f"{azure.base_url}/fabrikam", excluded_tags=["archived"])
    apply(sqlite_db, integration)
    in_projects = {k[0] for k in keys(listed(azure), URL)}
    assert web.id not in in_projects and len(in_projects) == 2


def test_a_disabled_one_is_re_enabled_in_place(azure: LiveEmulator, sqlite_db: Database) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build",))
    apply(sqlite_db, integration)
    victim = listed(azure)[0]
    body = {**victim, "status": "disabledByUser"}
    answer = azure.client.put(f"/fabrikam/_apis/hooks/subscriptions/{victim['id']}?api-version=7.1", json=body)
    assert answer.status_code == 200 and answer.json()["status"] == "disabledByUser"
    report = apply(sqlite_db, integration)
    (update,) = report.organizations[0].plan.of("update")
    assert update.subscription_id == victim["id"] and update.reason == "status disabledByUser"
    after = {s["id"]: s["status"] for s in listed(azure)}
    assert after[victim["id"]] == "enabled" and len(after) == 3
    assert not apply(sqlite_db, integration).changes


def test_others_are_untouched_stale_and_twin_own_ones_deleted(azure: LiveEmulator, sqlite_db: Database) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build",), projects_limited=False)

    def body(url: str, event_type: str = "build.complete", **extra: str) -> dict[str, Any]:
        event = EVENTS[event_type]
        return {
            "publisherId": event.publisher_id,
            "eventType": event_type,
            "consumerId": "webHooks",
            "consumerActionId": "httpRequest",
            "consumerInputs": {"url": url, **extra},
        }

    foreign = subscribe(azure, body("http://127.0.0.1:9/elsewhere"))
    other_integration = subscribe(azure, body(f"{APP_HOST}/hooks/integrations/other", basicAuthPassword="x"))
    stale = subscribe(azure, body(URL, "git.push"))
    twins = [subscribe(azure, body(URL)) for _ in range(2)]
    report = apply(sqlite_db, integration)
    plan = report.organizations[0].plan
    assert plan.foreign == 2
    deleted = {s.subscription_id: s.reason for s in plan.of("delete")}
    assert deleted == {stale["id"]: "no longer needed", twins[1]["id"]: f"duplicate of {twins[0]['id']}"}
    after = {s["id"]: s for s in listed(azure)}
    assert set(after) == {foreign["id"], other_integration["id"], twins[0]["id"]}
    for untouched in (foreign, other_integration):
        assert after[untouched["id"]]["consumerInputs"] == untouched["consumerInputs"]
        assert after[untouched["id"]]["modifiedDate"] == untouched["modifiedDate"]
    # The twin kept had no credentials: it was updated to carry them.
    assert after[twins[0]["id"]]["consumerInputs"]["basicAuthPassword"] == "********"


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    rec = Receiver()
    with serving(rec) as base:
        yield base, rec


def test_a_changed_secret_updates_every_subscription(
    azure: LiveEmulator, sqlite_db: Database, receiver: tuple[str, Receiver]
) -> None:
    base, rec = receiver
    url = f"{base}/hooks/integrations/ado"
    first = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("work-item",), app_host=base)
    apply(sqlite_db, first)
    ids = {s["id"] for s in listed(azure)}
    assert not apply(sqlite_db, first).changes
    second = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("work-item",), app_host=base, secret="s3cret-two")
    planned = check(sqlite_db, second).organizations[0].plan
    assert {s.action for s in planned.steps} == {"update"} and "credentials" in planned.steps[0].reason
    apply(sqlite_db, second)
    assert {s["id"] for s in listed(azure)} == ids  # updated in place, not recreated
    assert not apply(sqlite_db, second).changes
    web = next(p for p in project_ids(azure) if p in {k[0] for k in keys(listed(azure), url)})
    publish(azure, org_event("workitem.created", resource={"id": 1, "url": "http://x/wi/1"}, project_id=web))
    (delivered,) = rec.wait(1)
    assert delivered.path == "/hooks/integrations/ado"
    assert delivered.headers["authorization"] == "Basic " + base64.b64encode(b"port:s3cret-two").decode()
    # The fingerprint kept is not the secret.
    stored = HookStore(sqlite_db).fingerprint("ado", f"{azure.base_url}/fabrikam")
    assert stored is not None and SECRET not in stored and "s3cret-two" not in stored


def test_without_a_secret_or_a_url_nothing_is_subscribed(azure: LiveEmulator, sqlite_db: Database) -> None:
    with_secret = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build",))
    apply(sqlite_db, with_secret)
    assert len(listed(azure)) == 3
    no_secret = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build",), secret=None)
    report = apply(sqlite_db, no_secret)
    assert report.organizations[0].plan.reason is not None and "webhookSecret" in report.organizations[0].plan.reason
    assert listed(azure) == []
    no_url = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build",), app_host=None)
    nothing = apply(sqlite_db, no_url)
    assert nothing.reason is not None and "publicUrl" in nothing.reason and not nothing.organizations
    # kiosk's publicUrl is the base when the integration has no appHost.
    public = HookReconciler(sqlite_db, public_url="http://127.0.0.1:9/public/")
    public.run(public.target(no_url), apply=True)
    assert {s["consumerInputs"]["url"] for s in listed(azure)} == {"http://127.0.0.1:9/public/hooks/integrations/ado"}


@pytest.fixture
def release_host(start_emulator: EmulatorFactory) -> LiveEmulator:
    """A second emulator of fabrikam standing for its ``vsrm`` host: Azure keeps release subscriptions
    there, and the org host does not list them."""
    return start_emulator(config=CONFIG, execute=False)


def test_release_subscriptions_are_listed_and_made_on_the_vsrm_host(
    azure: LiveEmulator, release_host: LiveEmulator, sqlite_db: Database
) -> None:
    org = f"{azure.base_url}/fabrikam"

    def split_hosts(organization_url: str, pat: str) -> AzureDevOpsRest:
        rest = AzureDevOpsRest(organization_url, pat)
        rest.urls = OrgUrls(core=org, vssps=org, vsaex=org, vsrm=f"{release_host.base_url}/fabrikam")
        return rest

    integration = hooked_integration(org, projects_limited=False)
    found = HookReconciler(sqlite_db, public_url=None, rest_factory=split_hosts)
    found.run(found.target(integration), apply=True)
    on_org = keys(listed(azure), URL)
    on_vsrm = keys(listed(release_host), URL)
    assert {k[1] for k in on_org} == {"tfs", "pipelines"}
    assert on_vsrm == sorted(("", "rm", e) for e in KIND_EVENTS["release-deployment"])
    second = found.run(found.target(integration), apply=True)
    assert not second.changes, second.lines()  # found where they live: not made again
    assert keys(listed(release_host), URL) == on_vsrm


def test_a_listing_failure_changes_nothing_and_says_why(azure: LiveEmulator, sqlite_db: Database) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build",), projects_limited=False)
    apply(sqlite_db, integration)
    before = listed(azure)
    disabled = {**before[0], "status": "disabledByUser"}
    azure.client.put(f"/fabrikam/_apis/hooks/subscriptions/{before[0]['id']}?api-version=7.1", json=disabled)
    changed = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build", "work-item"), projects_limited=False)
    rule = {"pathRegex": "^/fabrikam/_apis/hooks/subscriptions$", "method": "GET", "errorRate": 1, "errorStatus": 500}
    assert azure.client.put("/_emulator/switches", json={"faults": [rule]}).status_code == 200
    with pytest.raises(HookListingError) as failed:
        apply(sqlite_db, changed)
    message = str(failed.value)
    assert "cannot list the tfs service-hook subscriptions" in message and "nothing was changed" in message
    assert "500" in message
    assert azure.client.put("/_emulator/switches", json={"faults": []}).status_code == 200
    after = listed(azure)
    assert [(s["id"], s["status"]) for s in after] == [(before[0]["id"], "disabledByUser")] + [
        (s["id"], s["status"]) for s in before[1:]
    ]


def test_the_report_reads_as_the_plan(azure: LiveEmulator, sqlite_db: Database) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build",))
    lines = check(sqlite_db, integration).lines()
    assert lines[0] == f"ado: subscriptions posting to {URL}"
    assert lines[1] == f"{azure.base_url}/fabrikam: 3 to create, 0 to update, 0 to delete, 0 kept"
    assert all(line.startswith("  create tfs build.complete (project ") for line in lines[2:])
    applied = apply(sqlite_db, integration).lines()
    assert all(line.endswith(tuple(s["id"] for s in listed(azure))) for line in applied[2:])
