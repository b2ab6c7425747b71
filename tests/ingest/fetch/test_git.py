"""The repository, repository-policy, branch and pull-request fetchers against a live emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator
from tests.ingest.fetch.conftest import FAST_RETRY, read_kind, resource, set_faults
from tests.support.azure_sdk import with_generated_org

from kiosk.azure.errors import NoDataNotFound, NotFound, ServerError
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.emulator.org.model import GitRepository, Organisation, PolicyConfiguration
from kiosk.ingest.fetch import git
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.fetch.registry import fetcher_for

ORG_URL_FIELDS = ("__organizationUrl", "__organizationName")


def emulator_now() -> datetime:
    """The emulator generates its organisation's dates back from the start of the current UTC day."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def fetch(
    live: LiveEmulator,
    kind: str,
    selector: dict[str, Any] | None = None,
    *,
    timeout: float = 30.0,
    after_projects: Callable[[], None] | None = None,
) -> list[Item]:
    """``read_kind`` with the client's timeout set, and a hook run once the projects were read."""

    async def main() -> list[Item]:
        url = f"{live.base_url}/fabrikam"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY, timeout=timeout) as rest:
            ctx = FetchContext(rest, url, clock=emulator_now)
            await ctx.projects()
            if after_projects is not None:
                after_projects()
            return [item async for batch in fetcher_for(kind)(ctx, resource(kind, selector)) for item in batch]

    return asyncio.run(main())


def rest_list(live: LiveEmulator, path: str, **params: Any) -> list[dict[str, Any]]:
    """A list read straight from the emulator's REST API (what the fetcher must match)."""
    answer = live.client.get(f"/fabrikam/{path}", params={"api-version": "7.1", **params})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["value"])


def unstamped(item: dict[str, Any], live: LiveEmulator) -> dict[str, Any]:
    """``item`` without Ocean's organisation stamps, after checking them."""
    assert item["__organizationUrl"] == f"{live.base_url}/fabrikam"
    assert item["__organizationName"] == f"{live.base_url}/fabrikam"  # not a dev.azure.com URL: the whole URL
    return {k: v for k, v in item.items() if k not in ORG_URL_FIELDS}


def healthy(org: Organisation) -> list[GitRepository]:
    return [repo for repo in org.repositories.values() if not repo.is_disabled]


def disable(org: Organisation, repo: GitRepository) -> None:
    repo.is_disabled = True
    org.changed()


@pytest.fixture
def busy_org(start_emulator: EmulatorFactory) -> LiveEmulator:
    """A generated organisation with 14 pull requests per repository (generated up to emulator_now())."""
    config = with_generated_org(CONFIG, projects=3, repos=6, workitems=5, users=12)
    return start_emulator(config=config.replace("seed: 7}", "seed: 7, pullRequests: 14}"), execute=False)


# ---------------------------------------------------------------------------------------------- repository


def test_repositories_are_every_project_s_list_disabled_ones_included(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    disabled = next(iter(org.repositories.values()))
    disable(org, disabled)

    items = read_kind(generated_org, "repository")

    expected = [
        repo
        for project in org.projects.values()
        for repo in rest_list(generated_org, f"{project.id}/_apis/git/repositories")
    ]
    assert len(expected) == len(org.repositories) >= 8
    by_id = {item["id"]: unstamped(item, generated_org) for item in items}
    assert len(items) == len(by_id) == len(expected)
    assert all(by_id[repo["id"]] == repo for repo in expected)  # Azure's own items, nothing added or lost
    assert by_id[disabled.id]["isDisabled"] is True
    assert all("__includedFiles" not in item for item in items)


def test_included_files_come_from_the_default_branch_and_a_missing_file_gives_no_entry(
    generated_org: LiveEmulator,
) -> None:
    org = generated_org.organisation()
    repos = list(org.repositories.values())
    disabled = repos[0]
    disable(org, disabled)

    selector = {"includedFiles": ["README.md", "/port.yml", "no/such-file.txt"]}
    skipped: dict[str, int] = {}
    items = read_kind(generated_org, "repository", selector, context={"skipped": skipped})

    by_id = {item["id"]: item for item in items}
    for repo in repos[1:]:
        head = repo.head()
        assert head is not None
        files = by_id[repo.id]["__includedFiles"]
        assert files == {
            "README.md": head.files["/README.md"].content.decode(),
            "/port.yml": head.files["/port.yml"].content.decode(),
        }
    assert by_id[disabled.id]["__includedFiles"] == {}  # nothing readable there: no call, no entry
    # the emulator answers the missing file as Azure does: 404 GitItemNotFoundException (TF401174)
    assert skipped == {"includedFiles: file not in the repository": len(repos) - 1}


def test_included_files_on_a_branch_that_moved_read_its_newest_commit(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    repo = next(iter(healthy(org)))
    answer = generated_org.client.get(
        f"/fabrikam/{repo.project_id}/_apis/git/repositories/{repo.id}/items",
        params={"path": "/README.md", "includeContent": "true", "api-version": "7.1"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200

    items = read_kind(generated_org, "repository", {"includedFiles": ["README.md"]})

    found = next(item for item in items if item["id"] == repo.id)
    assert found["__includedFiles"] == {"README.md": answer.json()["content"]}


def test_a_failed_included_file_read_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/items", "errorRate": 1, "errorStatus": 500})

    with pytest.raises(ServerError):
        read_kind(generated_org, "repository", {"includedFiles": ["README.md"]})


def test_a_failed_repository_list_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/_apis/git/repositories", "errorRate": 1, "errorStatus": 500})

    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "repository")
    assert caught.value.status == 500


# ---------------------------------------------------------------------------------------------- repository-policy


def test_repository_policies_are_the_default_branch_s_with_their_repository(
    generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = generated_org.organisation()
    policy_repo = next(repo for repo in healthy(org) if any(_scoped_to(p, repo.id) for p in org.policies.values()))
    other = PolicyConfiguration(
        org.next_id("policy"),
        policy_repo.project_id,
        next(iter(org.policies.values())).type_id,
        next(iter(org.users)),
        emulator_now(),
        {"scope": [{"repositoryId": policy_repo.id, "refName": "refs/heads/release/1", "matchKind": "exact"}]},
    )
    org.policies[other.id] = other
    org.changed()
    monkeypatch.setattr(git, "PAGE_SIZE", 1)  # every policy on a page of its own: the token is followed

    items = read_kind(generated_org, "repository-policy")

    expected: list[tuple[int, str]] = []
    repositories = {
        repo["id"]: repo
        for project in org.projects.values()
        for repo in rest_list(generated_org, f"{project.id}/_apis/git/repositories")
    }
    for repo in healthy(org):
        listed = rest_list(
            generated_org,
            f"{repo.project_id}/_apis/git/policy/configurations",
            repositoryId=repo.id,
            refName=repo.default_branch,
            **{"$top": 1000},
        )
        expected += [(policy["id"], repo.id) for policy in listed]
    assert sorted((item["id"], item["__repository"]["id"]) for item in items) == sorted(expected)
    assert len(expected) >= 4
    assert other.id not in {item["id"] for item in items}  # another branch's policy
    for item in items:
        assert item["__repository"] == repositories[item["__repository"]["id"]]
        body = unstamped(item, generated_org)
        assert body["settings"]["scope"][0]["refName"] == "refs/heads/main"


def _scoped_to(policy: PolicyConfiguration, repository_id: str) -> bool:
    scopes = policy.settings.get("scope")
    return isinstance(scopes, list) and any(
        isinstance(s, dict) and s.get("repositoryId") == repository_id for s in scopes
    )


def test_a_failed_policy_page_raises(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_faults(
        generated_org, {"path": "*/policy/configurations", "failPage": {"page": 1, "status": 503, "times": "always"}}
    )
    monkeypatch.setattr(git, "PAGE_SIZE", 1)

    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "repository-policy", context={"concurrency": 1})
    assert caught.value.status == 503 and "continuationToken=" in caught.value.url


# ---------------------------------------------------------------------------------------------- branch


def test_branches_are_reshaped_heads_of_healthy_repositories(
    generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = generated_org.organisation()
    with_branches = [repo for repo in healthy(org) if len(repo.refs) > 1]
    assert with_branches
    disabled = next(repo for repo in healthy(org) if repo not in with_branches[:1])
    disable(org, disabled)
    monkeypatch.setattr(git, "PAGE_SIZE", 1)

    items = read_kind(generated_org, "branch")

    expected = sorted(
        (repo.id, ref.name, ref.object_id)
        for repo in healthy(org)
        for ref in repo.refs.values()
        if ref.name.startswith("refs/heads/")
    )
    assert sorted((i["__repository"]["id"], i["refName"], i["objectId"]) for i in items) == expected
    assert disabled.id not in {item["__repository"]["id"] for item in items}
    for item in items:
        body = unstamped(item, generated_org)
        assert set(body) == {"name", "refName", "objectId", "__repository"}
        assert body["refName"] == "refs/heads/" + body["name"]
    assert {"feature/ça-va", "main"} & {item["name"] for item in items}


def test_pull_requests_of_a_disabled_repository_are_not_read(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    repo = healthy(org)[0]
    project = org.projects[repo.project_id].name
    answer = generated_org.client.patch(
        f"/_emulator/orgs/fabrikam/projects/{project}/repositories/{repo.id}", json={"isDisabled": True}
    )
    assert answer.status_code == 200, answer.text
    skipped: dict[str, int] = {}
    unread: dict[str, int] = {}

    items = read_kind(
        generated_org,
        "pull-request",
        {"minTimeInDays": 400},
        context={"skipped": skipped, "unread": unread, "clock": emulator_now},
    )

    others = {r.id for r in healthy(org)} - {repo.id}
    assert sorted(item["pullRequestId"] for item in items) == sorted(
        pr.id for pr in org.pull_requests.values() if pr.repository_id in others
    )
    assert skipped == {} and unread == {}


def test_pull_requests_are_read_per_project_not_per_repository(generated_org: LiveEmulator) -> None:
    """Azure's project-level list: three lists per project instead of three per repository."""
    org = generated_org.organisation()
    seen: list[str] = []

    async def main() -> int:
        url = f"{generated_org.base_url}/fabrikam"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY) as rest:
            rest._http.event_hooks["request"].append(_record(seen))
            ctx = FetchContext(rest, url, clock=emulator_now)
            count = 0
            async for batch in fetcher_for("pull-request")(ctx, resource("pull-request", {"minTimeInDays": 400})):
                count += len(batch)
            return count

    assert asyncio.run(main()) > 0
    pull_request_calls = [path for path in seen if path.endswith("/pullrequests")]
    assert pull_request_calls and all("/_apis/git/pullrequests" in path for path in pull_request_calls)
    projects_with_repositories = {r.project_id for r in healthy(org)}
    assert len(pull_request_calls) >= 3 * len(projects_with_repositories)
    assert len(pull_request_calls) < 3 * len(healthy(org))


def _record(seen: list[str]) -> Callable[[Any], Any]:
    async def hook(request: Any) -> None:
        seen.append(request.url.path)

    return hook


# ---------------------------------------------------------------------------------------------- pull-request


def test_pull_requests_active_then_closed_within_the_window(
    busy_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = busy_org.organisation()
    monkeypatch.setattr(git, "PAGE_SIZE", 3)  # 14 per repository: several pages each

    items = read_kind(busy_org, "pull-request", {"minTimeInDays": 20}, context={"clock": emulator_now})

    since = emulator_now() - timedelta(days=20)
    readable = {repo.id for repo in healthy(org)}
    expected = {
        pr.id
        for pr in org.pull_requests.values()
        if pr.repository_id in readable
        and (pr.status == "active" or (pr.closed_date is not None and pr.closed_date >= since))
    }
    got = [item["pullRequestId"] for item in items]
    assert sorted(got) == sorted(expected)
    assert any(org.pull_requests[i].status != "active" for i in got)
    assert any(pr.status != "active" and pr.id not in expected for pr in org.pull_requests.values())
    assert (
        max(
            sum(1 for pr in org.pull_requests.values() if pr.repository_id == r and pr.status == "active")
            for r in readable
        )
        > 3
    )
    listed = {
        pr["pullRequestId"]: pr
        for repo in healthy(org)
        for pr in rest_list(
            busy_org,
            f"{repo.project_id}/_apis/git/repositories/{repo.id}/pullrequests",
            **{"searchCriteria.status": "all", "$top": 1000},
        )
    }
    assert all(unstamped(item, busy_org) == listed[item["pullRequestId"]] for item in items)


def test_closed_pull_requests_are_capped_per_repository_and_status_latest_closed_first(busy_org: LiveEmulator) -> None:
    org = busy_org.organisation()

    items = read_kind(
        busy_org, "pull-request", {"minTimeInDays": 400, "maxResults": 2}, context={"clock": emulator_now}
    )

    got = {item["pullRequestId"] for item in items}
    for repo in healthy(org):
        mine = [pr for pr in org.pull_requests.values() if pr.repository_id == repo.id]
        assert {pr.id for pr in mine if pr.status == "active"} <= got
        for status in ("abandoned", "completed"):
            closed = sorted(
                (pr for pr in mine if pr.status == status),
                key=lambda pr: pr.closed_date or emulator_now(),
                reverse=True,
            )
            assert {pr.id for pr in closed[:2]} <= got
            assert not {pr.id for pr in closed[2:]} & got
    assert sum(1 for pr in org.pull_requests.values() if pr.status == "completed") > 2 * len(healthy(org)) - 1


def test_a_failed_pull_request_page_raises(busy_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_faults(busy_org, {"pathRegex": "(?i)/pullrequests$", "failPage": {"page": 1, "status": 500, "times": "always"}})
    monkeypatch.setattr(git, "PAGE_SIZE", 3)

    with pytest.raises(ServerError) as caught:
        read_kind(busy_org, "pull-request", context={"clock": emulator_now, "concurrency": 1})
    assert caught.value.status == 500 and "%24skip=3" in caught.value.url


def test_a_plain_404_is_not_taken_for_no_data(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    project = next(p for p in org.projects.values() if org.project_repositories(p.id))

    def delete_the_project() -> None:  # listed first, gone when its repositories are read: a plain 404
        org.delete_project(project, emulator_now())

    with pytest.raises(NotFound) as caught:
        fetch(generated_org, "repository", after_projects=delete_the_project)
    assert not isinstance(caught.value, NoDataNotFound)
    assert caught.value.type_key == "ProjectDoesNotExistWithNameException"


def test_the_emulator_bounds_pull_requests_by_the_time_range_asked(busy_org: LiveEmulator) -> None:
    org = busy_org.organisation()
    repo = healthy(org)[0]
    path = f"{repo.project_id}/_apis/git/repositories/{repo.id}/pullrequests"
    since = emulator_now() - timedelta(days=30)
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    mine = [pr for pr in org.pull_requests.values() if pr.repository_id == repo.id]

    created = rest_list(busy_org, path, **{"searchCriteria.status": "all", "searchCriteria.minTime": stamp})
    closed = rest_list(
        busy_org,
        path,
        **{
            "searchCriteria.status": "all",
            "searchCriteria.queryTimeRangeType": "closed",
            "searchCriteria.minTime": stamp,
        },
    )

    assert sorted(pr["pullRequestId"] for pr in created) == sorted(p.id for p in mine if p.creation_date >= since)
    assert [pr["pullRequestId"] for pr in closed] == [
        p.id
        for p in sorted(mine, key=lambda p: (p.closed_date or since, p.id), reverse=True)
        if p.closed_date is not None and p.closed_date >= since
    ]
    refused = busy_org.client.get(
        f"/fabrikam/{path}", params={"searchCriteria.queryTimeRangeType": "merged", "api-version": "7.1"}
    )
    assert refused.status_code == 400 and "queryTimeRangeType" in refused.json()["message"]
