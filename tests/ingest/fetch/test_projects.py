"""The project fetcher, and project exclusion by tag (``excludedTags``) across every kind of the
pipelines and releases modules, over real HTTP against a generated organisation."""

from __future__ import annotations

from typing import Any

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.ingest.fetch.conftest import read_kind, set_faults

from kiosk.azure.errors import NotFound, ServerError
from kiosk.emulator.org.model import Organisation
from kiosk.ingest.fetch import projects
from kiosk.ingest.fetch.base import PROJECT_TAG_PREFIX, project_tags


def listed(live: LiveEmulator) -> list[dict[str, Any]]:
    answer = live.client.get("/fabrikam/_apis/projects", params={"includeCapabilities": "true", "$top": 1000})
    assert answer.status_code == 200
    return list(answer.json()["value"])


def tags_of(org: Organisation) -> dict[str, set[str]]:
    """Project id → its tags, from the emulator's own model."""
    return {
        p.id: {name[len(PROJECT_TAG_PREFIX) :] for name in p.properties if name.startswith(PROJECT_TAG_PREFIX)}
        for p in org.projects.values()
    }


def test_projects_are_the_list_as_azure_gives_it_stamped(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "project")

    expected = listed(generated_org)
    assert len(expected) == len(generated_org.organisation().projects) == 4
    assert [{k: v for k, v in i.items() if not k.startswith("__")} for i in items] == expected
    assert all("defaultTeam" not in item for item in items)  # the list leaves it out
    base = f"{generated_org.base_url}/fabrikam"
    assert {(i["__organizationUrl"], i["__organizationName"]) for i in items} == {(base, base)}


def test_default_team_reads_each_project_again(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "project", {"defaultTeam": True})

    org = generated_org.organisation()
    assert sorted(i["id"] for i in items) == sorted(org.projects)
    for item in items:
        project = org.projects[item["id"]]
        assert project.default_team_id is not None
        team = org.teams[project.default_team_id]
        assert item["defaultTeam"]["id"] == team.id and item["defaultTeam"]["name"] == team.name
        direct = generated_org.client.get(f"/fabrikam/_apis/projects/{project.id}").json()
        assert {k: v for k, v in item.items() if not k.startswith("__")} == direct


def test_default_team_in_batches_walks_every_project(
    generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projects, "PROJECTS_PER_BATCH", 1)
    items = read_kind(generated_org, "project", {"defaultTeam": True}, context={"concurrency": 1})
    assert sorted(i["id"] for i in items) == sorted(generated_org.organisation().projects)
    assert all("defaultTeam" in item for item in items)


def test_a_failed_project_read_raises_instead_of_dropping_the_project(generated_org: LiveEmulator) -> None:
    victim = next(iter(generated_org.organisation().projects))
    set_faults(generated_org, {"path": f"/fabrikam/_apis/projects/{victim}", "errorRate": 1, "errorStatus": 500})
    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "project", {"defaultTeam": True})
    assert victim in caught.value.url

    set_faults(generated_org, {"path": f"/fabrikam/_apis/projects/{victim}", "notFound": True})
    with pytest.raises(NotFound) as missing:
        read_kind(generated_org, "project", {"defaultTeam": True})
    assert missing.value.status == 404 and not missing.value.no_data


def test_a_failed_projects_list_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "/fabrikam/_apis/projects", "errorRate": 1, "errorStatus": 503})
    with pytest.raises(ServerError):
        read_kind(generated_org, "project")


# ---------------------------------------------------------------------------------------------- excludedTags


def test_project_tags_are_the_whole_names_after_the_prefix() -> None:
    answer = {
        "value": [
            {"name": f"{PROJECT_TAG_PREFIX}release.v1.2", "value": "true"},
            {"name": f"{PROJECT_TAG_PREFIX}pci", "value": "true"},
            {"name": "System.Process Template", "value": "Agile"},
        ]
    }
    assert project_tags(answer) == {"release.v1.2", "pci"}
    assert project_tags({"value": []}) == set() and project_tags(None) == set()


def test_the_emulator_answers_tags_under_the_key_the_client_asks_for(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    for project_id, tags in tags_of(org).items():
        answer = generated_org.client.get(
            f"/fabrikam/_apis/projects/{project_id}/properties",
            params={"keys": f"{PROJECT_TAG_PREFIX}*", "api-version": "7.1-preview.1"},
        )
        assert answer.status_code == 200
        assert project_tags(answer.json()) == tags
        assert all(p["name"].startswith(PROJECT_TAG_PREFIX) for p in answer.json()["value"])


def project_of(kind: str, item: dict[str, Any]) -> str:
    """The project id an item of ``kind`` belongs to, read as Ocean's mappings read it."""
    if kind == "project":
        return str(item["id"])
    if kind in ("pipeline", "build"):
        return str(item["__projectId"])
    if kind in ("pipeline-run", "pipeline-stage", "pipeline-deployment", "release-definition"):
        return str(item["__project"]["id"])
    return str(item["project"]["id"] if kind == "environment" else item["projectReference"]["id"])


KINDS = (
    "project",
    "pipeline",
    "pipeline-run",
    "pipeline-stage",
    "build",
    "environment",
    "pipeline-deployment",
    "release",
    "release-definition",
    "release-deployment",
)


def test_a_tagged_project_and_everything_in_it_disappear_from_every_kind(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    tags = tags_of(org)
    # A tag that holds dots, on a project with builds, environments and releases: the whole name is the tag.
    target = next(
        p for p in org.projects.values() if not p.configured and any(b.project_id == p.id for b in org.builds.values())
    )
    target.properties[f"{PROJECT_TAG_PREFIX}release.v1.2"] = "true"
    tags[target.id].add("release.v1.2")

    everything = {kind: read_kind(generated_org, kind) for kind in KINDS}
    for kind in KINDS:
        assert target.id in {project_of(kind, i) for i in everything[kind]}, kind

    for excluded in (("release.v1.2",), ("gdpr", "pci")):
        gone = {project_id for project_id, names in tags.items() if names & set(excluded)}
        assert gone and gone != set(org.projects)
        for kind in KINDS:
            kept = read_kind(generated_org, kind, context={"excluded_tags": excluded})
            want = [i for i in everything[kind] if project_of(kind, i) not in gone]
            assert sorted(str(i["id"]) for i in kept) == sorted(str(i["id"]) for i in want), (kind, excluded)
            assert not {project_of(kind, i) for i in kept} & gone

    # Only the whole tag counts: "v1.2" or "2" is not "release.v1.2".
    for kind in ("project", "build"):
        assert len(read_kind(generated_org, kind, context={"excluded_tags": ("v1.2", "2")})) == len(everything[kind])


def test_a_failed_tag_read_raises_instead_of_keeping_the_project(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/properties", "errorRate": 1, "errorStatus": 500})
    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "build", context={"excluded_tags": ("pci",)})
    assert "/properties" in caught.value.url
