"""The team, member, user, group and group-member fetchers against a live emulator over real HTTP:
items equal the emulator's own with the reference's enrichment, every selector option changes what
is read, pages are walked to the end, and errors raise."""

from __future__ import annotations

from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator
from tests.ingest.fetch.conftest import ORG, faulty_org, read_kind, rest_get
from tests.support.azure_sdk import with_generated_org

from kiosk.azure.errors import ServerError
from kiosk.emulator.routes.entitlements import ENTITLEMENTS_PAGE
from kiosk.ingest.fetch import teams as teams_module
from kiosk.ingest.fetch.teams import is_legacy_entitlements_version, project_of_group


@pytest.fixture
def many_users(start_emulator: EmulatorFactory) -> LiveEmulator:
    """More users than one page of entitlements holds."""
    users = ENTITLEMENTS_PAGE * 2 + 17
    return start_emulator(
        config=with_generated_org(CONFIG, projects=2, repos=2, workitems=5, users=users), execute=False
    )


# ------------------------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("version", "legacy"),
    [
        (None, False),
        ("", False),
        ("7.1-preview.3", False),
        ("7.0", False),
        ("6.0-preview.3", True),
        ("4.1", True),
        ("x", True),
    ],
)
def test_entitlement_versions_below_7_are_legacy(version: str | None, legacy: bool) -> None:
    assert is_legacy_entitlements_version(version) is legacy


def test_the_project_of_a_group_is_read_from_its_principal_name() -> None:
    assert project_of_group("[Payments Platform]\\Contributors") == "Payments Platform"
    assert project_of_group("[fabrikam]\\Project Collection Administrators") == "fabrikam"
    assert project_of_group("Contributors") is None


# ------------------------------------------------------------------------------------------- teams


def test_every_team_and_what_the_selector_adds(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    model = generated_org.organisation()
    plain = read_kind(generated_org, "team")
    assert sorted(t["id"] for t in plain) == sorted(model.teams) and len(plain) >= 4
    listed = {t["id"]: t for t in rest_get(generated_org, "_apis/teams", **{"$top": "1000"})["value"]}
    for team in plain:
        assert {k: v for k, v in team.items() if not k.startswith("__")} == listed[team["id"]]
        assert "__members" not in team and "__areaPaths" not in team
        assert team["__organizationUrl"] == f"{generated_org.base_url}/{ORG}"

    monkeypatch.setattr(teams_module, "TEAMS_PAGE", 1)
    monkeypatch.setattr(teams_module, "MEMBERS_PAGE", 2)
    rich = read_kind(generated_org, "team", {"includeMembers": True, "includeAreaPaths": True})
    assert sorted(t["id"] for t in rich) == sorted(model.teams)
    for team in rich:
        own = model.teams[team["id"]]
        assert sorted(m["identity"]["id"] for m in team["__members"]) == sorted(own.member_ids)
        assert (
            team["__members"]
            == rest_get(
                generated_org, f"_apis/projects/{team['projectId']}/teams/{team['id']}/members", **{"$top": "1000"}
            )["value"]
        )
        assert team["__areaPaths"] == rest_get(
            generated_org, f"{team['projectId']}/{team['id']}/_apis/work/teamsettings/teamfieldvalues"
        )
        assert team["__areaPaths"]["defaultValue"] == (own.area_path or model.projects[own.project_id].name)
    assert any(len(model.teams[t["id"]].member_ids) > 2 for t in rich)  # member pages were walked

    members_only = read_kind(generated_org, "team", {"includeMembers": True})
    assert all("__members" in t and "__areaPaths" not in t for t in members_only)


def test_members_of_every_team_with_the_team_id(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(teams_module, "TEAMS_PAGE", 2)
    monkeypatch.setattr(teams_module, "MEMBERS_PAGE", 1)
    model = generated_org.organisation()
    members = read_kind(generated_org, "member")
    got = sorted((m["__teamId"], m["identity"]["id"]) for m in members)
    assert got == sorted((team.id, user) for team in model.teams.values() for user in team.member_ids)
    assert got and all(m["__organizationName"] for m in members)


# ------------------------------------------------------------------------------------------- users


def test_entitlement_users_every_page_and_select(many_users: LiveEmulator) -> None:
    model = many_users.organisation()
    users = read_kind(many_users, "user")
    assert len(model.users) > 2 * ENTITLEMENTS_PAGE
    assert sorted(u["id"] for u in users) == sorted(model.users)
    assert all(u["projectEntitlements"] == [] for u in users)
    selected = read_kind(many_users, "user", {"includeFields": ["projects", "groupRules"]})
    assert sorted(u["id"] for u in selected) == sorted(model.users)
    assert any(u["projectEntitlements"] for u in selected)
    for user in selected[:5]:
        alone = rest_get(many_users, f"_apis/userentitlements/{user['id']}")  # everything selected
        assert user["projectEntitlements"] == alone["projectEntitlements"]
        assert user["groupAssignments"] == alone["groupAssignments"]


def test_legacy_entitlements_are_paged_by_top_and_skip(
    many_users: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(teams_module, "ENTITLEMENTS_LEGACY_PAGE", 50)
    model = many_users.organisation()
    users = read_kind(many_users, "user", {"apiVersion": "4.1-preview.1"})
    assert sorted(u["id"] for u in users) == sorted(model.users)
    assert len(users) == len({u["id"] for u in users})


def test_graph_users_subject_types_and_group_memberships(generated_org: LiveEmulator) -> None:
    model = generated_org.organisation()
    users = read_kind(generated_org, "user", {"source": "graph"})
    assert sorted(u["descriptor"] for u in users) == sorted(u.descriptor for u in model.users.values())
    assert all("__groups" not in u for u in users)
    assert read_kind(generated_org, "user", {"source": "graph", "subjectTypes": ["msa", "svc"]}) == []
    assert len(read_kind(generated_org, "user", {"source": "graph", "subjectTypes": ["aad"]})) == len(users)

    enriched = read_kind(generated_org, "user", {"source": "graph", "includeGroupMemberships": True})
    assert len(enriched) == len(users)
    in_some_group = 0
    for user in enriched:
        expected = sorted(g.descriptor for g in model.groups.values() if user["descriptor"] in g.member_descriptors)
        assert sorted(g["descriptor"] for g in user["__groups"]) == expected
        projects = sorted({p for g in user["__groups"] if (p := project_of_group(g["principalName"]))})
        assert user["__projects"] == projects
        in_some_group += bool(expected)
    assert in_some_group > 0
    assert any(user["__projects"] for user in enriched)


def test_graph_user_pages_are_walked_to_the_end(start_emulator: EmulatorFactory) -> None:
    live = start_emulator(config=with_generated_org(CONFIG, projects=1, repos=1, workitems=1, users=520), execute=False)
    users = read_kind(live, "user", {"source": "graph"})
    assert len(users) == len(live.organisation().users) > 500  # the emulator's Graph page is 500


# ------------------------------------------------------------------------------------------- groups


def test_groups_and_their_direct_members(generated_org: LiveEmulator) -> None:
    model = generated_org.organisation()
    groups = read_kind(generated_org, "group")
    assert sorted(g["descriptor"] for g in groups) == sorted(g.descriptor for g in model.groups.values())
    members = read_kind(generated_org, "group-member")
    got = sorted((m["__group"]["descriptor"], m["descriptor"]) for m in members)
    expected = sorted((g.descriptor, d) for g in model.groups.values() for d in g.member_descriptors)
    assert got == expected and got
    by_descriptor = {g["descriptor"]: g for g in groups}
    for member in members:
        assert {k: v for k, v in member["__group"].items() if not k.startswith("__")} == {
            k: v for k, v in by_descriptor[member["__group"]["descriptor"]].items() if not k.startswith("__")
        }
        assert member["subjectKind"] in ("user", "group")


# ------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "selector", "rule"),
    [
        ("team", {}, "{path: '/fabrikam/_apis/teams', failPage: {page: 1, status: 503, times: always}}"),
        ("team", {"includeMembers": True}, "{path: '*/members', errorRate: 1, errorStatus: 500}"),
        ("team", {"includeAreaPaths": True}, "{path: '*/teamfieldvalues', errorRate: 1, errorStatus: 500}"),
        ("member", {}, "{path: '*/members', errorRate: 1, errorStatus: 502}"),
        ("user", {}, "{path: '*/_apis/userentitlements', errorRate: 1, errorStatus: 500}"),
        ("user", {"source": "graph"}, "{path: '*/_apis/graph/users', errorRate: 1, errorStatus: 500}"),
        (
            "user",
            {"source": "graph", "includeGroupMemberships": True},
            "{path: '*/graph/memberships/*', errorRate: 1, errorStatus: 500}",
        ),
        (
            "user",
            {"source": "graph", "includeGroupMemberships": True},
            "{path: '*/graph/subjectlookup', errorRate: 1, errorStatus: 503}",
        ),
        ("group", {}, "{path: '*/_apis/graph/groups', errorRate: 1, errorStatus: 500}"),
        ("group-member", {}, "{path: '*/graph/memberships/*', errorRate: 1, errorStatus: 500}"),
        ("group-member", {}, "{path: '*/graph/subjectlookup', errorRate: 1, errorStatus: 500}"),
    ],
)
def test_a_failed_call_raises_never_a_partial_kind(
    start_emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch, kind: str, selector: dict[str, Any], rule: str
) -> None:
    monkeypatch.setattr(teams_module, "TEAMS_PAGE", 1)
    live = faulty_org(start_emulator, rule, projects=2, repos=2, workitems=5)
    with pytest.raises(ServerError):
        read_kind(live, kind, selector)
