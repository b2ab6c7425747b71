"""Generating an emulated organisation: time and peak memory for 100,000 work items.

``kiosk emulator --generate projects=50,repos=2000,workitems=100000,seed=7`` must have its org
ready in at most 10 s and 1 GB. Each measurement runs in a fresh interpreter (``--child``), so
``ru_maxrss`` is that run's own peak: the generation itself, and two baselines in the same run:

- *import*: the interpreter with kiosk's generator imported and nothing built (the floor of RSS);
- *plain dicts*: the same number of work items as bare dicts of the same 16 fields (random values
  from ``random.Random``, datetimes included), no links, revisions, repos or anything else — what
  the data alone costs in CPython. The ratio reads "a generated org costs N times its work items
  as plain dicts".

    python -m bench.emulator_generate [--projects 50] [--repos 2000] [--workitems 100000] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import median, ratio

TARGET_SECONDS = 10.0
TARGET_MB = 1024.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _child(kind: str, projects: int, repos: int, workitems: int) -> dict[str, Any]:
    from kiosk.emulator.org.generate import generate_org

    started = time.perf_counter()
    if kind == "generate":
        org = generate_org(
            "bench", "http://127.0.0.1:8001", projects=projects, repos=repos, workitems=workitems, seed=7
        )
        counts = {"work items": len(org.work_items), "repositories": len(org.repositories), "builds": len(org.builds)}
    elif kind == "dicts":
        import random

        rng = random.Random(7)
        now = datetime(2026, 1, 5, tzinfo=UTC)
        items = {}
        for item_id in range(1, workitems + 1):
            created = now - timedelta(days=rng.random() * 720)
            items[item_id] = {
                "System.Id": item_id,
                "System.AreaPath": f"P\\Area {rng.randrange(4)}",
                "System.TeamProject": "P",
                "System.IterationPath": f"P\\Sprint {rng.randrange(8)}",
                "System.WorkItemType": "Task",
                "System.State": "Active",
                "System.Reason": "Implementation started",
                "System.CreatedDate": created,
                "System.CreatedBy": rng.randrange(100),
                "System.ChangedDate": created,
                "System.ChangedBy": rng.randrange(100),
                "System.CommentCount": 0,
                "System.Title": f"Fix item {rng.randrange(1000)}",
                "Microsoft.VSTS.Common.Priority": rng.randrange(1, 5),
                "Microsoft.VSTS.Common.StateChangeDate": created,
                "System.AssignedTo": rng.randrange(100),
            }
        counts = {"work items": len(items)}
    else:
        counts = {}
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb(), "counts": counts}


def _measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.emulator_generate", "--child", kind]
    command += ["--projects", str(args.projects), "--repos", str(args.repos), "--workitems", str(args.workitems)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--repos", type=int, default=2000)
    parser.add_argument("--workitems", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small smoke-test size")
    parser.add_argument("--child", choices=["generate", "dicts", "import"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.projects, args.repos, args.workitems)))
        return
    if args.quick:
        args.projects, args.repos, args.workitems, args.runs = 5, 100, 5_000, 1
    print(
        f"generate: projects={args.projects} repos={args.repos} workitems={args.workitems} seed=7, "
        f"{args.runs} run(s), each in a fresh interpreter"
    )
    runs: dict[str, list[dict[str, Any]]] = {"generate": [], "dicts": [], "import": []}
    for _ in range(args.runs):  # interleaved, so a noisy moment hits both
        for kind in runs:
            runs[kind].append(_measure(kind, args))
    floor = median([r["peak_mb"] for r in runs["import"]])
    seconds = {kind: median([r["seconds"] for r in results]) for kind, results in runs.items() if kind != "import"}
    peak = {kind: median([r["peak_mb"] for r in results]) for kind, results in runs.items() if kind != "import"}
    print(f"  generated: {runs['generate'][0]['counts']}")
    print(f"  interpreter + import: {floor:,.0f} MB peak RSS")
    for kind, label in (("generate", "generate_org"), ("dicts", "plain dicts (baseline)")):
        extra = peak[kind] - floor
        print(f"  {label:24} {seconds[kind]:7.2f} s   peak RSS {peak[kind]:7,.0f} MB   (+{extra:,.0f} MB over import)")
    print(
        f"  ratio generate / plain dicts: time {ratio(seconds['generate'], seconds['dicts']):.1f}x, "
        f"memory over import {ratio(peak['generate'] - floor, max(peak['dicts'] - floor, 1.0)):.1f}x"
    )
    if args.workitems >= 100_000:
        met = seconds["generate"] <= TARGET_SECONDS and peak["generate"] <= TARGET_MB
        print(f"  target (≤ {TARGET_SECONDS:.0f} s, ≤ {TARGET_MB:,.0f} MB): {'met' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
