"""Publisher-input filters, matching and not, over HTTP: only matching subscriptions receive."""

from __future__ import annotations

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.emulator.hooks.conftest import PROJECT_ID, org_event, publish, subscribe
from tests.support.receiver import Receiver

from kiosk.emulator.hooks.matching import input_matches

CASES = [
    # (event type, filter name, filter value, the event's filters, matches?)
    ("git.push", "branch", "main", {"branch": ("refs/heads/main",)}, True),
    ("git.push", "branch", "refs/heads/Main", {"branch": ("refs/heads/main",)}, True),
    ("git.push", "branch", "refs/heads/main", {"branch": ("main",)}, True),
    ("git.push", "branch", "dev", {"branch": ("refs/heads/main",)}, False),
    ("git.push", "repository", "ABC-1", {"repository": ("abc-1",)}, True),
    ("git.push", "repository", "abc-2", {"repository": ("abc-1",)}, False),
    ("git.push", "repository", "abc-1", {}, False),  # the event has no value for the filter
    ("git.push", "branch", "", {"branch": ("refs/heads/main",)}, True),  # empty: no filter
    ("workitem.created", "areaPath", "Fabrikam\\Web", {"areapath": ("Fabrikam\\Web\\UI",)}, True),
    ("workitem.created", "areaPath", "fabrikam\\web", {"areapath": ("Fabrikam\\Web",)}, True),
    ("workitem.created", "areaPath", "Fabrikam\\We", {"areapath": ("Fabrikam\\Web",)}, False),
    ("workitem.created", "workItemType", "Bug", {"workitemtype": ("bug",)}, True),
    ("workitem.updated", "changedFields", "System.State, System.Title", {"changedfields": ("System.Title",)}, True),
    ("workitem.updated", "changedFields", "System.State", {"changedfields": ("System.Title",)}, False),
    ("workitem.commented", "commentPattern", "LGTM", {"commentpattern": ("looks lgtm to me",)}, True),
    ("workitem.commented", "commentPattern", "ship", {"commentpattern": ("looks good",)}, False),
    ("build.complete", "buildStatus", "Failed", {"buildstatus": ("Failed",)}, True),
    ("build.complete", "definitionName", "ci", {"definitionname": ("nightly",)}, False),
    ("ms.vss-pipelines.run-state-changed-event", "runStateId", "Completed", {"runstateid": ("completed",)}, True),
    (
        "ms.vss-release.deployment-completed-event",
        "releaseEnvironmentStatus",
        "4",
        {"releaseenvironmentstatus": ("4", "succeeded")},
        True,
    ),
]


@pytest.mark.parametrize(("event_type", "name", "value", "filters", "expected"), CASES)
def test_a_filter_matches_as_azure_compares_it(
    hooked: LiveEmulator,
    receiver: tuple[str, Receiver],
    event_type: str,
    name: str,
    value: str,
    filters: dict[str, tuple[str, ...]],
    expected: bool,
) -> None:
    url, rec = receiver
    publisher = {"build": "tfs", "ms.vss-pipelines": "pipelines", "ms.vss-release": "rm"}
    publisher_id = next((p for prefix, p in publisher.items() if event_type.startswith(prefix)), "tfs")
    filtered = subscribe(hooked, url, event_type, publisher_id, publisher_inputs={name: value})
    everything = subscribe(hooked, url, event_type, publisher_id)
    publish(hooked, org_event(event_type, publisher_id, filters=filters))
    publish(hooked, org_event(event_type, publisher_id, filters=filters))
    # Both events were matched against both subscriptions when they were dispatched: once the
    # unfiltered one received them, the filtered one's notifications say whether it matched.
    rec.wait(2, where=lambda r: r.json()["subscriptionId"] == everything["id"])
    notes = hooked.client.get(f"/fabrikam/_apis/hooks/subscriptions/{filtered['id']}/notifications").json()
    assert notes["count"] == (2 if expected else 0)
    if expected:
        rec.wait(2, where=lambda r: r.json()["subscriptionId"] == filtered["id"])
    if value:
        assert input_matches(name.lower(), value, filters.get(name.lower(), ())) is expected


def test_project_id_compares_with_the_events_project(hooked: LiveEmulator, receiver: tuple[str, Receiver]) -> None:
    url, rec = receiver
    mine = subscribe(hooked, url, publisher_inputs={"projectId": PROJECT_ID.upper()})
    other = subscribe(hooked, url, publisher_inputs={"projectId": "00000000-0000-0000-0000-000000000001"})
    publish(hooked, org_event(project_id=PROJECT_ID))
    publish(hooked, org_event(project_id=None))  # an org-wide event: no project to match
    everything = subscribe(hooked, url)
    publish(hooked, org_event())
    rec.wait(1, where=lambda r: r.json()["subscriptionId"] == everything["id"])
    rec.wait(1, where=lambda r: r.json()["subscriptionId"] == mine["id"])
    notes = hooked.client.get(f"/fabrikam/_apis/hooks/subscriptions/{mine['id']}/notifications").json()
    assert notes["count"] == 2  # the project's event and the last one, not the org-wide one
    assert hooked.client.get(f"/fabrikam/_apis/hooks/subscriptions/{other['id']}/notifications").json()["count"] == 0


def test_events_of_other_types_and_other_orgs_do_not_reach_a_subscription(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    pushes = subscribe(hooked, url)
    items = subscribe(hooked, url, "workitem.created")
    hooked.server.emulator.add_org("contoso")
    publish(hooked, org_event(), org="contoso")
    publish(hooked, org_event("workitem.created"))
    rec.wait(1)
    publish(hooked, org_event())
    rec.wait(2)
    counts = [
        hooked.client.get(f"/fabrikam/_apis/hooks/subscriptions/{s['id']}/notifications").json()["count"]
        for s in (pushes, items)
    ]
    assert counts == [1, 1]  # contoso's push reached no fabrikam subscription
