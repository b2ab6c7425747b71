"""Advanced Security alert routes (``alert`` area; Azure serves it on ``advsec.dev.azure.com``).

- ``GET {project}/_apis/alert/repositories/{repository}/alerts``: the repository's ``Alert`` list by
  id, ``$top`` + ``continuationToken`` paged (the next token in ``x-ms-continuationtoken``, sent only
  while more remain), filtered by ``criteria.states`` and ``criteria.severity`` (comma-separated
  lists) and ``criteria.alertType``.
- ``GET …/alerts/{alertId}``: one alert.

A repository with Advanced Security off answers 400, as Azure does; a repository that does not
exist in the project answers Azure's TF401019 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, FastAPI, Query
from starlette.responses import Response

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import GitRepository, Organisation
from kiosk.emulator.routes.common import (
    ApiVersion,
    DeclaredResponses,
    TokenPaged,
    continuation_page,
    find_project,
    find_repository,
    from_query,
    wrapped,
)
from kiosk.emulator.routes.query_params import choices, enum_pattern
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_test import alert_json
from kiosk.web.responses import FastJSONResponse

__all__ = ["ADVANCED_SECURITY_OFF", "add_alert_routes"]

_ALERTS_PAGE: Final = 100
_STATES: Final = frozenset({"active", "dismissed", "fixed", "autodismissed"})
_SEVERITIES: Final = frozenset({"low", "medium", "high", "critical", "note", "warning", "error", "undefined"})
_TYPES: Final = frozenset({"dependency", "code", "secret"})
ADVANCED_SECURITY_OFF: Final = "AdvancedSecurityNotEnabledException"
"""The ``typeKey`` of the 400 a repository with Advanced Security off answers."""

States = Annotated[str | None, Query(alias="criteria.states", pattern=enum_pattern(_STATES, many=True))]
Severities = Annotated[str | None, Query(alias="criteria.severity", pattern=enum_pattern(_SEVERITIES, many=True))]
AlertType = Annotated[str | None, Query(alias="criteria.alertType", pattern=enum_pattern(_TYPES))]


def _enabled(org: Organisation, project: str, repository: str) -> GitRepository:
    """The repository (by id or name in ``project``), refused with 400 when Advanced Security is off for it."""
    repo = find_repository(org, repository, find_project(org, project))
    if repo.id not in org.advanced_security:
        raise AzureError(
            400,
            ADVANCED_SECURITY_OFF,
            f"Advanced Security is not enabled for repository {repo.id}. Enable it in the repository settings.",
        )
    return repo


@dataclass(frozen=True, slots=True)
class AlertsQuery:
    """Which alerts of a repository: by state, severity and type, a page by token."""

    states: States = None
    severity: Severities = None
    alert_type: AlertType = None


AlertsParams = Annotated[AlertsQuery, Depends(from_query(AlertsQuery))]


def add_alert_routes(app: FastAPI, emulator: Emulator, responses: DeclaredResponses) -> None:
    """Add the Advanced Security alert routes."""

    @app.get("/{org}/{project}/_apis/alert/repositories/{repository}/alerts", responses=responses)
    async def alerts(
        org: str, project: str, repository: str, query: AlertsParams, paging: TokenPaged, api_version: ApiVersion
    ) -> Response:
        """The repository's ``Alert`` list by id, filtered by the criteria given."""
        data = emulator.organisation(org)
        repo = _enabled(data, project, repository)
        wanted_states = choices("criteria.states", query.states, _STATES)
        wanted_severities = choices("criteria.severity", query.severity, _SEVERITIES)
        listed = [
            alert
            for alert in data.alerts.values()
            if alert.repository_id == repo.id
            and (not wanted_states or alert.state.lower() in wanted_states)
            and (not wanted_severities or alert.severity in wanted_severities)
            and (query.alert_type is None or alert.alert_type == query.alert_type.lower())
        ]
        page, next_token = continuation_page(listed, paging.top, paging.token, default=_ALERTS_PAGE)
        return wrapped([alert_json(data, alert) for alert in page], token=next_token)

    @app.get("/{org}/{project}/_apis/alert/repositories/{repository}/alerts/{alert_id}", responses=responses)
    async def alert(org: str, project: str, repository: str, alert_id: int, api_version: ApiVersion) -> Response:
        """One ``Alert`` of the repository."""
        data = emulator.organisation(org)
        repo = _enabled(data, project, repository)
        found = data.alerts.get(alert_id)
        if found is None or found.repository_id != repo.id:
            raise AzureError(404, "AlertNotFoundException", f"Alert {alert_id} was not found in the repository.")
        return FastJSONResponse(alert_json(data, found))
