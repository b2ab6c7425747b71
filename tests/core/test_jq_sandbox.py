"""jq programs from users cannot read the server's environment or files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiosk.core.jq_sandbox import compile_jq

SECRET = "kiosk-test-env-secret-value"


@pytest.fixture(autouse=True)
def secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_TEST_SIGNING_SECRET", SECRET)


def run(expression: str, data: Any = None) -> list[Any]:
    return list(compile_jq(expression).input_value({"a": 1} if data is None else data).all())


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
def test_the_environment_is_out_of_reach(expression: str) -> None:
    out = run(expression)
    assert SECRET not in repr(out)


def test_ordinary_programs_are_unchanged() -> None:
    assert run(".a + 1") == [2]
    assert run("[.[] | . * 2]", {"x": 1, "y": 2}) == [[2, 4]]
    assert run("def twice(f): f | f; .a | twice(. * 3)") == [9]
    assert run(".a # a trailing comment") == [1]
    assert run('{x: .a, env: "literal env"}') == [{"x": 1, "env": "literal env"}]


@pytest.mark.parametrize("expression", ["input", "halt_error", "halt_error(1)", "halt"])
def test_escape_hatches_are_errors(expression: str) -> None:
    with pytest.raises(ValueError, match="not available"):
        run(expression)


def test_debug_and_stderr_write_nothing(capfd: pytest.CaptureFixture[str]) -> None:
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


def test_syntax_errors_point_into_the_users_expression() -> None:
    with pytest.raises(ValueError) as caught:
        compile_jq(".a |")
    message = str(caught.value)
    assert "line 1" in message
    assert "{} as $ENV" not in message  # the prelude is not in the user's error


def test_every_jq_program_in_kiosk_goes_through_the_sandbox() -> None:
    """A new call site that compiles jq directly would bring the environment back within reach."""
    source = Path(__file__).resolve().parents[2] / "src" / "kiosk"
    direct = [
        str(path.relative_to(source))
        for path in sorted(source.rglob("*.py"))
        if path.name != "jq_sandbox.py" and ("jq.compile(" in path.read_text() or "import jq" in path.read_text())
    ]
    assert direct == []
