"""Microsoft's client, unmodified, over Work (reference 3.9): boards, columns, rows, iterations, team settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.org.model import Organisation, Project, Team
from kiosk.emulator.shapes_work import iteration_path, team_iterations, time_frame

pytestmark = pytest.mark.generated_org(projects=4)


def team_context(**names: str) -> Any:
    """Microsoft's ``TeamContext``, imported late: the client's first import reads where its disk cache of
    route discovery lives, and tests.support.azure_sdk must point it at a private directory first."""
    from azure.devops.v7_1.work.models import TeamContext

    return TeamContext(**names)


def other_team(org: Organisation) -> tuple[Project, Team]:
    """A project's non-default team (its name has a space, sometimes a non-ASCII letter)."""
    for project in org.projects.values():
        for team in org.project_teams(project.id):
            if team.id != project.default_team_id:
                return project, team
    raise AssertionError("the generated org has a project with a second team")


def test_boards_of_the_default_team_and_of_a_named_team(generated: LiveEmulator) -> None:
    org = generated.organisation()
    work = generated.sdk_client("azure.devops.v7_1.work.WorkClient")
    project, team = other_team(org)
    default = org.teams[project.default_team_id or ""]
    listed = work.get_boards(team_context(project=project.name))
    assert [(b.id, b.name) for b in listed] == [(b.id, b.name) for b in org.boards[default.id]]
    assert all(b.url.endswith(f"/{project.id}/{default.id}/_apis/work/boards/{b.id}") for b in listed)
    named = work.get_boards(team_context(project_id=project.id, team=team.name))
    assert [b.id for b in named] == [b.id for b in org.boards[team.id]]
    by_id = work.get_boards(team_context(project=project.name, team_id=team.id))
    assert [b.id for b in by_id] == [b.id for b in named]

    model = next(b for b in org.boards[team.id] if b.name == "Stories")
    board = work.get_board(team_context(project=project.name, team=team.name), "stories")
    assert (board.id, board.name, board.revision, board.is_valid, board.can_edit) == (
        model.id,
        "Stories",
        model.revision,
        True,
        True,
    )
    assert [(c.id, c.name, c.item_limit, c.column_type, c.state_mappings) for c in board.columns] == [
        (c.id, c.name, c.item_limit, c.column_type, c.state_mappings) for c in model.columns
    ]
    assert [c.is_split for c in board.columns if c.column_type == "inProgress"] == [
        c.is_split for c in model.columns if c.column_type == "inProgress"
    ]
    kanban = f"WEF_{model.id.replace('-', '').upper()}_Kanban"
    assert board.fields.column_field.reference_name == f"{kanban}.Column"
    assert board.fields.row_field.reference_name == f"{kanban}.Lane"
    assert board.fields.done_field.reference_name == f"{kanban}.Column.Done"
    assert board.allowed_mappings == {
        "Incoming": {"User Story": ["New"], "Bug": ["New"]},
        "InProgress": {"User Story": ["Active", "Resolved"], "Bug": ["Active", "Resolved"]},
        "Outgoing": {"User Story": ["Closed"], "Bug": ["Closed"]},
    }
    assert [(r.id, r.name) for r in board.rows] == list(model.rows)
    by_board_id = work.get_board(team_context(project=project.id, team=team.id), model.id)
    assert by_board_id.name == "Stories"

    columns = work.get_board_columns(team_context(project=project.name, team=team.name), "Stories")
    assert [c.id for c in columns] == [c.id for c in model.columns]
    rows = work.get_board_rows(team_context(project=project.name, team=team.name), model.id)
    assert [(r.id, r.name) for r in rows] == [("00000000-0000-0000-0000-000000000000", None)]


def test_team_names_are_percent_encoded_in_paths(generated: LiveEmulator) -> None:
    org = generated.organisation()
    project, team = other_team(org)
    path = f"/fabrikam/{quote(project.name, safe='')}/{quote(team.name, safe='')}/_apis/work/boards"
    answer = generated.client.get(path)
    assert answer.status_code == 200
    assert [b["id"] for b in answer.json()["value"]] == [b.id for b in org.boards[team.id]]
    upper = f"/fabrikam/{project.id}/{quote(team.name.upper(), safe='')}/_APIS/Work/Boards/STORIES/Columns"
    assert generated.client.get(upper).json()["count"] == 4


def test_iterations_with_their_time_frame_from_today(generated: LiveEmulator) -> None:
    org = generated.organisation()
    work = generated.sdk_client("azure.devops.v7_1.work.WorkClient")
    project, team = other_team(org)
    context = team_context(project=project.name, team=team.name)
    nodes = team_iterations(org, project, team)
    today = datetime.now(UTC).date()
    listed = work.get_team_iterations(context)
    assert [(i.id, i.name, i.path) for i in listed] == [
        (n.identifier, n.name, iteration_path(project, n)) for n in nodes
    ]
    assert [i.attributes.time_frame for i in listed] == [time_frame(n, today) for n in nodes]
    assert [i.attributes.start_date for i in listed] == [n.start_date for n in nodes]
    assert {"past", "current", "future"} <= {i.attributes.time_frame for i in listed}
    current = work.get_team_iterations(context, timeframe="current")
    assert [i.id for i in current] == [i.id for i in listed if i.attributes.time_frame == "current"]
    assert len(current) == 1
    upper = generated.client.get(
        f"/fabrikam/{project.id}/{team.id}/_apis/work/teamsettings/iterations", params={"$timeframe": "CURRENT"}
    )
    assert [i["id"] for i in upper.json()["value"]] == [current[0].id]

    one = work.get_team_iteration(context, listed[0].id)
    assert (one.id, one.name, one.path) == (listed[0].id, listed[0].name, listed[0].path)
    assert one.url == listed[0].url and one._links is not None
    with pytest.raises(AzureDevOpsServiceError) as missing:
        work.get_team_iteration(context, "00000000-0000-0000-0000-000000000001")
    assert missing.value.type_key == "IterationNotFoundException"
    refused = generated.client.get(
        f"/fabrikam/{project.id}/_apis/work/teamsettings/iterations", params={"$timeframe": "past"}
    )
    assert refused.status_code == 400 and refused.json()["typeKey"] == "ArgumentException"


def test_team_field_values_and_settings(generated: LiveEmulator) -> None:
    org = generated.organisation()
    work = generated.sdk_client("azure.devops.v7_1.work.WorkClient")
    project, team = other_team(org)
    values = work.get_team_field_values(team_context(project=project.name, team=team.name))
    assert values.field.reference_name == "System.AreaPath"
    assert values.default_value == team.area_path and team.area_path.startswith(f"{project.name}\\")
    assert [(v.value, v.include_children) for v in values.values] == [(team.area_path, False)]
    default = work.get_team_field_values(team_context(project=project.id))
    assert [(v.value, v.include_children) for v in default.values] == [(project.name, True)]

    settings = work.get_team_settings(team_context(project=project.name, team=team.name))
    root = org.iterations[project.id]
    assert (settings.backlog_iteration.id, settings.backlog_iteration.name) == (root.identifier, project.name)
    today = datetime.now(UTC).date()
    current = next(n for n in team_iterations(org, project, team) if time_frame(n, today) == "current")
    assert settings.default_iteration.id == current.identifier
    assert settings.default_iteration_macro == "@currentIteration"
    assert settings.working_days == ["monday", "tuesday", "wednesday", "thursday", "friday"]
    assert (
        settings.bugs_behavior == "asRequirements" and settings.backlog_visibilities["Microsoft.EpicCategory"] is False
    )
    backlog = work.get_team_iteration(team_context(project=project.name, team=team.name), root.identifier)
    assert backlog.path == ""


def test_unknown_team_and_board_are_404s(generated: LiveEmulator) -> None:
    org = generated.organisation()
    work = generated.sdk_client("azure.devops.v7_1.work.WorkClient")
    project, team = other_team(org)
    with pytest.raises(AzureDevOpsServiceError) as no_team:
        work.get_boards(team_context(project=project.name, team="Nobody's Team"))
    assert no_team.value.type_key == "TeamNotFoundException"
    with pytest.raises(AzureDevOpsServiceError) as no_board:
        work.get_board_columns(team_context(project=project.name, team=team.name), "Sagas")
    assert no_board.value.type_key == "BoardDoesNotExistException"
    with pytest.raises(AzureDevOpsServiceError) as no_project:
        work.get_boards(team_context(project="No Such Project"))
    assert no_project.value.type_key == "ProjectDoesNotExistWithNameException"
