"""An incremental pass against the full resync it follows, on the resync bench's organisation.

The organisation, blueprints and mapping are :mod:`bench.resync`'s (work items, builds, pull
requests, projects, repositories), served by kiosk's emulator in its own process. In a child
process per engine: a full resync (timed, its requests counted), then about 1% of the work items
edited, 1% more builds (finished ones) and 1% of the active pull requests retitled through the
emulator's change API, then one incremental pass (:class:`kiosk.ingest.incremental.IncrementalSync`)
— timed, its requests counted, what it wrote checked against what was changed. The figure is the
pass's time and requests as a ratio of the full resync's, in the same run.

    python -m bench.incremental [--engine sqlite|postgres|both] [--quick]
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from typing import Any

import httpx
from bench.common import ratio
from bench.resync import BLUEPRINTS, MAPPING, PAT, org_bench
from tests.support.integrations import all_entities, azure_devops_integration, create_blueprints

#: The share of each kind changed between the resync and the pass.
SHARE = 0.01


def _changes(organization_url: str, catalog: Any) -> dict[str, int]:
    """Edit ~1% of the work items, finish ~1% more builds, retitle ~1% of the active pull requests,
    through the emulator's change API; how many of each."""
    base, org = organization_url.rsplit("/", 1)
    auth = {"Authorization": "Basic " + base64.b64encode(f":{PAT}".encode()).decode()}
    made = {"work-item": 0, "build": 0, "pull-request": 0}
    with httpx.Client(base_url=base, headers=auth, timeout=60) as client:

        def change(method: str, project: str, path: str, body: dict[str, Any]) -> None:
            answer = client.request(method, f"/_emulator/orgs/{org}/projects/{project}/{path}", json=body)
            answer.raise_for_status()

        work_items = _identifiers(catalog, "workItem")
        for identifier in work_items[:: max(1, round(1 / SHARE))]:
            project, item = identifier.rsplit("/", 1)
            change("PATCH", project, f"workitems/{item}", {"fields": {"System.Title": "changed by the bench"}})
            made["work-item"] += 1
        builds = _identifiers(catalog, "build")
        wanted = max(1, round(len(builds) * SHARE))
        projects = sorted({identifier.rsplit("/", 1)[0] for identifier in builds})
        definitions: list[tuple[str, int]] = []
        for project in projects:
            listed = client.get(f"/{org}/{project}/_apis/build/definitions", params={"api-version": "7.1"})
            definitions.extend((project, d["id"]) for d in listed.json()["value"])
        for index in range(wanted):
            project, definition = definitions[index % len(definitions)]
            change("POST", project, "builds", {"definitionId": definition})
            made["build"] += 1
        repositories = {e["identifier"]: e["relations"]["project"] for e in all_entities(catalog, "repository")}
        active = [
            e["identifier"] for e in all_entities(catalog, "pullRequest") if e["properties"]["status"] == "active"
        ]
        for identifier in active[:: max(1, round(1 / SHARE))]:
            repository, number = identifier.rsplit("/", 1)
            change("PATCH", repositories[repository], f"pullrequests/{number}", {"title": "retitled by the bench"})
            made["pull-request"] += 1
    return made


def _identifiers(catalog: Any, blueprint: str) -> list[str]:
    return sorted(entity["identifier"] for entity in all_entities(catalog, blueprint))


def child(database_url: str, organization_url: str) -> dict[str, Any]:
    """A full resync, the changes, an incremental pass; figures as a dict."""
    from kiosk.catalog.service import Catalog
    from kiosk.ingest.incremental import IncrementalSync
    from kiosk.ingest.mapping import parse_port_app_config
    from kiosk.ingest.resync import Resyncer
    from kiosk.ingest.store import IngestStore
    from kiosk.store import create_database, upgrade_to_head

    db = create_database(database_url)
    upgrade_to_head(db)
    catalog = Catalog(db)
    create_blueprints(catalog, BLUEPRINTS, actor="bench")
    integration = azure_devops_integration(
        organization_url, parse_port_app_config(MAPPING), pat=PAT, identifier="bench", mapping_source="bench"
    )
    store = IngestStore(db, catalog)
    started = time.perf_counter()
    full = asyncio.run(Resyncer(store).run(integration, trigger="bench"))
    full_s = time.perf_counter() - started
    made = _changes(organization_url, catalog)
    started = time.perf_counter()
    passed = asyncio.run(IncrementalSync(store).run(integration, trigger="bench"))
    pass_s = time.perf_counter() - started
    db.dispose()
    resources = {r.kind: r for org in passed.organizations for r in org.resources}
    return {
        "status": [full.status, passed.status],
        "errors": [org.error for org in full.organizations + passed.organizations if org.error],
        "full_s": full_s,
        "full": full.totals(),
        "full_requests": sum(org.requests for org in full.organizations),
        "made": made,
        "pass_s": pass_s,
        "pass": passed.totals(),
        "pass_requests": sum(org.requests for org in passed.organizations),
        "written": {kind: resources[kind].written for kind in resources},
        "read": {kind: resources[kind].fetched for kind in resources},
    }


def _report(engine: str, sizes: dict[str, int], figures: dict[str, Any]) -> list[str]:
    full, passed = figures["full"], figures["pass"]
    return [
        f"incremental[{engine}] org: {sizes['projects']} projects, {sizes['repos']} repositories, "
        f"{sizes['workitems']} work items, {sizes['repos'] * sizes['prs']} pull requests, "
        f"{sizes['repos'] * sizes['builds']} builds; status {figures['status']} {figures['errors'] or ''}",
        f"  full resync: {figures['full_s']:.1f} s, {full['fetched']} items read, {figures['full_requests']} requests",
        f"  changed in Azure: {figures['made']}",
        f"  incremental pass: {figures['pass_s']:.2f} s, {passed['fetched']} items read {figures['read']}, "
        f"{passed['written']} written {figures['written']}, {figures['pass_requests']} requests",
        f"  pass / full resync: time {ratio(figures['pass_s'], figures['full_s']):.3f}, "
        f"requests {ratio(figures['pass_requests'], figures['full_requests']):.3f}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Each engine changes the org again: a fresh emulator org is not needed, the full resync of
    the engine's fresh database reads the org as it is now."""
    return org_bench("bench.incremental", __doc__, argv, child, _report)


if __name__ == "__main__":
    raise SystemExit(main())
