"""Discovery routes: ``OPTIONS {org}/_apis``, ``GET {org}/_apis/ResourceAreas``, ``GET {org}/_apis/connectionData``.

What they answer is in :mod:`kiosk.emulator.discovery`. ``OPTIONS /_apis`` (the "deployment
level" a client tries when its location is not registered at the org) answers an empty list, so a
client asking for a resource the emulator does not serve fails at once with the client's own
"API resource location … is not registered" error instead of a network call.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response

from kiosk.emulator.discovery import (
    LOCATIONS,
    connection_data_json,
    location_json,
    resource_areas_json,
)
from kiosk.emulator.errors import AzureError
from kiosk.emulator.routes.common import ApiVersion, DeclaredResponses, wrapped
from kiosk.emulator.service import Emulator
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_location_routes"]


def add_location_routes(router: FastAPI, emulator: Emulator, base: str, responses: DeclaredResponses) -> None:
    """Add the discovery routes of ``emulator``, whose URLs start at ``base``, to the app."""
    locations = [location_json(location) for location in LOCATIONS]

    @router.options("/{org}/_apis", responses=responses)
    def resource_locations(org: str, api_version: ApiVersion) -> Response:
        """Every resource location the emulator serves (``VssJsonCollectionWrapper`` of ``ApiResourceLocation``)."""
        emulator.org_name(org)
        return wrapped(locations)

    @router.options("/_apis", responses=responses)
    def deployment_locations(api_version: ApiVersion) -> Response:
        """The deployment level: nothing is served outside an org."""
        return wrapped([])

    @router.get("/{org}/_apis/ResourceAreas", responses=responses)
    def resource_areas(org: str, api_version: ApiVersion) -> Response:
        """Where each area lives: every area at the org's own URL."""
        return wrapped(resource_areas_json(base, emulator.org_name(org)))

    @router.get("/{org}/_apis/ResourceAreas/{area_id}", responses=responses)
    def resource_area(org: str, area_id: str, api_version: ApiVersion) -> Response:
        name = emulator.org_name(org)
        for area in resource_areas_json(base, name):
            if area["id"] == area_id.lower():
                return FastJSONResponse(area)
        raise AzureError(404, "ResourceAreaNotFoundException", f"The resource area {area_id[:64]} was not found.")

    @router.get("/{org}/_apis/connectionData", responses=responses)
    def connection_data(org: str, api_version: ApiVersion) -> Response:
        """Who the caller is, as ``az devops`` and other CLIs ask it."""
        return FastJSONResponse(connection_data_json(emulator.org_name(org), change_id=1))
