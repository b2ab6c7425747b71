"""Work routes (reference 3.9): a team's boards, columns, rows, iterations, area paths and settings.

Azure scopes these to a team: ``{org}/{project}/{team}/_apis/work/…``, the team by GUID or name
(percent-encoded), and with the team segment left out the project's default team answers, as
Microsoft's client does when its ``TeamContext`` names no team. Each route is therefore added
twice, with and without ``{team}`` (``route`` in :func:`add_work_routes`, :func:`_without_team`).

Iterations' ``timeFrame`` is computed from today's date (UTC) on every call, as Azure's is.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query
from starlette.responses import Response

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import Board, Organisation, Project, Team
from kiosk.emulator.routes.common import ApiVersion, DeclaredResponses, find_project, wrapped
from kiosk.emulator.routes.query_params import enum_pattern
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_work import (
    board_column_json,
    board_json,
    board_reference_json,
    board_row_json,
    team_field_values_json,
    team_iteration_json,
    team_iterations,
    team_settings_json,
    time_frame,
)
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_work_routes"]

Handler = Callable[..., Awaitable[Response]]


def _today() -> date:
    return datetime.now(UTC).date()


def find_team(org: Organisation, project: Project, team: str | None) -> Team:
    """``team`` (GUID or name, any case) of ``project``, its default team when None, or Azure's 404."""
    found = org.team(project.id, team) if team is not None else org.teams.get(project.default_team_id or "")
    if found is None:
        shown = team if team is not None else f"default team of {project.name}"
        raise AzureError(
            404, "TeamNotFoundException", f"The team with id or name {shown[:200]} does not exist in this project."
        )
    return found


def _scope(emulator: Emulator, org: str, project: str, team: str | None) -> tuple[Organisation, Project, Team]:
    data = emulator.organisation(org)
    found = find_project(data, project)
    return data, found, find_team(data, found, team)


def _board(org: Organisation, team: Team, id_or_name: str) -> Board:
    """A team's board by GUID or name (any case: ``Stories``, ``stories``), or Azure's 404."""
    key = id_or_name.casefold()
    for board in org.boards.get(team.id, []):
        if board.id == key or board.name.casefold() == key:
            return board
    raise AzureError(404, "BoardDoesNotExistException", f"The board {id_or_name[:200]} does not exist.")


def _without_team(handler: Handler) -> Handler:
    """``handler`` for the route without ``{team}``: the same parameters but ``team``, which is None."""
    signature = inspect.signature(handler)

    async def default_team(**kwargs: Any) -> Response:
        return await handler(team=None, **kwargs)

    # FastAPI reads the parameters from the signature (string annotations against these globals).
    default_team.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != "team"]
    )
    default_team.__name__ = f"{handler.__name__}_of_default_team"
    default_team.__doc__ = handler.__doc__
    return default_team


def add_work_routes(app: FastAPI, emulator: Emulator, responses: DeclaredResponses) -> None:
    """Add the team-scoped work routes, each with and without the ``{team}`` segment."""

    def route(path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            app.get(f"/{{org}}/{{project}}/{{team}}/_apis/work/{path}", responses=responses)(handler)
            app.get(f"/{{org}}/{{project}}/_apis/work/{path}", responses=responses)(_without_team(handler))
            return handler

        return register

    @route("boards")
    async def boards(org: str, project: str, team: str | None, api_version: ApiVersion) -> Response:
        """``BoardReference`` list: the team's backlog boards (unpaged)."""
        data, _, found = _scope(emulator, org, project, team)
        return wrapped([board_reference_json(data, found, board) for board in data.boards.get(found.id, [])])

    @route("boards/{board}")
    async def board(org: str, project: str, team: str | None, board: str, api_version: ApiVersion) -> Response:
        """A ``Board`` by GUID or name."""
        data, found_project, found = _scope(emulator, org, project, team)
        return FastJSONResponse(board_json(data, found_project, found, _board(data, found, board)))

    @route("boards/{board}/columns")
    async def board_columns(org: str, project: str, team: str | None, board: str, api_version: ApiVersion) -> Response:
        data, _, found = _scope(emulator, org, project, team)
        return wrapped([board_column_json(column) for column in _board(data, found, board).columns])

    @route("boards/{board}/rows")
    async def board_rows(org: str, project: str, team: str | None, board: str, api_version: ApiVersion) -> Response:
        data, _, found = _scope(emulator, org, project, team)
        return wrapped([board_row_json(row) for row in _board(data, found, board).rows])

    @route("teamsettings/iterations")
    async def iterations(
        org: str,
        project: str,
        team: str | None,
        api_version: ApiVersion,
        timeframe: Annotated[str | None, Query(alias="$timeframe", pattern=enum_pattern(["current"]))] = None,
    ) -> Response:
        """The team's iterations by start date; ``$timeframe=current`` (the only filter Azure supports: another
        value is a 400)."""
        data, found_project, found = _scope(emulator, org, project, team)
        today = _today()
        nodes = team_iterations(data, found_project, found)
        if timeframe is not None:
            nodes = [node for node in nodes if time_frame(node, today) == "current"]
        return wrapped([team_iteration_json(data, found_project, found, node, today) for node in nodes])

    @route("teamsettings/iterations/{iteration}")
    async def iteration(org: str, project: str, team: str | None, iteration: str, api_version: ApiVersion) -> Response:
        """One of the team's iterations by id (or the project's root, the team's backlog iteration)."""
        data, found_project, found = _scope(emulator, org, project, team)
        wanted = iteration.lower()
        root = data.iterations.get(found_project.id)
        candidates = team_iterations(data, found_project, found) + ([root] if root is not None else [])
        for node in candidates:
            if node.identifier == wanted:
                return FastJSONResponse(team_iteration_json(data, found_project, found, node, _today(), links=True))
        raise AzureError(
            404,
            "IterationNotFoundException",
            f"VS403143: The iteration {iteration[:64]} was not found in the team's settings.",
        )

    @route("teamsettings/teamfieldvalues")
    async def team_field_values(org: str, project: str, team: str | None, api_version: ApiVersion) -> Response:
        """The team's area paths (``System.AreaPath`` values)."""
        data, found_project, found = _scope(emulator, org, project, team)
        return FastJSONResponse(team_field_values_json(data, found_project, found))

    @route("teamsettings")
    async def team_settings(org: str, project: str, team: str | None, api_version: ApiVersion) -> Response:
        data, found_project, found = _scope(emulator, org, project, team)
        return FastJSONResponse(team_settings_json(data, found_project, found, _today()))
