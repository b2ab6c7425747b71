"""WIQL and work items over plain HTTP: Azure's refusals (status, typeKey, message) and the 20,000-result cap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator
from tests.support.azure_sdk import with_generated_org

from kiosk.emulator.org.model import WorkItemRevision

WIQL = "/fabrikam/_apis/wit/wiql?api-version=7.1"


pytestmark = pytest.mark.generated_org(workitems=120)


def error_of(response: object) -> tuple[int, str, str]:
    import httpx

    assert isinstance(response, httpx.Response)
    body = response.json()
    return response.status_code, body["typeKey"], body["message"]


def test_syntax_errors_name_the_token_and_its_position(generated: LiveEmulator) -> None:
    response = generated.client.post(WIQL, json={"query": "SELECT [System.Id] FROM WorkItems WHERE [System.State] =="})
    status, key, message = error_of(response)
    assert (status, key) == (400, "SyntaxException")
    assert "«=»" in message and "position 57" in message
    assert response.json()["typeName"].startswith("Microsoft.TeamFoundation.WorkItemTracking.Server.")
    status, key, message = error_of(generated.client.post(WIQL, json={"query": "SELECT [System.Id] WorkItems"}))
    assert (status, key) == (400, "SyntaxException") and "Expecting FROM" in message and "«WorkItems»" in message
    status, key, message = error_of(
        generated.client.post(WIQL, json={"query": "SELECT [Nope] FROM WorkItems WHERE [System.Id] > 1"})
    )
    assert (status, key) == (400, "QueryException")
    assert message == "TF51005: The query references a field that does not exist. The error is caused by «Nope»."


def test_refusals_of_the_request_itself(generated: LiveEmulator) -> None:
    query = {"query": "SELECT [System.Id] FROM WorkItems"}
    for top in ("0", "-1", "x"):
        status, key, message = error_of(generated.client.post(f"{WIQL}&$top={top}", json=query))
        assert status == 400 and key == "ArgumentOutOfRangeException" and "outside the permissible range" in message
    status, key, _ = error_of(generated.client.post("/fabrikam/_apis/wit/wiql", json=query))
    assert (status, key) == (400, "VssVersionNotSpecifiedException")
    long_query = "SELECT [System.Id] FROM WorkItems WHERE " + " OR ".join(["[System.Id] = 1"] * 3000)
    status, key, message = error_of(generated.client.post(WIQL, json={"query": long_query}))
    assert (status, key) == (400, "QueryException") and "at most 32768 characters" in message
    status, key, message = error_of(generated.client.post(WIQL, json={"wiql": "x"}))
    assert (status, key) == (400, "ArgumentException") and message.startswith("query:")
    status, key, message = error_of(
        generated.client.post(WIQL, json={"query": "SELECT [System.Id] FROM WorkItems WHERE [System.Id] = @project"})
    )
    assert (status, key) == (400, "QueryException") and "@Project macro needs a project" in message
    response = generated.client.post("/fabrikam/web/No Such Team/_apis/wit/wiql?api-version=7.1-preview.2", json=query)
    assert response.status_code == 404


def test_macros_and_dates_over_http(generated: LiveEmulator) -> None:
    org = generated.organisation()
    me = next(iter(org.users.values()))
    query = "SELECT [System.Id] FROM WorkItems WHERE [System.AssignedTo] = @Me AND [System.CreatedDate] >= @Today - 30"
    ids = [w["id"] for w in generated.client.post(WIQL, json={"query": query}).json()["workItems"]]
    today = datetime.now(UTC).date()
    expected = [
        item.id
        for item in org.work_items.values()
        if not item.is_deleted
        and item.fields.get("System.AssignedTo") is me
        and (today - item.fields["System.CreatedDate"].date()).days <= 30  # type: ignore[union-attr]
    ]
    assert ids == expected
    stamp = sorted(item.fields["System.ChangedDate"] for item in org.work_items.values())[60]  # type: ignore[type-var]
    precise = (
        "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] >= "
        f"'{stamp.isoformat().replace('+00:00', 'Z')}'"  # type: ignore[attr-defined]
    )
    shown = generated.client.post(f"{WIQL}&timePrecision=true", json={"query": precise}).json()["workItems"]
    assert [w["id"] for w in shown] == [
        item.id
        for item in org.work_items.values()
        if not item.is_deleted and item.fields["System.ChangedDate"] >= stamp  # type: ignore[operator]
    ]


def test_more_than_20000_matches_need_top(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(config=with_generated_org(CONFIG, projects=2, repos=2, workitems=25_000), execute=False)
    org = emulator.organisation()
    live = [item.id for item in org.work_items.values() if not item.is_deleted]
    assert len(live) > 20_000
    query = {"query": "SELECT [System.Id] FROM WorkItems ORDER BY [System.Id]"}
    status, key, message = error_of(emulator.client.post(WIQL, json=query))
    assert (status, key) == (400, "WorkItemTrackingQueryResultSizeLimitExceededException")
    assert message == (
        "VS402337: The number of work items returned exceeds the size limit of 20000. "
        "Change the query to return fewer items."
    )
    capped = emulator.client.post(f"{WIQL}&$top=19999", json=query).json()["workItems"]
    assert [w["id"] for w in capped] == live[:19_999]
    last = capped[-1]["id"]
    rest = emulator.client.post(
        f"{WIQL}&$top=19999",
        json={"query": f"SELECT [System.Id] FROM WorkItems WHERE [System.Id] > {last} ORDER BY [System.Id]"},
    ).json()["workItems"]
    assert [w["id"] for w in rest] == live[19_999:]


def test_a_changed_item_is_shaped_again(generated: LiveEmulator) -> None:
    org = generated.organisation()
    item = next(i for i in org.work_items.values() if not i.is_deleted)
    url = f"/fabrikam/_apis/wit/workitems?ids={item.id}&api-version=7.1"
    before = generated.client.get(url).json()["value"][0]
    assert before["fields"]["System.Title"] == item.fields["System.Title"]
    old_title = item.fields["System.Title"]
    item.fields["System.Title"] = "Renamed for the test"
    item.revisions.append(
        WorkItemRevision(
            item.rev + 1,
            item.revisions[-1].revised_by,
            datetime.now(UTC),
            {"System.Title": (old_title, "Renamed for the test")},
        )
    )
    item.rev += 1
    after = generated.client.get(url).json()["value"][0]
    assert (after["rev"], after["fields"]["System.Title"]) == (item.rev, "Renamed for the test")
    updates = generated.client.get(f"/fabrikam/_apis/wit/workitems/{item.id}/updates?api-version=7.1").json()
    assert updates["value"][-1]["fields"]["System.Title"] == {"oldValue": old_title, "newValue": "Renamed for the test"}


def test_batch_body_and_routes_refuse_bad_input(generated: LiveEmulator) -> None:
    batch = "/fabrikam/_apis/wit/workitemsbatch?api-version=7.1"
    for body in ({"ids": "1,2"}, {"ids": [True]}, {"ids": []}, {"ids": [1], "$expand": 3}, [1, 2]):
        status, key, _ = error_of(generated.client.post(batch, json=body))
        assert (status, key) == (400, "ArgumentException"), body
    status, _, message = error_of(generated.client.post(batch, json={"ids": list(range(1, 202))}))
    assert status == 400 and "exceeds the limit of 200" in message
    for query in ("ids=", "ids=a,b", "ids=1&$expand=everything", "ids=1&errorPolicy=maybe", "ids=1&asOf=yesterday"):
        response = generated.client.get(f"/fabrikam/_apis/wit/workitems?{query}")
        assert response.status_code == 400, query
    node = "/fabrikam/{}/_apis/wit/classificationnodes/Elsewhere"
    project = next(iter(generated.organisation().projects.values()))
    assert generated.client.get(node.format(project.id)).status_code == 400
