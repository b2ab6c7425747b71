"""Microsoft's client, unmodified, over Graph (reference 3.2): users and groups paged by header token, filters,
memberships both ways, subject lookup, descriptors and storage keys."""

from __future__ import annotations

from typing import Any

import pytest
from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.org.model import Group, User
from kiosk.emulator.routes.graph import GRAPH_PAGE

pytestmark = pytest.mark.generated_org(users=1100)


def graph_client(emulator: LiveEmulator) -> Any:
    return emulator.sdk_client("azure.devops.v7_1.graph.GraphClient")


def test_users_page_by_header_token_to_the_end(generated: LiveEmulator) -> None:
    org = generated.organisation()
    graph = graph_client(generated)
    assert len(org.users) > 2 * GRAPH_PAGE  # three pages
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = graph.list_users(continuation_token=token)
        pages += 1
        seen += [u.descriptor for u in page.graph_users]
        token = page.continuation_token
        if token is None:
            break
        assert len(page.graph_users) == GRAPH_PAGE
    assert pages == 3 and seen == [u.descriptor for u in org.users.values()]
    for user in graph.list_users().graph_users[:20]:
        model = org.subject(user.descriptor)
        assert isinstance(model, User)
        assert (user.subject_kind, user.origin, user.origin_id) == ("user", "aad", model.origin_id)
        assert (user.principal_name, user.mail_address, user.display_name) == (
            model.principal_name,
            model.mail,
            model.display_name,
        )
        assert user.meta_type == model.meta_type and user.domain == model.domain
        assert user.url == f"{generated.base_url}/fabrikam/_apis/Graph/Users/{model.descriptor}"
    raw = generated.client.get("/fabrikam/_apis/graph/users").json()["value"][0]
    assert set(raw["_links"]) == {"self", "memberships", "membershipState", "storageKey", "avatar"}


def test_user_and_group_by_descriptor(generated: LiveEmulator) -> None:
    from azure.devops.exceptions import AzureDevOpsServiceError

    org = generated.organisation()
    graph = graph_client(generated)
    user = next(iter(org.users.values()))
    fetched = graph.get_user(user.descriptor)
    assert (fetched.descriptor, fetched.display_name, fetched.principal_name) == (
        user.descriptor,
        user.display_name,
        user.principal_name,
    )
    group = next(g for g in org.groups.values() if g.project_id is not None)
    got = graph.get_group(group.descriptor)
    assert (got.descriptor, got.display_name, got.principal_name, got.description) == (
        group.descriptor,
        group.display_name,
        group.principal_name,
        group.description,
    )
    assert got.domain == f"vstfs:///Classification/TeamProject/{group.project_id}" and got.origin == "vsts"
    with pytest.raises(AzureDevOpsServiceError):
        graph.get_user(group.descriptor)  # a group is not a user
    with pytest.raises(AzureDevOpsServiceError):
        graph.get_group("vssgp.Tm9TdWNoR3JvdXA")


def test_subject_types_and_scope_filters(generated: LiveEmulator) -> None:
    org = generated.organisation()
    graph = graph_client(generated)
    assert graph.list_users(subject_types=["msa", "svc"]).graph_users == []
    assert len(graph.list_users(subject_types=["aad"]).graph_users) == GRAPH_PAGE
    project = next(p for p in org.projects.values() if not p.configured)
    scope = graph.get_descriptor(project.id).value
    assert scope.startswith("scp.") and graph.get_storage_key(scope).value == project.id
    groups = graph.list_groups(scope_descriptor=scope).graph_groups
    assert {g.descriptor for g in groups} == {g.descriptor for g in org.groups.values() if g.project_id == project.id}
    members = {d for g in org.groups.values() if g.project_id == project.id for d in g.member_descriptors}
    users = graph.list_users(scope_descriptor=scope).graph_users
    assert users and {u.descriptor for u in users} == members
    every = graph.list_groups()
    assert every.continuation_token is None and len(every.graph_groups) == len(org.groups)
    assert graph.list_groups(subject_types=["aadgp"]).graph_groups == []
    collection = graph.get_descriptor(org.id).value
    assert {g.display_name for g in graph.list_groups(scope_descriptor=collection).graph_groups} == {
        "Project Collection Administrators",
        "Project Collection Valid Users",
    }
    not_a_scope = generated.client.get("/fabrikam/_apis/graph/groups", params={"scopeDescriptor": "aad.bm90"})
    assert not_a_scope.status_code == 400
    unknown = generated.client.get("/fabrikam/_apis/graph/users", params={"scopeDescriptor": "scp.bm8tc3VjaA"})
    assert unknown.status_code == 404 and unknown.json()["typeKey"] == "GraphSubjectNotFoundException"


def test_memberships_up_down_and_check(generated: LiveEmulator) -> None:
    org = generated.organisation()
    graph = graph_client(generated)
    group = next(g for g in org.groups.values() if g.project_id is not None and g.member_descriptors)
    member = org.subject(group.member_descriptors[0])
    assert isinstance(member, User)
    up = graph.list_memberships(member.descriptor)
    assert {m.container_descriptor for m in up} == {g.descriptor for g in org.memberships_up(member.descriptor)}
    assert all(m.member_descriptor == member.descriptor for m in up)
    down = graph.list_memberships(group.descriptor, direction="down", depth=1)
    assert [m.member_descriptor for m in down] == group.member_descriptors
    assert all(m.container_descriptor == group.descriptor for m in down)
    assert graph.list_memberships(member.descriptor, direction="down") == []
    one = graph.get_membership(member.descriptor, group.descriptor)
    assert (one.member_descriptor, one.container_descriptor) == (member.descriptor, group.descriptor)
    graph.check_membership_existence(member.descriptor, group.descriptor)  # HEAD: 200, no exception
    outsider = next(u for u in org.users.values() if u.descriptor not in group.member_descriptors)
    head = generated.client.head(f"/fabrikam/_apis/graph/memberships/{outsider.descriptor}/{group.descriptor}")
    assert head.status_code == 404
    assert graph.get_membership_state(member.descriptor).active is True


def test_subject_lookup_descriptors_and_storage_keys(generated: LiveEmulator) -> None:
    from azure.devops.v7_1.graph.models import GraphSubjectLookup, GraphSubjectLookupKey

    org = generated.organisation()
    graph = graph_client(generated)
    user = list(org.users.values())[3]
    group = next(iter(org.groups.values()))
    project = next(iter(org.projects.values()))
    scope = graph.get_descriptor(project.id).value
    keys = [user.descriptor, group.descriptor, scope, "aad.dW5rbm93bg"]
    found = graph.lookup_subjects(GraphSubjectLookup([GraphSubjectLookupKey(d) for d in keys]))
    assert set(found) == set(keys[:3])  # the unknown descriptor is left out
    assert found[user.descriptor].subject_kind == "user" and found[user.descriptor].display_name == user.display_name
    assert found[group.descriptor].subject_kind == "group"
    assert found[scope].subject_kind == "scope" and found[scope].display_name == project.name
    raw = generated.client.post(
        "/fabrikam/_apis/graph/subjectlookup?api-version=7.1-preview.1",
        json={"lookupKeys": [{"descriptor": user.descriptor}]},
    ).json()
    assert raw["count"] == 1 and isinstance(raw["value"], dict)
    subject: User | Group
    for subject in (user, group):
        assert graph.get_storage_key(subject.descriptor).value == subject.id
        assert graph.get_descriptor(subject.id).value == subject.descriptor
    missing = generated.client.get("/fabrikam/_apis/graph/descriptors/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


def test_subject_query_by_prefix(generated: LiveEmulator) -> None:
    from azure.devops.v7_1.graph.models import GraphSubjectQuery

    org = generated.organisation()
    graph = graph_client(generated)
    user = next(iter(org.users.values()))
    prefix = user.display_name[:3]
    found = graph.query_subjects(GraphSubjectQuery(query=prefix, subject_kind=["User"]))
    expected = [u.descriptor for u in org.users.values() if u.display_name.casefold().startswith(prefix.casefold())]
    assert [s.descriptor for s in found] == expected[:100] and user.descriptor in {s.descriptor for s in found}
    groups = graph.query_subjects(GraphSubjectQuery(query="project collection", subject_kind=["Group"]))
    assert {g.display_name for g in groups} == {"Project Collection Administrators", "Project Collection Valid Users"}
    project = next(p for p in org.projects.values() if not p.configured)
    scoped = graph.query_subjects(
        GraphSubjectQuery(
            query="contributors", subject_kind=["Group"], scope_descriptor=graph.get_descriptor(project.id).value
        )
    )
    contributors = next(
        g for g in org.groups.values() if g.project_id == project.id and g.display_name == "Contributors"
    )
    assert [g.descriptor for g in scoped] == [contributors.descriptor]
