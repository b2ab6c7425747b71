"""A full resync of a generated organisation into the catalog, on SQLite and PostgreSQL.

The issue's figures: wall time, entities/s, peak RSS (≤ 300 MB) and requests made for a resync of
an organisation of 50 projects, 2,000 repositories, 100,000 work items, 10,000 pull requests and
20,000 builds; then the second, unchanged resync: entities written (0) and its time as a ratio of
the first (≤ 0.3).

The organisation is served by kiosk's emulator (``kiosk emulator``, one process, loopback; runs not
executed). Each engine's resync runs in a child process of its own, so its peak RSS is the
resync's alone (``ru_maxrss`` of that process): it builds kiosk's schema in a fresh database,
creates the blueprints, then resyncs twice through :class:`kiosk.ingest.resync.Resyncer` — the
engine ``kiosk integrations resync --once`` runs. The baseline, measured in the same child right
before: the same fetchers reading the same organisation with nothing mapped or written (what
reading Azure alone costs), so ``resync / read-only`` is kiosk's own cost on top of the reads.

    python -m bench.resync [--engine sqlite|postgres|both] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import ROOT, Databases, ratio, selected_engines
from bench.emulator_org import bench_org_config
from tests.support.blueprints import blueprint
from tests.support.integrations import (
    azure_devops_integration,
    create_blueprints,
    mapping_resource,
    pull_request_resource,
    repository_resource,
)
from tests.support.processes import wait_until_answering
from tests.support.servers import free_port

PAT = "bench-resync-pat"  # the bench org's token (a benchmark's throwaway value)
RSS_TARGET_MB = 300.0
SECOND_TARGET = 0.3

BLUEPRINTS: list[dict[str, Any]] = [
    blueprint("project", "Project", {"state": "string"}),
    blueprint("repository", "Repository", {"url": "string", "defaultBranch": "string"}, {"project": "project"}),
    blueprint("pullRequest", "Pull request", {"status": "string", "creator": "string"}, {"repository": "repository"}),
    blueprint("build", "Build", {"status": "string", "result": "string"}, {"project": "project"}),
    blueprint(
        "workItem",
        "Work item",
        {"type": "string", "state": "string", "changedDate": {"type": "string", "format": "date-time"}},
        {"project": "project"},
    ),
]


MAPPING: dict[str, Any] = {
    "entityDeletionThreshold": 1,
    "createMissingRelatedEntities": False,
    "resources": [
        mapping_resource("project", "project", properties={"state": ".state"}),
        repository_resource("repository"),
        pull_request_resource("pullRequest", {"status": ".status", "creator": ".createdBy.uniqueName"}),
        mapping_resource(
            "build",
            "build",
            identifier='.__project.id + "/" + (.id | tostring)',
            title=".buildNumber",
            properties={"status": ".status", "result": ".result"},
            relations={"project": ".__project.id"},
        ),
        mapping_resource(
            "work-item",
            "workItem",
            identifier='.__project.id + "/" + (.id | tostring)',
            title='.fields."System.Title"',
            properties={
                "type": '.fields."System.WorkItemType"',
                "state": '.fields."System.State"',
                "changedDate": '.fields."System.ChangedDate"',
            },
            relations={"project": ".__projectId"},
            wiql="[System.Id] > 0",
        ),
    ],
}


# -- the child: one engine's measurement --------------------------------------------------------


def child(database_url: str, organization_url: str) -> dict[str, Any]:
    """Read-only baseline, then two resyncs, in this process; figures as a dict."""
    from kiosk.catalog.service import Catalog
    from kiosk.ingest.mapping import parse_port_app_config
    from kiosk.ingest.resync import Resyncer
    from kiosk.ingest.store import IngestStore
    from kiosk.store import create_database, upgrade_to_head

    db = create_database(database_url)
    upgrade_to_head(db)
    catalog = Catalog(db)
    create_blueprints(catalog, BLUEPRINTS, actor="bench")
    mapping = parse_port_app_config(MAPPING)
    integration = azure_devops_integration(
        organization_url, mapping, pat=PAT, identifier="bench", mapping_source="bench"
    )
    started = time.perf_counter()
    fetched, read_requests = asyncio.run(_read_only(organization_url, mapping))
    read_only = time.perf_counter() - started

    resyncer = Resyncer(IngestStore(db, catalog))
    started = time.perf_counter()
    first = asyncio.run(resyncer.run(integration, trigger="bench"))
    first_time = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    second = asyncio.run(resyncer.run(integration, trigger="bench"))
    second_time = time.perf_counter() - started
    db.dispose()
    one, two = first.totals(), second.totals()
    return {
        "status": [first.status, second.status],
        "errors": [org.error for org in first.organizations + second.organizations if org.error],
        "fetched": fetched,
        "read_only_s": read_only,
        "read_requests": read_requests,
        "first_s": first_time,
        "first": one,
        "requests": sum(org.requests for org in first.organizations),
        "rss_mb": rss_mb,
        "second_s": second_time,
        "second": two,
        "second_requests": sum(org.requests for org in second.organizations),
    }


async def _read_only(organization_url: str, mapping: Any) -> tuple[int, int]:
    from kiosk.azure.rest import AzureDevOpsRest
    from kiosk.ingest.fetch.base import FetchContext
    from kiosk.ingest.fetch.registry import fetcher_for

    count = 0
    async with AzureDevOpsRest(organization_url, PAT) as rest:
        ctx = FetchContext(rest, organization_url)
        for resource_config in mapping.resources:
            async for batch in fetcher_for(resource_config.kind)(ctx, resource_config):
                count += len(batch)
        return count, rest.stats.requests


# -- the parent: the emulator, the databases, the report ----------------------------------------


def _report(engine: str, sizes: dict[str, int], figures: dict[str, Any]) -> list[str]:
    one, two = figures["first"], figures["second"]
    entities = one["mapped"]
    first_s, second_s = figures["first_s"], figures["second_s"]
    written_again = two["created"] + two["updated"] + two["deleted"]
    lines = [
        f"resync[{engine}] org: {sizes['projects']} projects, {sizes['repos']} repositories, "
        f"{sizes['workitems']} work items, {sizes['repos'] * sizes['prs']} pull requests, "
        f"{sizes['repos'] * sizes['builds']} builds; status {figures['status']} {figures['errors'] or ''}",
        f"  first resync: {first_s:.1f} s, {entities} entities ({one['created']} created), "
        f"{entities / first_s:,.0f} entities/s, {figures['requests']} requests, peak RSS {figures['rss_mb']:.0f} MB "
        f"(target <= {RSS_TARGET_MB:.0f})",
        f"  baseline, reading the org alone: {figures['read_only_s']:.1f} s ({figures['fetched']} items, "
        f"{figures['read_requests']} requests); resync / read-only = {ratio(first_s, figures['read_only_s']):.2f}x",
        f"  second resync (unchanged): {second_s:.1f} s, {written_again} entities written "
        f"({two['unchanged']} unchanged), {figures['second_requests']} requests; "
        f"second / first = {ratio(second_s, first_s):.2f} (target <= {SECOND_TARGET})",
    ]
    return lines


def org_arguments(description: str | None, argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of a bench measuring this organisation in a child process per engine
    (this one, :mod:`bench.incremental`): the engines, the organisation's size (``--quick``: a
    small one) and the hidden ``--child DATABASE_URL ORG_URL`` a child is started with."""
    parser = argparse.ArgumentParser(description=(description or "").split("\n", 1)[0])
    parser.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="a small organisation (a smoke run)")
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--repos", type=int, default=2000)
    parser.add_argument("--workitems", type=int, default=100_000)
    parser.add_argument("--prs", type=int, default=5, help="pull requests per repository")
    parser.add_argument("--builds", type=int, default=10, help="builds per repository's pipeline")
    parser.add_argument("--child", nargs=2, metavar=("DATABASE_URL", "ORG_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.projects, args.repos, args.workitems, args.prs, args.builds = 3, 30, 1000, 3, 3
    return args


#: A bench's report of one engine's figures (what its child printed): its lines.
Report = Callable[[str, dict[str, int], dict[str, Any]], list[str]]

#: A bench's measurement in its child process (database URL, organisation URL): its figures.
Child = Callable[[str, str], dict[str, Any]]


def run_per_engine(module: str, args: argparse.Namespace, report: Report) -> int:
    """Serve the generated organisation of ``args``' size from kiosk's emulator (its own process),
    then per selected engine run ``python -m module --child`` on a fresh database and print
    ``report`` of the figures it prints; 0 when every child ran and both its runs completed."""
    sizes = {k: getattr(args, k) for k in ("projects", "repos", "workitems", "prs", "builds")}
    ok = True
    with tempfile.TemporaryDirectory(prefix=f"kiosk-{module.replace('.', '-')}-") as tmp:
        config = Path(tmp) / "emulator.yaml"
        config.write_text(
            bench_org_config(
                {
                    "projects": sizes["projects"],
                    "repos": sizes["repos"],
                    "workitems": sizes["workitems"],
                    "pullRequests": sizes["prs"],
                    "builds": sizes["builds"],
                }
            )
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BENCH_PAT": PAT, "KIOSK_HOME": str(Path(tmp) / "home")}
        command = [sys.executable, "-m", "kiosk", "emulator", "--config", str(config), "--port", str(port)]
        emulator = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        try:
            wait_until_answering(f"{base}/_emulator/healthz", emulator, timeout=600)
            for engine in selected_engines(args.engine):
                with Databases(engine) as databases:
                    answer = subprocess.run(
                        [sys.executable, "-m", module, "--child", databases.fresh(), f"{base}/bench"],
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                if answer.returncode != 0:
                    print(answer.stderr[-4000:], file=sys.stderr)
                    ok = False
                    continue
                figures = json.loads(answer.stdout.strip().splitlines()[-1])
                print("\n".join(report(engine, sizes, figures)), flush=True)
                ok = ok and figures["status"] == ["completed", "completed"]
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
    return 0 if ok else 1


def org_bench(module: str, description: str | None, argv: Sequence[str] | None, measure: Child, report: Report) -> int:
    """The ``main`` of a bench of this organisation: as the child (``--child``), print ``measure``'s
    figures as JSON; else :func:`run_per_engine`."""
    args = org_arguments(description, argv)
    if args.child:
        print(json.dumps(measure(*args.child)))
        return 0
    return run_per_engine(module, args, report)


def main(argv: Sequence[str] | None = None) -> int:
    return org_bench("bench.resync", __doc__, argv, child, _report)


if __name__ == "__main__":
    raise SystemExit(main())
