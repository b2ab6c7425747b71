"""Pull-request events: created, updated and merged, to the pull-request kind.

The pull request is read again (``GET {org}/_apis/git/pullrequests/{id}``, the reference's call)
and stamped as :mod:`kiosk.ingest.fetch.git` stamps it. A closed pull request is updated, never
deleted (the resync's ``minTimeInDays`` window drops it later); a 404 (its repository deleted or
disabled) makes it gone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from kiosk.azure.errors import NotFound as AzureNotFound
from kiosk.ingest.fetch.base import FetchContext, get_object
from kiosk.ingest.live.event_fields import event_resource, integer_at
from kiosk.ingest.live.model import EventHandler, Refetched
from kiosk.ingest.mapping import ResourceConfig

__all__ = ["HANDLERS", "KIND", "pull_request_id", "read_pull_request"]

KIND: Final = "pull-request"
API_VERSION: Final = "7.1"
_IN_URL: Final = re.compile(r"/pullRequests/(\d+)", re.IGNORECASE)


def pull_request_id(event: Mapping[str, Any]) -> int:
    """The pull request an event is about (``pullRequestId``, else the id in its URL)."""
    return integer_at(event_resource(event), ("pullRequestId",), url_pattern=_IN_URL)


async def read_pull_request(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """The pull request the event names, as the pull-request fetcher gives it."""
    pr_id = pull_request_id(event)
    try:
        pull_request = await get_object(
            ctx.rest, f"_apis/git/pullrequests/{pr_id}", params={"api-version": API_VERSION}
        )
    except AzureNotFound:
        known = dict(event_resource(event))
        known["pullRequestId"] = pr_id
        return Refetched(KIND, gone=[ctx.stamp(known)])
    return Refetched(KIND, items=[ctx.stamp(pull_request)])


HANDLERS: dict[str, dict[str, EventHandler]] = {
    event_type: {KIND: read_pull_request}
    for event_type in ("git.pullrequest.created", "git.pullrequest.updated", "git.pullrequest.merged")
}
