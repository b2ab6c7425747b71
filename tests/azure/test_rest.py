"""The ingestion REST client against the emulator over real HTTP: every kind of paging walked to the end,
faults retried or raised as typed errors, and Azure's rate limits paced and obeyed.

Assertions are on what was read and on the client's counts (requests, retries, 429s), never on time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator
from tests.support.azure_sdk import with_generated_org

from kiosk.azure.errors import (
    AuthenticationFailed,
    AzureRestError,
    ConnectionFailed,
    MalformedResponse,
    NoDataNotFound,
    NotFound,
    RateLimited,
    RequestTimeout,
    ServerError,
)
from kiosk.azure.ratelimit import RetryPolicy
from kiosk.azure.rest import AzureDevOpsRest

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def generated(settings: str = "", *, users: int | None = None, repos: int = 8) -> str:
    config = with_generated_org(CONFIG, projects=3, repos=repos, workitems=30, users=users)
    if settings:
        config = config.replace("orgs:", f"settings:\n{settings}orgs:", 1)
    return config


def run(body: Callable[[AzureDevOpsRest], Coroutine[Any, Any, Any]], live: LiveEmulator, **options: Any) -> Any:
    """Run ``body`` with a client of ``live``'s fabrikam org (``options`` go to the client)."""

    async def main() -> Any:
        options.setdefault("retry", FAST_RETRY)
        async with AzureDevOpsRest(f"{live.base_url}/fabrikam", options.pop("pat", PAT), **options) as client:
            return await body(client)

    return asyncio.run(main())


async def collect(pages: AsyncIterator[list[Any]]) -> list[list[Any]]:
    return [page async for page in pages]


def whole(live: LiveEmulator, path: str, params: dict[str, Any] | None = None, *, key: str = "value") -> list[Any]:
    """The list in one big answer, read by the test's own plain client (what the pagers must reproduce)."""
    answer = live.client.get(path, params={"api-version": "7.1", **(params or {})})
    assert answer.status_code == 200, answer.text
    return list(answer.json()[key])


@pytest.fixture
def org(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=generated(users=150), execute=False)


def first_project(live: LiveEmulator) -> dict[str, Any]:
    return next(p for p in whole(live, "/fabrikam/_apis/projects", {"$top": 1000}) if p["name"] != "web")


# ---------------------------------------------------------------------------------------------- paging


def test_header_token_pagers_walk_projects_and_builds_to_the_end(org: LiveEmulator) -> None:
    project = first_project(org)

    async def body(client: AzureDevOpsRest) -> tuple[list[list[Any]], list[list[Any]]]:
        projects = await collect(client.pages_by_header_token("_apis/projects", top=2))
        builds = await collect(client.pages_by_header_token(f"{project['id']}/_apis/build/builds", top=3))
        return projects, builds

    projects, builds = run(body, org)
    expected = whole(org, "/fabrikam/_apis/projects", {"$top": 1000})
    assert len(projects) == (len(expected) + 1) // 2 > 1
    assert [p["id"] for page in projects for p in page] == [p["id"] for p in expected]
    all_builds = whole(org, f"/fabrikam/{project['id']}/_apis/build/builds", {"$top": 100_000})
    assert len(builds) > 1 and all(len(page) <= 3 for page in builds)
    assert [b["id"] for page in builds for b in page] == [b["id"] for b in all_builds]


def test_body_token_pager_walks_user_entitlements(org: LiveEmulator) -> None:
    async def body(client: AzureDevOpsRest) -> list[list[Any]]:
        return await collect(client.pages_by_body_token("_apis/userentitlements"))

    pages = run(body, org)
    users = org.organisation().users
    assert len(pages) == 2 and len(users) > 100
    assert sorted(e["user"]["descriptor"] for page in pages for e in page) == sorted(
        u.descriptor for u in users.values()
    )


def test_skip_pager_walks_pull_requests_and_stops_on_the_short_page(org: LiveEmulator) -> None:
    project = first_project(org)
    path = f"/fabrikam/{project['id']}/_apis/git/pullrequests"
    expected = whole(org, path, {"searchCriteria.status": "all", "$top": 10_000})
    assert len(expected) > 4

    async def body(client: AzureDevOpsRest) -> list[list[Any]]:
        pages = client.pages_by_skip(path.removeprefix("/fabrikam/"), params={"searchCriteria.status": "all"}, top=4)
        read = await collect(pages)
        assert client.stats.requests == len(read)  # no extra empty page after the short one
        return read

    pages = run(body, org)
    assert [pr["pullRequestId"] for page in pages for pr in page] == [pr["pullRequestId"] for pr in expected]
    assert len(pages) == len(expected) // 4 + 1


def test_unpaged_list_and_wiki_pages_batch(org: LiveEmulator) -> None:
    project = first_project(org)
    wikis = whole(org, f"/fabrikam/{project['id']}/_apis/wiki/wikis")
    wiki = wikis[0]
    pages_path = f"{project['id']}/_apis/wiki/wikis/{wiki['id']}/pagesbatch"
    everything = org.client.post(f"/fabrikam/{pages_path}?api-version=7.1", json={"top": 100}).json()["value"]
    assert len(everything) > 2

    async def body(client: AzureDevOpsRest) -> tuple[list[list[Any]], list[list[Any]]]:
        repositories = await collect(client.whole_list(f"{project['id']}/_apis/git/repositories"))
        batches = await collect(client.wiki_pages_batch(pages_path, top=2))
        return repositories, batches

    repositories, batches = run(body, org)
    assert len(repositories) == 1
    assert [r["id"] for r in repositories[0]] == [
        r["id"] for r in whole(org, f"/fabrikam/{project['id']}/_apis/git/repositories")
    ]
    assert len(batches) == (len(everything) + 1) // 2
    assert [p["id"] for page in batches for p in page] == [p["id"] for p in everything]


# ---------------------------------------------------------------------------------------------- faults


def test_a_share_of_5xx_and_a_failed_page_are_retried_to_a_complete_list(start_emulator: EmulatorFactory) -> None:
    faults = (
        "  faults:\n"
        "    - {path: '/fabrikam/_apis/projects', errorRate: 0.4, seed: 3}\n"
        "    - {path: '*/_apis/build/builds', failPage: {page: 2, status: 500}}\n"
    )
    live = start_emulator(config=generated(faults), execute=False)
    projects = live.organisation().projects
    project_id = next(iter(p.id for p in projects.values() if p.name != "web"))

    async def body(client: AzureDevOpsRest) -> tuple[list[Any], list[Any], int]:
        listed = [p async for page in client.pages_by_header_token("_apis/projects", top=1) for p in page]
        builds = [
            b async for page in client.pages_by_header_token(f"{project_id}/_apis/build/builds", top=2) for b in page
        ]
        return listed, builds, client.stats.retries

    listed, builds, retries = run(body, live)
    assert retries >= 2  # at least one 5xx on the projects and the failed build page
    assert sorted(p["id"] for p in listed) == sorted(p.id for p in projects.values())
    live.client.put("/_emulator/switches", json={})
    assert [b["id"] for b in builds] == [
        b["id"] for b in whole(live, f"/fabrikam/{project_id}/_apis/build/builds", {"$top": 100_000})
    ]


def test_a_page_that_always_fails_raises_after_bounded_retries(
    start_emulator: EmulatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.azure.rest")
    faults = "  faults:\n    - {path: '/fabrikam/_apis/projects', failPage: {page: 1, status: 503, times: always}}\n"
    live = start_emulator(config=generated(faults), execute=False)
    read: list[Any] = []

    async def body(client: AzureDevOpsRest) -> None:
        async for page in client.pages_by_header_token("_apis/projects", top=1):
            read.append(page)

    with pytest.raises(ServerError) as caught:
        run(body, live)
    assert len(read) == 1  # the first page came; the error is never an empty end of the list
    error = caught.value
    assert error.status == 503 and error.attempts == FAST_RETRY.max_attempts
    assert error.method == "GET" and "continuationToken=" in error.url
    assert error.type_key == "ServiceUnavailableException" and "settings.faults[0]" in error.message
    retried = [r.getMessage() for r in caplog.records if r.name == "kiosk.azure.rest"]
    assert len(retried) == FAST_RETRY.max_attempts - 1 and all("answered 503" in line for line in retried)
    assert PAT not in caplog.text and "Authorization" not in caplog.text


def test_a_held_connection_is_a_timeout_retried_then_raised(start_emulator: EmulatorFactory) -> None:
    faults = "  faults:\n    - {path: '/fabrikam/_apis/projects', holdSeconds: 2}\n"
    live = start_emulator(config=generated(faults), execute=False)

    async def body(client: AzureDevOpsRest) -> None:
        try:
            await client.get("_apis/projects")
        finally:
            assert client.stats.requests == 2 and client.stats.retries == 1

    with pytest.raises(RequestTimeout) as caught:
        run(body, live, timeout=0.3, retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    assert caught.value.status is None and caught.value.attempts == 2


def test_404s_are_errors_and_no_data_ones_are_marked(start_emulator: EmulatorFactory) -> None:
    live = start_emulator(config=generated(), execute=False)
    project = first_project(live)
    repository = whole(live, f"/fabrikam/{project['id']}/_apis/git/repositories")[0]
    switches = {"faults": [{"path": "*", "pullRequestsNotFound": repository["id"]}]}
    assert live.client.put("/_emulator/switches", json=switches).status_code == 200

    async def body(client: AzureDevOpsRest) -> tuple[AzureRestError, AzureRestError]:
        with pytest.raises(NoDataNotFound) as no_data:
            await collect(
                client.pages_by_skip(f"{project['id']}/_apis/git/repositories/{repository['id']}/pullrequests")
            )
        with pytest.raises(NotFound) as missing:
            await client.get("no-such-project/_apis/git/repositories")
        assert client.stats.retries == 0  # a 404 is not retried
        return no_data.value, missing.value

    no_data, missing = run(body, live)
    assert no_data.no_data and no_data.status == 404 and no_data.type_key == "GitRepositoryNotFoundException"
    assert "TF401019" in no_data.message and repository["id"] in no_data.url
    assert not missing.no_data and not isinstance(missing, NoDataNotFound)
    assert missing.type_key == "ProjectDoesNotExistWithNameException"


def test_a_wrong_pat_is_an_authentication_error_without_the_pat(start_emulator: EmulatorFactory) -> None:
    live = start_emulator(config=generated(), execute=False)

    async def body(client: AzureDevOpsRest) -> None:
        await client.get("_apis/projects")

    with pytest.raises(AuthenticationFailed) as caught:
        run(body, live, pat="revoked-pat-value")
    assert caught.value.status == 401 and "TF400813" in caught.value.message
    assert "revoked-pat-value" not in str(caught.value) and "revoked-pat-value" not in repr(caught.value.__dict__)


def test_read_only_posts_are_retried_writes_never(start_emulator: EmulatorFactory) -> None:
    faults = "  faults:\n    - {path: '*', method: POST, errorRate: 1}\n"
    live = start_emulator(config=generated(faults), execute=False)
    project = first_project(live)

    async def body(client: AzureDevOpsRest) -> tuple[int, int]:
        with pytest.raises(ServerError) as wiql:
            await client.post(
                f"{project['id']}/_apis/wit/wiql", {"query": "SELECT [System.Id] FROM WorkItems"}, idempotent=True
            )
        assert wiql.value.attempts == FAST_RETRY.max_attempts
        reads = client.stats.requests
        with pytest.raises(ServerError) as write:
            await client.post("_apis/hooks/subscriptions", {"publisherId": "tfs"}, idempotent=False)
        assert write.value.attempts == 1
        return reads, client.stats.requests - reads

    assert run(body, live) == (FAST_RETRY.max_attempts, 1)


# ---------------------------------------------------------------------------------------------- throttling


def test_pacing_reads_under_the_budget_without_a_single_429(start_emulator: EmulatorFactory) -> None:
    throttling = "  throttling: {budget: 20, windowSeconds: 1, warnAt: 0.5}\n"
    live = start_emulator(config=generated(throttling), execute=False)
    project = first_project(live)

    async def body(client: AzureDevOpsRest) -> int:
        async def read(_: int) -> int:
            pages = await collect(client.pages_by_header_token(f"{project['id']}/_apis/build/builds", top=2))
            return sum(len(page) for page in pages)

        counts = await asyncio.gather(*(read(n) for n in range(6)))
        assert len(set(counts)) == 1
        assert client.stats.throttled == 0 and client.stats.server_delayed == 0
        assert client.stats.paced_waits > 0 and client.stats.requests > 20  # more than one budget's worth
        assert client.pacer.limit == 20 and client.pacer.cost == pytest.approx(1.0)
        return counts[0]

    read = run(body, live, max_concurrency=4)
    live.client.put("/_emulator/switches", json={})
    assert read == len(whole(live, f"/fabrikam/{project['id']}/_apis/build/builds", {"$top": 100_000}))


def test_a_429_waits_what_azure_says_then_the_read_succeeds(start_emulator: EmulatorFactory) -> None:
    throttling = "  throttling: {budget: 5, windowSeconds: 2}\n"
    live = start_emulator(config=generated(throttling), execute=False)

    def spend_the_budget() -> None:  # someone else with the same PAT
        while live.client.get("/fabrikam/_apis/projects?api-version=7.1").status_code != 429:
            pass

    spend_the_budget()

    async def body(client: AzureDevOpsRest) -> None:
        projects = await client.get("_apis/projects")
        assert projects["count"] > 0
        assert client.stats.throttled == 1 and client.stats.retries == 1 and client.stats.throttle_waits >= 1
        assert 0 < client.stats.throttle_wait_seconds <= 2  # Retry-After, not a fixed pause
        spend_the_budget()
        with pytest.raises(RateLimited) as write:
            await client.post("_apis/hooks/subscriptions", {}, idempotent=False)
        assert write.value.attempts == 1 and write.value.retry_after is not None
        assert client.stats.throttled == 2 and client.stats.retries == 1

    run(body, live, max_concurrency=1)


# ------------------------------------------------------------------------------ answers the emulator never gives


def test_malformed_answers_and_dead_hosts_raise_typed_errors() -> None:
    """Through httpx's transport seam: a truncated JSON body, a 203 sign-in page, a list without ``value``."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/truncated"):
            return httpx.Response(200, content=b'{"count": 2, "value": [')
        if request.url.path.endswith("/signin"):
            return httpx.Response(203, content=b"<html>Sign in</html>", headers={"Content-Type": "text/html"})
        assert request.headers["Authorization"] == "Basic OnNlY3JldC1wYXQ="  # ":secret-pat", empty user
        assert request.url.params["api-version"] == "7.1"
        return httpx.Response(200, json={"count": 1})

    async def main() -> None:
        transport = httpx.MockTransport(answer)
        async with AzureDevOpsRest("https://dev.azure.com/org", "secret-pat", transport=transport) as client:
            with pytest.raises(MalformedResponse, match="not JSON") as truncated:
                await client.get("_apis/truncated")
            assert truncated.value.status == 200 and client.stats.retries == 0
            with pytest.raises(AuthenticationFailed, match="sign-in page"):
                await client.get("_apis/signin")
            with pytest.raises(MalformedResponse, match="'value'"):
                await collect(client.pages_by_header_token("_apis/projects"))
        async with AzureDevOpsRest("http://127.0.0.1:9/org", "secret-pat", retry=FAST_RETRY) as down:
            with pytest.raises(ConnectionFailed) as refused:
                await down.get("_apis/projects")
            assert refused.value.attempts == FAST_RETRY.max_attempts and "secret-pat" not in str(refused.value)

    asyncio.run(main())


def test_a_delayed_answer_halves_concurrency_and_its_retry_after_holds_every_request(
    start_emulator: EmulatorFactory,
) -> None:
    throttling = "  throttling: {budget: 4, blockAt: 50, delaySeconds: 0.01, windowSeconds: 2}\n"
    live = start_emulator(config=generated(throttling), execute=False)
    for _ in range(4):  # someone else with the same PAT spends the budget; the next request is delayed
        assert live.client.get("/fabrikam/_apis/projects?api-version=7.1").status_code == 200

    async def body(client: AzureDevOpsRest) -> None:
        await client.get("_apis/projects")
        assert client.stats.server_delayed == 1 and client.concurrency.limit == 4 == client.stats.concurrency
        assert client.pacer.gate > 0  # the delayed answer's Retry-After
        await asyncio.gather(*(client.get("_apis/projects") for _ in range(3)))
        assert client.stats.throttle_waits >= 1 and client.stats.throttled == 0

    run(body, live, max_concurrency=8)
