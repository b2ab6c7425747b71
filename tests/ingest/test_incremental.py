"""The incremental sync over real HTTP: a generated organisation served by the emulator, a full
resync first, then changes made in the emulator (its ``/_emulator`` change API, or its model for
what that API does not make: a build still running), and passes that must read and write exactly
what changed, delete nothing, and move each cursor only after an error-free read."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.emulated_builds import add_build, change_build
from tests.support.integrations import (
    azure_devops_integration,
    by_id_resource,
    mapping_resource,
    merged_mapping,
    work_item_resource,
)
from tests.support.rest import FAST

from kiosk.azure.rest import AzureDevOpsRest
from kiosk.catalog.service import Catalog
from kiosk.emulator.org.model import Build, Organisation
from kiosk.ingest.config import Integration
from kiosk.ingest.incremental import NO_CURSOR, OVERLAP, IncrementalSync
from kiosk.ingest.resync import INCREMENTAL_KINDS, Resyncer
from kiosk.ingest.state import IncrementalOrgState, IncrementalResourceState, IncrementalState
from kiosk.ingest.store import IngestStore, Source

__all__ = ["start_emulator"]


def _blueprint(identifier: str, *properties: str) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "title": identifier,
        "schema": {"properties": {name: {"type": "string"} for name in properties}},
    }


BLUEPRINTS: list[dict[str, Any]] = [
    _blueprint("adoProject", "state"),
    _blueprint("adoWorkItem", "state"),
    _blueprint("adoBuild", "status", "result"),
    _blueprint("adoRun", "state", "result"),
    _blueprint("adoPullRequest", "status"),
    _blueprint("adoRelease", "status", "modified"),
]

MAPPING: dict[str, Any] = merged_mapping(
    mapping_resource("project", "adoProject", properties={"state": ".state"}),
    work_item_resource("adoWorkItem"),
    by_id_resource("build", "adoBuild", ".buildNumber", {"status": ".status", "result": ".result"}),
    by_id_resource("pipeline-run", "adoRun", ".name", {"state": ".state", "result": ".result"}),
    mapping_resource(
        "pull-request",
        "adoPullRequest",
        identifier=".pullRequestId | tostring",
        title=".title",
        properties={"status": ".status"},
    ),
    by_id_resource("release", "adoRelease", ".name", {"modified": ".modifiedOn"}),
)


class Requests:
    """Every request the clients made: (method, path after the organisation), with its query."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str, dict[str, str]]] = []
        self.on_request: list[Any] = []

    def paths(self) -> Counter[str]:
        return Counter(path for _, path, _ in self.made)

    async def hook(self, request: httpx.Request) -> None:
        path = request.url.path.split("/fabrikam/", 1)[-1]
        self.made.append((request.method, path, dict(request.url.params)))
        for call in list(self.on_request):
            await call(request)

    def client(self, organization_url: str, pat: str) -> AzureDevOpsRest:
        rest = AzureDevOpsRest(organization_url, pat, **FAST)
        rest._http.event_hooks["request"].append(self.hook)
        return rest


@pytest.fixture
def live(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG, projects=2, repos=3, workitems=20, users=8), execute=False)


@pytest.fixture
def requests() -> Requests:
    return Requests()


def integration(live: LiveEmulator, mapping: dict[str, Any] | None = None) -> Integration:
    return azure_devops_integration(f"{live.base_url}/fabrikam", mapping or MAPPING, pat=PAT)


def full_resync(store: IngestStore, requests: Requests, target: Integration) -> None:
    state = asyncio.run(Resyncer(store, rest_factory=requests.client).run(target))
    assert state.status == "completed", state.to_json()


@pytest.fixture
def target(live: LiveEmulator, store: IngestStore, requests: Requests) -> Integration:
    """The test integration, fully resynced first: every incremental resource has its cursor."""
    resynced = integration(live)
    full_resync(store, requests, resynced)
    return resynced


def incremental(store: IngestStore, requests: Requests, target: Integration) -> IncrementalState:
    requests.made.clear()
    return asyncio.run(IncrementalSync(store, rest_factory=requests.client).run(target))


def by_kind(state: IncrementalState) -> dict[str, IncrementalResourceState]:
    (org,) = state.organizations
    return {resource.kind: resource for resource in org.resources}


def counts(state: IncrementalState) -> dict[str, tuple[int, int, int, int]]:
    """Per kind: (read, created, updated, failed)."""
    return {kind: (r.fetched, r.created, r.updated, r.failed) for kind, r in by_kind(state).items()}


def entity(catalog: Catalog, blueprint: str, identifier: str) -> dict[str, Any]:
    return catalog.get_entity(blueprint, identifier)


def identifiers(catalog: Catalog, blueprint: str) -> set[str]:
    page, cursor = catalog.list_entities(blueprint, limit=1000, cursor=None)
    assert cursor is None
    return {item["identifier"] for item in page}


def change(live: LiveEmulator, method: str, project: str, path: str, body: dict[str, Any] | None = None) -> Any:
    answer = live.client.request(method, f"/_emulator/orgs/fabrikam/projects/{project}/{path}", json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["value"]


def generated(live: LiveEmulator) -> Organisation:
    return live.organisation()


def start_build(org: Organisation) -> Build:
    """A build queued now and still running (the change API only makes finished builds)."""
    now = datetime.now(UTC)
    return add_build(
        org,
        build_number=f"{now:%Y%m%d}.99",
        status="inProgress",
        result=None,
        queue_time=now,
        start_time=now,
        finish_time=None,
        timeline=[],
    )


def finish_build(org: Organisation, build_id: int) -> None:
    change_build(org, build_id, status="completed", result="succeeded", finish_time=datetime.now(UTC))


def active_pull_requests(live: LiveEmulator) -> list[tuple[str, int]]:
    org = generated(live)
    return sorted(
        (org.repositories[pr.repository_id].project_id, pr.id)
        for pr in org.pull_requests.values()
        if pr.status == "active" and not org.repositories[pr.repository_id].is_disabled
    )


def moved_to(before: datetime | None, after: datetime | None, began: datetime) -> bool:
    """Whether a cursor went from ``before`` to the start of a pass that began at ``began`` (this
    machine's clock, the emulator's too; a ``Date`` header is to the second, and a server may
    refresh it only once a second)."""
    return before is not None and after is not None and before <= after and began - timedelta(seconds=3) <= after


def cursors(state: IncrementalState) -> dict[str, tuple[datetime | None, datetime | None]]:
    return {kind: (r.cursor_before, r.cursor_after) for kind, r in by_kind(state).items()}


def test_a_pass_reads_and_writes_exactly_what_changed_and_deletes_nothing(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, requests: Requests, target: Integration
) -> None:
    org = generated(live)
    work_items = sorted(org.work_items)
    gone_work_item = work_items[0]
    changed_work_item = org.work_items[work_items[1]]
    assert str(gone_work_item) in identifiers(catalog, "adoWorkItem")
    builds_before = identifiers(catalog, "adoBuild")
    (first_pr_project, updated_pr), (second_pr_project, completed_pr) = active_pull_requests(live)[:2]
    release = min(org.releases.values(), key=lambda r: r.id)
    stage = release.environments[0]

    # Nothing changed yet: the pass reads no work item, no build, no run, no release.
    quiet = incremental(store, requests, target)
    assert quiet.status == "completed"
    assert {kind: r.fetched for kind, r in by_kind(quiet).items() if kind != "pull-request"} == {
        "work-item": 0,
        "build": 0,
        "pipeline-run": 0,
        "release": 0,
    }
    assert by_kind(quiet)["pull-request"].fetched == len(active_pull_requests(live))  # active ones are always read
    assert quiet.totals()["written"] == 0
    assert not any(path.endswith("_apis/wit/workitems") for path in requests.paths())

    # Changes in Azure: one work item edited, one deleted; a build started and one finished;
    # one pull request retitled, another completed; a release's stage deployed.
    change(
        live,
        "PATCH",
        changed_work_item.project_id,
        f"workitems/{changed_work_item.id}",
        {"fields": {"System.Title": "edited"}},
    )
    change(live, "DELETE", org.work_items[gone_work_item].project_id, f"workitems/{gone_work_item}")
    running = start_build(org)
    definition = org.build_definitions[running.definition_id]
    finished = change(live, "POST", definition.project_id, "builds", {"definitionId": definition.id})
    change(live, "PATCH", first_pr_project, f"pullrequests/{updated_pr}", {"title": "retitled"})
    change(live, "PATCH", second_pr_project, f"pullrequests/{completed_pr}", {"status": "completed"})
    change(live, "POST", release.project_id, f"releases/{release.id}/deployments", {"environment": stage.name})

    began = datetime.now(UTC)
    state = incremental(store, requests, target)
    assert state.status == "completed", state.to_json()
    assert counts(state) == {
        "work-item": (1, 0, 1, 0),
        "build": (2, 2, 0, 0),
        "pipeline-run": (2, 2, 0, 0),
        "pull-request": (len(active_pull_requests(live)) + 1, 0, 2, 0),
        "release": (1, 0, 1, 0),
    }
    assert entity(catalog, "adoWorkItem", str(changed_work_item.id))["title"] == "edited"
    assert identifiers(catalog, "adoBuild") == builds_before | {str(running.id), str(finished["id"])}
    assert entity(catalog, "adoBuild", str(running.id))["properties"]["status"] == "inProgress"
    assert entity(catalog, "adoRun", str(running.id))["properties"]["state"] == "inProgress"
    assert entity(catalog, "adoPullRequest", str(updated_pr))["title"] == "retitled"
    assert entity(catalog, "adoPullRequest", str(completed_pr))["properties"]["status"] == "completed"
    modified = entity(catalog, "adoRelease", str(release.id))["properties"]["modified"]
    assert modified.startswith(f"{datetime.now(UTC):%Y-%m-%d}")
    # Deleted in Azure, kept in the catalog: only the full resync deletes.
    assert str(gone_work_item) in identifiers(catalog, "adoWorkItem")
    # Each read asked from the cursor less the overlap, and each cursor moved to when the pass's
    # own read began (Azure's Date header: to the second).
    moved = cursors(state)
    assert all(moved_to(before, after, began) for before, after in moved.values()), (
        {k: (str(a), str(b)) for k, (a, b) in moved.items()},
        str(began),
    )
    build_lists = [params for _, path, params in requests.made if path.endswith("_apis/build/builds")]
    before_build = moved["build"][0]
    assert before_build is not None
    assert {p.get("statusFilter") for p in build_lists} == {"notStarted,inProgress,cancelling,postponed", "completed"}
    assert {p["minTime"] for p in build_lists if "minTime" in p} == {
        (before_build - OVERLAP).strftime("%Y-%m-%dT%H:%M:%SZ")
    }

    # The running build finishes: the next pass writes it (and its run) and nothing else.
    finish_build(org, running.id)
    again = incremental(store, requests, target)
    assert again.status == "completed"
    written = {kind: r.written for kind, r in by_kind(again).items()}
    assert written == {"work-item": 0, "build": 1, "pipeline-run": 1, "pull-request": 0, "release": 0}
    assert entity(catalog, "adoBuild", str(running.id))["properties"]["result"] == "succeeded"
    assert entity(catalog, "adoRun", str(running.id))["properties"]["state"] == "completed"


def test_the_cursor_moves_only_after_an_error_free_read_and_the_next_pass_catches_up(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, requests: Requests, target: Integration
) -> None:
    org = generated(live)
    first, second = (org.work_items[i] for i in sorted(org.work_items)[2:4])
    change(live, "PATCH", first.project_id, f"workitems/{first.id}", {"fields": {"System.Title": "before the failure"}})
    fault = {"pathRegex": r".*/_apis/wit/workitems$", "method": "GET", "errorRate": 1, "errorStatus": 500}
    assert live.client.put("/_emulator/switches", json={"faults": [fault]}).status_code == 200

    began = datetime.now(UTC)
    failed = incremental(store, requests, target)
    assert failed.status == "failed"
    work_item = by_kind(failed)["work-item"]
    assert work_item.status == "failed" and work_item.cursor_after == work_item.cursor_before
    assert entity(catalog, "adoWorkItem", str(first.id))["title"] != "before the failure"
    # The other resources were read without an error: their cursors moved.
    others = {kind: r for kind, r in by_kind(failed).items() if kind != "work-item"}
    assert all(r.status == "completed" and moved_to(r.cursor_before, r.cursor_after, began) for r in others.values())

    # Changed while the pass failed; then the fault is gone.
    change(live, "PATCH", second.project_id, f"workitems/{second.id}", {"fields": {"System.Title": "meanwhile"}})
    assert live.client.put("/_emulator/switches", json={"faults": []}).status_code == 200
    caught_up = incremental(store, requests, target)
    assert caught_up.status == "completed"
    assert by_kind(caught_up)["work-item"].updated == 2
    assert entity(catalog, "adoWorkItem", str(first.id))["title"] == "before the failure"
    assert entity(catalog, "adoWorkItem", str(second.id))["title"] == "meanwhile"
    resource = by_kind(caught_up)["work-item"]
    assert resource.cursor_before == work_item.cursor_before
    assert moved_to(resource.cursor_before, resource.cursor_after, began)
    assert store.read_began(Source("ado", f"{live.base_url}/fabrikam"), _key(store, target, 1)) == resource.cursor_after


def test_a_resource_without_a_cursor_is_skipped_without_a_request(
    live: LiveEmulator, store: IngestStore, requests: Requests
) -> None:
    state = incremental(store, requests, integration(live))
    assert state.status == "completed"
    assert {kind: (r.status, r.skipped_reason) for kind, r in by_kind(state).items()} == {
        kind: ("skipped", NO_CURSOR) for kind in INCREMENTAL_KINDS
    }
    assert requests.made == []
    assert state.totals()["skipped"] == len(INCREMENTAL_KINDS)
    saved = store.load_incremental_state("ado")
    assert saved is not None and saved.to_json() == state.to_json()
    assert store.load_state("ado") is None  # the resync's own record is untouched


def test_a_live_event_newer_than_the_pass_is_not_overwritten(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, requests: Requests, target: Integration
) -> None:
    org = generated(live)
    item = org.work_items[sorted(org.work_items)[5]]
    change(live, "PATCH", item.project_id, f"workitems/{item.id}", {"fields": {"System.Title": "from azure"}})
    source = Source("ado", f"{live.base_url}/fabrikam")
    written: list[bool] = []

    async def live_event_during_the_pass(request: httpx.Request) -> None:
        # The pass has begun (its first read is on the wire): a live event writes the item now.
        if not written and request.url.path.endswith("/_apis/wit/wiql"):
            written.append(True)
            document = {"blueprint": "adoWorkItem", "identifier": str(item.id), "title": "from a live event"}
            await asyncio.to_thread(store.write, source, [document], merge=True, create_missing=False, live=True)

    requests.on_request.append(live_event_during_the_pass)
    state = incremental(store, requests, target)
    assert written and state.status == "completed"
    assert by_kind(state)["work-item"].fetched == 1 and by_kind(state)["work-item"].written == 0
    assert entity(catalog, "adoWorkItem", str(item.id))["title"] == "from a live event"


def test_incremental_state_round_trips_through_json() -> None:
    moment = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
    resource = IncrementalResourceState(
        index=1, kind="build", blueprint="adoBuild", status="completed", fetched=3, created=1, updated=1
    )
    resource.cursor_before, resource.cursor_after = moment, moment + timedelta(minutes=5)
    state = IncrementalState("ado", status="completed", started_at=moment, finished_at=moment, trigger="schedule")
    state.organizations.append(IncrementalOrgState(url="https://dev.azure.com/acme", resources=[resource]))
    data = state.to_json()
    assert data["organizations"][0]["resources"][0]["written"] == 2
    assert data["organizations"][0]["resources"][0]["cursor_after"] == "2026-12-06T20:05:00Z"
    assert data["totals"]["written"] == 2
    assert IncrementalState.from_json(data).to_json() == data


def _key(store: IngestStore, target: Integration, index: int) -> str:
    """The hash the resource ``index`` of ``target``'s mapping is kept under."""
    return asyncio.run(Resyncer(store).resource_keys(target, target.mapping))[index]
