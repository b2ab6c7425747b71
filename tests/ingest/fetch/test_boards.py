"""The board, column, iteration and area-path fetchers against a live emulator over real HTTP: the
items equal the emulator's own, enriched as Ocean's mappings (and kiosk's fixed default mapping)
read them; team pages walked to the end; errors raise."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.emulator.conftest import PAT, EmulatorFactory, LiveEmulator
from tests.ingest.fetch.conftest import FAST_RETRY, ORG, faulty_org, read_kind, resource, rest_get

from kiosk.azure.errors import NotFound, ServerError
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.core.jq_compile import compile_program
from kiosk.ingest.defaults import default_mapping
from kiosk.ingest.fetch import boards
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.fetch.boards import board_columns, flatten_area_tree, normalized_area_path
from kiosk.ingest.fetch.registry import fetcher_for


def projects(live: LiveEmulator) -> list[dict[str, Any]]:
    return list(rest_get(live, "_apis/projects")["value"])


def teams_of(live: LiveEmulator, project: dict[str, Any]) -> list[dict[str, Any]]:
    return list(rest_get(live, f"_apis/projects/{project['id']}/teams", **{"$top": "1000"})["value"])


# ------------------------------------------------------------------------------------------- pure parts


def test_the_area_path_is_normalised_as_a_work_items_area_path() -> None:
    assert normalized_area_path("\\Fabrikam\\Area\\Web\\Checkout") == "Fabrikam\\Web\\Checkout"
    assert normalized_area_path("\\Fabrikam\\Area") == "Fabrikam"
    assert normalized_area_path("\\Fabrikam\\Other\\Web") == "Fabrikam\\Other\\Web"


def test_the_area_tree_flattens_depth_first_with_parents_and_drops_non_areas() -> None:
    tree = {
        "identifier": "r",
        "structureType": "area",
        "path": "\\P\\Area",
        "children": [
            {"identifier": "a", "structureType": "area", "path": "\\P\\Area\\A", "children": [
                {"identifier": "a1", "structureType": "area", "path": "\\P\\Area\\A\\One"},
            ]},
            {"identifier": "i", "structureType": "iteration", "path": "\\P\\Iteration\\S1", "children": [
                {"identifier": "i1", "structureType": "area", "path": "\\P\\Iteration\\S1\\X"},
            ]},
        ],
    }  # fmt: skip
    project = {"id": "p"}
    flat = flatten_area_tree(tree, project)
    assert [(n["identifier"], n["__parentIdentifier"], n["__normalizedPath"]) for n in flat] == [
        ("r", None, "P"),
        ("a", "r", "P\\A"),
        ("a1", "a", "P\\A\\One"),
    ]
    assert all("children" not in node and node["__project"] is project for node in flat)


def test_a_column_item_per_state_mapping() -> None:
    board = {"id": "b", "columns": [
        {"name": "New", "stateMappings": {"User Story": "New", "Bug": "New"}},
        {"name": "Unmapped"},
        {"name": "Done", "stateMappings": {"User Story": "Closed"}},
    ]}  # fmt: skip
    columns = board_columns(board)
    assert [(c["name"], c["__stateType"], c["__stateName"]) for c in columns] == [
        ("New", "User Story", "New"),
        ("New", "Bug", "New"),
        ("Done", "User Story", "Closed"),
    ]
    assert all(c["__board"] is board for c in columns)


# ------------------------------------------------------------------------------------------- over HTTP


def test_every_teams_boards_with_their_detail_and_project(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "board")
    expected = []
    for project in projects(generated_org):
        for team in teams_of(generated_org, project):
            for reference in rest_get(generated_org, f"{project['id']}/{team['id']}/_apis/work/boards")["value"]:
                detail = rest_get(generated_org, f"{project['id']}/{team['id']}/_apis/work/boards/{reference['id']}")
                expected.append({**reference, **detail, "__project": project})
    model = generated_org.organisation()
    assert len(expected) == sum(len(b) for b in model.boards.values()) > 0
    got = sorted(items, key=lambda b: b["id"])
    for item in got:
        assert item.pop("__organizationUrl") == f"{generated_org.base_url}/{ORG}"
        item.pop("__organizationName")
    assert got == sorted(expected, key=lambda b: b["id"])
    assert all(item["columns"] and item["__project"]["id"] for item in got)


def test_columns_meet_the_work_items_column_relation_of_the_default_mapping(generated_org: LiveEmulator) -> None:
    columns = read_kind(generated_org, "column")
    model = generated_org.organisation()
    expected = sum(
        len(column.state_mappings)
        for team_boards in model.boards.values()
        for board in team_boards
        for column in board.columns
    )
    assert len(columns) == expected > 0
    assert all(c["__board"]["__project"]["id"] and c["__stateName"] for c in columns)

    mapping = default_mapping()
    column_resource = next(r for r in mapping.resources if r.kind == "column")
    item_resource = next(r for r in mapping.resources if r.kind == "work-item")
    identifier = compile_program(column_resource.port.entity.mappings.identifier)
    relation = compile_program(item_resource.port.entity.mappings.relations["column"])
    identifiers = {identifier.first(c) for c in columns}
    # The emulator does not set System.BoardColumn; Azure sets it to the column of the project's
    # default team board that maps the item's state, which is what is put on each item here.
    items = read_kind(generated_org, "work-item", {"expand": "Fields"})
    placed = 0
    for item in items:
        project = model.projects[item["__projectId"]]
        kind, state = item["fields"]["System.WorkItemType"], item["fields"]["System.State"]
        names = [
            column.name
            for board in model.boards.get(project.default_team_id or "", [])
            for column in board.columns
            if column.state_mappings.get(kind) == state
        ]
        for name in names:
            placed += 1
            on_board = {**item, "fields": {**item["fields"], "System.BoardColumn": name}}
            assert relation.first(on_board) in identifiers
    assert placed > 0


def test_iterations_of_every_team_with_project_and_team(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "iteration")
    expected = []
    for project in projects(generated_org):
        for team in teams_of(generated_org, project):
            for iteration in rest_get(
                generated_org, f"{project['id']}/{team['id']}/_apis/work/teamsettings/iterations"
            )["value"]:
                expected.append((iteration["id"], team["id"], project["id"], iteration["path"]))
    assert expected
    got = [(i["id"], i["__team"]["id"], i["__project"]["id"], i["path"]) for i in items]
    assert sorted(got) == sorted(expected)
    assert all(i["__team"]["projectId"] == i["__project"]["id"] for i in items)


def test_area_paths_flattened_and_depth_reads_deeper(generated_org: LiveEmulator) -> None:
    model = generated_org.organisation()
    every = {node.identifier for root in model.areas.values() for node in root.walk()}
    deep = read_kind(generated_org, "area-path", {"depth": 10})
    assert {n["identifier"] for n in deep} == every and len(deep) == len(every)
    by_identifier = {n["identifier"]: n for n in deep}
    for root in model.areas.values():
        for node in root.walk():
            for child in node.children:
                assert by_identifier[child.identifier]["__parentIdentifier"] == node.identifier
        assert by_identifier[root.identifier]["__parentIdentifier"] is None
    # The normalised path is a work item's System.AreaPath: every item's area is one of them.
    paths = {n["__normalizedPath"] for n in deep}
    assert {str(w.fields["System.AreaPath"]) for w in model.work_items.values() if not w.is_deleted} <= paths
    assert all(n["__project"]["name"] == n["__normalizedPath"].split("\\")[0] for n in deep)

    roots_only = read_kind(generated_org, "area-path")
    assert {n["identifier"] for n in roots_only} == {root.identifier for root in model.areas.values()}
    one_level = read_kind(generated_org, "area-path", {"depth": 1})
    assert {n["identifier"] for n in one_level} == {
        node.identifier for root in model.areas.values() for node in [root, *root.children]
    }
    assert len(roots_only) < len(one_level) <= len(deep)


def test_team_pages_are_walked_to_the_end(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    model = generated_org.organisation()
    assert max(len(model.project_teams(p)) for p in model.projects) >= 2
    everything = sorted(i["id"] for i in read_kind(generated_org, "iteration"))
    monkeypatch.setattr(boards, "TEAMS_PAGE", 1)
    assert sorted(i["id"] for i in read_kind(generated_org, "iteration")) == everything
    assert len({b["id"] for b in read_kind(generated_org, "board")}) == sum(len(b) for b in model.boards.values())


def test_teams_and_boards_are_read_once_per_resync(generated_org: LiveEmulator) -> None:
    async def main() -> tuple[int, int, int]:
        url = f"{generated_org.base_url}/{ORG}"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY) as rest:
            ctx = FetchContext(rest, url)
            counts = []
            for kind in ("board", "column", "iteration"):
                async for _ in fetcher_for(kind)(ctx, resource(kind)):
                    pass
                counts.append(rest.stats.requests)
            return counts[0], counts[1], counts[2]

    after_boards, after_columns, after_iterations = asyncio.run(main())
    assert after_columns == after_boards  # columns come from the boards already read
    model = generated_org.organisation()
    assert after_iterations - after_columns == len(model.teams)  # one iterations call per team, no team list


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("board", "{path: '*/_apis/work/boards', errorRate: 1, errorStatus: 500}"),
        ("board", "{pathRegex: '/_apis/work/boards/[^/]+$', errorRate: 1, errorStatus: 500}"),
        ("column", "{path: '*/_apis/work/boards', errorRate: 1, errorStatus: 500}"),
        ("iteration", "{path: '*/teamsettings/iterations', errorRate: 1, errorStatus: 502}"),
        ("iteration", "{path: '/fabrikam/_apis/projects/*/teams', failPage: {page: 1, status: 503, times: always}}"),
        ("area-path", "{path: '*/classificationnodes/Areas', errorRate: 1, errorStatus: 500}"),
    ],
)
def test_a_failed_call_raises_never_an_empty_kind(
    start_emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch, kind: str, rule: str
) -> None:
    monkeypatch.setattr(boards, "TEAMS_PAGE", 1)
    live = faulty_org(start_emulator, rule, projects=3, repos=2, workitems=10)
    with pytest.raises(ServerError):
        read_kind(live, kind)


def test_a_team_gone_between_list_and_read_is_an_error(generated_org: LiveEmulator) -> None:
    async def main() -> list[Item]:
        url = f"{generated_org.base_url}/{ORG}"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY) as rest:
            ctx = FetchContext(rest, url)
            project = (await ctx.projects())[0]
            teams = await boards.project_teams(ctx, project)
            teams.append({**teams[0], "id": "00000000-0000-0000-0000-00000000dead"})
            got: list[Item] = []
            async for batch in boards.fetch_boards(ctx, resource("board")):
                got.extend(batch)
            return got

    with pytest.raises(NotFound) as caught:
        asyncio.run(main())
    assert not caught.value.no_data
