"""Incoming-webhook triggers per second on the emulator, against a bare endpoint on the same server.

Each trigger is the full Azure path with runs queued but not executed: the checksum verified
(HMAC-SHA1, constant time), the listening pipeline found, its filter checked, the YAML expanded
with the body bound to ``parameters.WebHook``, the run named and stored. The baseline, in the same
server process and interleaved with the measured rounds, is a route that only reads the body and
answers 200: the HTTP stack's own ceiling. Target: ≥ 1,000 triggers/s.

    python -m bench.trigger [--total 5000] [--concurrency 8] [--rounds 3] [--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from bench.common import hammer, latency_text, load_args, load_parser, median, ratio, raw_request
from bench.emulator_process import serve_emulator_app, stop_server, wait_until_up
from tests.support.pipelines import SEED_WEBHOOK_RESOURCES

from kiosk.core.signing import sign_azure_checksum

if TYPE_CHECKING:
    from fastapi import FastAPI

SECRET = "bench-secret"  # a benchmark's throwaway key
PAT = "bench-pat"  # the bench org's personal access token (the runs list needs it; the trigger does not)
BARE = "/_bench/_apis/public/bare"  # under the public prefix: like the trigger, no PAT check
BODY = b'{"resource":{"message":{"title":"Hello, world!","subtitle":"I\'m using WebHooks!"},"id":"%d"}}'

PIPELINE = (
    "name: bench-$(Rev:r)\n"
    + SEED_WEBHOOK_RESOURCES
    + """\
variables:
  region: westeurope
steps:
- checkout: none
- script: echo ${{ parameters.WebHook.resource.message.title }} in ${{ variables.region }}
  displayName: ${{ upper(parameters.WebHook.resource.message.subtitle) }}
- ${{ if eq(parameters.WebHook.resource.message.title, 'Hello, world!') }}:
  - script: echo greeting
"""
)

CONFIG = """\
settings: {executeRuns: false, retainRuns: 1000000, retainTriggers: 1000}
orgs:
  - name: bench
    personalAccessTokens: [{env: BENCH_PAT}]
    projects:
      - name: bench
        connections:
          - name: IncomingWH
            webhookName: IncomingWH
            secret: {env: BENCH_WEBHOOK_SECRET}
            header: X-WH-Checksum
        pipelines:
          - name: hello
            repository: .
            path: azure-pipelines.yml
"""


def app_factory() -> FastAPI:
    """The emulator from ``BENCH_EMULATOR_CONFIG``, plus the bare baseline route."""
    from fastapi import Request
    from starlette.responses import Response

    from kiosk.emulator.bootstrap import build_emulator
    from kiosk.emulator.config import load_emulator_config
    from kiosk.runtime.tuning import tune_for_server

    config = Path(os.environ["BENCH_EMULATOR_CONFIG"])
    server = build_emulator(
        load_emulator_config(config), config_dir=config.parent, base_url=os.environ["BENCH_BASE_URL"]
    )

    @server.app.post(BARE)
    async def bare(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)

    tune_for_server()
    return server.app


def main(argv: list[str] | None = None) -> int:
    args = load_args(load_parser(__doc__.splitlines()[0] if __doc__ else None, total=5000), argv)

    from tests.support.servers import free_port

    with tempfile.TemporaryDirectory(prefix="kiosk-bench-trigger-") as tmp:
        base = Path(tmp)
        (base / "azure-pipelines.yml").write_text(PIPELINE)
        (base / "emulator.yaml").write_text(CONFIG)
        port = free_port()
        env = {
            **os.environ,
            "BENCH_EMULATOR_CONFIG": str(base / "emulator.yaml"),
            "KIOSK_HOME": str(base / "home"),  # the emulator's work directory goes under it
            "BENCH_BASE_URL": f"http://127.0.0.1:{port}",
            "BENCH_WEBHOOK_SECRET": SECRET,
            "BENCH_PAT": PAT,
        }
        process = serve_emulator_app("bench.trigger:app_factory", port, env)
        try:
            wait_until_up(port, process, "/_emulator/healthz")
            path = "/bench/_apis/public/distributedtask/webhooks/IncomingWH?api-version=6.0-preview"
            triggers = []
            bare = []
            for i in range(64):  # distinct bodies, each correctly signed (minified bytes)
                body = BODY % i
                headers = {"Content-Type": "application/json", "X-WH-Checksum": sign_azure_checksum(SECRET, body)}
                triggers.append(raw_request("POST", path, body, headers))
                bare.append(raw_request("POST", BARE, body, headers))
            hammer(port, triggers, total=200, concurrency=args.concurrency)  # warm-up (also fills caches)
            hammer(port, bare, total=200, concurrency=args.concurrency)
            trigger_rates, bare_rates, trigger_lat, bare_lat = [], [], [], []
            for _ in range(args.rounds):
                rate, lat, statuses = hammer(port, triggers, total=args.total, concurrency=args.concurrency)
                if set(statuses) != {200}:
                    raise RuntimeError(f"trigger answers: {statuses}")
                trigger_rates.append(rate)
                trigger_lat += lat
                rate, lat, statuses = hammer(port, bare, total=args.total, concurrency=args.concurrency)
                bare_rates.append(rate)
                bare_lat += lat
            runs_url = f"http://127.0.0.1:{port}/bench/bench/_apis/pipelines/1/runs?api-version=7.1"
            runs = httpx.get(runs_url, timeout=60, auth=("", PAT))
            queued = runs.json()["count"]
        finally:
            stop_server(process)
    expected = 200 + args.total * args.rounds
    t, b = median(trigger_rates), median(bare_rates)
    print(f"{args.rounds} round(s) of {args.total} at {args.concurrency} connections; runs queued {queued}/{expected}")

    print(
        f"trigger {t:,.0f}/s ({latency_text(trigger_lat)}) vs bare endpoint {b:,.0f}/s ({latency_text(bare_lat)}):"
        f" ratio {ratio(t, b):.2f}"
    )
    verdict = "met" if t >= 1000 else "NOT met"
    print(f"target >= 1,000 triggers/s: {verdict}")
    if queued != expected:
        print(f"ERROR: {expected} triggers accepted but {queued} runs queued", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
