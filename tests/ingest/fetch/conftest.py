"""The fetchers' tests read a generated organisation from a live emulator over real HTTP.

``read_kind(live, kind, selector)`` runs one kind's fetcher with a mapping resource of that kind
(the selector given as Ocean's YAML would give it) and returns every item it yielded, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org

from kiosk.azure.ratelimit import RetryPolicy
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.fetch.registry import fetcher_for
from kiosk.ingest.mapping import ResourceConfig, parse_port_app_config

__all__ = ["FAST_RETRY", "generated_org", "read_kind", "resource", "start_emulator"]

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


def resource(kind: str, selector: dict[str, Any] | None = None) -> ResourceConfig:
    """A validated mapping resource of ``kind`` with ``selector`` (``query: 'true'`` added)."""
    document = {
        "resources": [
            {
                "kind": kind,
                "selector": {"query": "true", **(selector or {})},
                "port": {"entity": {"mappings": {"identifier": ".id | tostring", "blueprint": '"x"'}}},
            }
        ]
    }
    return parse_port_app_config(document).resources[0]


def read_kind(
    live: LiveEmulator,
    kind: str,
    selector: dict[str, Any] | None = None,
    *,
    org: str = "fabrikam",
    pat: str = PAT,
    context: dict[str, Any] | None = None,
) -> list[Item]:
    """Every item ``kind``'s fetcher yields for ``org`` (``context``: more FetchContext fields)."""

    async def main() -> list[Item]:
        url = f"{live.base_url}/{org}"
        async with AzureDevOpsRest(url, pat, retry=FAST_RETRY) as rest:
            ctx = FetchContext(rest, url, **(context or {}))
            items: list[Item] = []
            async for batch in fetcher_for(kind)(ctx, resource(kind, selector)):
                items.extend(batch)
            return items

    return asyncio.run(main())


@pytest.fixture
def generated_org(start_emulator: EmulatorFactory) -> LiveEmulator:
    """fabrikam with a small generated organisation (3 projects, 8 repositories, 30 work items)."""
    return start_emulator(config=with_generated_org(CONFIG, projects=3, repos=8, workitems=30, users=20), execute=False)
