"""Which api-version a request asks for: the query's ``api-version``, else the ``Accept`` header's.

Microsoft's clients never put the version in the query: they send
``Accept: application/json;api-version=7.1-preview.4``. Curl users and most ingesters send
``?api-version=7.1``. Azure takes either (the query when both are given) and serves a read (GET,
HEAD, OPTIONS) without any at the route's released version, while a write without one is a 400
``VssVersionNotSpecifiedException`` (reference section 2.1). The trigger keeps its own, stricter,
query-only check (:func:`kiosk.emulator.service.check_api_version` called directly).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Query, Request

from kiosk.emulator.errors import AzureError
from kiosk.emulator.service import check_api_version

__all__ = ["DEFAULT_VERSION", "READ_METHODS", "accept_version", "request_api_version", "resolve_api_version"]

DEFAULT_VERSION: Final = "7.1"
"""The released version a versionless read is served at."""
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def accept_version(accept: str | None) -> str | None:
    """The ``api-version`` parameter of an ``Accept`` header (``application/json;api-version=7.1``), if any."""
    if not accept:
        return None
    for media in accept.split(","):
        for parameter in media.split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "api-version" and value.strip():
                return value.strip().strip('"')
    return None


def resolve_api_version(method: str, query: str | None, accept: str | None) -> str:
    """The version to serve: checked as Azure checks it; a read without one gets :data:`DEFAULT_VERSION`."""
    version = query if query is not None else accept_version(accept)  # an empty query value is refused
    if version is None:
        if method.upper() in READ_METHODS:
            return DEFAULT_VERSION
        raise AzureError(
            400,
            "VssVersionNotSpecifiedException",
            f'No api-version was supplied for the "{method.upper()}" request. The version must be supplied either '
            'as part of the Accept header (e.g. "application/json; api-version=1.0") or as a query parameter '
            '(e.g. "?api-version=1.0").',
        )
    check_api_version(version)
    return version


async def request_api_version(
    request: Request, api_version: Annotated[str | None, Query(alias="api-version")] = None
) -> str:
    """FastAPI dependency: the api-version of this request (see the module docstring).

    ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency in its thread pool,
    a hop per request for a pure function.
    """
    return resolve_api_version(request.method, api_version, request.headers.get("accept"))
