"""The activity generator: its rate and config, a deterministic mix for a seed, and the running task on a
live emulator (started and stopped with the app, its counts at ``GET /_emulator/activity``)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from tests.emulator.conftest import PAT, basic
from tests.support.servers import free_port, serving

from kiosk.emulator.activity import KINDS, ActivityGenerator, ActivitySpec, parse_rate
from kiosk.emulator.bootstrap import build_emulator
from kiosk.emulator.config import load_emulator_config
from kiosk.emulator.org.events import OrgEvent
from kiosk.emulator.org.generate import generate_org
from kiosk.emulator.service import Emulator
from kiosk.errors import ConfigError

ORG = (
    "orgs:\n- name: acme\n  personalAccessTokens: [{env: PAT}]\n"
    "  generate: {projects: 3, repos: 8, workitems: 60, seed: 7}\n"
)


@pytest.mark.parametrize(("text", "per_second"), [("50/s", 50.0), ("300/min", 5.0), ("7200 / h", 2.0), ("0.5/s", 0.5)])
def test_rates(text: str, per_second: float) -> None:
    assert parse_rate(text) == per_second


@pytest.mark.parametrize("text", ["fast", "50", "0/s", "50/week", "20000/s", "-1/s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)
    with pytest.raises(ConfigError, match="--activity"):
        ActivitySpec.from_option(text)


def test_activity_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text(ORG + 'activity: {rate: "20/s", seed: 3}\n')
    assert load_emulator_config(path).activity == ActivitySpec(rate="20/s", seed=3)
    path.write_text(ORG + "activity: {rate: often}\n")
    with pytest.raises(ConfigError, match=r"emulator.yaml:\d+: activity.rate"):
        load_emulator_config(path)


def _emulator() -> tuple[Emulator, list[OrgEvent]]:
    emulator = Emulator()
    emulator.add_org("acme")
    emulator.set_organisation(
        "acme", generate_org("acme", "http://127.0.0.1:8001", projects=3, repos=8, workitems=60, seed=7)
    )
    seen: list[OrgEvent] = []
    emulator.on_event(lambda org, event: seen.append(event))
    return emulator, seen


def test_the_same_seed_makes_the_same_changes_and_the_mix_covers_every_kind() -> None:
    runs = []
    for seed in (5, 5, 6):
        emulator, seen = _emulator()
        generator = ActivityGenerator(emulator, ActivitySpec(rate="50/s", seed=seed))
        kinds = [generator.step() for _ in range(1500)]
        runs.append((kinds, [(e.event_type, e.id) for e in seen], generator.describe()))
    (kinds, events, report), (again, events_again, _), (other, _, _) = runs
    assert kinds == again and events == events_again and kinds != other
    assert set(report["kinds"]) == set(KINDS) and None not in kinds
    assert report["total"] == 1500 and report["eventsTotal"] == len(events) > 1500
    assert report["kinds"]["push"] > report["kinds"]["repositoryCreate"]  # weighted as KINDS says
    assert {"git.push", "workitem.updated", "build.complete", "git.pullrequest.merged"} <= set(report["events"])


def test_an_org_without_projects_is_left_alone() -> None:
    emulator = Emulator()
    emulator.add_org("empty")
    generator = ActivityGenerator(emulator, ActivitySpec(rate="5/s"))
    assert generator.step() is None and generator.describe()["skipped"] == 1


def test_the_generator_runs_with_the_app_and_stops_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAT", PAT)
    path = tmp_path / "emulator.yaml"
    path.write_text(ORG + 'activity: {rate: "200/s", seed: 1}\n')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = build_emulator(load_emulator_config(path), config_dir=tmp_path, base_url=base, work_dir=tmp_path / "w")
    seen: list[OrgEvent] = []
    server.emulator.on_event(lambda org, event: seen.append(event))
    with serving(server.app, port), httpx.Client(base_url=base, headers=basic(PAT), timeout=30) as client:
        deadline = time.monotonic() + 120
        report = client.get("/_emulator/activity").json()
        while report["total"] < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
            report = client.get("/_emulator/activity").json()
        assert report["running"] is True and report["rate"] == "200/s" and report["total"] >= 100, report
        assert len(report["kinds"]) >= 5 and report["eventsTotal"] >= report["total"]
        pushed = next(e for e in list(seen) if e.event_type == "git.push")
        repo_id = pushed.resource["repository"]["id"]
        project_id = pushed.resource["repository"]["project"]["id"]
        answer = client.get(f"/acme/{project_id}/_apis/git/repositories/{repo_id}/pushes/{pushed.resource['pushId']}")
        assert answer.status_code == 200 and answer.json()["commits"]  # the REST API shows what it made
    stopped = server.app.state.activity.describe()
    assert stopped["running"] is False
    time.sleep(0.1)
    assert server.app.state.activity.describe()["total"] == stopped["total"]
