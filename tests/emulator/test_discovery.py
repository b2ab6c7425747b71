"""Route discovery and the REST plumbing, over real HTTP: what Microsoft's client asks before any call.

``OPTIONS {org}/_apis`` (resource locations), ``ResourceAreas``, ``connectionData``; the
api-version from the query or the ``Accept`` header (reads served without one); case-insensitive
paths; Azure's error bodies. The client itself runs in ``test_client_*.py``.
"""

from __future__ import annotations

import re

import httpx
import pytest
from tests.emulator.conftest import PAT, LiveEmulator, basic
from tests.support.azure_sdk import connect

from kiosk.emulator.discovery import LOCATIONS, RESOURCE_AREAS
from kiosk.emulator.versioning import accept_version, resolve_api_version

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
AZURE_ERROR_KEYS = ["$id", "innerException", "message", "typeName", "typeKey", "errorCode", "eventId"]


def test_options_lists_every_served_resource_location(emulator: LiveEmulator) -> None:
    response = emulator.client.options("/fabrikam/_apis")  # no api-version, as the client sends it
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["value"]) == len(LOCATIONS)
    ids = [entry["id"] for entry in body["value"]]
    assert len(set(ids)) == len(ids) and all(GUID.match(i) for i in ids)  # lower case: clients compare with ==
    for entry in body["value"]:
        assert set(entry) == {
            "id",
            "area",
            "resourceName",
            "routeTemplate",
            "resourceVersion",
            "minVersion",
            "maxVersion",
            "releasedVersion",
        }
        assert float(entry["minVersion"]) <= 7.0 <= 7.1 <= float(entry["maxVersion"])
        assert float(entry["releasedVersion"]) in (0.0, 7.1)
        assert "_apis/" in entry["routeTemplate"] and not entry["routeTemplate"].startswith("/")
    assert "225f7195-f9c7-4d14-ab28-a83f7ff77e1f" in ids  # git repositories
    assert emulator.client.options("/FABRIKAM/_apis").json() == body  # org names are case-insensitive
    assert emulator.client.options("/_apis").json() == {"count": 0, "value": []}  # nothing outside an org


def test_resource_areas_keep_every_client_on_the_emulator(emulator: LiveEmulator) -> None:
    body = emulator.client.get(
        "/fabrikam/_apis/ResourceAreas", headers={"Accept": "application/json;api-version=7.1-preview.1"}
    ).json()
    assert body["count"] == len(RESOURCE_AREAS)
    assert {a["locationUrl"] for a in body["value"]} == {f"{emulator.base_url}/fabrikam/"}
    core = emulator.client.get("/fabrikam/_apis/resourceareas/79134C72-4A58-4B42-976C-04E7115F32BF").json()
    assert core["name"] == "core" and core["id"] == "79134c72-4a58-4b42-976c-04e7115f32bf"
    missing = emulator.client.get("/fabrikam/_apis/ResourceAreas/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and list(missing.json()) == AZURE_ERROR_KEYS


def test_connection_data_says_who_the_caller_is(emulator: LiveEmulator) -> None:
    body = emulator.client.get("/fabrikam/_apis/connectionData?connectOptions=IncludeServices").json()
    assert body["authenticatedUser"] == body["authorizedUser"]
    assert GUID.match(body["authenticatedUser"]["id"]) and body["deploymentType"] == "hosted"
    assert body["locationServiceData"]["defaultAccessMappingMoniker"] == "PublicAccessMapping"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json;api-version=7.1-preview.4", "7.1-preview.4"),
        ("application/json; api-version=7.0", "7.0"),
        ('application/json; charset=utf-8; API-Version="6.0"', "6.0"),
        ("text/plain, application/json;api-version=7.1", "7.1"),
        ("application/json", None),
        (None, None),
    ],
)
def test_the_accept_headers_api_version_is_read(accept: str | None, expected: str | None) -> None:
    assert accept_version(accept) == expected


def test_a_read_without_a_version_is_served_a_write_is_not() -> None:
    assert resolve_api_version("GET", None, None) == "7.1"
    assert resolve_api_version("GET", "7.0", "application/json;api-version=7.1") == "7.0"  # the query wins
    assert resolve_api_version("POST", None, "application/json;api-version=7.1-preview.1") == "7.1-preview.1"
    with pytest.raises(Exception, match="No api-version was supplied") as refused:
        resolve_api_version("POST", None, "application/json")
    assert getattr(refused.value, "type_key", None) == "VssVersionNotSpecifiedException"


def test_versions_over_http(emulator: LiveEmulator) -> None:
    assert emulator.client.get("/fabrikam/web/_apis/pipelines").status_code == 200
    by_accept = emulator.client.get(
        "/fabrikam/web/_apis/pipelines", headers={"Accept": "application/json;api-version=7.1"}
    )
    assert by_accept.status_code == 200 and by_accept.json()["count"] == 1
    out_of_range = emulator.client.get(
        "/fabrikam/web/_apis/pipelines", headers={"Accept": "application/json;api-version=99.0"}
    )
    assert out_of_range.status_code == 400 and out_of_range.json()["typeKey"] == "VssVersionOutOfRangeException"
    unversioned_write = emulator.client.post("/fabrikam/web/_apis/pipelines/1/runs", json={})
    assert unversioned_write.status_code == 400
    assert unversioned_write.json()["typeKey"] == "VssVersionNotSpecifiedException"
    by_header = emulator.client.post(
        "/fabrikam/web/_apis/pipelines/1/runs", json={}, headers={"Accept": "application/json;api-version=7.1"}
    )
    assert by_header.status_code == 200 and by_header.json()["state"] == "inProgress"


def test_paths_are_case_insensitive_and_keep_their_parameters(emulator: LiveEmulator) -> None:
    lower = emulator.client.get("/fabrikam/web/_apis/pipelines/1").json()
    assert emulator.client.get("/fabrikam/web/_APIS/Pipelines/1").json() == lower
    assert emulator.client.get("/Fabrikam/WEB/_apis/pipelines/1").json()["name"] == "hello"
    unknown = emulator.client.get("/fabrikam/web/_apis/nothing/here")
    assert unknown.status_code == 404 and list(unknown.json()) == AZURE_ERROR_KEYS
    assert unknown.json()["typeKey"] == "NotFoundException"


def test_microsofts_client_discovers_and_calls_the_existing_routes(emulator: LiveEmulator) -> None:
    connection = connect(emulator.base_url, "fabrikam", PAT)
    pipelines = connection.get_client("azure.devops.v7_1.pipelines.PipelinesClient")
    (pipeline,) = pipelines.list_pipelines("web")
    assert pipeline.name == "hello" and pipeline.folder == "\\"
    run = pipelines.run_pipeline({}, "web", pipeline.id)
    assert run.id == 1 and run.pipeline.name == "hello"
    assert [r.id for r in pipelines.list_runs("web", pipeline.id)] == [run.id]
    build = connection.get_client("azure.devops.v7_1.build.BuildClient")
    assert build.get_build("web", run.id).build_number == run.name
    timeline = build.get_build_timeline("web", run.id)  # the client asks for …/Timeline
    assert timeline.url.endswith(f"/_apis/build/builds/{run.id}/Timeline")
    location = connection.get_client("azure.devops.v7_1.location.LocationClient")
    assert location.get_connection_data().authenticated_user.is_active is True
    areas = {a.id for a in location.get_resource_areas()}
    assert "4e080c62-fa21-4fbc-8fef-2a10a2b38049" in areas


def test_the_client_gets_azures_authentication_error_for_a_wrong_pat(emulator: LiveEmulator) -> None:
    from azure.devops.exceptions import AzureDevOpsAuthenticationError

    with pytest.raises(AzureDevOpsAuthenticationError, match="TF400813"):
        connect(emulator.base_url, "fabrikam", "not-the-pat").get_client("azure.devops.v7_1.core.CoreClient")
    with pytest.raises(AzureDevOpsAuthenticationError):
        connect(emulator.base_url, "fabrikam", "").get_client("azure.devops.v7_1.core.CoreClient")
    # Without any credentials at all, Azure answers its TF400813 JSON: a service error to the client.
    anonymous = httpx.get(f"{emulator.base_url}/fabrikam/_apis/projects")
    assert anonymous.status_code == 401 and anonymous.json()["typeKey"] == "UnauthorizedRequestException"
    assert httpx.get(f"{emulator.base_url}/fabrikam/_apis/projects", headers=basic(PAT)).status_code == 200
