"""The bounded jq engine over real worker processes: results, the time and memory limits, recovery,
the bounded pool, async callers, and workers that never outlive their pool."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.polling import wait_for

from kiosk.core import jq_engine
from kiosk.core.jq_compile import Deferred, compile_program
from kiosk.core.jq_engine import (
    JqError,
    JqLimits,
    JqPool,
    JqResult,
    JqStopped,
    JqUnavailable,
    answer_in_process,
    shorten,
)

#: Stopped by the time limit (the issue's reproduction; it froze the server for 45 s in-process).
SLOW = "[range(1e8)] | length"
#: Stopped by the memory limit: a string doubling until it passes a gigabyte.
HUNGRY = '"x" | until(length > 1e9; . + .) | length'
#: Plenty of memory, so that the slow program meets the time limit first.
ROOMY = 4096


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: it holds no memory and runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def pool() -> Iterator[JqPool]:
    """Two workers, a 0.5 s time limit, memory enough that time is what stops SLOW."""
    pool = JqPool(JqLimits(timeout_seconds=0.5, memory_mib=ROOMY, workers=2, wait_seconds=10))
    try:
        yield pool
    finally:
        pids = pool.processes()
        pool.close()
        assert pool.processes() == []
        assert all(gone(pid) for pid in pids)


def test_results_are_each_programs_first_output(pool: JqPool) -> None:
    data = {"a": 1, "b": [1, 2, 3], "s": "x"}
    assert pool.first(".a + 1", data) == 2
    assert pool.first(".b[]", data) == 1  # the first result, as Port takes it
    assert pool.first("empty", data) is None
    assert pool.first("range(1e12)", data) == 0  # generators stop after their first result
    assert pool.first_each([".s", ".b | length", "{x: .a}"], data) == [
        JqResult("x"),
        JqResult(3),
        JqResult({"x": 1}),
    ]
    assert [r.value for r in pool.first_for_each(". * 2", [1, 2, 3])] == [2, 4, 6]
    # Any pairs, in the order asked: (program, input)
    assert [r.value for r in pool.evaluate([". + 1", ". * 10"], [1, 2], pairs=[(1, 0), (0, 1), (1, 1)])] == [10, 3, 20]


def test_a_program_that_fails_fails_only_its_own_evaluation(pool: JqPool) -> None:
    results = pool.first_for_each(".a.b", [{"a": {"b": 1}}, {"a": "text"}, {"a": None}])
    assert results[0] == JqResult(1) and results[2] == JqResult(None)
    assert results[1].error is not None and "Cannot index string" in results[1].error
    with pytest.raises(JqError, match="boom"):
        pool.first('error("boom")', None)
    with pytest.raises(JqError, match="Cannot index"):
        results[1].unwrap()
    assert isinstance(JqError("x"), ValueError)  # callers written for the jq bindings keep working


def test_a_program_over_the_time_limit_is_stopped_with_its_name_and_the_limit(pool: JqPool) -> None:
    with pytest.raises(JqStopped) as caught:
        pool.first(SLOW, None)
    assert caught.value.limit == "time"
    assert caught.value.expression == SLOW
    assert str(caught.value) == f"jq program {SLOW!r} exceeded the time limit of 0.5 s (jq.timeoutSeconds)"
    # The pool recovers: the next program runs on a fresh worker.
    assert pool.first(".a", {"a": "fine"}) == "fine"


def test_a_program_over_the_memory_limit_is_stopped_with_its_name_and_the_limit() -> None:
    pool = JqPool(JqLimits(timeout_seconds=60, memory_mib=64, workers=1))
    try:
        for hungry in (HUNGRY, "[range(1e9)] | length"):
            with pytest.raises(JqStopped) as caught:
                pool.first(hungry, None)
            assert caught.value.limit == "memory"
            assert str(caught.value) == f"jq program {hungry!r} exceeded the memory limit of 64 MiB (jq.memoryMiB)"
            assert pool.first("[range(10)] | add", None) == 45  # and the pool recovers
    finally:
        pool.close()


def test_a_result_too_large_to_hand_back_is_stopped_by_the_memory_limit() -> None:
    """jq makes the string within the limit; turning it into the answer does not fit (a Python
    MemoryError in the worker, which answers so and exits)."""
    pool = JqPool(JqLimits(timeout_seconds=60, memory_mib=128, workers=1))
    try:
        for _ in range(2):
            with pytest.raises(JqStopped) as caught:
                pool.first('"x" * 40000000', None)
            assert caught.value.limit == "memory"
        assert len(pool.first('"x" * 1000000', None)) == 1_000_000
    finally:
        pool.close()


def test_a_batch_names_the_program_that_hit_the_limit(pool: JqPool) -> None:
    with pytest.raises(JqStopped) as caught:
        pool.evaluate([".a", "if .slow then " + SLOW + " else 0 end"], [{"a": 1}, {"a": 2, "slow": True}])
    assert caught.value.expression == "if .slow then " + SLOW + " else 0 end"


def test_the_time_limit_is_per_evaluation_not_per_batch() -> None:
    """A batch of many quick evaluations may take longer than the limit in all: each is bounded."""
    pool = JqPool(JqLimits(timeout_seconds=1, memory_mib=ROOMY, workers=1))
    program = "[range(.)] | length"
    try:
        started = time.monotonic()
        pool.first_for_each(program, [2000] * 50)
        each = (time.monotonic() - started) / 50
        count = min(100_000, int(3 / each) + 1)  # about three times the limit in all, on this machine
        started = time.monotonic()
        results = pool.first_for_each(program, [2000] * count)
        took = time.monotonic() - started
        assert [r.value for r in results] == [2000] * count
        assert took > 1  # the batch did outlast the limit (else this test proves nothing)
    finally:
        pool.close()


def slow_in_thread(pool: JqPool) -> tuple[threading.Thread, list[BaseException], threading.Event]:
    """Start :data:`SLOW` on ``pool`` in a thread, holding one worker: the thread, what the
    evaluation raised (it never ends by itself), and an event set once the thread is done."""
    raised: list[BaseException] = []
    done = threading.Event()

    def slow() -> None:
        try:
            pool.first(SLOW, None)
        except BaseException as exc:
            raised.append(exc)
        done.set()

    thread = threading.Thread(target=slow)
    thread.start()
    return thread, raised, done


def test_callers_wait_for_a_free_worker_and_then_get_a_clear_error() -> None:
    pool = JqPool(JqLimits(timeout_seconds=5, memory_mib=ROOMY, workers=1, wait_seconds=0.2))
    thread, outcome, _ = slow_in_thread(pool)
    try:
        wait_for(lambda: pool.idle() == 0, timeout=30)
        with pytest.raises(JqUnavailable, match=r"every jq worker stayed busy for 0.2 s \(jq.workers: 1"):
            pool.first("[1] | add", None)  # add: not compiled, so a worker must take it
        pool.close()  # stops the hog's worker too
        thread.join()
        assert len(outcome) == 1 and isinstance(outcome[0], JqUnavailable)
        assert pool.first("[1, 1] | add", None) == 2  # a closed pool starts workers again when used
    finally:
        pool.close()
        thread.join()


def test_two_workers_run_two_programs_at_once(pool: JqPool) -> None:
    """While one worker is stuck in a slow program, the other keeps answering."""
    thread, errors, done = slow_in_thread(pool)
    wait_for(lambda: pool.idle() == 1, timeout=30)
    answered = [pool.first(".", n) for n in range(20)]
    finished_first = not done.is_set()
    thread.join()
    assert answered == list(range(20))
    assert finished_first  # all twenty answered while the slow program still ran
    assert len(errors) == 1 and isinstance(errors[0], JqStopped)


def test_async_callers_never_block_the_event_loop(pool: JqPool) -> None:
    async def scenario() -> tuple[int, BaseException | None]:
        ticks = 0
        stopped = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stopped.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        ticking = asyncio.create_task(ticker())
        error: BaseException | None = None
        try:
            await pool.evaluate_async([SLOW], [None])
        except JqStopped as exc:
            error = exc
        ticked_meanwhile = ticks
        stopped.set()
        await ticking
        return ticked_meanwhile, error

    ticks, error = asyncio.run(scenario())
    assert isinstance(error, JqStopped) and error.limit == "time"
    assert ticks > 5  # the loop kept running while the program did


def test_inputs_jq_cannot_read_are_an_error_not_a_crash(pool: JqPool) -> None:
    with pytest.raises(JqError, match="cannot be given to jq"):
        pool.first(".", {"when": object()})
    assert pool.first(".", 2**70) == 2**70  # past orjson's 64 bits: Python's json carries it


def test_the_worker_holds_none_of_the_servers_environment(pool: JqPool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_TEST_WORKER_SECRET", "do-not-pass")
    pool.close()  # workers start again, after the variable was set
    assert pool.first("1", None) == 1
    for pid in pool.processes():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert [e.split(b"=")[0] for e in environ if e] == [b"PYTHONPATH"]


def test_messages_quote_a_shortened_program() -> None:
    long = ".a | " * 40 + "."
    assert len(shorten(long)) == 80 and shorten(long).endswith("…")
    assert shorten("  .a\n  | .b  ") == ".a | .b"
    assert "…" in str(JqStopped(long, "time", JqLimits()))


def test_workers_end_with_the_interpreter_that_started_them(tmp_path: Path) -> None:
    """At exit (atexit closes every pool); when the parent dies without cleaning up, an idle worker
    reads the end of its stdin, and a busy one is stopped by its CPU-time backstop (RLIMIT_CPU:
    the time limit plus 2 s), since nobody is left to kill it at the deadline."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, threading, time\n"
        "from kiosk.core.jq_engine import JqLimits, JqPool\n"
        "pool = JqPool(JqLimits(timeout_seconds=1, workers=1))\n"
        "assert pool.first('[1] | add', None) == 1\n"
        "print(pool.processes()[0], flush=True)\n"
        "if sys.argv[1] == 'die-busy':\n"
        "    spin = 'reduce range(1e12) as $i (0; . + 1)'  # time, no memory\n"
        "    threading.Thread(target=pool.first, args=(spin, None), daemon=True).start()\n"
        "    while pool.idle():\n"
        "        time.sleep(0.001)\n"
        "    time.sleep(0.3)  # the request is in the worker's hands, well before the 1 s deadline\n"
        "if sys.argv[1].startswith('die'):\n"
        "    os._exit(0)\n"
    )
    for how in ("exit", "die", "die-busy"):
        out = subprocess.run([sys.executable, str(script), how], capture_output=True, text=True, check=True)
        pid = int(out.stdout.strip())
        wait_for(lambda pid=pid: gone(pid), timeout=60)  # type: ignore[misc]


def test_the_process_engine_follows_configure_and_shutdown() -> None:
    try:
        first = jq_engine.configure(JqLimits(timeout_seconds=0.25))
        assert jq_engine.engine() is first and jq_engine.configure(JqLimits(timeout_seconds=0.25)) is first
        assert jq_engine.first(".x", {"x": 3}) == 3
        pids = first.processes()
        jq_engine.shutdown()
        assert first.processes() == [] and all(gone(pid) for pid in pids)
        second = jq_engine.configure(JqLimits())
        assert second is not first and second.limits == JqLimits()
    finally:
        jq_engine.configure(JqLimits())
        jq_engine.shutdown()


def test_a_worker_that_cannot_start_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = JqPool(JqLimits(workers=1))
    monkeypatch.setattr(sys, "executable", os.path.join(os.sep, "nonexistent", "python"))
    try:
        with pytest.raises(JqUnavailable, match="could not be started"):
            pool.first("[1] | add", None)  # add: not compiled, so a worker must take it
    finally:
        pool.close()


def test_a_compiled_program_answers_in_process_or_defers_to_jq() -> None:
    assert answer_in_process(compile_program(".a + 1").first, {"a": 1}) == JqResult(2)
    # jq's runtime error, as the worker reports it: its first line.
    assert answer_in_process(compile_program(".a + 1").first, {"a": {}}) == JqResult(
        error="object ({}) and number (1) cannot be added"
    )

    def defers(value: object) -> object:
        raise Deferred

    assert answer_in_process(defers, {"a": 1}) is None  # a worker judges this input
