"""User jq, evaluated bounded: a pool of worker processes with a time limit and a memory limit.

Every jq program a user writes — action body templates, automation conditions, generic receivers'
mappings, watch reactions — is evaluated here, never in the server process: libjq holds the GIL
and cannot be interrupted, so one ``[range(1e8)]`` evaluated in-process froze every request,
``/healthz`` included, for 45 s and took 4.3 GB. A :class:`JqPool` keeps a few long-lived workers
(:mod:`kiosk.core.jq_worker`, each a fresh ``python -m`` interpreter, never a fork of the
threaded server) that compile programs behind the same sandbox prelude
(:func:`kiosk.core.jq_sandbox.compile_first`), cache them, and evaluate them under:

* a **time limit** per evaluation (``jq.timeoutSeconds``, 1 s by default): the caller waits on
  the worker's pipe with ``poll`` (the GIL released) and reads the worker's progress block, so it
  knows which evaluation is running and since when; past the limit it kills the worker (a new one
  starts at the next call) and raises :class:`JqStopped` naming the program and the limit;
* a **memory limit** (``jq.memoryMiB``, 256 MiB by default) the worker sets on itself
  (``RLIMIT_DATA``): jq aborts when it cannot allocate, the answer never comes, and the caller
  raises :class:`JqStopped` naming the memory limit.

Only the caller's own thread waits; other requests run on (async callers use
:meth:`JqPool.evaluate_async`, which waits in a worker thread). At most ``jq.workers`` programs
run at once; a caller waits up to ``jq.waitSeconds`` for a free worker, then gets
:class:`JqUnavailable`.

Errors, in three kinds, so each caller can do the right thing:

* :class:`JqError` (a ``ValueError``, like the ``jq`` bindings' own): the program failed on this
  input (``error("…")``, a type error); per evaluation, in its :class:`JqResult`.
* :class:`JqStopped`: a limit stopped the program (or it crashed its worker). Permanent for that
  program and input: the run fails with the reason, the event or reaction is marked failed, and
  nothing retries it.
* :class:`JqUnavailable`: no worker could take the program in time. Transient.

The API is built for batches (:meth:`JqPool.evaluate`: any set of (program, input) pairs in one
round trip): a resync maps thousands of entities through the same few programs, and one round
trip per entity would cost more than jq itself. Every result is the program's **first** output
(``null`` when it has none), as Port and Ocean take it.

Two kinds of program never reach a worker: plain paths (:mod:`kiosk.core.jq_paths`) and
programs in the compiled subset mappings use (:mod:`kiosk.core.jq_compile`: closures, bounded by
construction and by a step budget, checked against libjq by a differential test). Both answer in
place; an input they cannot answer exactly as libjq would goes to a worker like any other pair.

One process-wide engine (:func:`engine`) serves kiosk's call sites, which are plain functions
deep below the app: the app factory sets its limits (:func:`configure`) from ``kiosk.yaml`` and
its lifespan stops the workers (:func:`shutdown`); they start again lazily if used after that,
and every pool's workers are stopped when the interpreter exits.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import math
import mmap
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import orjson

from kiosk.core.jq_compile import CompiledProgram, Deferred, JqRuntimeError, NotCompilable, compile_program
from kiosk.core.jq_paths import NOT_FOLLOWED, follow, simple_path
from kiosk.core.jq_worker import ANSWER, PROGRESS, PROGRESS_SIZE, REQUEST, first_line

__all__ = [
    "JqError",
    "JqLimits",
    "JqPool",
    "JqResult",
    "JqStopped",
    "JqUnavailable",
    "answer_in_process",
    "configure",
    "engine",
    "first",
    "first_each",
    "first_line",
    "shorten",
    "shutdown",
]

#: How long a new worker may take to start (an interpreter and libjq) before it counts as failed.
STARTUP_SECONDS = 15.0
#: How much of a program an error message quotes.
SHOWN_CHARS = 80
_READ_CHUNK = 65536
_STARTING_POLL_MS = 5
_POLL_OUT = select.POLLOUT | select.POLLERR | select.POLLHUP
_POLL_IN = select.POLLIN | select.POLLERR | select.POLLHUP
#: Where the ``kiosk`` package is, for the worker's PYTHONPATH (its environment is otherwise empty).
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class JqLimits:
    """What bounds user jq (kiosk.yaml's ``jq:`` block)."""

    #: Wall-clock seconds one evaluation (one program over one input) may take.
    timeout_seconds: float = 1.0
    #: The worker's data segment (heap and anonymous mappings), interpreter included (~10 MiB).
    memory_mib: int = 256
    #: Worker processes: programs evaluated at once.
    workers: int = 2
    #: How long a caller waits for a free worker before :class:`JqUnavailable`.
    wait_seconds: float = 10.0


def shorten(expression: str, limit: int = SHOWN_CHARS) -> str:
    """``expression`` on one line, cut to ``limit`` characters, for error messages."""
    text = " ".join(expression.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class JqError(ValueError):
    """The program failed on its input; the message is jq's (first line)."""


class JqStopped(Exception):
    """A limit stopped the program (``limit`` "time" or "memory"), or it crashed its worker
    ("crash"). Permanent for this program and input: never retry it."""

    def __init__(
        self,
        expression: str,
        limit: Literal["time", "memory", "crash"],
        limits: JqLimits,
        detail: str = "",
        index: int | None = None,
    ):
        self.expression = expression
        self.limit = limit
        #: Which evaluation of the call was stopped (its position among the call's pairs), when
        #: known: a batch caller fails that one and evaluates the others again.
        self.index = index
        program = f"jq program {shorten(expression)!r}"
        if limit == "time":
            message = f"{program} exceeded the time limit of {limits.timeout_seconds:g} s (jq.timeoutSeconds)"
        elif limit == "memory":
            message = f"{program} exceeded the memory limit of {limits.memory_mib} MiB (jq.memoryMiB)"
        else:
            message = f"{program} stopped its jq worker ({detail or 'it exited'})"
        super().__init__(message)
        self.message = message


class JqUnavailable(Exception):
    """No jq worker could take the program (all busy for ``jq.waitSeconds``, or one failed to
    start, or the engine was shut down meanwhile). Transient: trying again later may work."""


@dataclass(frozen=True, slots=True)
class JqResult:
    """One evaluation: the program's first result (None when it gave none), or jq's error."""

    value: Any = None
    error: str | None = None

    def unwrap(self) -> Any:
        """The value; :class:`JqError` if the program failed."""
        if self.error is not None:
            raise JqError(self.error)
        return self.value


_EMPTY = JqResult()


def answer_in_process(run: Callable[[Any], Any], value: Any) -> JqResult | None:
    """``run(value)``, a program compiled to Python (:mod:`kiosk.core.jq_compile`), as a result,
    its runtime error as the worker would report jq's; None when the program defers this input to
    jq (:class:`~kiosk.core.jq_compile.Deferred`), for a worker to judge. Public so that every
    caller that runs compiled programs itself answers by the engine's rule."""
    try:
        return JqResult(run(value))
    except JqRuntimeError as exc:
        return JqResult(error=first_line(str(exc)))
    except Deferred:
        return None


def _json_text(value: Any) -> bytes:
    """``value`` as JSON text for the worker (orjson; Python's json for what orjson refuses,
    such as integers past 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise JqError(f"the input cannot be given to jq: {exc}") from None


def _result(item: Any) -> JqResult:
    if isinstance(item, list):
        return JqResult(item[0]) if item else _EMPTY
    return JqResult(error=str(item.get("error", "error")) if isinstance(item, dict) else "unreadable result")


def _results(payload: bytes) -> list[JqResult]:
    try:
        items = orjson.loads(payload)
    except orjson.JSONDecodeError:
        items = json.loads(payload)  # numbers orjson will not read (1e1000 kept as jq wrote it)
    return [_result(item) for item in items]


# ------------------------------------------------------------------------------------ one worker


class _TimedOut(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


class _Died(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


class _NotStarted(Exception):
    pass


def _progress_file() -> int:
    """A file descriptor for the shared progress block: a memfd where there is one."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("kiosk-jq-progress")
    else:  # pragma: no cover - not Linux
        handle, path = tempfile.mkstemp(prefix="kiosk-jq-")
        os.unlink(path)
        fd = handle
    os.ftruncate(fd, PROGRESS_SIZE)
    return fd


class _Worker:
    """One ``kiosk.core.jq_worker`` process and the caller's side of its pipes and progress block."""

    def __init__(self, limits: JqLimits, generation: int) -> None:
        self.limits = limits
        self.generation = generation
        self.killed = False
        self._progress_fd = _progress_file()
        self._block = mmap.mmap(self._progress_fd, PROGRESS_SIZE)
        # Where the worker's last words go (jq's "cannot allocate memory"): read after it died.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by dispose()
        self.started_ns = time.monotonic_ns()
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kiosk.core.jq_worker",
                    str(self._progress_fd),
                    str(limits.memory_mib * 1024 * 1024),
                    repr(limits.timeout_seconds),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                pass_fds=(self._progress_fd,),
                env={"PYTHONPATH": _IMPORT_ROOT},
                cwd="/",
                start_new_session=True,  # a Ctrl-C at the terminal is the server's to handle
                bufsize=0,
            )
        except OSError:
            self._release_files()
            raise
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        self._poll = select.poll()
        self._poll.register(self._out, _POLL_IN)

    def alive(self) -> bool:
        return not self.killed and self.proc.poll() is None

    def progress(self) -> tuple[int, int, int]:
        """(sequence, start ns, evaluation index), consistent (see the worker's docstring)."""
        block = self._block
        while True:
            sequence, start, index = PROGRESS.unpack_from(block, 0)
            if PROGRESS.unpack_from(block, 0)[0] == sequence:
                return sequence, start, index

    def _deadline(self, sequence0: int, sent: int) -> tuple[int, int]:
        """(deadline in ns, index of the evaluation it is for; -1 while the worker starts)."""
        sequence, start, index = self.progress()
        if sequence == 0:
            return self.started_ns + int(STARTUP_SECONDS * 1e9), -1
        timeout = int(self.limits.timeout_seconds * 1e9)
        if sequence == sequence0:  # the request is being read: nothing of it has started yet
            return max(sent, start) + timeout, 0
        return start + timeout, index

    def call(self, request: bytes) -> bytes:
        """Send one request and return the answer's payload (tag included).

        Raises _TimedOut or _Died with the index of the evaluation that was running, or
        _NotStarted when the worker never became ready.
        """
        sequence0 = self.progress()[0]
        sent = time.monotonic_ns()
        pending = memoryview(request)
        try:
            pending = pending[os.write(self._in, pending) :]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            pending = pending[:0]
        if pending:
            self._poll.register(self._in, _POLL_OUT)
        buffer = bytearray()
        try:
            while True:
                deadline, index = self._deadline(sequence0, sent)
                left = deadline - time.monotonic_ns()
                if left <= 0:
                    if index < 0:
                        raise _NotStarted
                    raise _TimedOut(index)
                # While the worker starts, wake often: its first evaluation's deadline is much
                # nearer than the start-up one. After that a deadline only ever moves later.
                wait_ms = min(math.ceil(left / 1e6), _STARTING_POLL_MS) if index < 0 else math.ceil(left / 1e6)
                for fd, _ in self._poll.poll(max(1, wait_ms)):
                    if fd == self._in:
                        try:
                            pending = pending[os.write(self._in, pending[:_READ_CHUNK]) :]
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:
                            pending = pending[:0]
                        if not pending:
                            self._poll.unregister(self._in)
                        continue
                    chunk = os.read(self._out, _READ_CHUNK)
                    if not chunk:
                        raise _Died(max(self.progress()[2], 0))
                    if not buffer and len(chunk) >= ANSWER.size:  # the usual small answer, in one read
                        (size,) = ANSWER.unpack_from(chunk, 0)
                        if len(chunk) == ANSWER.size + size:
                            return chunk[ANSWER.size :]
                    buffer += chunk
                    if len(buffer) >= ANSWER.size:
                        (size,) = ANSWER.unpack_from(buffer, 0)
                        if len(buffer) >= ANSWER.size + size:
                            return bytes(memoryview(buffer)[ANSWER.size : ANSWER.size + size])
        finally:
            if pending:
                self._poll.unregister(self._in)

    def stderr_tail(self) -> str:
        """The end of what the worker wrote to stderr (jq's last words, a traceback)."""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 2000))
            return self._stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        """Stop the process (any thread may call this); :meth:`dispose` releases the rest."""
        self.killed = True
        with contextlib.suppress(OSError):  # already gone
            self.proc.kill()

    def reap(self) -> int:
        """Wait for the process to end (it was killed or died); its return code."""
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill that did not take
            self.proc.kill()
            return self.proc.wait()

    def dispose(self) -> None:
        """Kill (if needed), reap and release everything; only by the thread holding the worker."""
        if self.proc.poll() is None:
            self.kill()
        self.reap()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._release_files()

    def _release_files(self) -> None:
        self._block.close()
        os.close(self._progress_fd)
        self._stderr.close()


# ------------------------------------------------------------------------------------------ pool


class _Slot:
    """A place for one worker; the worker is started when the slot is first used (and again after
    it was killed)."""

    __slots__ = ("worker",)

    def __init__(self) -> None:
        self.worker: _Worker | None = None


_POOLS: weakref.WeakSet[JqPool] = weakref.WeakSet()


class JqPool:
    """A bounded pool of jq workers (see the module docstring). Thread-safe."""

    def __init__(self, limits: JqLimits | None = None) -> None:
        self.limits = limits or JqLimits()
        if self.limits.workers < 1:
            raise ValueError("a jq pool needs at least one worker")
        self._slots = [_Slot() for _ in range(self.limits.workers)]
        self._idle: queue.LifoQueue[_Slot] = queue.LifoQueue()
        for slot in self._slots:
            self._idle.put(slot)
        self._generation = 0
        self._lock = threading.Lock()
        _POOLS.add(self)

    # ----------------------------------------------------------------------------- evaluating

    def first(self, expression: str, data: Any) -> Any:
        """The first result of ``expression`` over ``data``; :class:`JqError` if it fails."""
        return self.evaluate([expression], [data])[0].unwrap()

    def first_each(self, expressions: Sequence[str], data: Any) -> list[JqResult]:
        """Each expression over one input, in one round trip (a body's templates, a mapping's fields)."""
        return self.evaluate(expressions, [data])

    def first_for_each(self, expression: str, inputs: Sequence[Any]) -> list[JqResult]:
        """One expression over many inputs, in one round trip (a batch of entities or events)."""
        return self.evaluate([expression], inputs)

    def evaluate(
        self,
        programs: Sequence[str],
        inputs: Sequence[Any],
        pairs: Sequence[tuple[int, int]] | None = None,
    ) -> list[JqResult]:
        """Evaluate (program, input) ``pairs`` (indexes into ``programs`` and ``inputs``), by
        default every program over every input, input by input; one result per pair, in order.

        A program that fails on an input gives that pair a :class:`JqResult` with its error; a
        limit fails the whole call (:class:`JqStopped`, naming the program that hit it), as does
        a missing worker (:class:`JqUnavailable`).
        """
        count = len(pairs) if pairs is not None else len(programs) * len(inputs)
        if count == 0:
            return []
        paths = [simple_path(program) for program in programs]
        compiled = [
            None if path is not None else compiled_program(program)
            for program, path in zip(programs, paths, strict=True)
        ]
        if any(path is not None for path in paths) or any(program is not None for program in compiled):
            return self._evaluate_here(paths, compiled, programs, inputs, pairs)
        return self._evaluate_in_worker(programs, inputs, pairs, count)

    def _evaluate_here(
        self,
        paths: list[tuple[str, ...] | None],
        compiled: list[CompiledProgram | None],
        programs: Sequence[str],
        inputs: Sequence[Any],
        pairs: Sequence[tuple[int, int]] | None,
    ) -> list[JqResult]:
        """Plain paths (:mod:`kiosk.core.jq_paths`) and compiled programs
        (:mod:`kiosk.core.jq_compile`) answered in place; the other pairs, and any input they
        hand back for jq to judge, in one worker round trip."""
        if pairs is None:
            pairs = [(p, i) for i in range(len(inputs)) for p in range(len(programs))]
        results: list[JqResult | None] = []
        rest: list[tuple[int, int]] = []
        for program, index in pairs:
            path = paths[program]
            if path is not None:
                value = follow(inputs[index], path)
                if value is not NOT_FOLLOWED:
                    results.append(JqResult(value))
                    continue
            closure = compiled[program]
            result = None if closure is None else answer_in_process(closure.first, inputs[index])
            results.append(result)
            if result is None:
                rest.append((program, index))
        if rest:
            try:
                answered = iter(self._evaluate_in_worker(programs, inputs, rest, len(rest)))
            except JqStopped as stopped:  # its index counts the pairs sent: make it the caller's
                if stopped.index is not None:
                    positions = [n for n, result in enumerate(results) if result is None]
                    stopped.index = positions[stopped.index]
                raise
            return [result if result is not None else next(answered) for result in results]
        return [result for result in results if result is not None]

    def _evaluate_in_worker(
        self,
        programs: Sequence[str],
        inputs: Sequence[Any],
        pairs: Sequence[tuple[int, int]] | None,
        count: int,
    ) -> list[JqResult]:
        texts = [_json_text(value) for value in inputs]
        flat = None if pairs is None else [n for pair in pairs for n in pair]
        header = orjson.dumps([list(programs), [len(text) for text in texts], flat])
        body = texts[0] if len(texts) == 1 else b"".join(texts)
        request = REQUEST.pack(len(header), len(body)) + header + body

        def program_of(index: int) -> str:
            index = min(max(index, 0), count - 1)
            if pairs is not None:
                return programs[pairs[index][0]]
            return programs[index % len(programs)]

        payload = self._call(request, program_of, count)
        tag = payload[:1]
        if tag == b"R":
            results = _results(payload[1:])
            if len(results) != count:  # pragma: no cover - a worker bug
                raise JqUnavailable(f"the jq worker answered {len(results)} results for {count} evaluations")
            return results
        if tag == b"M":
            cell = min(max(int(orjson.loads(payload[1:]).get("cell", 0)), 0), count - 1)
            raise JqStopped(program_of(cell), "memory", self.limits, index=cell)
        raise JqUnavailable(f"the jq worker refused the request: {payload[1:200].decode(errors='replace')}")

    async def evaluate_async(
        self,
        programs: Sequence[str],
        inputs: Sequence[Any],
        pairs: Sequence[tuple[int, int]] | None = None,
    ) -> list[JqResult]:
        """:meth:`evaluate` for async callers: it waits in a worker thread, never in the event loop."""
        return await anyio.to_thread.run_sync(partial(self.evaluate, programs, inputs, pairs))

    def _call(self, request: bytes, program_of: Any, count: int) -> bytes:
        try:
            slot = self._idle.get(timeout=self.limits.wait_seconds)
        except queue.Empty:
            raise JqUnavailable(
                f"every jq worker stayed busy for {self.limits.wait_seconds:g} s (jq.workers: {self.limits.workers}, "
                "jq.waitSeconds)"
            ) from None
        try:
            worker = slot.worker
            if worker is None or not worker.alive():
                if worker is not None:
                    slot.worker = None
                    worker.dispose()
                try:
                    worker = slot.worker = _Worker(self.limits, self._generation)
                except OSError as exc:
                    raise JqUnavailable(f"a jq worker could not be started: {exc}") from None
                if worker.generation != self._generation:  # close() ran while it started
                    slot.worker = None
                    worker.dispose()
                    raise JqUnavailable("the jq engine was stopped while the program waited")
            try:
                payload = worker.call(request)
                if payload[:1] != b"R":  # the worker answered a failure and is exiting: replace it
                    slot.worker = None
                    worker.dispose()
                return payload
            except _TimedOut as timed_out:
                slot.worker = None
                worker.dispose()
                if worker.generation != self._generation:
                    raise JqUnavailable("the jq engine was stopped while the program ran") from None
                index = min(max(timed_out.index, 0), count - 1)
                raise JqStopped(program_of(index), "time", self.limits, index=index) from None
            except _NotStarted:
                slot.worker = None
                worker.dispose()
                detail = _last_line(worker.stderr_tail())
                raise JqUnavailable(
                    f"a jq worker did not start within {STARTUP_SECONDS:g} s" + (f": {detail}" if detail else "")
                ) from None
            except _Died as died:
                slot.worker = None
                stopped_by_us = worker.killed
                code = worker.reap()
                stderr = worker.stderr_tail()
                worker.dispose()
                if stopped_by_us or worker.generation != self._generation:
                    raise JqUnavailable("the jq engine was stopped while the program ran") from None
                index = min(max(died.index, 0), count - 1)
                stopped = _death(program_of(index), code, stderr, self.limits)
                stopped.index = index
                raise stopped from None
        finally:
            self._idle.put(slot)

    # ----------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop every worker now; a program running in one fails with :class:`JqUnavailable`.
        The pool stays usable: a later call starts workers again."""
        with self._lock:
            self._generation += 1
            idle: list[_Slot] = []
            while True:
                try:
                    idle.append(self._idle.get_nowait())
                except queue.Empty:
                    break
            busy = [slot for slot in self._slots if slot not in idle]
            for slot in busy:  # their holders find the worker gone and clean up
                if slot.worker is not None:
                    slot.worker.kill()
            for slot in idle:
                worker, slot.worker = slot.worker, None
                if worker is not None:
                    worker.dispose()
                self._idle.put(slot)

    def idle(self) -> int:
        """How many workers are free now (for tests and diagnostics)."""
        return self._idle.qsize()

    def processes(self) -> list[int]:
        """Process ids of the running workers (for tests and diagnostics)."""
        return [s.worker.proc.pid for s in self._slots if s.worker is not None and s.worker.alive()]


@functools.lru_cache(maxsize=4096)
def compiled_program(expression: str) -> CompiledProgram | None:
    """``expression`` compiled to run in process, or None when only libjq can run it."""
    try:
        return compile_program(expression)
    except NotCompilable:
        return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _death(expression: str, code: int, stderr: str, limits: JqLimits) -> JqStopped:
    """Why a worker died on its own: out of memory (jq aborts when malloc fails under
    RLIMIT_DATA; the kernel's OOM killer sends SIGKILL, which kiosk's own kills are told apart
    from before this is asked), out of CPU time (the RLIMIT_CPU backstop's SIGXCPU), or else."""
    if "cannot allocate memory" in stderr or "MemoryError" in stderr or code in (-signal.SIGABRT, -signal.SIGKILL):
        return JqStopped(expression, "memory", limits)
    if code == -signal.SIGXCPU:
        return JqStopped(expression, "time", limits)
    detail = f"exit status {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
    last = _last_line(stderr)
    return JqStopped(expression, "crash", limits, f"{detail}: {last}" if last else detail)


@atexit.register
def _close_all() -> None:
    for pool in list(_POOLS):
        pool.close()


# ------------------------------------------------------------------------- the process's engine

_engine_lock = threading.Lock()
_engine: JqPool | None = None


def configure(limits: JqLimits) -> JqPool:
    """Make the process's engine use ``limits`` (the app factory calls this with kiosk.yaml's
    ``jq:`` block). The same limits keep the running pool; new ones replace it."""
    global _engine
    with _engine_lock:
        old = _engine
        if old is not None and old.limits == limits:
            return old
        _engine = JqPool(limits)
        new = _engine
    if old is not None:
        old.close()
    return new


def engine() -> JqPool:
    """The process's engine (default limits until :func:`configure` is called)."""
    global _engine
    current = _engine
    if current is not None:
        return current
    with _engine_lock:
        if _engine is None:
            _engine = JqPool()
        return _engine


def shutdown() -> None:
    """Stop the engine's workers (the app's lifespan ends); a later call starts them again."""
    current = _engine
    if current is not None:
        current.close()


def first(expression: str, data: Any) -> Any:
    """:meth:`JqPool.first` on the process's engine."""
    return engine().first(expression, data)


def first_each(expressions: Sequence[str], data: Any) -> list[JqResult]:
    """:meth:`JqPool.first_each` on the process's engine."""
    return engine().first_each(expressions, data)
