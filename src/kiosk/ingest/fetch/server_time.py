"""Azure's clock, as a read can learn it before it starts: the ``Date`` header of a small answer.

The incremental sync keeps, per resource, the time (Azure's, never this machine's: the two may
disagree by minutes) before which every change is in the catalog. A read notes that time *before*
it lists anything (:meth:`~kiosk.ingest.fetch.base.FetchContext.server_time`), so whatever changes
while it reads is at or after it and is read again by the next pass.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from kiosk.azure.rest import AzureDevOpsRest

__all__ = ["CLOCK_PATH", "azure_now", "http_date"]

#: A read every PAT may make and Azure answers small (one project).
CLOCK_PATH: Final = "_apis/projects"


def http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header (``Sun, 06 Dec 2026 21:04:05 GMT``) in UTC; None when absent or bad."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


async def azure_now(rest: AzureDevOpsRest) -> datetime | None:
    """Azure's time now, to the second (rounded down, as the header gives it): the ``Date`` of
    ``GET _apis/projects?$top=1``. None when the answer carries no usable ``Date``. Errors raise."""
    answer = await rest.request("GET", CLOCK_PATH, params={"$top": "1"})
    return http_date(answer.headers.get("date"))
