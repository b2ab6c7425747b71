"""``dependsOn`` between stages, or between the jobs of a stage: run order and reachability.

Used twice: :func:`~kiosk.pipelines.plan.normalize` puts stages and jobs in run order (rejecting
unknown targets and cycles before anything runs), and the runner asks which stages or jobs one
depends on, directly or not, for the ``succeeded()``/``failed()`` of its condition. Names are
matched case-insensitively, as Azure does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from kiosk.pipelines.errors import PipelineError

__all__ = ["Named", "canonical_names", "dependency_closure", "order_by_dependencies"]


class Named(Protocol):
    """A stage or a job: a name and the names it depends on."""

    @property
    def name(self) -> str: ...

    @property
    def depends_on(self) -> tuple[str, ...]: ...


_N = TypeVar("_N", bound=Named)


def order_by_dependencies(items: list[_N], what: str, where: str) -> list[_N]:
    """Dependency order, stable: always the first item (as written) whose dependencies have run.

    Names are matched case-insensitively, as Azure does; unknown targets and cycles are errors.
    """
    by_key: dict[str, _N] = {}
    for item in items:
        if item.name.lower() in by_key:
            raise PipelineError(f"{where}: two {what}s are named '{item.name}'")
        by_key[item.name.lower()] = item
    for item in items:
        for target in item.depends_on:
            if target.lower() not in by_key:
                raise PipelineError(f"{where}: {what} '{item.name}' depends on unknown {what} '{target}'")
            if target.lower() == item.name.lower():
                raise PipelineError(f"{where}: {what} '{item.name}' depends on itself")
    ordered: list[_N] = []
    done: set[str] = set()
    remaining = list(items)
    while remaining:
        ready = next((i for i in remaining if all(t.lower() in done for t in i.depends_on)), None)
        if ready is None:
            names = ", ".join(item.name for item in remaining)
            raise PipelineError(f"{where}: the dependsOn of these {what}s form a cycle: {names}")
        ordered.append(ready)
        done.add(ready.name.lower())
        remaining.remove(ready)
    return ordered


def dependency_closure(items: Sequence[Named], name: str) -> list[str]:
    """Every item ``name`` depends on, directly or not, in run order (``items`` is in run order)."""
    deps = {item.name.lower(): [d.lower() for d in item.depends_on] for item in items}
    found: set[str] = set()
    pending = list(deps.get(name.lower(), []))
    while pending:
        key = pending.pop()
        if key not in found:
            found.add(key)
            pending.extend(deps.get(key, []))
    return [item.name for item in items if item.name.lower() in found]


def canonical_names(items: Sequence[Named], names: Sequence[str]) -> list[str]:
    """``names`` as their items spell them (``dependsOn: build`` names the stage ``Build``)."""
    spelled = {item.name.lower(): item.name for item in items}
    return [spelled[name.lower()] for name in names]
