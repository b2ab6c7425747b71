"""Microsoft's client, unmodified, over work item tracking (reference 3.8), checked against the organisation's data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from azure.devops.v7_1.work_item_tracking.models import TeamContext, Wiql, WorkItemBatchGetRequest
from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.org.model import ClassificationNode, Organisation, Project, User, WorkItem

pytestmark = pytest.mark.generated_org(workitems=300)


def wit_client(emulator: LiveEmulator) -> Any:
    return emulator.sdk_client("azure.devops.v7_1.work_item_tracking.WorkItemTrackingClient")


def live_items(org: Organisation) -> list[WorkItem]:
    return [item for item in org.work_items.values() if not item.is_deleted]


def project_of(org: Organisation, item: WorkItem) -> Project:
    return org.projects[item.project_id]


def assert_identity(shown: object, user: object) -> None:
    """An identity field in REST is an IdentityRef of the model's user."""
    assert isinstance(user, User)
    assert isinstance(shown, dict)
    assert (shown["id"], shown["displayName"], shown["uniqueName"]) == (user.id, user.display_name, user.principal_name)


def test_work_items_by_ids_single_and_batch(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    items = live_items(org)[:50]
    project = project_of(org, items[0])
    mine = [item for item in items if item.project_id == project.id]
    shown = wit.get_work_items([item.id for item in mine], project=project.name, expand="All")
    assert [w.id for w in shown] == [item.id for item in mine]
    for got, item in zip(shown, mine, strict=True):
        assert got.rev == item.rev and got.fields["System.Rev"] == item.rev
        assert got.fields["System.Title"] == item.fields["System.Title"]
        assert got.fields["System.State"] == item.fields["System.State"]
        assert got.fields["System.WorkItemType"] == item.work_item_type
        assert got.fields["System.TeamProject"] == project.name
        assert_identity(got.fields["System.CreatedBy"], item.fields["System.CreatedBy"])
        assert got.fields["System.CreatedDate"].endswith("Z")
        assert got.url == f"{org.url}/{project.id}/_apis/wit/workItems/{item.id}"
        assert {(r.rel, r.url) for r in got.relations or []} == {
            (rel.rel, f"{org.url}/_apis/wit/workItems/{rel.target}") for rel in item.relations
        }
        assert got._links.additional_properties["workItemUpdates"]["href"].endswith(f"/{item.id}/updates")
        if item.parent_id is not None:
            assert got.fields["System.Parent"] == item.parent_id
    commented = next(item for item in live_items(org) if item.comments)
    single = wit.get_work_item(commented.id, project=project_of(org, commented).id)
    assert single.relations is None and single._links is not None  # a single item shows its links
    assert single.comment_version_ref.comment_id == commented.comments[-1].id
    assert single.fields["System.CommentCount"] == len(commented.comments)
    only = wit.get_work_item(commented.id, fields=["System.Title", "System.State"])
    assert set(only.fields) == {"System.Title", "System.State"}
    batch = wit.get_work_items_batch(
        WorkItemBatchGetRequest(ids=[mine[1].id, mine[0].id], fields=["System.Id", "System.AssignedTo"])
    )
    assert [w.id for w in batch] == [mine[1].id, mine[0].id]
    assert all(set(w.fields) <= {"System.Id", "System.AssignedTo"} and "System.Id" in w.fields for w in batch)


def test_deleted_missing_and_refused(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    deleted = next(item for item in org.work_items.values() if item.is_deleted)
    alive = live_items(org)[0]
    with pytest.raises(AzureDevOpsServiceError) as caught:
        wit.get_work_item(deleted.id)
    assert f"TF401232: Work item {deleted.id} does not exist" in caught.value.message
    with pytest.raises(AzureDevOpsServiceError, match=f"TF401232: Work item {deleted.id} "):
        wit.get_work_items([alive.id, deleted.id])
    omitted = wit.get_work_items([alive.id, deleted.id, 999_999], error_policy="omit")
    assert [w.id if w is not None else None for w in omitted] == [alive.id, None, None]
    with pytest.raises(AzureDevOpsServiceError, match="exceeds the limit of 200"):
        wit.get_work_items(list(range(1, 202)))
    with pytest.raises(AzureDevOpsServiceError, match="expand parameter can not be used with the fields"):
        wit.get_work_items([alive.id], fields=["System.Title"], expand="Relations")
    with pytest.raises(AzureDevOpsServiceError, match=r"TF51535: Cannot find field No\.Such"):
        wit.get_work_item(alive.id, fields=["No.Such"])
    other = next(p for p in org.projects.values() if p.id != alive.project_id)
    with pytest.raises(AzureDevOpsServiceError, match="TF401232"):
        wit.get_work_item(alive.id, project=other.name)


def test_as_of_gives_an_earlier_revision(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    item = next(i for i in live_items(org) if i.rev >= 3)
    second = item.revisions[1]
    shown = wit.get_work_item(item.id, as_of=second.revised_date + timedelta(seconds=1))
    assert shown.rev == 2 and shown.fields["System.State"] == item.fields_at(2)["System.State"]
    listed = wit.get_work_items([item.id], as_of=second.revised_date + timedelta(seconds=1))
    assert listed[0].rev == 2


def test_updates_and_revisions(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    item = next(i for i in live_items(org) if i.rev >= 3)
    project = project_of(org, item)
    updates = wit.get_updates(item.id, project=project.name)
    assert [u.rev for u in updates] == list(range(1, item.rev + 1))
    assert all(u.work_item_id == item.id and u.id == u.rev for u in updates)
    assert updates[0].fields["System.Title"].new_value == item.fields["System.Title"]
    assert updates[0].fields["System.Title"].old_value is None
    old, new = item.revisions[1].fields["System.State"]
    assert (updates[1].fields["System.State"].old_value, updates[1].fields["System.State"].new_value) == (old, new)
    assert updates[-1].revised_date.year == 9999  # the latest update has not been superseded
    assert updates[1].revised_by.id == item.revisions[1].revised_by.id
    assert wit.get_update(item.id, 2).fields["System.State"].new_value == new
    assert [u.rev for u in wit.get_updates(item.id, top=1, skip=1)] == [2]
    revisions = wit.get_revisions(item.id, project=project.id, expand="Relations")
    assert [r.rev for r in revisions] == list(range(1, item.rev + 1))
    assert revisions[0].fields["System.State"] == item.fields_at(1)["System.State"]
    assert revisions[-1].fields["System.State"] == item.fields["System.State"]
    assert revisions[0].url.endswith(f"/workItems/{item.id}/revisions/1")
    assert wit.get_revision(item.id, 2).fields["System.State"] == item.fields_at(2)["System.State"]
    with pytest.raises(AzureDevOpsServiceError):
        wit.get_revision(item.id, item.rev + 1)


def test_comments(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    item = max(live_items(org), key=lambda i: len(i.comments))
    assert len(item.comments) >= 2
    project = project_of(org, item)
    listed = wit.get_comments(project.name, item.id)
    assert listed.total_count == listed.count == len(item.comments)
    assert [c.id for c in listed.comments] == [c.id for c in reversed(item.comments)]  # newest first
    first = listed.comments[-1]
    model = item.comments[0]
    assert (first.text, first.work_item_id, first.version) == (model.text, item.id, model.version)
    assert first.created_by.id == model.created_by.id and first.created_date is not None
    page = wit.get_comments(project.name, item.id, top=1, order="asc")
    assert [c.id for c in page.comments] == [item.comments[0].id] and page.continuation_token
    rest = wit.get_comments(project.name, item.id, top=10, continuation_token=page.continuation_token, order="asc")
    assert [c.id for c in rest.comments] == [c.id for c in item.comments[1:]] and rest.continuation_token is None
    assert wit.get_comment(project.id, item.id, model.id).text == model.text
    with pytest.raises(AzureDevOpsServiceError):
        wit.get_comment(project.id, item.id, 99)
    (version,) = wit.get_comment_versions(project.name, item.id, model.id)
    assert (version.id, version.version, version.text) == (model.id, model.version, model.text)
    assert wit.get_comment_version(project.name, item.id, model.id, model.version).text == model.text
    with pytest.raises(AzureDevOpsServiceError):
        wit.get_comment_version(project.name, item.id, model.id, model.version + 1)


def test_recycle_bin(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    deleted = [item for item in org.work_items.values() if item.is_deleted]
    assert deleted
    project = project_of(org, deleted[0])
    shallow = wit.get_deleted_work_item_shallow_references(project.name)
    assert [s.id for s in shallow] == [item.id for item in deleted if item.project_id == project.id]
    assert [s.id for s in wit.get_deleted_work_item_shallow_references()] == [item.id for item in deleted]
    one = wit.get_deleted_work_item(deleted[0].id, project.name)
    assert (one.id, one.name, one.type, one.project) == (
        deleted[0].id,
        deleted[0].fields["System.Title"],
        deleted[0].work_item_type,
        project.name,
    )
    assert one.resource.fields["System.State"] == deleted[0].fields["System.State"] and one.code == 200
    references = wit.get_deleted_work_items([deleted[0].id], project.name)
    assert [r.id for r in references] == [deleted[0].id] and references[0].deleted_by
    with pytest.raises(AzureDevOpsServiceError):
        wit.get_deleted_work_item(live_items(org)[0].id)


def test_types_states_and_fields(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    project = next(iter(org.projects.values()))
    kinds = org.work_item_types[project.id]
    types = wit.get_work_item_types(project.name)
    assert [(t.name, t.reference_name, t.color) for t in types] == [(k.name, k.reference_name, k.color) for k in kinds]
    story = wit.get_work_item_type(project.id, "user story")
    model = next(k for k in kinds if k.name == "User Story")
    assert [s.name for s in story.states] == [s.name for s in model.states]
    assert story.icon.id == model.icon and "System.Title" in {f.reference_name for f in story.fields}
    assert set(story.transitions["New"][0].__dict__) >= {"to"}
    states = wit.get_work_item_type_states(project.name, "Bug")
    bug = next(k for k in kinds if k.name == "Bug")
    assert [(s.name, s.category, s.color) for s in states] == [(s.name, s.category, s.color) for s in bug.states]
    with pytest.raises(AzureDevOpsServiceError):
        wit.get_work_item_type(project.name, "Nope")
    icons = {icon.id for icon in wit.get_work_item_icons()}
    assert icons == {k.icon for k in kinds}
    assert wit.get_work_item_icon_json(model.icon, color=model.color, v=2).id == model.icon
    fields = wit.get_work_item_fields()
    by_name = {f.reference_name: f for f in fields}
    assert by_name["System.AssignedTo"].is_identity and by_name["System.CreatedDate"].type == "dateTime"
    assert by_name["System.AreaPath"].type == "treePath" and by_name["System.Id"].read_only
    state = wit.get_work_item_field("State", project.name)
    assert (state.reference_name, state.name, state.type) == ("System.State", "State", "string")
    with pytest.raises(AzureDevOpsServiceError, match="TF51535"):
        wit.get_work_item_field("No.Such.Field")


def test_classification_nodes(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    project = next(p for p in org.projects.values() if org.areas[p.id].children)
    area, iteration = org.areas[project.id], org.iterations[project.id]
    roots = wit.get_root_nodes(project.name, depth=2)
    assert [(r.id, r.structure_type, r.path) for r in roots] == [
        (area.id, "area", area.path),
        (iteration.id, "iteration", iteration.path),
    ]
    assert [c.name for c in roots[0].children] == [c.name for c in area.children] and roots[0].has_children
    assert wit.get_root_nodes(project.name)[0].children is None
    child = area.children[0]
    node = wit.get_classification_node(project.id, "Areas", path=child.name)
    assert (node.id, node.identifier, node.path, node.has_children) == (child.id, child.identifier, child.path, False)
    sprint = iteration.children[0]
    shown = wit.get_classification_node(project.name, "iterations", path=sprint.name)
    assert shown.attributes["startDate"].startswith(sprint.start_date.strftime("%Y-%m-%d"))
    assert wit.get_classification_node(project.name, "Iterations", depth=1).children[0].name == sprint.name
    by_ids = wit.get_classification_nodes(project.name, [sprint.id, child.id])
    assert [n.id for n in by_ids] == [sprint.id, child.id]
    with pytest.raises(AzureDevOpsServiceError):
        wit.get_classification_node(project.name, "Areas", path="No such area")
    nested = ClassificationNode(
        9_999, "a7f0c8f5-0d4b-4a57-9a8e-6a1c2b0d9e11", "Café Ü", "area", f"{child.path}\\Café Ü"
    )
    child.children.append(nested)  # an org with deeper areas than the generator makes
    deep = wit.get_classification_node(project.name, "Areas", path=f"{child.name}/Café Ü")
    assert (deep.id, deep.path) == (nested.id, nested.path)
    assert wit.get_classification_node(project.name, "Areas", path=f"{child.name}\\Café Ü").id == nested.id
    assert wit.get_classification_node(project.name, "Areas", path=child.name, depth=1).children[0].id == nested.id


def test_wiql_flat_ordered_and_capped_by_top(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    project = project_of(org, live_items(org)[0])
    query = (
        "SELECT [System.Id], [System.Title] FROM WorkItems WHERE [System.TeamProject] = @project "
        "AND [System.State] NOT IN ('Closed', 'Removed') ORDER BY [Microsoft.VSTS.Common.Priority] DESC, [System.Id]"
    )
    result = wit.query_by_wiql(Wiql(query=query), team_context=TeamContext(project=project.name))
    expected = sorted(
        (
            i
            for i in live_items(org)
            if i.project_id == project.id and i.fields["System.State"] not in ("Closed", "Removed")
        ),
        key=lambda i: (-int(i.fields["Microsoft.VSTS.Common.Priority"]), i.id),  # type: ignore[call-overload]
    )
    assert [w.id for w in result.work_items] == [i.id for i in expected]
    assert result.query_type == "flat" and result.query_result_type == "workItem"
    assert [c.reference_name for c in result.columns] == ["System.Id", "System.Title"]
    assert [(s.field.reference_name, s.descending) for s in result.sort_columns] == [
        ("Microsoft.VSTS.Common.Priority", True),
        ("System.Id", False),
    ]
    assert result.work_items[0].url == f"{org.url}/{project.id}/_apis/wit/workItems/{expected[0].id}"
    top = wit.query_by_wiql(Wiql(query=query), team_context=TeamContext(project=project.id), top=3)
    assert [w.id for w in top.work_items] == [i.id for i in expected[:3]]
    everywhere = wit.query_by_wiql(Wiql(query="SELECT [System.Id] FROM WorkItems"))
    assert [w.id for w in everywhere.work_items] == [i.id for i in live_items(org)]


def test_wiql_current_iteration_in_a_team_context(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    project = project_of(org, live_items(org)[0])
    team = org.teams[project.default_team_id or ""]
    result = wit.query_by_wiql(
        Wiql(query="SELECT [System.Id] FROM WorkItems WHERE [System.IterationPath] = @CurrentIteration"),
        team_context=TeamContext(project=project.name, team=team.name),
    )
    ids = [w.id for w in result.work_items]
    assert ids, "the generated org has work items in the current sprint"
    paths = {org.work_items[i].fields["System.IterationPath"] for i in ids}
    assert len(paths) == 1
    (path,) = paths
    sprint = next(n for n in org.iterations[project.id].children if path == f"{project.name}\\{n.name}")
    assert sprint.start_date is not None and sprint.finish_date is not None
    assert [i.id for i in live_items(org) if i.fields["System.IterationPath"] == path] == ids


def test_wiql_link_queries(generated: LiveEmulator) -> None:
    org = generated.organisation()
    wit = wit_client(generated)
    epic = next(i for i in live_items(org) if i.work_item_type == "Epic" and i.relations)
    one_hop = wit.query_by_wiql(
        Wiql(
            query="SELECT [System.Id] FROM WorkItemLinks WHERE [Source].[System.Id] = "
            f"{epic.id} AND [System.Links.LinkType] = 'System.LinkTypes.Hierarchy-Forward' MODE (MustContain)"
        )
    )
    assert one_hop.query_type == "oneHop" and one_hop.query_result_type == "workItemLink"
    rows = [(r.rel, r.source.id if r.source else None, r.target.id) for r in one_hop.work_item_relations]
    children = [
        r.target for r in epic.relations if r.rel.endswith("Forward") and not org.work_items[r.target].is_deleted
    ]  # type: ignore[index]
    assert rows == [(None, None, epic.id)] + [("System.LinkTypes.Hierarchy-Forward", epic.id, c) for c in children]
    tree = wit.query_by_wiql(
        Wiql(
            query=f"SELECT [System.Id] FROM WorkItemLinks WHERE [Source].[System.Id] = {epic.id} "
            "AND [System.Links.LinkType] = 'System.LinkTypes.Hierarchy-Forward' MODE (Recursive)"
        )
    )
    assert tree.query_type == "tree"
    ids = [r.target.id for r in tree.work_item_relations]
    assert ids[0] == epic.id and set(children) <= set(ids) and len(ids) == len(set(ids))
    for row in tree.work_item_relations[1:]:
        parent = org.work_items[row.target.id].parent_id
        assert row.source.id == parent
