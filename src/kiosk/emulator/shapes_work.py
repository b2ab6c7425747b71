"""Azure's JSON for a team's boards, iterations, area paths and settings (reference 3.9, ``work`` area).

Pure functions of :mod:`kiosk.emulator.org.model` objects. Every URL is team-scoped as Azure
writes it (``{org}/{projectId}/{teamId}/_apis/work/…``) and served by
:mod:`kiosk.emulator.routes.work`.

A board's Kanban fields are per board in Azure (an extension field ``WEF_<32 hex>_Kanban.Column``
for each team's backlog board), so their reference names derive from the board's id.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final
from urllib.parse import quote

from kiosk.emulator.org.model import Board, BoardColumn, ClassificationNode, Organisation, Project, Team
from kiosk.emulator.shapes_core import azure_date, project_url, team_url

__all__ = [
    "board_column_json",
    "board_json",
    "board_reference_json",
    "board_row_json",
    "iteration_path",
    "team_field_values_json",
    "team_iteration_json",
    "team_iterations",
    "team_settings_json",
    "time_frame",
]

_CATEGORY_COLUMN: Final = {
    "Proposed": "Incoming",
    "InProgress": "InProgress",
    "Resolved": "InProgress",
    "Completed": "Outgoing",
}
"""Which board column type a work item state's category may map to (``allowedMappings``)."""
_WORKING_DAYS: Final = ["monday", "tuesday", "wednesday", "thursday", "friday"]


def work_url(org: Organisation, team: Team) -> str:
    """``{org}/{projectId}/{teamId}/_apis/work``: where a team's work resources live."""
    return f"{org.url}/{team.project_id}/{team.id}/_apis/work"


def _team_links(org: Organisation, project: Project, team: Team, url: str, more: dict[str, str]) -> dict[str, Any]:
    """A team's work resource's ``_links``: itself, its project and team, then ``more`` (name → href)."""
    links: dict[str, Any] = {
        "self": {"href": url},
        "project": {"href": project_url(org, project)},
        "team": {"href": team_url(org, team)},
    }
    links.update({name: {"href": href} for name, href in more.items()})
    return links


def _board_url(org: Organisation, team: Team, board: Board) -> str:
    return f"{work_url(org, team)}/boards/{board.id}"


def _field(org: Organisation, reference_name: str) -> dict[str, Any]:
    return {"referenceName": reference_name, "url": f"{org.url}/_apis/wit/fields/{quote(reference_name, safe='')}"}


def _kanban_field_reference(reference_name: str) -> dict[str, Any]:
    """A board field's ``FieldReference``: the name only. Azure adds the field's URL, but the emulator's
    field list (``wit/fields``) holds the process's fields, not the boards' extension fields, so it
    would not resolve."""
    return {"referenceName": reference_name}


def _kanban_field(board: Board, suffix: str) -> str:
    """The board's extension field: ``WEF_<board id as 32 upper-case hex>_Kanban.<suffix>``."""
    return f"WEF_{board.id.replace('-', '').upper()}_Kanban.{suffix}"


def board_reference_json(org: Organisation, team: Team, board: Board) -> dict[str, Any]:
    """A ``BoardReference`` (the boards list)."""
    return {"id": board.id, "url": _board_url(org, team, board), "name": board.name}


def board_column_json(column: BoardColumn) -> dict[str, Any]:
    """A ``BoardColumn``; Azure writes ``isSplit`` and ``description`` only for in-progress columns."""
    body: dict[str, Any] = {
        "id": column.id,
        "name": column.name,
        "itemLimit": column.item_limit,
        "stateMappings": dict(column.state_mappings),
        "columnType": column.column_type,
    }
    if column.column_type == "inProgress":
        body["isSplit"] = column.is_split
        body["description"] = column.description
    return body


def board_row_json(row: tuple[str, str | None]) -> dict[str, Any]:
    """A ``BoardRow`` (swimlane): the default lane has no name and no colour."""
    return {"id": row[0], "name": row[1], "color": None}


def _allowed_mappings(org: Organisation, project: Project, board: Board) -> dict[str, dict[str, list[str]]]:
    """Per column type, per work item type on the board, the states a column of that type may map to."""
    kinds = {kind for column in board.columns for kind in column.state_mappings}
    mappings: dict[str, dict[str, list[str]]] = {"Incoming": {}, "InProgress": {}, "Outgoing": {}}
    for work_item_type in org.work_item_types.get(project.id, []):
        if work_item_type.name not in kinds:
            continue
        for state in work_item_type.states:
            column_type = _CATEGORY_COLUMN.get(state.category)
            if column_type is not None:
                mappings[column_type].setdefault(work_item_type.name, []).append(state.name)
    return mappings


def board_json(org: Organisation, project: Project, team: Team, board: Board) -> dict[str, Any]:
    """A ``Board``: columns, rows, allowed state mappings and the board's Kanban fields."""
    url = _board_url(org, team, board)
    return {
        "id": board.id,
        "url": url,
        "name": board.name,
        "revision": board.revision,
        "columns": [board_column_json(column) for column in board.columns],
        "rows": [board_row_json(row) for row in board.rows],
        "isValid": True,
        "allowedMappings": _allowed_mappings(org, project, board),
        "canEdit": True,
        "fields": {
            "columnField": _kanban_field_reference(_kanban_field(board, "Column")),
            "rowField": _kanban_field_reference(_kanban_field(board, "Lane")),
            "doneField": _kanban_field_reference(_kanban_field(board, "Column.Done")),
        },
        "_links": _team_links(org, project, team, url, {"columns": f"{url}/columns", "rows": f"{url}/rows"}),
    }


def iteration_path(project: Project, node: ClassificationNode) -> str:
    """An iteration node's path as work items and team settings write it: ``Project\\Sprint 1``.

    The node's own path (``\\Project\\Iteration\\Sprint 1``) carries the structure segment and the
    project's name at creation; the project's current name is used instead.
    """
    parts = node.path.strip("\\").split("\\")[2:]
    return "\\".join([project.name, *parts])


def team_iterations(org: Organisation, project: Project, team: Team) -> list[ClassificationNode]:
    """The iteration nodes ``team`` subscribes to, by start date (as Azure lists them)."""
    root = org.iterations.get(project.id)
    if root is None:
        return []
    wanted = {path.partition("\\")[2].casefold() for path in team.iteration_paths}
    nodes = [
        node
        for node in root.walk()
        if node is not root and iteration_path(project, node).partition("\\")[2].casefold() in wanted
    ]
    return sorted(
        nodes,
        key=lambda node: (node.start_date is None, node.start_date.timestamp() if node.start_date else 0, node.id),
    )


def time_frame(node: ClassificationNode, today: date) -> str:
    """``past``, ``current`` or ``future`` relative to ``today`` (UTC days; an undated node is future)."""
    if node.start_date is None or node.finish_date is None:
        return "future"
    if node.finish_date.date() < today:
        return "past"
    if node.start_date.date() > today:
        return "future"
    return "current"


def team_iteration_json(
    org: Organisation, project: Project, team: Team, node: ClassificationNode, today: date, *, links: bool = False
) -> dict[str, Any]:
    """A ``TeamSettingsIteration``; the project's root node (a team's backlog iteration) has an empty path."""
    url = f"{work_url(org, team)}/teamsettings/iterations/{node.identifier}"
    is_root = org.iterations.get(project.id) is node
    attributes: dict[str, Any] = {}
    if not is_root:
        if node.start_date is not None:
            attributes["startDate"] = azure_date(node.start_date)
        if node.finish_date is not None:
            attributes["finishDate"] = azure_date(node.finish_date)
        attributes["timeFrame"] = time_frame(node, today)
    body: dict[str, Any] = {
        "id": node.identifier,
        "name": project.name if is_root else node.name,
        "path": "" if is_root else iteration_path(project, node),
        "attributes": attributes,
        "url": url,
    }
    if links:
        settings = f"{work_url(org, team)}/teamsettings"
        more = {"teamSettings": settings, "teamIterations": f"{settings}/iterations"}
        body["_links"] = _team_links(org, project, team, url, more)
    return body


def team_field_values_json(org: Organisation, project: Project, team: Team) -> dict[str, Any]:
    """``TeamFieldValues``: the team's area path (the default team's is the project root, children included)."""
    area = team.area_path or project.name
    url = f"{work_url(org, team)}/teamsettings/teamfieldvalues"
    is_default = project.default_team_id == team.id
    return {
        "field": _field(org, "System.AreaPath"),
        "defaultValue": area,
        "values": [{"value": area, "includeChildren": is_default}],
        "url": url,
        "_links": _team_links(org, project, team, url, {"teamSettings": f"{work_url(org, team)}/teamsettings"}),
    }


def team_settings_json(org: Organisation, project: Project, team: Team, today: date) -> dict[str, Any]:
    """``TeamSetting``: backlog iteration (the project's root), the current default iteration, working days."""
    url = f"{work_url(org, team)}/teamsettings"
    body: dict[str, Any] = {}
    root = org.iterations.get(project.id)
    if root is not None:
        body["backlogIteration"] = team_iteration_json(org, project, team, root, today)
    current = [node for node in team_iterations(org, project, team) if time_frame(node, today) == "current"]
    if current:
        body["defaultIteration"] = team_iteration_json(org, project, team, current[0], today)
    body.update(
        {
            "backlogVisibilities": {
                "Microsoft.EpicCategory": False,
                "Microsoft.FeatureCategory": True,
                "Microsoft.RequirementCategory": True,
            },
            "bugsBehavior": "asRequirements",
            "defaultIterationMacro": "@currentIteration",
            "workingDays": list(_WORKING_DAYS),
            "url": url,
            "_links": _team_links(
                org,
                project,
                team,
                url,
                {"teamIterations": f"{url}/iterations", "teamFieldValues": f"{url}/teamfieldvalues"},
            ),
        }
    )
    return body
