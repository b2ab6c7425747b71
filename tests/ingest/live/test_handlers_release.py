"""The release event handlers over real HTTP against a generated organisation: releases and
deployments made through the emulator's mutation API, their events wrapped as a subscription
receives them, each handler's answer compared with what the kind's fetcher lists."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, start_emulator
from tests.ingest.fetch.conftest import read_kind, resource, set_faults
from tests.ingest.live.emulated_events import Azure, stamped
from tests.support.azure_sdk import with_generated_org

from kiosk.azure.errors import ServerError
from kiosk.emulator.org.model import ReleaseDefinition
from kiosk.emulator.shapes_events import release_created_resource
from kiosk.ingest.fetch.base import PROJECT_TAG_PREFIX, Item
from kiosk.ingest.live.event_fields import MalformedEvent
from kiosk.ingest.live.handlers_release import (
    DEPLOYMENT_EVENTS,
    HANDLERS,
    RELEASE_EVENTS,
    handle_deployment,
    handle_release,
    handle_release_definition,
)
from kiosk.ingest.live.model import Refetched

__all__ = ["start_emulator"]

ABANDONED = "ms.vss-release.release-abandoned-event"


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> Azure:
    config = with_generated_org(CONFIG, projects=2, repos=2, workitems=5)
    return Azure(start_emulator(config=config, execute=False))


def definition(azure: Azure) -> ReleaseDefinition:
    """A release definition of the generated organisation that releases can be made of."""
    org = azure.live.organisation()
    return next(d for d in org.release_definitions.values() if not d.is_deleted and d.environments)


def release(azure: Azure, made_of: ReleaseDefinition) -> dict[str, Any]:
    """A new release of ``made_of``: its ``release-created`` envelope."""
    answer = azure.live.client.post(
        f"/_emulator/orgs/fabrikam/projects/{made_of.project_id}/releases", json={"definitionId": made_of.id}
    )
    assert answer.status_code == 201, answer.text
    return envelope_of(azure, answer.json())


def envelope_of(azure: Azure, answer: dict[str, Any]) -> dict[str, Any]:
    """The envelope of the (first) event a mutation's ``answer`` names."""
    return azure.envelope(azure.raised(answer["events"][0]["id"]))


def listed(items: list[Item], **wanted: Any) -> list[Item]:
    return [item for item in items if all(item.get(key) == value for key, value in wanted.items())]


def test_a_created_release_and_its_definition_are_read_as_the_fetchers_list_them(azure: Azure) -> None:
    made_of = definition(azure)
    created = release(azure, made_of)
    release_id = created["resource"]["release"]["id"]

    got = azure.run(handle_release, resource("release"), created)

    assert got == Refetched("release", items=listed(read_kind(azure.live, "release"), id=release_id))
    assert got.items[0]["status"] == "active" and "environments" not in got.items[0]  # the list's shape
    got = azure.run(handle_release_definition, resource("release-definition"), created)
    expected = listed(read_kind(azure.live, "release-definition"), id=made_of.id)
    assert got == Refetched("release-definition", items=expected)
    assert got.items[0]["__project"]["id"] == made_of.project_id and got.items[0]["environments"]

    # An org-scoped subscription's trimmed resource (id and url only) names the same objects.
    trimmed = azure.envelope(azure.raised(created["id"]), scoped=False)
    assert set(trimmed["resource"]) == {"id", "url"}
    assert azure.run(handle_release, resource("release"), trimmed).items == listed(
        read_kind(azure.live, "release"), id=release_id
    )
    assert azure.run(handle_release_definition, resource("release-definition"), trimmed).items == expected


def test_an_abandoned_release_stays_unless_the_selector_leaves_it_out(azure: Azure) -> None:
    made_of = definition(azure)
    created = release(azure, made_of)
    org = azure.live.organisation()
    abandoned = org.releases[created["resource"]["release"]["id"]]
    abandoned.status = "abandoned"
    org.changed()
    event = dataclasses.replace(
        azure.raised(created["id"]), event_type=ABANDONED, resource=release_created_resource(org, abandoned)
    )
    envelope = azure.envelope(event)

    got = azure.run(handle_release, resource("release"), envelope)

    assert got == Refetched("release", items=listed(read_kind(azure.live, "release"), id=abandoned.id))
    assert got.items[0]["status"] == "abandoned"
    active_only = resource("release", {"statusFilter": "active"})
    got = azure.run(handle_release, active_only, envelope)
    assert got == Refetched("release", gone=[stamped(azure, envelope["resource"]["release"])])
    assert got.gone[0]["projectReference"]["id"] == made_of.project_id


def test_a_release_that_is_not_there_is_gone_and_a_failed_read_raises(azure: Azure) -> None:
    made_of = definition(azure)
    created = release(azure, made_of)
    missing = {**created, "resource": {"id": 987654, "url": "x/releases/987654"}}

    got = azure.run(handle_release, resource("release"), missing)

    assert got == Refetched(
        "release", gone=[stamped(azure, {"id": 987654, "projectReference": {"id": made_of.project_id}})]
    )
    # A project the organisation does not list (deleted, or excluded by tag): gone for every kind.
    elsewhere = {**created, "resourceContainers": {"project": {"id": "no-such-project"}}}
    assert azure.run(handle_release, resource("release"), elsewhere).items == []
    assert [g["id"] for g in azure.run(handle_release_definition, resource("release-definition"), elsewhere).gone] == [
        made_of.id
    ]

    # Nor is one of a project carrying an excluded tag.
    azure.live.organisation().projects[made_of.project_id].properties[f"{PROJECT_TAG_PREFIX}sox"] = "true"
    tagged = azure.run(handle_release, resource("release"), created, excluded_tags=("sox",))
    assert tagged == Refetched("release", gone=[stamped(azure, created["resource"]["release"])])
    assert azure.run(handle_release, resource("release"), created, excluded_tags=("hipaa",)).items

    set_faults(azure.live, {"path": "*/release/releases", "errorRate": 1, "errorStatus": 500})
    with pytest.raises(ServerError):
        azure.run(handle_release, resource("release"), created)
    with pytest.raises(MalformedEvent):
        azure.run(handle_release, resource("release"), {"eventType": RELEASE_EVENTS[0], "resource": {}})


def test_deployments_of_the_release_s_stage_are_read_again(azure: Azure) -> None:
    made_of = definition(azure)
    created = release(azure, made_of)
    release_id = created["resource"]["release"]["id"]
    stage = made_of.environments[0]
    prefix = f"/_emulator/orgs/fabrikam/projects/{made_of.project_id}/releases/{release_id}/deployments"
    stage_id = created["resource"]["release"]["environments"][0]["id"]
    first = azure.live.client.post(prefix, json={"environment": str(stage_id), "status": "rejected"})
    second = azure.live.client.post(prefix, json={"environment": str(stage_id)})
    assert first.status_code == second.status_code == 201, first.text
    completed = envelope_of(azure, second.json())
    assert completed["eventType"] == DEPLOYMENT_EVENTS[1]

    got = azure.run(handle_deployment, resource("release-deployment"), completed)

    deployments = read_kind(azure.live, "release-deployment")
    expected = [
        d
        for d in deployments
        if d["release"]["id"] == release_id
        and d["definitionEnvironmentId"] == completed["resource"]["environment"]["definitionEnvironmentId"]
    ]
    assert got == Refetched("release-deployment", items=expected)
    assert sorted(d["attempt"] for d in got.items) == [1, 2] and stage.name
    # The release's stages changed too: the release is read again.
    assert azure.run(handle_release, resource("release"), completed).items == listed(
        read_kind(azure.live, "release"), id=release_id
    )

    # deployment-started names the stage and the release, no deployment.
    started = {
        **completed,
        "eventType": DEPLOYMENT_EVENTS[0],
        "resource": {k: v for k, v in completed["resource"].items() if k not in ("deployment", "comment", "data")},
    }
    assert azure.run(handle_deployment, resource("release-deployment"), started) == got

    # A deployment the list no longer has is gone.
    vanished = {
        **completed,
        "resource": {**completed["resource"], "deployment": {**completed["resource"]["deployment"], "id": 987654}},
    }
    got = azure.run(handle_deployment, resource("release-deployment"), vanished)
    assert got.items == expected
    assert got.gone == [stamped(azure, vanished["resource"]["deployment"])]

    set_faults(azure.live, {"path": "*/release/deployments", "errorRate": 1, "errorStatus": 500})
    with pytest.raises(ServerError):
        azure.run(handle_deployment, resource("release-deployment"), completed)


def test_the_table_names_every_release_event_and_kind() -> None:
    assert set(HANDLERS) == {*RELEASE_EVENTS, *DEPLOYMENT_EVENTS}
    for event_type in RELEASE_EVENTS:
        assert HANDLERS[event_type] == {"release": handle_release, "release-definition": handle_release_definition}
    for event_type in DEPLOYMENT_EVENTS:
        assert HANDLERS[event_type] == {"release": handle_release, "release-deployment": handle_deployment}
