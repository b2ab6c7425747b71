"""Process-wide tuning for a long-running kiosk server.

Here, beside the server's background work, rather than in web/: it is about the process that runs
the server, not about HTTP, and it is applied by whoever launches that process (``kiosk serve``,
the demo, the benchmarks' and tests' server), never by the app factory.

A bulk call parses 20,000 entities into a few hundred thousand Python objects. With CPython's
default thresholds (700 allocations for a young collection) the cyclic GC then runs hundreds of
times during that one request, and each older-generation pass walks every live object again.
Measured on one 20,000-entity bulk upsert (alternating runs in one process): 1.67 s median with
the defaults, 1.14 s with the thresholds below. None of kiosk's request data forms reference
cycles, so collecting less often only delays freeing the rare cycle.
"""

from __future__ import annotations

import gc

#: (young, middle, old) collection thresholds for a server process.
SERVER_GC_THRESHOLDS = (50_000, 20, 100)


def tune_for_server() -> None:
    """Raise the GC thresholds and freeze what start-up allocated (it lives as long as the process).

    Called by ``kiosk serve`` (and the benchmarks' server), not by ``create_app``: a library
    user embedding the app keeps control of their own process.
    """
    gc.freeze()
    gc.set_threshold(*SERVER_GC_THRESHOLDS)
