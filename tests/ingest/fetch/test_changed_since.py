"""The kinds' changed-since reads (the incremental sync's) against a generated organisation over
real HTTP: only what changed since the time given, each item exactly as the kind's full read gives
it, and the selector's options honoured as the full read honours them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.emulator.conftest import PAT, LiveEmulator
from tests.ingest.fetch.conftest import FAST_RETRY, ORG, read_kind, resource
from tests.support.emulated_builds import add_build

from kiosk.azure.rest import AzureDevOpsRest
from kiosk.emulator.org.model import Build, Organisation
from kiosk.ingest.fetch.base import Batch, FetchContext, Item
from kiosk.ingest.fetch.git import fetch_changed_pull_requests
from kiosk.ingest.fetch.pipelines import fetch_changed_builds, fetch_changed_pipeline_runs
from kiosk.ingest.fetch.releases import fetch_changed_releases
from kiosk.ingest.fetch.server_time import azure_now, http_date
from kiosk.ingest.fetch.work_items import fetch_changed_work_items
from kiosk.ingest.mapping import ResourceConfig

Read = Callable[[FetchContext, ResourceConfig, datetime], AsyncIterator[Batch]]


def read_changed(
    live: LiveEmulator, read: Read, kind: str, since: datetime, selector: dict[str, Any] | None = None
) -> list[Item]:
    async def main() -> list[Item]:
        url = f"{live.base_url}/{ORG}"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY) as rest:
            ctx = FetchContext(rest, url)
            items: list[Item] = []
            async for batch in read(ctx, resource(kind, selector), since):
                items.extend(batch)
            return items

    return asyncio.run(main())


def change(live: LiveEmulator, method: str, project: str, path: str, body: dict[str, Any]) -> Any:
    answer = live.client.request(method, f"/_emulator/orgs/{ORG}/projects/{project}/{path}", json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["value"]


def just_before() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=2)


def running_build(org: Organisation) -> Build:
    return add_build(org, status="inProgress", result=None, finish_time=None, queue_time=datetime.now(UTC), timeline=[])


def test_work_items_changed_since_matching_the_wiql_read_as_the_full_read_reads_them(
    generated_org: LiveEmulator,
) -> None:
    org = generated_org.organisation()
    since = just_before()
    live_items = [i for i in org.work_items.values() if not i.is_deleted]
    bug = live_items[0]  # "bug": of the type the selector's wiql asks for
    other = next(i for i in live_items if i.work_item_type != bug.work_item_type)
    for item in (bug, other):
        change(generated_org, "PATCH", item.project_id, f"workitems/{item.id}", {"fields": {"System.Title": "new"}})
    wiql = f"[System.WorkItemType] = '{bug.work_item_type}' ORDER BY [System.Title]"
    changed = read_changed(generated_org, fetch_changed_work_items, "work-item", since, {"wiql": wiql})
    assert [item["id"] for item in changed] == [bug.id]
    full = {item["id"]: item for item in read_kind(generated_org, "work-item", {"wiql": wiql})}
    assert changed[0] == full[bug.id]
    both = read_changed(generated_org, fetch_changed_work_items, "work-item", since, {"expand": "None"})
    assert sorted(item["id"] for item in both) == sorted([bug.id, other.id])
    assert all("relations" not in item for item in both)
    assert read_changed(generated_org, fetch_changed_work_items, "work-item", datetime.now(UTC) + timedelta(1)) == []


def test_builds_not_completed_or_finished_since_with_the_full_reads_enrichment(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    since = just_before()
    running = running_build(org)
    definition = org.build_definitions[running.definition_id]
    finished = change(generated_org, "POST", definition.project_id, "builds", {"definitionId": definition.id})
    selector = {"enrichWithFirstCommit": True}
    changed = read_changed(generated_org, fetch_changed_builds, "build", since, selector)
    expected = {
        b.id for b in org.builds.values() if b.status != "completed" or (b.finish_time and b.finish_time >= since)
    }
    assert {running.id, finished["id"]} <= expected < set(org.builds)
    assert sorted(item["id"] for item in changed) == sorted(expected)
    full = {item["id"]: item for item in read_kind(generated_org, "build", selector)}
    assert all(item == full[item["id"]] for item in changed)
    assert all("__firstCommit" in item for item in changed)

    runs = read_changed(generated_org, fetch_changed_pipeline_runs, "pipeline-run", since)
    assert sorted(run["id"] for run in runs) == sorted(expected)
    listed = {run["id"]: run for run in read_kind(generated_org, "pipeline-run")}
    assert all(run == listed[run["id"]] for run in runs)


def test_pull_requests_active_and_closed_since_within_the_selectors_window(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    active = [pr for pr in org.pull_requests.values() if pr.status == "active"]
    completing = active[0]
    project = org.repositories[completing.repository_id].project_id
    change(generated_org, "PATCH", project, f"pullrequests/{completing.id}", {"status": "completed"})
    # From long ago, but the selector's window (one day) is later: the closed PRs of November stay out.
    selector = {"minTimeInDays": 1, "maxResults": 5}
    changed = read_changed(
        generated_org, fetch_changed_pull_requests, "pull-request", just_before() - timedelta(60), selector
    )
    window = datetime.now(UTC) - timedelta(days=1, minutes=1)
    healthy = [pr for pr in org.pull_requests.values() if not org.repositories[pr.repository_id].is_disabled]
    expected = {pr.id for pr in healthy if pr.status == "active" or (pr.closed_date and pr.closed_date >= window)}
    assert completing.id in expected
    assert any(pr.closed_date and pr.closed_date < window for pr in healthy)  # some stay out
    assert {item["pullRequestId"] for item in changed} == expected
    full = {item["pullRequestId"]: item for item in read_kind(generated_org, "pull-request", selector)}
    assert all(item == full[item["pullRequestId"]] for item in changed)
    # maxResults caps the closed ones per repository and status, as the full read does.
    capped = read_changed(
        generated_org, fetch_changed_pull_requests, "pull-request", just_before(), {"minTimeInDays": 1, "maxResults": 1}
    )
    assert completing.id in {item["pullRequestId"] for item in capped}


def test_releases_created_or_deployed_since_with_the_selectors_filters(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    since = just_before()
    release = min(org.releases.values(), key=lambda r: r.id)
    change(
        generated_org,
        "POST",
        release.project_id,
        f"releases/{release.id}/deployments",
        {"environment": release.environments[0].name},
    )
    changed = read_changed(generated_org, fetch_changed_releases, "release", since, {"expand": "environments"})
    assert [item["id"] for item in changed] == [release.id]
    full = {item["id"]: item for item in read_kind(generated_org, "release", {"expand": "environments"})}
    assert changed[0] == full[release.id]
    assert "environments" in changed[0]
    # The selector's own filters still apply: an abandoned-only selector reads none of them.
    assert read_changed(generated_org, fetch_changed_releases, "release", since, {"statusFilter": "abandoned"}) == []
    # Nothing deployed or created since now.
    assert read_changed(generated_org, fetch_changed_releases, "release", datetime.now(UTC) + timedelta(1)) == []


def test_azure_s_clock_is_the_date_header(generated_org: LiveEmulator) -> None:
    async def main() -> datetime | None:
        async with AzureDevOpsRest(f"{generated_org.base_url}/{ORG}", PAT, retry=FAST_RETRY) as rest:
            return await azure_now(rest)

    now = asyncio.run(main())
    assert now is not None and abs((now - datetime.now(UTC)).total_seconds()) < 5
    assert http_date("Sun, 06 Dec 2026 21:04:05 GMT") == datetime(2026, 12, 6, 21, 4, 5, tzinfo=UTC)
    assert http_date(None) is None and http_date("yesterday") is None
