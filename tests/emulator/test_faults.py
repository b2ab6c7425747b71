"""Fault injection as a switch, over real HTTP: latency, a seeded share of 5xx, held connections,
one repository's pull requests answering 404, and a failing page in the middle of a listing."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator

from kiosk.emulator.config import parse_emulator_config
from kiosk.errors import ConfigError

PROJECTS = "/fabrikam/_apis/projects"
PIPELINES = "/fabrikam/web/_apis/pipelines"
V = {"api-version": "7.1"}


def with_faults(emulator: LiveEmulator, *rules: dict[str, Any]) -> None:
    response = emulator.client.put("/_emulator/switches", json={"faults": list(rules)})
    assert response.status_code == 200, response.text


def test_latency_delays_only_the_matching_route_without_blocking_others(emulator: LiveEmulator) -> None:
    with_faults(emulator, {"path": "/*/_apis/projects", "method": "GET", "latencyMs": 1500})
    finished: list[str] = []

    def slow() -> None:
        with httpx.Client(base_url=emulator.base_url, headers=dict(emulator.client.headers), timeout=30) as client:
            assert client.get(PROJECTS, params=V).status_code == 200
        finished.append("projects")

    thread = threading.Thread(target=slow)
    thread.start()
    for _ in range(3):  # served while the slow request sleeps: the loop is not blocked
        assert emulator.client.get(PIPELINES, params=V).status_code == 200
        finished.append("pipelines")
    thread.join()
    assert finished == ["pipelines", "pipelines", "pipelines", "projects"]


def test_a_share_of_5xx_is_the_same_for_the_same_seed(emulator: LiveEmulator) -> None:
    rule = {"path": "/*/_apis/projects", "errorRate": 0.4, "errorStatus": 502, "seed": 7}
    draws = random.Random(7)
    expected = [502 if draws.random() < 0.4 else 200 for _ in range(40)]
    assert 5 < expected.count(502) < 35
    for _ in range(2):  # a PUT starts the sequence afresh
        with_faults(emulator, rule)
        statuses = [emulator.client.get(PROJECTS, params=V).status_code for _ in range(40)]
        assert statuses == expected
    failed = emulator.client.get(PROJECTS, params=V)
    while failed.status_code != 502:
        failed = emulator.client.get(PROJECTS, params=V)
    assert failed.json()["typeKey"] == "BadGatewayException"
    assert "settings.faults[0]" in failed.json()["message"]
    assert all(emulator.client.get(PIPELINES, params=V).status_code == 200 for _ in range(10))


def test_a_held_connection_is_closed_without_an_answer(emulator: LiveEmulator) -> None:
    with_faults(emulator, {"pathRegex": "/_apis/projects$", "holdSeconds": 0.5})
    with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        emulator.client.get(PROJECTS, params=V)
    with pytest.raises(httpx.ReadTimeout):  # a client that gives up first sees a timeout
        emulator.client.get(PROJECTS, params=V, timeout=0.1)
    assert emulator.client.get(PIPELINES, params=V).status_code == 200
    assert emulator.client.get("/_emulator/switches").json()["faults"][0]["holdSeconds"] == 0.5


def test_one_repositorys_pull_requests_answer_404(emulator: LiveEmulator) -> None:
    with_faults(emulator, {"pullRequestsNotFound": "Legacy App"})
    for path in (
        "/fabrikam/web/_apis/git/repositories/Legacy%20App/pullrequests",
        "/fabrikam/_apis/git/repositories/legacy%20app/pullRequests/12",
    ):
        response = emulator.client.get(path, params=V)
        assert response.status_code == 404
        body = response.json()
        assert body["typeKey"] == "GitRepositoryNotFoundException"
        assert body["message"].lower().startswith("tf401019: the git repository with name or identifier legacy app ")
    assert emulator.client.get(PROJECTS, params=V).status_code == 200


def test_not_found_answers_a_plain_404_on_the_matching_route_only(emulator: LiveEmulator) -> None:
    with_faults(emulator, {"path": "/fabrikam/web/_apis/pipelines/*", "notFound": True})
    response = emulator.client.get(f"{PIPELINES}/1", params=V)
    assert response.status_code == 404
    body = response.json()
    assert body["typeKey"] == "NotFoundException" and "settings.faults[0]" in body["message"]
    assert emulator.client.get(PIPELINES, params=V).status_code == 200


@pytest.mark.parametrize(("times", "retry"), [("once", 200), ("always", 500)])
def test_the_nth_continuation_page_fails(emulator: LiveEmulator, times: str, retry: int) -> None:
    with_faults(emulator, {"path": "/*/_apis/projects", "failPage": {"page": 2, "status": 500, "times": times}})

    def page(skip: int | None) -> int:
        # $skip pages (the projects route refuses continuation tokens it did not issue)
        params = {**V, "$top": "1", "$skip": str(skip)} if skip else V
        return emulator.client.get(PROJECTS, params=params).status_code

    assert [page(None), page(1), page(2), page(2), page(1)] == [200, 200, 500, retry, 200]
    # A new listing (a first page again) counts afresh, whatever the offsets are.
    assert [page(None), page(3), page(4)] == [200, 200, 500]
    skip = emulator.client.get(PROJECTS, params={**V, "$top": "5", "$skip": "10"})
    assert skip.status_code == 200  # page 3 of this listing


def test_faults_from_the_config_file_and_errors_naming_the_field(
    start_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    config = CONFIG.replace("orgs:", "settings:\n  faults:\n    - {path: '/fabrikam/*', errorRate: 1}\norgs:", 1)
    live = start_emulator(config=config, execute=False)
    assert live.client.get(PROJECTS, params=V).status_code == 503
    assert live.client.get("/_emulator/triggers").status_code == 200  # the emulator's own routes: never
    assert live.client.get("/_emulator/switches").json()["faults"][0]["errorRate"] == 1

    for rule, named in (
        ("{path: '/x'}", "latencyMs, errorRate, holdSeconds"),
        ("{path: '/x', pathRegex: 'x', latencyMs: 1}", "not both"),
        ("{pathRegex: '(', latencyMs: 1}", "pathRegex is not a regular expression"),
        ("{path: '/x', holdSeconds: 3600}", "holdSeconds"),
        ("{path: '/x', failPage: {page: 0}}", "failPage.page"),
    ):
        text = f"settings:\n  allowAnonymous: true\n  faults:\n    - {rule}\n"
        with pytest.raises(ConfigError, match=named):
            parse_emulator_config(text, tmp_path / "emulator.yaml")
    bad = live.client.put("/_emulator/switches", json={"faults": [{"path": "/x", "errorRate": 2}]})
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("faults.0.errorRate:")
