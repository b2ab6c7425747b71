"""The jq worker: a small process that evaluates user jq programs under a memory limit.

kiosk never evaluates user jq in the server process (libjq holds the GIL and cannot be
interrupted, see :mod:`kiosk.core.jq_sandbox`). :mod:`kiosk.core.jq_engine` starts a few of these
(``python -m kiosk.core.jq_worker PROGRESS_FD MEMORY_BYTES TIMEOUT_SECONDS``), each a fresh
interpreter (never a fork of the threaded server), and talks to each over its stdin and stdout.

Limits, set by the worker on itself before it reads a request:

* memory: ``RLIMIT_DATA`` (heap and private anonymous mappings: what jq allocates; not the
  interpreter's code). Measured against ``RLIMIT_AS`` on ``[range(1e8)]``, string doubling and a
  10-million-string ``join``: both stop all three, jq printing ``cannot allocate memory`` and
  aborting (SIGABRT) within ~1 s, but ``RLIMIT_AS`` also counts shared libraries and reserved
  address space, so its 256 MiB allowed only ~120 MB of real data where ``RLIMIT_DATA`` allowed
  ~175 MB; ``RLIMIT_DATA`` is the one that means what ``jq.memoryMiB`` says. A ``MemoryError``
  raised in Python (a huge result being converted) is answered as a memory failure, and the
  worker then exits so its heap goes back to the system.
* time: the parent kills the worker when one evaluation outlives ``jq.timeoutSeconds`` (it
  reads the progress block below). ``RLIMIT_CPU`` is the backstop for a worker whose parent is
  gone: before each evaluation its soft limit is moved to the CPU time used so far plus the time
  limit plus 2 s, so a runaway program dies of SIGXCPU even with nobody watching.
* no core files (``RLIMIT_CORE`` 0, and on Linux not dumpable at all, which a core handler
  behind a pipe must respect too): an aborted jq must not write the data it held to disk.

The environment is empty but for ``PYTHONPATH`` (the parent's secrets never reach this process),
and the working directory is ``/``.

Protocol (all integers little-endian):

request   ``<II`` header length, body length; the header is JSON ``[programs, input_lengths, cells]``
          and the body the inputs' JSON texts, one after the other. ``cells`` is a flat list
          ``[program, input, program, input, …]`` of the evaluations wanted, in order, or null for
          every program over every input (input by input).
answer    ``<I`` length, then a one-byte tag and its payload:
          ``R`` a JSON array with one item per evaluation: ``[first result]``, ``[]`` (no result),
          or ``{"error": jq's message}``;
          ``M`` ``{"cell": n}``: evaluation ``n`` ran out of memory in Python (the worker exits);
          ``E`` ``{"error": …}``: the request could not be read (a bug; the worker exits).
progress  a shared block of three ``<Q``: a sequence number, a ``CLOCK_MONOTONIC`` time in ns
          and an evaluation index. The worker sets sequence 1 once ready, then bumps it, with
          the time, as each evaluation starts and once more when it starts writing the answer.
          It writes the time and index first and the sequence last, so a reader that sees the
          same sequence before and after reading the other two has a consistent snapshot.

Stdin closing (the parent exited) ends the worker.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import resource
import struct
import sys
import time
from typing import Any

import orjson

from kiosk.core.jq_sandbox import compile_first

__all__ = ["ANSWER", "PROGRESS", "PROGRESS_SIZE", "REQUEST", "main"]

REQUEST = struct.Struct("<II")
ANSWER = struct.Struct("<I")
#: (sequence, start time in ns, evaluation index)
PROGRESS = struct.Struct("<QQQ")
PROGRESS_SIZE = PROGRESS.size
_SEQUENCE = struct.Struct("<Q")
_TIME_AND_INDEX = struct.Struct("<QQ")

_PR_SET_DUMPABLE = 4
#: Seconds of CPU time past the time limit before RLIMIT_CPU stops a runaway evaluation.
CPU_BACKSTOP_SLACK = 2


class _Reader:
    """Reads stdin in large chunks: a small request costs one system call, not three."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def exact(self, size: int) -> bytes | None:
        """The next ``size`` bytes; None on end of file (the parent closed the pipe)."""
        while len(self.buffer) < size:
            chunk = os.read(self.fd, max(65536, size - len(self.buffer)))
            if not chunk:
                return None
            self.buffer += chunk
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _answer(fd: int, payload: bytes) -> None:
    """One answer frame (``payload`` starts with its tag); a small one in one write, so the
    parent usually reads it whole at once, a large one without copying it."""
    header = ANSWER.pack(len(payload))
    if len(payload) < 65536:
        _write_all(fd, header + payload)
    else:
        _write_all(fd, header)
        _write_all(fd, payload)


class _Progress:
    """The worker's side of the shared progress block (see the module docstring)."""

    def __init__(self, block: mmap.mmap) -> None:
        self.block = block
        self.sequence = 0

    def mark(self, index: int) -> None:
        self.sequence += 1
        _TIME_AND_INDEX.pack_into(self.block, 8, time.monotonic_ns(), index)
        _SEQUENCE.pack_into(self.block, 0, self.sequence)


def first_line(message: str) -> str:
    """An error message as kiosk reports jq's: its first non-blank line, stripped ("error" when blank)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "error"


def _evaluate(expression: str, text: str) -> bytes:
    """One evaluation's answer item: jq's text of ``[first result]``, or ``{"error": …}``."""
    try:
        return compile_first(expression).input_text(text).text().encode()  # type: ignore[no-any-return]
    except MemoryError:
        raise
    except Exception as exc:  # jq's errors are ValueError; anything else is reported the same way
        return orjson.dumps({"error": first_line(str(exc))})


def _cells(header: list[Any], inputs: int) -> list[tuple[int, int]]:
    programs, cells = len(header[0]), header[2]
    if cells is None:
        return [(p, i) for i in range(inputs) for p in range(programs)]
    return list(zip(cells[::2], cells[1::2], strict=True))


def serve(stdin: int, stdout: int, progress: _Progress, timeout: float) -> None:
    """Answer requests until stdin closes."""
    cpu_limit = resource.getrlimit(resource.RLIMIT_CPU)[1]
    reader = _Reader(stdin)
    while True:
        head = reader.exact(REQUEST.size)
        if head is None:
            return
        header_size, body_size = REQUEST.unpack(head)
        header_bytes = reader.exact(header_size)
        body = reader.exact(body_size)
        if header_bytes is None or body is None:
            return
        index = -1
        try:
            header = orjson.loads(header_bytes)
            programs: list[str] = header[0]
            texts: list[str] = []
            offset = 0
            for size in header[1]:
                texts.append(body[offset : offset + size].decode())
                offset += size
            del body
            cells = _cells(header, len(texts))
        except MemoryError:
            _answer(stdout, b"M" + orjson.dumps({"cell": 0}))
            return
        except Exception as exc:
            _answer(stdout, b"E" + orjson.dumps({"error": f"unreadable request: {exc}"}))
            return
        try:
            items: list[bytes] = []
            for index, (program, item) in enumerate(cells):
                soft = int(time.process_time() + timeout) + CPU_BACKSTOP_SLACK
                if cpu_limit == resource.RLIM_INFINITY or soft < cpu_limit:
                    resource.setrlimit(resource.RLIMIT_CPU, (soft, cpu_limit))
                progress.mark(index)
                items.append(_evaluate(programs[program], texts[item]))
            progress.mark(len(cells))
            payload = b"R[" + b",".join(items) + b"]"
            del items
            _answer(stdout, payload)
        except MemoryError:
            items = []
            _answer(stdout, b"M" + orjson.dumps({"cell": max(index, 0)}))
            return


def _not_dumpable() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)``: no core dump even where ``core_pattern`` pipes to a handler
    (the kernel ignores RLIMIT_CORE 0 there), and no other process of the user may read this
    one's memory. Best effort: Linux only."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def main(argv: list[str]) -> int:
    progress_fd, memory_bytes, timeout = int(argv[0]), int(argv[1]), float(argv[2])
    block = mmap.mmap(progress_fd, PROGRESS_SIZE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _not_dumpable()
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    if hard == resource.RLIM_INFINITY or memory_bytes < hard:
        hard = memory_bytes  # and the worker cannot raise it again
    resource.setrlimit(resource.RLIMIT_DATA, (min(memory_bytes, hard), hard))
    progress = _Progress(block)
    progress.mark(0)  # sequence 1: ready
    serve(sys.stdin.fileno(), sys.stdout.fileno(), progress, timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
