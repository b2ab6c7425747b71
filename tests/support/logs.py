"""The process-wide logging state, saved and put back around a test.

kiosk's ``configure_logging`` (run by ``kiosk serve``, ``apply`` and the other commands, and by the
log tests themselves) replaces the handlers and levels of the root and uvicorn loggers for the whole
process; a test that triggers it gives the next test the state it found.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@contextmanager
def logging_restored() -> Iterator[None]:
    """On exit, the handlers, level and propagation the root and uvicorn loggers had on entry."""
    saved = {
        name: (list(logger.handlers), logger.level, logger.propagate)
        for name, logger in ((n, logging.getLogger(n)) for n in LOGGERS)
    }
    try:
        yield
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
