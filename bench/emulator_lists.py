"""List endpoints of the emulator's organisation through real HTTP, against a bare endpoint on the same server.

The issue's target: ≥ 2,000 requests/s with a keep-alive client for each of

- *work items by ids*: ``GET {org}/{p}/_apis/wit/workitems?ids=…`` with 100 ids (pages of a
  20,000-item org, each request a different page);
- *repositories*: ``GET {org}/{p}/_apis/git/repositories`` (a project's, unpaged, as Azure lists them);
- *builds*: ``GET {org}/{p}/_apis/build/builds?$top=100`` (the first page and the pages after it,
  by continuation token).

The server is the emulator as ``kiosk emulator --generate projects=10,repos=200,workitems=20000``
runs it (one process, kiosk's uvicorn, loopback; ``executeRuns: false``), with its PAT check,
throttling and fault switches (off) in place. Baselines, interleaved with the measured rounds in the
same server: a bare route added only in this app factory under the same org prefix (so it passes
the same PAT check and middleware; first in the routing table) that answers a fixed small JSON —
the stack's own ceiling — and the same route answering a fixed JSON as large as the endpoint's own
answers (``?size=N``): what moving those bytes costs the stack, so the second ratio is the route's
own work. The client is :func:`bench.common.hammer` (prepared keep-alive HTTP/1.1 bytes, status
and Content-Length only); its own ceiling is measured against a plain asyncio server in another
process that answers the largest page's bytes with no framework at all. Medians of the rounds.

    python -m bench.emulator_lists [--total 4000] [--concurrency 8] [--rounds 3] [--quick]
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from bench.common import hammer, latency_text, load_args, load_parser, median, ratio, raw_request
from bench.emulator_org import bench_org_config
from bench.emulator_process import serve_emulator_app, stop_server, wait_until_up

if TYPE_CHECKING:
    from fastapi import FastAPI

PAT = "bench-pat"  # the bench org's personal access token (a benchmark's throwaway value)
BARE = "/bench/_apis/benchbare"  # under the org: the PAT check and middleware apply, as to the lists
TARGET = 2000.0

FIXED_SERVER = """
import asyncio, sys
port, path = int(sys.argv[1]), sys.argv[2]
body = open(path, "rb").read()
answer = b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: %d\\r\\n\\r\\n" % len(body) + body

async def serve(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(answer)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""
"""The client's ceiling: a server that does nothing but write one fixed answer per request."""


def app_factory() -> FastAPI:
    """The emulator from ``BENCH_EMULATOR_CONFIG``, plus the bare baseline route."""
    from starlette.responses import Response

    from kiosk.emulator.bootstrap import build_emulator
    from kiosk.emulator.config import load_emulator_config
    from kiosk.runtime.tuning import tune_for_server
    from kiosk.web.responses import FastJSONResponse

    config = Path(os.environ["BENCH_EMULATOR_CONFIG"])
    server = build_emulator(
        load_emulator_config(config), config_dir=config.parent, base_url=os.environ["BENCH_BASE_URL"]
    )

    padded: dict[int, bytes] = {}

    @server.app.get(BARE)
    async def bare(size: int = 0) -> Response:
        """A fixed small JSON; with ``size``, a fixed JSON of that many bytes (made once per size)."""
        if size <= 0:
            return FastJSONResponse({"count": 1, "value": [{"id": 1, "name": "bare"}]})
        body = padded.get(size)
        if body is None:
            body = padded[size] = b'{"count":0,"value":[],"pad":"%b"}' % (b"x" * max(0, min(size, 10_000_000) - 30))
        return Response(body, media_type="application/json")

    # First in the routing table: the baseline is the stack without the linear route lookup that the
    # emulator's ~180 routes cost a route registered late (the lists pay their own position).
    server.app.router.routes.insert(0, server.app.router.routes.pop())
    tune_for_server()
    return server.app


def _get(path: str) -> bytes:
    auth = base64.b64encode(f":{PAT}".encode()).decode()
    return raw_request("GET", path, headers={"Authorization": f"Basic {auth}", "Accept": "application/json"})


def _requests(port: int) -> dict[str, list[bytes]]:
    """Each endpoint's prepared requests: every page of work items by ids, every builds page, each project's repos."""
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=("", PAT), timeout=120)
    with client:
        projects = client.get("/bench/_apis/projects", params={"$top": 1000}).json()["value"]
        busiest = max(
            projects,
            key=lambda p: client.get(f"/bench/{p['id']}/_apis/build/builds", params={"$top": 1000}).json()["count"],
        )
        project = busiest["id"]
        ids: list[int] = []
        for p in projects:
            query = {"query": f"SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = '{p['name']}'"}
            answer = client.post(f"/bench/{p['id']}/_apis/wit/wiql", params={"api-version": "7.1"}, json=query)
            if answer.status_code == 200 and p["id"] == project:
                ids = [item["id"] for item in answer.json()["workItems"]]
        if not ids:  # no WIQL yet: the ids the generator gives (increasing integers from 1)
            ids = list(range(1, 2001))
        work_items = [
            _get(f"/bench/{project}/_apis/wit/workitems?ids={','.join(map(str, ids[i : i + 100]))}&api-version=7.1")
            for i in range(0, len(ids) - 99, 100)
        ]
        repositories = [_get(f"/bench/{p['id']}/_apis/git/repositories?api-version=7.1") for p in projects]
        builds = []
        token: str | None = None
        while True:
            suffix = f"&continuationToken={token}" if token else ""
            path = f"/bench/{project}/_apis/build/builds?$top=100&api-version=7.1{suffix}"
            builds.append(_get(path))
            token = client.get(path).headers.get("x-ms-continuationtoken")
            if token is None:
                break
    return {"work items by ids (100)": work_items, "repositories": repositories, "builds ($top=100)": builds}


def _answers(port: int, requests: Sequence[bytes]) -> list[bytes]:
    """The bodies of (up to 20 of) ``requests``' answers."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=("", PAT), timeout=120) as client:
        return [
            client.get(request.split(b" ", 2)[1].decode(), headers={"Accept": "application/json"}).content
            for request in requests[:20]
        ]


def main(argv: list[str] | None = None) -> int:
    parser = load_parser(__doc__.splitlines()[0] if __doc__ else None, total=4000)
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--workitems", type=int, default=20000)
    args = load_args(parser, argv)

    from tests.support.servers import free_port

    with tempfile.TemporaryDirectory(prefix="kiosk-bench-lists-") as tmp:
        base = Path(tmp)
        generate = {"projects": args.projects, "repos": args.repos, "workitems": args.workitems, "builds": 10}
        (base / "emulator.yaml").write_text(bench_org_config(generate))
        port = free_port()
        env = {
            **os.environ,
            "BENCH_EMULATOR_CONFIG": str(base / "emulator.yaml"),
            "KIOSK_HOME": str(base / "home"),
            "BENCH_BASE_URL": f"http://127.0.0.1:{port}",
            "BENCH_PAT": PAT,
        }
        server = serve_emulator_app("bench.emulator_lists:app_factory", port, env)
        fixed: subprocess.Popen[bytes] | None = None
        try:
            wait_until_up(port, server, "/_emulator/healthz")
            endpoints = _requests(port)
            bare = [_get(BARE)]
            served: dict[str, list[bytes]] = {}
            sized: dict[str, list[bytes]] = {}
            largest = b""
            for name, requests in endpoints.items():
                _, _, statuses = hammer(port, requests, total=min(200, 4 * len(requests)), concurrency=2)
                if set(statuses) != {200}:
                    print(f"{name}: not measured, the emulator answers {statuses} (route not served yet?)")
                    continue
                served[name] = requests
                answers = _answers(port, requests)
                largest = max([largest, *answers], key=len)
                sized[name] = [_get(f"{BARE}?size={sum(map(len, answers)) // len(answers)}")]
                hammer(port, requests, total=200, concurrency=args.concurrency)  # warm-up
                hammer(port, sized[name], total=200, concurrency=args.concurrency)
            hammer(port, bare, total=200, concurrency=args.concurrency)
            runs = [("bare", bare)] + [
                x for name in served for x in ((name, served[name]), (f"{name} sized", sized[name]))
            ]
            rates: dict[str, list[float]] = {name: [] for name, _ in runs}
            latencies: dict[str, list[float]] = {name: [] for name in rates}
            for _ in range(args.rounds):
                for name, requests in runs:
                    rate, lat, statuses = hammer(port, requests, total=args.total, concurrency=args.concurrency)
                    if set(statuses) != {200}:
                        raise RuntimeError(f"{name} answers: {statuses}")
                    rates[name].append(rate)
                    latencies[name] += lat
            body_file = base / "largest.json"
            body_file.write_bytes(largest or b"{}")
            fixed_port = free_port()
            fixed = subprocess.Popen([sys.executable, "-c", FIXED_SERVER, str(fixed_port), str(body_file)])
            wait_until_up(fixed_port, fixed, "/")
            ceiling = median(
                [
                    hammer(fixed_port, bare, total=args.total, concurrency=args.concurrency)[0]
                    for _ in range(args.rounds)
                ]
            )
        finally:
            stop_server(server)
            if fixed is not None:
                fixed.terminate()
                fixed.wait(timeout=30)
    print(
        f"{args.rounds} round(s) of {args.total} requests per endpoint at {args.concurrency} connections; "
        f"org: projects={args.projects}, repos={args.repos}, workitems={args.workitems}"
    )
    b = median(rates["bare"])
    print(f"bare endpoint {b:,.0f}/s ({latency_text(latencies['bare'])})")
    print(f"client ceiling {ceiling:,.0f}/s (fixed {len(largest):,}-byte answers from a plain asyncio server)")
    missed = len(served) < len(endpoints)
    for name in served:
        value, same_size = median(rates[name]), median(rates[f"{name} sized"])
        size = int(sized[name][0].split(b"size=", 1)[1].split(b" ", 1)[0])
        missed = missed or value < TARGET
        print(
            f"{name} {value:,.0f}/s ({latency_text(latencies[name])}), {size:,} bytes an answer: "
            f"ratio {ratio(value, b):.2f} to the bare endpoint, {ratio(value, same_size):.2f} to the bare "
            f"endpoint answering as many bytes ({same_size:,.0f}/s)"
        )
    print(f"target >= {TARGET:,.0f} requests/s on every list: {'NOT met' if missed else 'met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
