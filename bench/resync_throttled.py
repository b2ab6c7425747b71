"""A whole resync under Azure's rate limit: elapsed time against the least the budget allows.

:mod:`bench.azure_throttled` measures the REST client reading lists; this measures what a user
waits for: :class:`kiosk.ingest.resync.Resyncer` resyncing a generated organisation with the
default mapping (projects with their default team, repositories with README and CODEOWNERS,
policies, boards, columns, work items, releases) into a fresh SQLite catalog, once with
throttling off (the baseline, and the request count ``N``), then with the emulator's
``settings.throttling`` on: ``--budget`` TSTUs per ``--window`` seconds, every request costing 1.

The lower bound, as in :mod:`bench.azure_throttled`: at most ``budget`` requests pass per window,
so ``N`` requests need at least ``(ceil(N / budget) - 1) x window`` seconds. The issue's target is
a throttled resync within 1.3x of it, with no 429 received and the same entities written.

    python -m bench.resync_throttled [--budget 40] [--window 3] [--projects 4] [--repos 24] [--quick]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.azure_throttled import PAT, generated_org, parse_org_and_budget_arguments, report_against_bound
from bench.emulator_org import bench_org_config
from tests.support.integrations import azure_devops_integration


def resync_once(database: Path, url: str) -> tuple[float, int, int, int, str]:
    """One resync of ``url`` into a fresh catalog at ``database``: (seconds, requests, entities
    mapped, 429s received, status)."""
    from kiosk.azure.rest import AzureDevOpsRest
    from kiosk.catalog.service import Catalog
    from kiosk.ingest.defaults import default_mapping
    from kiosk.ingest.initialize import initialize_defaults
    from kiosk.ingest.resync import Resyncer
    from kiosk.ingest.store import IngestStore
    from kiosk.store import create_database, upgrade_to_head

    db = create_database(f"sqlite:///{database}")
    try:
        upgrade_to_head(db)
        catalog = Catalog(db)
        initialize_defaults(catalog, actor="bench")
        integration = azure_devops_integration(
            url, default_mapping(), pat=PAT, identifier="bench", mapping_source="default"
        )
        clients: list[AzureDevOpsRest] = []

        def client(organization_url: str, pat: str) -> AzureDevOpsRest:
            clients.append(AzureDevOpsRest(organization_url, pat))
            return clients[-1]

        started = time.perf_counter()
        state = asyncio.run(Resyncer(IngestStore(db, catalog), rest_factory=client).run(integration))
        elapsed = time.perf_counter() - started
        requests = sum(org.requests for org in state.organizations)
        throttled = sum(rest.stats.throttled for rest in clients)
        return elapsed, requests, state.totals()["mapped"], throttled, state.status
    finally:
        db.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_org_and_budget_arguments(
        argv,
        __doc__.split("\n\n")[0],
        {"budget": 40, "window": 3.0, "projects": 4, "repos": 24, "workitems": 600},
        quick={"projects": 2, "repos": 12, "workitems": 200},
    )

    with (
        tempfile.TemporaryDirectory(prefix="kiosk-bench-resync-throttled-") as tmp,
        generated_org(
            bench_org_config({"projects": args.projects, "repos": args.repos, "workitems": args.workitems})
        ) as (url, throttle),
    ):
        plain, requests, entities, _, plain_status = resync_once(Path(tmp) / "plain.db", url)
        with throttle(args.budget, args.window):
            throttled, throttled_requests, throttled_entities, refused, status = resync_once(
                Path(tmp) / "throttled.db", url
            )

    return report_against_bound(
        requests,
        args.budget,
        args.window,
        what="resync",
        org=f"{args.projects} projects, {args.repos} repositories, {args.workitems} work items; default mapping; "
        f"{entities} entities in {requests} requests",
        plain=plain,
        throttled=throttled,
        detail=f"{throttled_requests} requests, {refused} answered 429, status {status}",
        complete=status == plain_status == "completed" and throttled_entities == entities and refused == 0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
