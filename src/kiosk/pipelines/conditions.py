"""Run-time ``condition:`` evaluation for stages, jobs and steps.

A condition is an expression of the same language as ``${{ }}`` (see
:mod:`kiosk.pipelines.expressions`) plus the job-status functions that only exist at run time:
``succeeded()``, ``failed()``, ``succeededOrFailed()``, ``always()`` and ``canceled()``. Pure: the
runner passes in what has happened so far and gets a boolean (or an :class:`ExpressionError`).

Semantics follow Microsoft's "Specify conditions" and "Expressions → Job status check functions"
pages:

* in a **step** condition the functions look at the job so far: ``succeeded()`` is true while no
  earlier step failed (a step that failed with ``continueOnError`` counts as succeeded with
  issues, which is success); they take no arguments;
* in a **job** or **stage** condition, without arguments they look at every job/stage "in the
  dependency graph" (the transitive dependencies, Microsoft's wording); with names they look at
  those dependencies only. A skipped dependency is neither succeeded nor failed, so the default
  ``succeeded()`` skips everything downstream of a skipped stage or job, as on Azure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from kiosk.pipelines.errors import ExpressionError
from kiosk.pipelines.expressions import evaluate, is_truthy

__all__ = [
    "DEFAULT_CONDITION",
    "RESULT_NAMES",
    "condition_text",
    "dependency_functions",
    "evaluate_condition",
    "step_functions",
]

DEFAULT_CONDITION: Final = "succeeded()"
"""Azure's condition when none is written."""

RESULT_NAMES: Final = {
    "succeeded": "Succeeded",
    "succeededWithIssues": "SucceededWithIssues",
    "failed": "Failed",
    "canceled": "Canceled",
    "skipped": "Skipped",
}
"""Timeline results as expressions see them (``dependencies.A.result`` is ``'Succeeded'``)."""

_SUCCESS: Final = frozenset({"succeeded", "succeededWithIssues"})
_FINISHED: Final = _SUCCESS | {"failed"}

ConditionFunctions = dict[str, Callable[..., bool]]


def condition_text(value: Any) -> str:
    """The condition as expression text: absent or empty means the default ``succeeded()``.

    Expansion may have turned ``condition: ${{ true }}`` into a boolean; it becomes ``true``.
    """
    if value is None:
        return DEFAULT_CONDITION
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or DEFAULT_CONDITION


def step_functions(job_status: str, canceled: bool) -> ConditionFunctions:
    """The status functions of a step condition; ``job_status`` is the job's result so far."""

    def no_arguments(name: str, names: tuple[Any, ...]) -> None:
        if names:
            raise ExpressionError(f"{name}() takes no arguments in a step condition")

    def succeeded(*names: Any) -> bool:
        no_arguments("succeeded", names)
        return not canceled and job_status in _SUCCESS

    def failed(*names: Any) -> bool:
        no_arguments("failed", names)
        return not canceled and job_status == "failed"

    def succeeded_or_failed(*names: Any) -> bool:
        no_arguments("succeededOrFailed", names)
        return not canceled

    return _status_functions(succeeded, failed, succeeded_or_failed, canceled)


def dependency_functions(
    results: Mapping[str, str], graph: Sequence[str], canceled: bool, what: str
) -> ConditionFunctions:
    """The status functions of a job or stage condition.

    ``results`` maps each job/stage that finished earlier to its result; ``graph`` names the
    transitive dependencies of the one being decided; ``what`` is ``"job"`` or ``"stage"``, for
    messages. A named argument must be one of ``graph`` (case-insensitive).
    """
    by_key = {name.lower(): name for name in graph}

    def selected(function: str, names: tuple[Any, ...]) -> list[str]:
        if not names:
            return [results.get(name, "skipped") for name in graph]
        chosen: list[str] = []
        for name in names:
            if not isinstance(name, str) or name.lower() not in by_key:
                known = ", ".join(graph) or "none"
                raise ExpressionError(
                    f"{function}(): '{name}' is not a dependency of this {what} (dependencies: {known})"
                )
            chosen.append(results.get(by_key[name.lower()], "skipped"))
        return chosen

    def succeeded(*names: Any) -> bool:
        return not canceled and all(result in _SUCCESS for result in selected("succeeded", names))

    def failed(*names: Any) -> bool:
        return not canceled and any(result == "failed" for result in selected("failed", names))

    def succeeded_or_failed(*names: Any) -> bool:
        # Microsoft suggests not(canceled()) "when there are previous skipped jobs": so a skipped
        # (or canceled) dependency makes this false.
        return not canceled and all(result in _FINISHED for result in selected("succeededOrFailed", names))

    return _status_functions(succeeded, failed, succeeded_or_failed, canceled)


def _status_functions(
    succeeded: Callable[..., bool],
    failed: Callable[..., bool],
    succeeded_or_failed: Callable[..., bool],
    canceled: bool,
) -> ConditionFunctions:
    """Azure's five status functions by name: ``always()`` and ``canceled()`` read the same in
    step, job and stage conditions; the other three differ by what they look at."""
    return {
        "succeeded": succeeded,
        "failed": failed,
        "succeededOrFailed": succeeded_or_failed,
        "always": lambda: True,
        "canceled": lambda: canceled,
    }


def evaluate_condition(condition: str, context: Mapping[str, Any], functions: ConditionFunctions) -> bool:
    """Whether ``condition`` holds; an invalid or failing expression raises :class:`ExpressionError`."""
    return is_truthy(evaluate(condition, context, functions=functions))
