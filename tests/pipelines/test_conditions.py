"""Run-time conditions: the job-status functions of steps, jobs and stages, and the
``functions=`` hook of :func:`kiosk.pipelines.expressions.evaluate` that provides them."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.pipelines.conditions import (
    DEFAULT_CONDITION,
    condition_text,
    dependency_functions,
    evaluate_condition,
    step_functions,
)
from kiosk.pipelines.errors import ExpressionError
from kiosk.pipelines.expressions import evaluate


def step(condition: str, status: str, canceled: bool = False, variables: dict[str, str] | None = None) -> bool:
    return evaluate_condition(condition, {"variables": variables or {}}, step_functions(status, canceled))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("succeeded", {"succeeded()": True, "failed()": False, "succeededOrFailed()": True, "always()": True}),
        ("succeededWithIssues", {"succeeded()": True, "failed()": False, "succeededOrFailed()": True}),
        ("failed", {"succeeded()": False, "failed()": True, "succeededOrFailed()": True, "always()": True}),
    ],
)
def test_step_functions(status: str, expected: dict[str, bool]) -> None:
    assert {condition: step(condition, status) for condition in expected} == expected


def test_step_functions_when_canceled() -> None:
    assert not step("succeeded()", "succeeded", canceled=True)
    assert not step("succeededOrFailed()", "failed", canceled=True)
    assert step("canceled()", "succeeded", canceled=True) and step("always()", "failed", canceled=True)


def test_step_functions_take_no_names() -> None:
    with pytest.raises(ExpressionError, match="takes no arguments in a step condition"):
        step("succeeded('Build')", "succeeded")


def test_conditions_combine_with_variables_case_insensitively() -> None:
    variables = {"Build.Reason": "ResourceTrigger", "flag": "true"}
    assert step("and(succeeded(), eq(variables['build.reason'], 'resourcetrigger'))", "succeeded", variables=variables)
    assert step("eq(variables.FLAG, true)", "succeeded", variables=variables)
    assert not step("and(failed(), eq(variables.flag, 'true'))", "succeeded", variables=variables)


def dep(condition: str, results: dict[str, str], graph: list[str], context: dict[str, Any] | None = None) -> bool:
    functions = dependency_functions(results, graph, canceled=False, what="job")
    return evaluate_condition(condition, {"variables": {}, **(context or {})}, functions)


def test_dependency_functions_look_at_the_whole_graph_or_the_named_jobs() -> None:
    results = {"A": "failed", "B": "succeeded", "C": "skipped"}
    assert dep("succeeded()", {}, [])  # no dependencies: runs
    assert not dep("succeeded()", results, ["A", "B"])
    assert dep("succeeded('b')", results, ["A", "B"])
    assert dep("failed()", results, ["A", "B"]) and not dep("failed('B')", results, ["A", "B"])
    assert dep("succeededOrFailed()", results, ["A", "B"])
    assert not dep("succeededOrFailed()", results, ["B", "C"])  # a skipped dependency
    assert not dep("succeeded()", results, ["B", "C"])


def test_named_dependency_must_be_in_the_graph() -> None:
    with pytest.raises(ExpressionError, match="'Z' is not a dependency of this job"):
        dep("succeeded('Z')", {"A": "succeeded"}, ["A"])


def test_dependencies_context() -> None:
    context = {"dependencies": {"A": {"result": "Failed", "outputs": {"s.v": "1"}}}}
    assert dep("eq(dependencies.A.result, 'Failed')", {"A": "failed"}, ["A"], context)
    assert dep("eq(dependencies.a.outputs['S.V'], 1)", {"A": "failed"}, ["A"], context)


def test_condition_text() -> None:
    assert condition_text(None) == DEFAULT_CONDITION == condition_text("  ")
    assert condition_text(True) == "true" and condition_text(False) == "false"
    assert condition_text(" always() ") == "always()"


# ---------------------------------------------------------------- evaluate(functions=...)


def test_evaluate_with_caller_functions_checks_arity_at_parse_time() -> None:
    functions = {"always": lambda: True, "pick": lambda a, b=None: b if b is not None else a, "all": lambda *x: len(x)}
    assert evaluate("and(always(), eq(pick(1), 1))", {}, functions=functions) is True
    assert evaluate("ALL(1, 2, 3)", {}, functions=functions) == 3
    assert evaluate("pick(1, 'two')", {}, functions=functions) == "two"
    with pytest.raises(ExpressionError, match="takes exactly 0 arguments, got 1"):
        evaluate("always(1)", {}, functions=functions)
    with pytest.raises(ExpressionError, match="takes 1 to 2 arguments, got 3"):
        evaluate("pick(1, 2, 3)", {}, functions=functions)


def test_caller_functions_do_not_leak_into_compile_time_expressions() -> None:
    evaluate("always()", {}, functions={"always": lambda: True})
    with pytest.raises(ExpressionError, match="unknown function 'always'"):
        evaluate("always()", {})


def test_caller_functions_cannot_shadow_built_ins_or_need_keywords() -> None:
    with pytest.raises(ValueError, match="shadow"):
        evaluate("eq(1, 1)", {}, functions={"EQ": lambda a, b: False})
    with pytest.raises(ValueError, match="not an identifier"):
        evaluate("true", {}, functions={"bad name": lambda: True})

    def keyword_only(*, flag: bool) -> bool:
        return flag

    with pytest.raises(ValueError, match="required keyword-only"):
        evaluate("true", {}, functions={"f": keyword_only})


def test_caller_function_errors_carry_the_expression() -> None:
    def boom() -> bool:
        raise ExpressionError("no way")

    with pytest.raises(ExpressionError) as info:
        evaluate("and(true, boom())", {}, functions={"boom": boom})
    assert info.value.expression == "and(true, boom())"
    assert info.value.column == 11
