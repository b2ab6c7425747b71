"""jq programs from users cannot read the server's environment or files."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.core.jq_engine import JqError, JqLimits, JqPool
from kiosk.core.jq_sandbox import compile_first, compile_jq

SECRET = "kiosk-test-env-secret-value"


@pytest.fixture(autouse=True)
def secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_TEST_SIGNING_SECRET", SECRET)


@pytest.fixture(scope="module")
def pool() -> Iterator[JqPool]:
    pool = JqPool(JqLimits(workers=1))
    yield pool
    pool.close()


Run = Callable[..., list[Any]]


@pytest.fixture(params=["compiled", "worker"])
def run(request: pytest.FixtureRequest) -> Run:
    """Evaluates like the server did (the program :func:`compile_jq` checks, all its results) and
    as kiosk does now (a jq worker of :mod:`kiosk.core.jq_engine`: :func:`compile_first`, the
    first result): the sandbox holds both ways."""
    if request.param == "compiled":

        def compiled(expression: str, data: Any = None) -> list[Any]:
            return list(compile_jq(expression).input_value({"a": 1} if data is None else data).all())

        return compiled
    pool: JqPool = request.getfixturevalue("pool")

    def worker(expression: str, data: Any = None) -> list[Any]:
        return [pool.first(expression, {"a": 1} if data is None else data)]

    return worker


@pytest.mark.parametrize(
    "expression",
    [
        "$ENV.KIOSK_TEST_SIGNING_SECRET",
        "env.KIOSK_TEST_SIGNING_SECRET",
        "def env: $ENV; env.KIOSK_TEST_SIGNING_SECRET",
        "[env, $ENV] | tostring",
        '$ENV | to_entries | map(.value) | join(",")',
    ],
)
def test_the_environment_is_out_of_reach(expression: str, run: Run) -> None:
    out = run(expression)
    assert SECRET not in repr(out)


def test_ordinary_programs_are_unchanged(run: Run) -> None:
    assert run(".a + 1") == [2]
    assert run("[.[] | . * 2]", {"x": 1, "y": 2}) == [[2, 4]]
    assert run("def twice(f): f | f; .a | twice(. * 3)") == [9]
    assert run(".a # a trailing comment") == [1]
    assert run('{x: .a, env: "literal env"}') == [{"x": 1, "env": "literal env"}]


@pytest.mark.parametrize("expression", ["input", "halt_error", "halt_error(1)", "halt"])
def test_escape_hatches_are_errors(expression: str, run: Run) -> None:
    with pytest.raises(ValueError, match="not available"):
        run(expression)


def test_debug_and_stderr_write_nothing(capfd: pytest.CaptureFixture[str], run: Run) -> None:
    assert run("debug | .a") == [1]
    assert run('debug("msg") | stderr | .a') == [1]
    assert run("[inputs]") == [[]]
    assert run("input_filename") == [None]
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.mark.parametrize(
    "expression",
    ['import "x" as $data; .', 'include "x"; .', '# a comment\n  import "x" as x; .', '\n\ninclude "y"; .'],
)
def test_modules_are_refused_before_jq_reads_anything(expression: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modules"):
        compile_jq(expression)
    with pytest.raises(ValueError, match="modules"):
        compile_first(expression)


def test_a_worker_refuses_modules_and_reports_syntax_errors_in_the_users_terms(pool: JqPool) -> None:
    with pytest.raises(JqError, match="modules"):
        pool.first('import "x" as $data; .', None)
    with pytest.raises(JqError) as caught:
        pool.first(".a |", None)
    assert "{} as $ENV" not in str(caught.value)


def test_syntax_errors_point_into_the_users_expression() -> None:
    with pytest.raises(ValueError) as caught:
        compile_jq(".a |")
    message = str(caught.value)
    assert "line 1" in message
    assert "{} as $ENV" not in message  # the prelude is not in the user's error


#: Importing the jq bindings, or compiling with them directly.
_DIRECT_JQ = re.compile(r"^\s*(?:import jq\s*$|import jq as |from jq import )|\bjq\.compile\(", re.MULTILINE)
#: Evaluating a compiled program (the bindings' methods).
_EVALUATION = re.compile(r"\.(?:input_value|input_text|input_values|transform)\(|\.input\(")
_SOURCE = Path(__file__).resolve().parents[2] / "src" / "kiosk"


def _sources() -> list[tuple[str, str]]:
    return [(str(path.relative_to(_SOURCE)), path.read_text()) for path in sorted(_SOURCE.rglob("*.py"))]


def test_every_jq_program_in_kiosk_goes_through_the_sandbox() -> None:
    """A new call site that compiles jq directly would bring the environment back within reach."""
    direct = [name for name, text in _sources() if name != "core/jq_sandbox.py" and _DIRECT_JQ.search(text)]
    assert direct == []


def test_no_jq_program_is_evaluated_in_the_server_process() -> None:
    """Only the jq worker evaluates: libjq holds the GIL and cannot be interrupted, so one program
    evaluated in the server would freeze every request (see kiosk.core.jq_engine)."""
    evaluating = [name for name, text in _sources() if name != "core/jq_worker.py" and _EVALUATION.search(text)]
    assert evaluating == []
