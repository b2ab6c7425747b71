"""Builds put straight into the emulator's model, for what its change API does not make (a build
still queued or running, one finished at a chosen time): the incremental sync's tests need them."""

from __future__ import annotations

import dataclasses
from typing import Any

from kiosk.emulator.org.model import Build, Organisation

__all__ = ["add_build", "change_build"]


def add_build(org: Organisation, **changes: Any) -> Build:
    """A new build of ``org``: a copy of its first build (lowest id: its definition, project and
    source) with the next build id and ``changes`` (status, result, times…), added to the org."""
    template = min(org.builds.values(), key=lambda b: b.id)
    build = dataclasses.replace(template, id=org.next_id("build"), **changes)
    org.builds[build.id] = build
    org.changed()
    return build


def change_build(org: Organisation, build_id: int, **changes: Any) -> Build:
    """``org``'s build ``build_id`` with ``changes``, in place of the old one."""
    build = dataclasses.replace(org.builds[build_id], **changes)
    org.builds[build_id] = build
    org.changed()
    return build
