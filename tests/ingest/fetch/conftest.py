"""The fetchers' tests read a generated organisation from a live emulator over real HTTP.

``read_kind(live, kind, selector)`` runs one kind's fetcher with a mapping resource of that kind
(the selector given as Ocean's YAML would give it) and returns every item it yielded, in order. The
other helpers read what the fetcher must match straight from the emulator (``rest_get``,
``rest_list``), strip the fetchers' ``__`` enrichment (``unstamped``) and break the emulator on
purpose (``set_faults``, ``faulty_org``).
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org

from kiosk.azure.ratelimit import RetryPolicy
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.fetch.registry import fetcher_for
from kiosk.ingest.mapping import ResourceConfig, parse_port_app_config

__all__ = [
    "FAST_RETRY",
    "ORG",
    "faulty_org",
    "generated_org",
    "read_kind",
    "read_paged",
    "resource",
    "rest_get",
    "rest_list",
    "set_faults",
    "start_emulator",
    "unstamped",
]

ORG = "fabrikam"

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
    org: str = ORG,
    pat: str = PAT,
    context: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> list[Item]:
    """Every item ``kind``'s fetcher yields for ``org`` (``context``: more FetchContext fields;
    ``timeout``: the client's request timeout, short to see a held answer fail)."""

    async def main() -> list[Item]:
        url = f"{live.base_url}/{org}"
        async with AzureDevOpsRest(url, pat, retry=FAST_RETRY, timeout=timeout) as rest:
            ctx = FetchContext(rest, url, **(context or {}))
            items: list[Item] = []
            async for batch in fetcher_for(kind)(ctx, resource(kind, selector)):
                items.extend(batch)
            return items

    return asyncio.run(main())


def read_paged(
    live: LiveEmulator,
    monkeypatch: pytest.MonkeyPatch,
    fetchers: ModuleType,
    page_size: int,
    kind: str,
    selector: dict[str, Any] | None = None,
) -> list[Item]:
    """:func:`read_kind` with the ``fetchers`` module's ``PAGE_SIZE`` at ``page_size`` for the rest of
    the test, so the lists span pages and the paging is what is tested."""
    monkeypatch.setattr(fetchers, "PAGE_SIZE", page_size)
    return read_kind(live, kind, selector)


@pytest.fixture
def generated_org(start_emulator: EmulatorFactory) -> LiveEmulator:
    """fabrikam with a small generated organisation (3 projects, 8 repositories, 30 work items)."""
    return start_emulator(config=with_generated_org(CONFIG, projects=3, repos=8, workitems=30, users=20), execute=False)


def faulty_org(
    start_emulator: EmulatorFactory, rule: str, *, projects: int, repos: int, workitems: int
) -> LiveEmulator:
    """A generated organisation whose emulator starts with the fault ``rule`` (a YAML flow mapping)
    in its settings, so even the first calls a fetcher makes meet it."""
    config = with_generated_org(CONFIG, projects=projects, repos=repos, workitems=workitems).replace(
        "orgs:", f"settings:\n  faults:\n    - {rule}\norgs:", 1
    )
    return start_emulator(config=config, execute=False)


def rest_get(live: LiveEmulator, path: str, **params: str) -> Any:
    """The emulator's JSON answer for ``/fabrikam/{path}``, asserted to be a 200."""
    answer = live.client.get(f"/{ORG}/{path}", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def rest_list(live: LiveEmulator, path: str, **params: Any) -> list[dict[str, Any]]:
    """A whole list read directly (one page of up to 10,000, asserted to have no next page)."""
    answer = live.client.get(f"/{ORG}/{path}", params={"$top": 10_000, **params})
    assert answer.status_code == 200, answer.text
    assert "x-ms-continuationtoken" not in answer.headers
    return list(answer.json()["value"])


def unstamped(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` without the ``__`` fields the fetchers add (what Azure answered for it)."""
    return {k: v for k, v in item.items() if not k.startswith("__")}


def set_faults(live: LiveEmulator, *rules: dict[str, Any]) -> None:
    """Replace the emulator's fault rules with ``rules``."""
    assert live.client.put("/_emulator/switches", json={"faults": list(rules)}).status_code == 200
