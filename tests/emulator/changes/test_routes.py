"""The mutation API over real HTTP: each route changes the org, publishes its events, and Azure's REST
routes (and Microsoft's client) then show the change."""

from __future__ import annotations

import base64
import threading

import httpx
import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator
from tests.emulator.test_org_urls import api_urls
from tests.support.azure_sdk import with_generated_org
from tests.support.receiver import Receiver
from tests.support.servers import serving

from kiosk.emulator.org.events import OrgEvent
from kiosk.emulator.org.model import Project


class Events:
    """Every event the emulator publishes (the sink runs on the server's thread)."""

    def __init__(self) -> None:
        self.seen: list[OrgEvent] = []
        self._lock = threading.Lock()

    def __call__(self, org: str, event: OrgEvent) -> None:
        with self._lock:
            self.seen.append(event)

    def answered(self, response: httpx.Response) -> list[OrgEvent]:
        """The published events a mutation's answer names, in its order (they were published before it answered)."""
        wanted = [e["id"] for e in response.json()["events"]]
        with self._lock:
            by_id = {e.id: e for e in self.seen}
        found = [by_id[i] for i in wanted]
        assert [e.event_type for e in found] == [e["eventType"] for e in response.json()["events"]]
        return found


@pytest.fixture
def live(start_emulator: EmulatorFactory) -> tuple[LiveEmulator, Events]:
    emulator = start_emulator(config=with_generated_org(CONFIG, repos=8, workitems=40), execute=False)
    events = Events()
    emulator.server.emulator.on_event(events)
    return emulator, events


def _generated(emulator: LiveEmulator) -> Project:
    org = emulator.organisation()
    return next(p for p in org.projects.values() if any(d.project_id == p.id for d in org.build_definitions.values()))


def _prefix(project: Project) -> str:
    return f"/_emulator/orgs/fabrikam/projects/{project.id}"


def test_a_repository_created_pushed_to_renamed_disabled_and_deleted(live: tuple[LiveEmulator, Events]) -> None:
    emulator, events = live
    client, project = emulator.client, _generated(emulator)
    created = client.post(f"{_prefix(project)}/repositories", json={"name": "Ledger Service"})
    assert created.status_code == 201, created.text
    repo = created.json()["value"]
    (event,) = events.answered(created)
    assert event.event_type == "git.repo.created" and event.resource["repository"]["id"] == repo["id"]
    assert client.get(repo["url"]).json()["name"] == "Ledger Service"

    pushed = client.post(
        f"{_prefix(project)}/repositories/Ledger Service/pushes",
        json={
            "branch": "main",
            "changes": [
                {"path": "/README.md", "content": "# Ledger\n", "changeType": "add"},
                {"path": "src/app.py", "content": "print('hi')\n", "changeType": "add"},
            ],
            "comment": "First commit",
        },
    )
    assert pushed.status_code == 201, pushed.text
    (push_event,) = events.answered(pushed)
    commit_id = pushed.json()["value"]["commits"][0]["commitId"]
    assert push_event.resource["refUpdates"] == [
        {"name": "refs/heads/main", "oldObjectId": "0" * 40, "newObjectId": commit_id}
    ]
    items = f"/fabrikam/{project.id}/_apis/git/repositories/{repo['id']}/items"
    assert client.get(items, params={"path": "/src/app.py"}).text == "print('hi')\n"
    git = emulator.sdk_client("azure.devops.v7_1.git.GitClient")
    pushed_by_sdk = git.get_push(repo["id"], pushed.json()["value"]["pushId"], project=project.id)
    assert pushed_by_sdk.commits[0].comment == "First commit"
    assert git.get_repository(repo["id"], project=project.id).default_branch == "refs/heads/main"

    renamed = client.patch(f"{_prefix(project)}/repositories/{repo['id']}", json={"name": "ledger", "isDisabled": True})
    assert [e.event_type for e in events.answered(renamed)] == ["git.repo.renamed", "git.repo.statuschanged"]
    assert renamed.json()["value"]["isDisabled"] is True
    assert client.get(items, params={"path": "/README.md"}).status_code == 404  # disabled: nothing below it

    deleted = client.delete(f"{_prefix(project)}/repositories/ledger")
    assert deleted.status_code == 200 and events.answered(deleted)[0].event_type == "git.repo.deleted"
    assert client.get(repo["url"]).status_code == 404


def test_a_pull_request_voted_on_and_merged(live: tuple[LiveEmulator, Events]) -> None:
    emulator, events = live
    client, project, org = emulator.client, _generated(emulator), emulator.organisation()
    repo = next(r for r in org.project_repositories(project.id) if r.default_branch and not r.is_disabled)
    base = f"{_prefix(project)}/repositories/{repo.id}"
    branch = client.post(
        f"{base}/pushes",
        json={"branch": "feature/notes", "changes": [{"path": "/NOTES.md", "content": "n\n", "changeType": "add"}]},
    )
    assert branch.status_code == 201, branch.text
    reviewer = list(org.users.values())[1]
    created = client.post(
        f"{base}/pullrequests",
        json={"sourceRefName": "refs/heads/feature/notes", "title": "Notes", "reviewers": {reviewer.principal_name: 0}},
    )
    assert created.status_code == 201, created.text
    pr = created.json()["value"]
    assert events.answered(created)[0].filters["pullrequestreviewerscontains"] == (reviewer.id,)
    voted = client.patch(
        f"{_prefix(project)}/pullrequests/{pr['pullRequestId']}",
        json={"reviewers": {reviewer.id: 10}, "status": "completed", "by": reviewer.principal_name},
    )
    assert voted.status_code == 200, voted.text
    assert [e.event_type for e in events.answered(voted)] == [
        "git.pullrequest.updated",
        "git.push",
        "git.pullrequest.merged",
        "git.pullrequest.updated",
    ]
    shown = client.get(f"/fabrikam/{project.id}/_apis/git/pullrequests/{pr['pullRequestId']}").json()
    assert shown["status"] == "completed" and shown["reviewers"][0]["vote"] == 10 and "closedDate" in shown
    notes = client.get(f"/fabrikam/{project.id}/_apis/git/repositories/{repo.id}/items", params={"path": "/NOTES.md"})
    assert notes.text == "n\n"  # merged into the default branch
    again = client.patch(f"{_prefix(project)}/pullrequests/{pr['pullRequestId']}", json={"status": "abandoned"})
    assert again.status_code == 409 and again.json()["typeKey"]


def test_work_items_changed_commented_deleted_and_restored(live: tuple[LiveEmulator, Events]) -> None:
    emulator, events = live
    client, project, org = emulator.client, _generated(emulator), emulator.organisation()
    created = client.post(
        f"{_prefix(project)}/workitems", json={"type": "User Story", "fields": {"System.Title": "Checkout v2"}}
    )
    assert created.status_code == 201, created.text
    item = created.json()["value"]
    assert item["fields"]["System.State"] == "New" and item["fields"]["System.CreatedBy"]["uniqueName"]
    assert events.answered(created)[0].resource["fields"]["System.CreatedBy"].endswith(">")
    path = f"{_prefix(project)}/workitems/{item['id']}"
    updated = client.patch(
        path, json={"fields": {"System.State": "Active", "Microsoft.VSTS.Scheduling.StoryPoints": 5}}
    )
    assert updated.json()["value"]["rev"] == 2
    (update,) = events.answered(updated)
    assert update.resource["fields"]["System.State"] == {"oldValue": "New", "newValue": "Active"}
    commented = client.post(f"{path}/comments", json={"text": "Ready for review"})
    assert [e.event_type for e in events.answered(commented)] == ["workitem.commented", "workitem.updated"]
    model = org.work_items[item["id"]]
    assert model.rev == 3 and model.comments[0].text == "Ready for review"
    rest = f"/fabrikam/{project.id}/_apis/wit/workitems/{item['id']}"
    shown = client.get(rest).json()
    assert (shown["rev"], shown["fields"]["System.State"], shown["fields"]["System.CommentCount"]) == (3, "Active", 1)
    change = client.get(f"{rest}/updates/2").json()
    assert change["fields"]["Microsoft.VSTS.Scheduling.StoryPoints"] == {"newValue": 5}
    assert client.get(f"{rest}/comments").json()["comments"][0]["text"] == "Ready for review"
    deleted = client.delete(path)
    assert events.answered(deleted)[0].resource["url"].endswith(f"/_apis/wit/recyclebin/{item['id']}")
    assert client.get(rest).status_code == 404
    assert client.get(events.answered(deleted)[0].resource["url"]).json()["id"] == item["id"]
    assert client.patch(path, json={"fields": {"System.Title": "x"}}).status_code == 404
    restored = client.post(f"{path}/restore", json={})
    assert restored.status_code == 200 and not model.is_deleted
    refused = client.patch(path, json={"fields": {"System.State": "Flying"}})
    assert refused.status_code == 400 and "not a state" in refused.json()["message"]


def test_a_build_a_release_and_a_deployment(live: tuple[LiveEmulator, Events]) -> None:
    emulator, events = live
    client, project, org = emulator.client, _generated(emulator), emulator.organisation()
    definition = next(d for d in org.build_definitions.values() if d.project_id == project.id)
    built = client.post(f"{_prefix(project)}/builds", json={"definitionId": definition.id, "result": "failed"})
    assert built.status_code == 201, built.text
    build = built.json()["value"]
    (event,) = events.answered(built)
    assert event.filters == {"definitionname": (definition.name,), "buildstatus": ("Failed",)}
    shown = client.get(f"/fabrikam/{project.id}/_apis/build/builds/{build['id']}").json()
    assert (shown["result"], shown["definition"]["id"]) == ("failed", definition.id)
    timeline = client.get(f"/fabrikam/{project.id}/_apis/build/builds/{build['id']}/timeline").json()
    assert len(timeline["records"]) == 6

    release_definition = next(d for d in org.release_definitions.values() if d.project_id == project.id)
    released = client.post(f"{_prefix(project)}/releases", json={"definitionId": release_definition.id})
    assert released.status_code == 201, released.text
    release = released.json()["value"]
    stage = release["environments"][0]
    deployed = client.post(
        f"{_prefix(project)}/releases/{release['id']}/deployments",
        json={"environment": stage["name"], "status": "succeeded"},
    )
    assert deployed.status_code == 201, deployed.text
    (completed,) = events.answered(deployed)
    assert completed.resource["environment"]["releaseId"] == release["id"]
    fetched = client.get(f"/fabrikam/{project.id}/_apis/release/releases/{release['id']}").json()
    assert fetched["environments"][0]["status"] == "succeeded"


def test_bad_requests_get_azures_answers(live: tuple[LiveEmulator, Events]) -> None:
    emulator, _ = live
    client, project = emulator.client, _generated(emulator)
    prefix = _prefix(project)
    assert client.post(f"{prefix}/repositories", json={"name": "x", "colour": "red"}).status_code == 400
    some = emulator.organisation().project_repositories(project.id)[0]
    assert client.patch(f"{prefix}/repositories/{some.id}").json()["message"] == "body: a JSON body is required"
    assert (
        client.post(f"{prefix}/repositories", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    )
    assert client.post(f"{prefix}/repositories/nope/pushes", json={"branch": "main"}).status_code == 404
    assert client.patch(f"{prefix}/workitems/999999", json={"fields": {}}).status_code == 404
    assert (
        client.post("/_emulator/orgs/fabrikam/projects/nope/workitems", json={"type": "Bug", "fields": {}}).status_code
        == 404
    )
    name = {"name": "twice"}
    assert client.post(f"{prefix}/repositories", json=name).status_code == 201
    taken = client.post(f"{prefix}/repositories", json=name)
    assert taken.status_code == 409 and taken.json()["typeKey"] == "GitRepositoryNameAlreadyExistsException"
    configured = client.post("/_emulator/orgs/fabrikam/projects/web/builds", json={"definitionId": 1})
    assert configured.status_code == 400  # a configured project's builds are its pipeline runs
    anonymous = httpx.post(f"{emulator.base_url}{prefix}/repositories", json={"name": "y"})
    assert anonymous.status_code == 401
    wrong = "Basic " + base64.b64encode(b":not-the-pat").decode()
    assert (
        httpx.post(
            f"{emulator.base_url}{prefix}/repositories", json={"name": "y"}, headers={"Authorization": wrong}
        ).status_code
        == 401
    )


def test_the_activity_report_without_a_generator(live: tuple[LiveEmulator, Events]) -> None:
    emulator, _ = live
    assert emulator.client.get("/_emulator/activity").json() == {
        "running": False,
        "rate": None,
        "seed": None,
        "total": 0,
        "kinds": {},
        "events": {},
    }


def test_every_url_in_the_events_resolves(live: tuple[LiveEmulator, Events]) -> None:
    """The API ``url``/``_links`` of every event resource lead somewhere on the emulator (as test_org_urls walks
    the REST answers)."""
    emulator, events = live
    client, project, org = emulator.client, _generated(emulator), emulator.organisation()
    prefix = _prefix(project)
    repo = client.post(f"{prefix}/repositories", json={"name": "hooks"}).json()["value"]
    change = {"path": "/a.md", "content": "a"}
    client.post(f"{prefix}/repositories/hooks/pushes", json={"branch": "main", "changes": [change]})
    client.post(
        f"{prefix}/repositories/hooks/pushes", json={"branch": "topic", "changes": [{**change, "content": "b"}]}
    )
    pr = client.post(f"{prefix}/repositories/hooks/pullrequests", json={"sourceRefName": "topic", "title": "B"})
    client.patch(f"{prefix}/pullrequests/{pr.json()['value']['pullRequestId']}", json={"status": "completed"})
    item = client.post(f"{prefix}/workitems", json={"type": "Task", "fields": {"System.Title": "T"}}).json()["value"]
    client.patch(f"{prefix}/workitems/{item['id']}", json={"fields": {"System.State": "Active"}})
    client.post(f"{prefix}/workitems/{item['id']}/comments", json={"text": "c"})
    definition = next(d for d in org.build_definitions.values() if d.project_id == project.id)
    client.post(f"{prefix}/builds", json={"definitionId": definition.id})
    release_definition = next(d for d in org.release_definitions.values() if d.project_id == project.id)
    release = client.post(f"{prefix}/releases", json={"definitionId": release_definition.id}).json()["value"]
    stage = release["environments"][0]["id"]
    client.post(f"{prefix}/releases/{release['id']}/deployments", json={"environment": str(stage)})
    assert repo["id"] and len({e.event_type for e in events.seen}) == 11  # workitem.deleted: the test above
    urls = {url for event in events.seen for url in api_urls(event.resource, emulator.base_url)}
    assert len(urls) > 20
    for url in sorted(urls):
        response = client.get(url, headers={"Accept": "application/json"})
        assert response.status_code == 200, (url, response.status_code, response.text[:200])


def test_a_change_reaches_the_subscriptions_its_filters_match(live: tuple[LiveEmulator, Events]) -> None:
    """The mutation API's events go through the service hooks: a subscription filtered on the repository
    and branch gets the push, one filtered on another branch does not."""
    emulator, events = live
    client, project, org = emulator.client, _generated(emulator), emulator.organisation()
    repo = next(r for r in org.project_repositories(project.id) if r.default_branch and not r.is_disabled)
    receiver = Receiver()
    with serving(receiver) as target:
        for branch, path in (("refs/heads/main", "/main"), ("refs/heads/other", "/other")):
            subscribed = client.post(
                "/fabrikam/_apis/hooks/subscriptions?api-version=7.1",
                json={
                    "publisherId": "tfs",
                    "eventType": "git.push",
                    "consumerId": "webHooks",
                    "consumerActionId": "httpRequest",
                    "publisherInputs": {"projectId": project.id, "repository": repo.id, "branch": branch},
                    "consumerInputs": {"url": target + path},
                },
            )
            assert subscribed.status_code == 200, subscribed.text
        pushed = client.post(
            f"{_prefix(project)}/repositories/{repo.id}/pushes",
            json={"branch": "main", "changes": [{"path": "/CHANGELOG.md", "content": "1.0\n"}]},
        )
        (event,) = events.answered(pushed)
        (delivered,) = receiver.wait(1)
        envelope = delivered.json()
        assert delivered.path == "/main" and envelope["id"] == event.id and envelope["eventType"] == "git.push"
        assert envelope["resource"]["refUpdates"] == event.resource["refUpdates"]
        assert envelope["resourceContainers"]["project"]["id"] == project.id
        other = client.post(
            f"{_prefix(project)}/repositories/{repo.id}/pushes",
            json={"branch": "other", "changes": [{"path": "/CHANGELOG.md", "content": "2.0\n"}]},
        )
        (second,) = events.answered(other)
        to_other = receiver.wait(1, where=lambda r: r.path == "/other")
        assert [r.json()["id"] for r in to_other] == [second.id]  # the first push never went there
