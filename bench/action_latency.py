"""Latency of an action run: ``POST /v1/actions/{id}/runs`` until its signed webhook arrives.

kiosk runs in its own process (uvicorn, one worker, ``tests/support/kiosk_server.py``) with a kiosk.yaml
holding a WEBHOOK action whose target is a receiver in this process (an ASGI app under uvicorn in
a thread, on loopback). The receiver takes the time a request has fully arrived, then checks its
Standard Webhooks signature (a request that does not verify stops the bench). Runs are posted one
at a time after a warm-up, each once the previous one has arrived and the server has gone idle
again (``--gap``); the figure is the time from just before the POST to the webhook's arrival.

Baseline, interleaved with the measured runs: a bare httpx POST of the very body kiosk delivers,
from this process straight to the same receiver (POST start to arrival). Printed: median and p95
of both, their ratio, the POST's own answer time (201), and the verdict on the target: median
≤ 10 ms.

``--profile`` runs an instrumented server instead (``profiled_app_factory``): it stamps, with the
machine-wide monotonic clock ``time.perf_counter`` shares between processes, when the POST
reaches the ASGI app, when ``Runs.start_run`` begins and ends, when the worker is notified (after
the commit), when the dispatcher's claim transaction begins and ends, when the HTTP send begins,
and when the 201 leaves, and prints the median of each step. ``--cprofile`` adds cProfile's top
functions of ``start_run`` (cProfile slows what it watches, so those step figures run high). The
instrumentation costs a little itself, so the totals run slightly above the plain figures.

    python -m bench.action_latency [--engine sqlite|postgres|both] [--samples 200] [--quick] [--template]
                                  [--profile|--cprofile]
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from bench.common import Databases, base_parser, median, percentile, ratio, selected_engines
from tests.support.kiosk_server import KioskServer, prepare_database
from tests.support.kiosk_yaml import kiosk_yaml, self_service_action
from tests.support.receiver import answer_lifespan, read_body, request_headers, signed_by
from tests.support.servers import serving

SECRET = "bench-action-latency-secret"  # a benchmark's throwaway key
SECRET_ENV = "KIOSK_BENCH_SIGNING_SECRET"
TARGET_MS = 10.0
WARMUP = 20

#: ``--template``: a body of four jq templates, so each run also pays for user jq: three plain
#: paths (evaluated in place, ``kiosk.core.jq_paths``) and one filter, which takes a round trip to
#: kiosk's bounded jq worker processes (``kiosk.core.jq_engine``). It keeps ``context.runId``,
#: which the receiver keys arrivals by.
TEMPLATE_BODY = {
    "context": {"runId": "{{ .run.id }}"},
    "deploy": {
        "environment": "{{ .inputs.environment | ascii_upcase }}",
        "version": "{{ .inputs.version }}",
        "service": "{{ .entity.identifier }}",
    },
}


def kiosk_config(url: str, *, template: bool) -> str:
    """kiosk.yaml: the ``deploy`` action delivering to ``url``/hook, signed with the key in ``SECRET_ENV``;
    with ``template``, its body is ``TEMPLATE_BODY``."""
    invocation: dict[str, Any] = {"type": "WEBHOOK", "url": f"{url}/hook"}
    if template:
        invocation["body"] = TEMPLATE_BODY
    return kiosk_yaml(
        egress={"allowLoopback": True},
        delivery={"signingSecret": {"env": SECRET_ENV}},
        blueprints=[{"identifier": "service", "schema": {"properties": {"tier": {"type": "string"}}}}],
        entities=[{"blueprint": "service", "identifier": "billing", "properties": {"tier": "gold"}}],
        actions=[
            self_service_action(
                "deploy",
                title="Deploy service",
                inputs={"environment": {"type": "string", "enum": ["dev", "prod"]}, "version": {"type": "string"}},
                required=["environment"],
                invocation=invocation,
            )
        ],
    )


RUN_BODY = orjson.dumps({"entity": "billing", "properties": {"environment": "prod", "version": "2.3.1"}})


# -- the instrumented server (--profile), built by uvicorn in kiosk's process ---------------------

_MARKS: list[tuple[str, float]] = []
_PROFILE = cProfile.Profile()


def _mark(name: str) -> None:
    _MARKS.append((name, time.perf_counter()))


def _timed(name: str, fn: Callable[..., Any], *, profile: bool = False) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        _mark(name + ">")
        if profile:
            _PROFILE.enable()
        try:
            return fn(*args, **kwargs)
        finally:
            if profile:
                _PROFILE.disable()
            _mark(name + "<")

    return timed


def profiled_app_factory() -> Any:
    """kiosk's app with timestamps at each step of a run (see the module's docstring); with
    ``KIOSK_BENCH_CPROFILE`` set, ``Runs.start_run`` also runs under cProfile."""
    from tests.support.kiosk_server import app_factory

    import kiosk.delivery.worker as worker_module
    from kiosk.web.responses import FastJSONResponse

    app = app_factory()
    runs, worker = app.state.runs, app.state.delivery_worker
    runs.start_run = _timed("start_run", runs.start_run, profile=bool(os.environ.get("KIOSK_BENCH_CPROFILE")))
    runs.notify = _timed("notify", runs.notify)
    worker._cycle = _timed("cycle", worker._cycle)
    worker_module.send = _timed("send", worker_module.send)  # type: ignore[attr-defined]

    @app.get("/_bench/marks")
    async def marks() -> FastJSONResponse:
        taken = list(_MARKS)
        _MARKS.clear()
        return FastJSONResponse(taken)

    @app.get("/_bench/profile")
    async def profile() -> FastJSONResponse:
        out = io.StringIO()
        pstats.Stats(_PROFILE, stream=out).sort_stats("cumulative").print_stats(35)
        return FastJSONResponse({"text": out.getvalue()})

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/runs"):
            await app(scope, receive, send)
            return
        _mark("asgi>")

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                _mark("respond")
            await send(message)

        await app(scope, receive, sending)

    return asgi


#: (label, from mark, to mark): the steps of one run, in order. "post" is the client's start,
#: "arrived" the receiver's; the others are the server's first mark of that name after the POST.
STEPS = (
    ("client -> ASGI app", "post", "asgi>"),
    ("ASGI app -> start_run (auth, body, threadpool)", "asgi>", "start_run>"),
    ("start_run -> committed + notify", "start_run>", "notify>"),
    ("notify -> claim transaction begins", "notify>", "cycle>"),
    ("claim transaction", "cycle>", "cycle<"),
    ("claimed -> send begins (pool hop)", "cycle<", "send>"),
    ("send begins -> arrived (sign, HTTP)", "send>", "arrived"),
    ("notify -> start_run returns (get_run)", "notify<", "start_run<"),
    ("start_run returns -> 201 leaves", "start_run<", "respond"),
)


# -- the receiver ---------------------------------------------------------------------------------


class Arrivals:
    """Arrival times (``time.perf_counter``) by key: a run id for kiosk's webhooks, ``x-bench-key`` for the baseline."""

    def __init__(self) -> None:
        self._times: dict[str, float] = {}
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.bad_signatures = 0
        self.last_body: bytes = b""

    def _event(self, key: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(key, threading.Event())

    def arrived(self, key: str, at: float) -> None:
        with self._lock:
            self._times[key] = at
        self._event(key).set()

    def wait(self, key: str, timeout: float = 30.0) -> float:
        if not self._event(key).wait(timeout):
            raise RuntimeError(f"{key} did not arrive within {timeout:.0f}s")
        with self._lock:
            self._events.pop(key, None)
            return self._times.pop(key)


def receiver_app(arrivals: Arrivals) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await answer_lifespan(scope, receive, send):
            return
        body = await read_body(receive)
        at = time.perf_counter()  # the whole request is here
        headers = request_headers(scope)
        if scope["path"] == "/hook":
            verified = signed_by(SECRET, body, headers)
            if not verified:
                arrivals.bad_signatures += 1
            arrivals.last_body = body
            key = str(orjson.loads(body)["context"]["runId"])
        else:
            key = headers.get("x-bench-key", "")
        arrivals.arrived(key, at)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


# -- one engine -----------------------------------------------------------------------------------


@dataclass
class Figures:
    engine: str
    kiosk: list[float]  # POST start -> webhook arrival, seconds
    answered: list[float]  # POST start -> 201 received
    baseline: list[float]  # bare POST start -> arrival
    steps: dict[str, list[float]]  # --profile: seconds per step (STEPS)
    profile: str = ""


@contextmanager
def kiosk_for(
    databases: Databases, receiver_url: str, *, profiled: bool, cprofiled: bool, template: bool = False
) -> Iterator[KioskServer]:
    home = databases.home()
    config = home / "kiosk.yaml"
    config.write_text(kiosk_config(receiver_url, template=template))
    url = databases.fresh()
    factory = "bench.action_latency:profiled_app_factory" if profiled else "tests.support.kiosk_server:app_factory"
    env = {SECRET_ENV: SECRET, **({"KIOSK_BENCH_CPROFILE": "1"} if cprofiled else {})}
    server = KioskServer(home / "server", url, config, prepare_database(url), env=env, factory=factory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def kiosk_sample(server: KioskServer, arrivals: Arrivals) -> tuple[float, float, float]:
    """(POST started, 201 received, webhook arrived), ``time.perf_counter`` values."""
    headers = {"Content-Type": "application/json"}
    started = time.perf_counter()
    response = server.client.post("/v1/actions/deploy/runs", content=RUN_BODY, headers=headers)
    answered = time.perf_counter()
    if response.status_code != 201:
        raise RuntimeError(f"POST run -> {response.status_code}: {response.text[:500]}")
    run_id = str(response.json()["run"]["id"])
    return started, answered, arrivals.wait(run_id)


def baseline_sample(client: httpx.Client, url: str, body: bytes, arrivals: Arrivals, n: int) -> float:
    key = f"bare-{n}"
    started = time.perf_counter()
    response = client.post(url, content=body, headers={"Content-Type": "application/json", "x-bench-key": key})
    if response.status_code != 200:
        raise RuntimeError(f"receiver answered {response.status_code}")
    return arrivals.wait(key) - started


def steps_of(marks: list[tuple[str, float]], started: float, arrived: float) -> dict[str, float]:
    """Seconds per step of one run, from the server's marks taken since the previous run."""
    first: dict[str, float] = {"post": started, "arrived": arrived}
    for name, at in marks:
        if at >= started and name not in first:
            first[name] = at
    return {label: first[b] - first[a] for label, a, b in STEPS if a in first and b in first}


def measure(
    engine: str, samples: int, gap: float, *, profiled: bool = False, cprofiled: bool = False, template: bool = False
) -> Figures:
    arrivals = Arrivals()
    figures = Figures(engine, [], [], [], {label: [] for label, _, _ in STEPS})
    with (
        serving(receiver_app(arrivals)) as receiver_url,
        Databases(engine) as databases,
        kiosk_for(databases, receiver_url, profiled=profiled, cprofiled=cprofiled, template=template) as server,
        httpx.Client(trust_env=False) as bare,
    ):
        for _ in range(WARMUP):
            kiosk_sample(server, arrivals)
            time.sleep(gap)
        body = arrivals.last_body  # what kiosk delivers, byte for byte
        for n in range(WARMUP):
            baseline_sample(bare, f"{receiver_url}/bare", body, arrivals, -1 - n)
        if profiled:
            server.client.get("/_bench/marks")
        for n in range(samples):
            started, answered, arrived = kiosk_sample(server, arrivals)
            figures.kiosk.append(arrived - started)
            figures.answered.append(answered - started)
            time.sleep(gap)
            if profiled:
                marks = [(str(m), float(t)) for m, t in server.client.get("/_bench/marks").json()]
                for label, seconds in steps_of(marks, started, arrived).items():
                    figures.steps[label].append(seconds)
            figures.baseline.append(baseline_sample(bare, f"{receiver_url}/bare", body, arrivals, n))
            time.sleep(gap)
        if cprofiled:
            figures.profile = str(server.client.get("/_bench/profile").json()["text"])
    if arrivals.bad_signatures:
        raise RuntimeError(f"{arrivals.bad_signatures} webhook(s) arrived with a signature that does not verify")
    return figures


def _ms(values: list[float], p: float) -> float:
    return percentile(values, p) * 1000.0


def summarise(f: Figures) -> str:
    k50, k95 = median(f.kiosk) * 1000, _ms(f.kiosk, 95)
    b50, b95 = median(f.baseline) * 1000, _ms(f.baseline, 95)
    a50, a95 = median(f.answered) * 1000, _ms(f.answered, 95)
    lines = [
        f"{f.engine}: {len(f.kiosk)} runs, one at a time",
        f"{f.engine}: POST run -> signed webhook arrives: median {k50:.2f} ms, p95 {k95:.2f} ms",
        f"{f.engine}: POST run -> 201 answered:          median {a50:.2f} ms, p95 {a95:.2f} ms",
        f"{f.engine}: bare httpx POST -> arrives:        median {b50:.2f} ms, p95 {b95:.2f} ms",
        f"{f.engine}: ratio kiosk / bare (medians) {ratio(k50, b50):.1f}; "
        f"target median <= {TARGET_MS:g} ms: {'met' if k50 <= TARGET_MS else 'NOT met'}",
    ]
    if any(f.steps.values()):
        lines.append(f"{f.engine}: where the time goes (median of each step, ms; instrumented server):")
        for label, values in f.steps.items():
            if values:
                lines.append(f"  {label:<48} {median(values) * 1000:7.2f}  (p95 {_ms(values, 95):.2f})")
    if f.profile:
        lines.append(f"{f.engine}: cProfile of Runs.start_run over all runs, warm-up included:\n{f.profile}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=200, help="measured runs (and as many bare POSTs)")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds of idle between requests")
    parser.add_argument("--profile", action="store_true", help="instrument the server: where the time goes")
    parser.add_argument("--cprofile", action="store_true", help="--profile, and cProfile Runs.start_run")
    parser.add_argument("--template", action="store_true", help="the action's body is four jq templates")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples = 30
    for engine in selected_engines(args.engine):
        figures = measure(
            engine,
            args.samples,
            args.gap,
            profiled=args.profile or args.cprofile,
            cprofiled=args.cprofile,
            template=args.template,
        )
        print(summarise(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
