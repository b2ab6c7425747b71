"""The release, release-definition and release-deployment fetchers over real HTTP against a generated
organisation: every project's lists, the selectors sent as the lists' own filters, paging walked to the
end, failures raised."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.ingest.fetch.conftest import read_kind, read_paged, rest_list, set_faults, unstamped

from kiosk.azure.errors import NotFound, ServerError
from kiosk.ingest.fetch import releases


def every_project(live: LiveEmulator, what: str, **params: Any) -> list[dict[str, Any]]:
    """``{project}/_apis/release/{what}`` for every project, read directly."""
    projects = rest_list(live, "_apis/projects")
    return [item for p in projects for item in rest_list(live, f"{p['id']}/_apis/release/{what}", **params)]


def by_id(items: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    found = {int(i["id"]): unstamped(i) for i in items}
    assert len(found) == len(items)
    return found


# ---------------------------------------------------------------------------------------------- release


def test_releases_are_every_project_s_list(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "release")

    org = generated_org.organisation()
    assert sorted(i["id"] for i in items) == sorted(org.releases) and len(org.releases) >= 3
    assert by_id(items) == by_id(every_project(generated_org, "releases"))
    assert all("environments" not in i and "__project" not in i for i in items)  # Azure's own projectReference
    assert {i["projectReference"]["id"] for i in items} == {r.project_id for r in org.releases.values()}


def test_release_selector_options_are_the_list_s_filters(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    ordered = sorted(org.releases.values(), key=lambda r: r.created_on)
    ordered[0].status = "abandoned"
    ordered[1].tags = ["hotfix", "eu"]
    ordered[2].tags = ["hotfix"]
    middle = ordered[len(ordered) // 2].created_on
    everything = {r.id for r in ordered}

    cases: list[tuple[dict[str, Any], dict[str, str], set[int]]] = [
        ({"statusFilter": "abandoned"}, {"statusFilter": "abandoned"}, {ordered[0].id}),
        ({"tagFilter": ["hotfix", "eu"]}, {"tagFilter": "hotfix,eu"}, {ordered[1].id}),
        ({"tagFilter": ["hotfix"]}, {"tagFilter": "hotfix"}, {ordered[1].id, ordered[2].id}),
        ({"sourceBranchFilter": "refs/heads/main"}, {"sourceBranchFilter": "refs/heads/main"}, everything),
        ({"sourceBranchFilter": "refs/heads/nowhere"}, {"sourceBranchFilter": "refs/heads/nowhere"}, set()),
        (
            {"minCreatedTime": middle.isoformat()},
            {"minCreatedTime": middle.isoformat()},
            {r.id for r in ordered if r.created_on >= middle},
        ),
        (
            {"maxCreatedTime": (middle - timedelta(seconds=1)).isoformat()},
            {"maxCreatedTime": (middle - timedelta(seconds=1)).isoformat()},
            {r.id for r in ordered if r.created_on < middle},
        ),
    ]
    for selector, params, expected in cases:
        items = read_kind(generated_org, "release", selector)
        assert {i["id"] for i in items} == expected, selector
        assert by_id(items) == by_id(every_project(generated_org, "releases", **params)), selector

    expanded = read_kind(generated_org, "release", {"expand": "environments"})
    assert {i["id"] for i in expanded} == everything
    assert by_id(expanded) == by_id(every_project(generated_org, "releases", **{"$expand": "environments"}))
    for item in expanded:
        assert [e["id"] for e in item["environments"]] == [e.id for e in org.releases[item["id"]].environments]


def test_releases_are_paged_to_the_end(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    items = read_paged(generated_org, monkeypatch, releases, 1, "release")
    assert sorted(i["id"] for i in items) == sorted(generated_org.organisation().releases)

    set_faults(
        generated_org, {"path": "*/_apis/release/releases", "failPage": {"page": 1, "status": 500, "times": "always"}}
    )
    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "release", context={"concurrency": 1})
    assert caught.value.status == 500 and "continuationToken=1" in caught.value.url


# ---------------------------------------------------------------------------------------------- release-definition


def test_release_definitions_expand_environments_by_default_with_their_project(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "release-definition")

    org = generated_org.organisation()
    live_ids = {d.id for d in org.release_definitions.values() if not d.is_deleted}
    assert {i["id"] for i in items} == live_ids and len(items) == len(live_ids)
    assert by_id(items) == by_id(every_project(generated_org, "definitions", **{"$expand": "environments"}))
    projects = {p["id"]: p for p in rest_list(generated_org, "_apis/projects")}
    for item in items:
        definition = org.release_definitions[item["id"]]
        assert item["__project"] == projects[definition.project_id]
        assert [e["id"] for e in item["environments"]] == [e.id for e in definition.environments]


def test_release_definition_selector_options(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    org = generated_org.organisation()
    tagged = next(d for d in org.release_definitions.values() if not d.is_deleted)
    tagged.tags = ["critical"]

    artifacts = read_kind(generated_org, "release-definition", {"expand": "artifacts"})
    assert all("artifacts" in i and "environments" not in i for i in artifacts)
    assert by_id(artifacts) == by_id(every_project(generated_org, "definitions", **{"$expand": "artifacts"}))

    only = read_kind(generated_org, "release-definition", {"tagFilter": ["critical"]})
    assert [i["id"] for i in only] == [tagged.id] and "environments" in only[0]

    paged = read_paged(generated_org, monkeypatch, releases, 1, "release-definition")
    assert sorted(i["id"] for i in paged) == sorted(d.id for d in org.release_definitions.values() if not d.is_deleted)


def test_a_failed_definitions_list_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/_apis/release/definitions", "notFound": True})
    with pytest.raises(NotFound) as caught:
        read_kind(generated_org, "release-definition")
    assert caught.value.status == 404 and "%24expand=environments" in caught.value.url


# ---------------------------------------------------------------------------------------------- release-deployment


def test_release_deployments_are_every_project_s_list(
    generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = read_paged(generated_org, monkeypatch, releases, 2, "release-deployment")

    org = generated_org.organisation()
    assert sorted(i["id"] for i in items) == sorted(org.deployments) and len(org.deployments) > 2
    assert by_id(items) == by_id(every_project(generated_org, "deployments"))
