"""The test-run and advanced-security-alert fetchers over real HTTP against a generated organisation:
items equal to the emulator's model and its REST answers, the selectors' options, paging walked to the
end, failures raised, and Advanced Security's "off" 400 skipped and counted."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from tests.emulator.conftest import PAT, LiveEmulator
from tests.ingest.fetch.conftest import FAST_RETRY, read_kind, resource

from kiosk.azure.errors import NotFound, RequestTimeout, ServerError
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.azure.urls import OrgUrls
from kiosk.emulator.org.model import SecurityAlert
from kiosk.ingest.fetch import quality
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.fetch.registry import fetcher_for


def set_faults(live: LiveEmulator, *rules: dict[str, Any]) -> None:
    assert live.client.put("/_emulator/switches", json={"faults": list(rules)}).status_code == 200


def rest_list(live: LiveEmulator, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = live.client.get(f"/fabrikam/{path}", params=params)
    assert answer.status_code == 200, answer.text
    assert "x-ms-continuationtoken" not in answer.headers
    return list(answer.json()["value"])


def unstamped(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("__")}


def read_counting(
    live: LiveEmulator, kind: str, selector: dict[str, Any] | None = None, **context: Any
) -> tuple[list[Item], dict[str, int]]:
    """``kind``'s items and what the fetcher skipped (``FetchContext.skipped``)."""

    async def main() -> tuple[list[Item], dict[str, int]]:
        url = f"{live.base_url}/fabrikam"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY) as rest:
            ctx = FetchContext(rest, url, **context)
            items = [i async for batch in fetcher_for(kind)(ctx, resource(kind, selector)) for i in batch]
            return items, dict(ctx.skipped)

    return asyncio.run(main())


# ---------------------------------------------------------------------------------------------- test-run


def test_test_runs_are_every_project_s_runs_with_their_results(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "test-run")

    org = generated_org.organisation()
    assert sorted(i["id"] for i in items) == sorted(org.test_runs) and len(org.test_runs) >= 5
    for item in items:
        run = org.test_runs[item["id"]]
        direct = rest_list(
            generated_org, f"{run.project_id}/_apis/test/runs", includeRunDetails="true", **{"$top": 1000}
        )
        assert unstamped(item) == next(r for r in direct if r["id"] == run.id)
        assert item["runStatistics"] and item["build"]["id"] == str(run.build_id)  # includeRunDetails was sent
        assert [r["id"] for r in item["__testResults"]] == [r.id for r in run.results]
        assert item["__testResults"] == rest_list(generated_org, f"{run.project_id}/_apis/test/runs/{run.id}/results")
        assert {r["outcome"] for r in item["__testResults"]} <= {"Passed", "Failed", "NotExecuted"}
        assert item["__codeCoverage"] == {}  # not asked
        assert item["__organizationName"] == f"{generated_org.base_url}/fabrikam"


def test_include_results_false_leaves_them_empty(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "test-run", {"includeResults": False})
    assert sorted(i["id"] for i in items) == sorted(generated_org.organisation().test_runs)
    assert all(i["__testResults"] == [] and i["__codeCoverage"] == {} for i in items)


def test_code_coverage_is_the_build_s_coverage_answer(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    manual = next(iter(org.test_runs.values()))
    manual.build_id = None  # a run published without a build has no coverage to read
    items = {i["id"]: i for i in read_kind(generated_org, "test-run", {"codeCoverage": {"flags": 3}})}

    with_coverage = without = 0
    for run in org.test_runs.values():
        coverage = items[run.id]["__codeCoverage"]
        if run.build_id is None:
            assert coverage == {}
            continue
        direct = generated_org.client.get(
            f"/fabrikam/{run.project_id}/_apis/test/codecoverage", params={"buildId": run.build_id, "flags": 3}
        )
        assert coverage == direct.json()
        if run.build_id in org.code_coverage:
            with_coverage += 1
            modules = coverage["value"][0]["modules"]
            assert [m["name"] for m in modules] == [m.name for m in org.code_coverage[run.build_id]]
            assert all(m["functions"] for m in modules)  # flags 2: functions
        else:
            without += 1
            assert coverage == {"count": 0, "value": []}
    assert with_coverage and without

    # ``codeCoverage: {}`` sends no flags: the modules without their functions.
    plain = read_kind(generated_org, "test-run", {"codeCoverage": {}, "includeResults": False})
    covered = [i for i in plain if i["__codeCoverage"].get("count")]
    assert covered and all(not m["functions"] for i in covered for m in i["__codeCoverage"]["value"][0]["modules"])


def test_coverage_is_read_once_per_build(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build's runs (two suites of one build) share one coverage read, as the reference's cache would."""
    org = generated_org.organisation()
    builds = [run.build_id for run in org.test_runs.values()]
    assert len(set(builds)) < len(builds)  # some build published two runs
    asked: list[str] = []
    original = httpx.AsyncClient.request

    async def request(self: httpx.AsyncClient, method: str, url: Any, **kwargs: Any) -> httpx.Response:
        if "/_apis/test/codecoverage" in str(url):
            asked.append(str((kwargs.get("params") or {}).get("buildId")))
        return await original(self, method, url, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "request", request)
    items = read_kind(generated_org, "test-run", {"codeCoverage": {"flags": 1}, "includeResults": False})
    assert sorted(asked) == sorted(str(b) for b in set(builds))
    shared = [i for i in items if builds.count(org.test_runs[i["id"]].build_id) > 1]
    assert shared and all(i["__codeCoverage"]["count"] in (0, 1) for i in shared)


def test_test_runs_and_results_are_paged_to_the_end(
    generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quality, "RUNS_PAGE", 2)
    monkeypatch.setattr(quality, "RESULTS_PAGE", 1)
    items = read_kind(generated_org, "test-run")
    org = generated_org.organisation()
    assert sorted(i["id"] for i in items) == sorted(org.test_runs)
    assert all([r["id"] for r in i["__testResults"]] == [r.id for r in org.test_runs[i["id"]].results] for i in items)

    set_faults(generated_org, {"path": "*/_apis/test/runs", "failPage": {"page": 1, "status": 500, "times": "always"}})
    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "test-run", context={"concurrency": 1})
    assert caught.value.status == 500 and "%24skip=2" in caught.value.url


def test_a_failed_result_or_coverage_read_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/_apis/test/runs/*/results", "errorRate": 1.0, "errorStatus": 500})
    with pytest.raises(ServerError):
        read_kind(generated_org, "test-run")
    assert read_kind(generated_org, "test-run", {"includeResults": False})  # the results are what failed

    set_faults(generated_org, {"path": "*/_apis/test/codecoverage", "notFound": True})
    with pytest.raises(NotFound):
        read_kind(generated_org, "test-run", {"codeCoverage": {"flags": 1}})

    set_faults(generated_org, {"path": "*/_apis/test/runs", "holdSeconds": 2})

    async def main() -> list[Item]:
        url = f"{generated_org.base_url}/fabrikam"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY, timeout=0.2) as rest:
            fetch = fetcher_for("test-run")
            return [i async for batch in fetch(FetchContext(rest, url), resource("test-run")) for i in batch]

    with pytest.raises(RequestTimeout):
        asyncio.run(main())


# ---------------------------------------------------------------------------------------------- advanced-security-alert


def healthy_alerts(live: LiveEmulator) -> list[SecurityAlert]:
    org = live.organisation()
    return [
        alert
        for alert in org.alerts.values()
        if alert.repository_id in org.repositories and not org.repositories[alert.repository_id].is_disabled
    ]


def test_alerts_of_every_repository_with_advanced_security(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    items, skipped = read_counting(generated_org, "advanced-security-alert")

    expected = healthy_alerts(generated_org)
    assert sorted(i["alertId"] for i in items) == sorted(a.id for a in expected) and len(expected) >= 5
    for item in items:
        alert = org.alerts[item["alertId"]]
        assert (item["__repositoryId"], item["__projectId"]) == (alert.repository_id, alert.project_id)
        direct = rest_list(
            generated_org,
            f"{alert.project_id}/_apis/alert/repositories/{alert.repository_id}/alerts",
            **{"api-version": "7.2-preview.1"},
        )
        assert unstamped(item) == next(a for a in direct if a["alertId"] == alert.id)
    healthy = [r for r in org.repositories.values() if not r.is_disabled]
    off = [r for r in healthy if r.id not in org.advanced_security]
    assert off and len(off) < len(healthy)
    assert skipped == {quality.ADVANCED_SECURITY_OFF: len(off)}


def test_disabled_repositories_are_not_read(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    disabled = org.repositories[next(iter(org.alerts.values())).repository_id]
    disabled.is_disabled = True
    gone = {a.id for a in org.alerts.values() if a.repository_id == disabled.id}
    items, _ = read_counting(generated_org, "advanced-security-alert")
    assert gone and items and not gone & {i["alertId"] for i in items}
    assert sorted(i["alertId"] for i in items) == sorted(a.id for a in healthy_alerts(generated_org))


def test_criteria_are_the_list_s_filters(generated_org: LiveEmulator) -> None:
    expected = healthy_alerts(generated_org)
    cases: list[tuple[dict[str, Any], set[int]]] = [
        ({"states": ["active"]}, {a.id for a in expected if a.state == "active"}),
        ({"states": ["fixed", "dismissed"]}, {a.id for a in expected if a.state in ("fixed", "dismissed")}),
        ({"severity": ["critical", "high"]}, {a.id for a in expected if a.severity in ("critical", "high")}),
        ({"alertType": "secret"}, {a.id for a in expected if a.alert_type == "secret"}),
        (
            {"states": ["active"], "alertType": "dependency"},
            {a.id for a in expected if a.state == "active" and a.alert_type == "dependency"},
        ),
    ]
    everything = {a.id for a in expected}
    for criteria, wanted in cases:
        assert wanted and wanted != everything, criteria  # each case changes the result
        items, _ = read_counting(generated_org, "advanced-security-alert", {"criteria": criteria})
        assert {i["alertId"] for i in items} == wanted, criteria
    assert quality.criteria_params(None) == {}


def test_alerts_are_paged_to_the_end(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quality, "ALERTS_PAGE", 1)
    items, _ = read_counting(generated_org, "advanced-security-alert")
    assert sorted(i["alertId"] for i in items) == sorted(a.id for a in healthy_alerts(generated_org))

    set_faults(
        generated_org,
        {"path": "*/_apis/alert/repositories/*/alerts", "failPage": {"page": 1, "status": 500, "times": "always"}},
    )
    with pytest.raises(ServerError) as caught:
        read_counting(generated_org, "advanced-security-alert", concurrency=1)
    assert caught.value.status == 500 and "continuationToken=1" in caught.value.url


def test_a_404_or_a_500_on_alerts_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/_apis/alert/repositories/*/alerts", "notFound": True})
    with pytest.raises(NotFound):
        read_counting(generated_org, "advanced-security-alert")
    set_faults(generated_org, {"path": "*/_apis/alert/repositories/*/alerts", "errorRate": 1.0, "errorStatus": 500})
    with pytest.raises(ServerError):
        read_counting(generated_org, "advanced-security-alert")


def test_a_400_after_the_first_page_is_an_error(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Advanced Security turned off between two pages of one repository: not "no data", a failed read."""
    org = generated_org.organisation()
    monkeypatch.setattr(quality, "ALERTS_PAGE", 1)
    target = max(org.advanced_security, key=lambda r: sum(1 for a in org.alerts.values() if a.repository_id == r))
    original = httpx.AsyncClient.request

    async def request(self: httpx.AsyncClient, method: str, url: Any, **kwargs: Any) -> httpx.Response:
        params = kwargs.get("params") or {}
        if target in str(url) and "continuationToken" in params:
            org.advanced_security.discard(target)
        return await original(self, method, url, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "request", request)
    with pytest.raises(Exception) as caught:
        read_counting(generated_org, "advanced-security-alert", concurrency=1)
    assert getattr(caught.value, "status", None) == 400 and target in str(caught.value)


def test_alerts_are_read_from_the_advsec_host() -> None:
    """On dev.azure.com the alerts come from advsec.dev.azure.com, everything else from the org host."""
    assert OrgUrls.parse("https://dev.azure.com/fabrikam").advsec == "https://advsec.dev.azure.com/fabrikam"
    assert OrgUrls.parse("https://fabrikam.visualstudio.com").advsec == "https://fabrikam.visualstudio.com"
    assert OrgUrls.parse("http://127.0.0.1:8080/fabrikam").advsec == "http://127.0.0.1:8080/fabrikam"
    seen: list[str] = []
    project = {"id": "p1", "name": "P", "state": "wellFormed"}
    repo = {"id": "r1", "name": "R", "project": project, "isDisabled": False}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host}{request.url.path}")
        if request.url.path.endswith("/_apis/projects"):
            return httpx.Response(200, json={"count": 1, "value": [project]})
        if request.url.path.endswith("/_apis/git/repositories"):
            return httpx.Response(200, json={"count": 1, "value": [repo]})
        assert request.url.params["api-version"] == "7.2-preview.1"
        return httpx.Response(200, json={"count": 1, "value": [{"alertId": 7, "severity": "high"}]})

    async def main() -> list[Item]:
        url = "https://dev.azure.com/fabrikam"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY, transport=httpx.MockTransport(answer)) as rest:
            fetch = fetcher_for("advanced-security-alert")
            return [i async for b in fetch(FetchContext(rest, url), resource("advanced-security-alert")) for i in b]

    items = asyncio.run(main())
    assert items == [
        {
            "alertId": 7,
            "severity": "high",
            "__repositoryId": "r1",
            "__projectId": "p1",
            "__organizationUrl": "https://dev.azure.com/fabrikam",
            "__organizationName": "fabrikam",
        }
    ]
    assert seen[-1] == "advsec.dev.azure.com/fabrikam/p1/_apis/alert/repositories/r1/alerts"
    assert seen[0] == "dev.azure.com/fabrikam/_apis/projects"
