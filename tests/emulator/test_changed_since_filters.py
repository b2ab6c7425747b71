"""The filters the incremental sync asks of Azure, answered as Azure answers them: builds by several
statuses at once (``BuildStatus`` is a flags enum) and by finish time, a generated project's run
read alone as its runs list shows it, pull requests closed since a time, releases created since a
time or named by id, deployments modified since a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.emulator.conftest import LiveEmulator
from tests.support.emulated_builds import add_build

API = {"api-version": "7.1"}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_builds_by_several_statuses_and_by_finish_time(generated: LiveEmulator) -> None:
    org = generated.organisation()
    now = datetime.now(UTC).replace(microsecond=0)
    running = add_build(org, status="inProgress", result=None, finish_time=None, queue_time=now)
    waiting = add_build(org, status="notStarted", result=None, start_time=None, finish_time=None, queue_time=now)
    late = add_build(org, finish_time=now + timedelta(seconds=5))
    path = f"/fabrikam/{running.project_id}/_apis/build/builds"

    def listed(**params: str) -> list[int]:
        answer = generated.client.get(path, params={**API, **params})
        assert answer.status_code == 200, answer.text
        return [build["id"] for build in answer.json()["value"]]

    assert sorted(listed(statusFilter="notStarted,inProgress,cancelling,postponed")) == sorted([running.id, waiting.id])
    assert listed(statusFilter="inProgress") == [running.id]
    assert set(listed(statusFilter="inProgress,all")) == set(listed())  # ``all`` among them: every status
    finished = listed(statusFilter="completed", queryOrder="finishTimeAscending", minTime=_stamp(now))
    assert finished == [late.id]
    everything = listed(statusFilter="completed", queryOrder="finishTimeAscending")
    times = [org.builds[i].finish_time for i in everything]
    assert times == sorted(t for t in times if t is not None) and everything[-1] == late.id


def test_a_generated_run_reads_alone_as_its_runs_list_shows_it(generated: LiveEmulator) -> None:
    org = generated.organisation()
    build = min(org.builds.values(), key=lambda b: b.id)
    base = f"/fabrikam/{build.project_id}/_apis/pipelines/{build.definition_id}/runs"
    listed = generated.client.get(base, params=API).json()["value"]
    one = generated.client.get(f"{base}/{build.id}", params=API)
    assert one.status_code == 200, one.text
    assert one.json() == next(run for run in listed if run["id"] == build.id)
    other = next(d for d in org.build_definitions.values() if d.id != build.definition_id)
    missing = generated.client.get(
        f"/fabrikam/{other.project_id}/_apis/pipelines/{other.id}/runs/{build.id}", params=API
    )
    assert missing.status_code == 404 and missing.json()["typeKey"] == "RunNotFoundException"


def test_pull_requests_closed_since_a_time(generated: LiveEmulator) -> None:
    org = generated.organisation()
    pr = next(p for p in org.pull_requests.values() if p.status == "active")
    repository = org.repositories[pr.repository_id]
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    done = generated.client.patch(
        f"/_emulator/orgs/fabrikam/projects/{repository.project_id}/pullrequests/{pr.id}", json={"status": "completed"}
    )
    assert done.status_code == 200, done.text
    answer = generated.client.get(
        f"/fabrikam/{repository.project_id}/_apis/git/pullrequests",
        params={
            **API,
            "searchCriteria.status": "completed",
            "searchCriteria.queryTimeRangeType": "closed",
            "searchCriteria.minTime": _stamp(before),
        },
    )
    assert answer.status_code == 200, answer.text
    assert [item["pullRequestId"] for item in answer.json()["value"]] == [pr.id]


def test_releases_created_since_or_by_id_and_deployments_modified_since(generated: LiveEmulator) -> None:
    org = generated.organisation()
    release = min(org.releases.values(), key=lambda r: r.id)
    project = release.project_id
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    deployed = generated.client.post(
        f"/_emulator/orgs/fabrikam/projects/{project}/releases/{release.id}/deployments",
        json={"environment": release.environments[0].name},
    )
    assert deployed.status_code == 201, deployed.text
    deployments = generated.client.get(
        f"/fabrikam/{project}/_apis/release/deployments", params={**API, "minModifiedTime": _stamp(before)}
    ).json()["value"]
    assert [d["release"]["id"] for d in deployments] == [release.id]
    by_id = generated.client.get(
        f"/fabrikam/{project}/_apis/release/releases", params={**API, "releaseIdFilter": str(release.id)}
    ).json()["value"]
    assert [r["id"] for r in by_id] == [release.id]
    created = generated.client.get(
        f"/fabrikam/{project}/_apis/release/releases", params={**API, "minCreatedTime": _stamp(before)}
    ).json()["value"]
    assert created == []
