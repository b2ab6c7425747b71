"""The compiled jq subset against libjq itself: same outputs, same error text, for every program.

The corpus is every mapping expression in Ocean's Azure DevOps defaults plus hand-written
programs covering each form the compiler takes (error cases included). Inputs are generated
(nested JSON with unicode, large integers and floats, and items shaped like the API's). An
input the compiled program hands back (:class:`Deferred`) is fine — the engine then asks
libjq — but the compiled answer, when there is one, must be libjq's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jq
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.core.jq_compile import Deferred, JqRuntimeError, NotCompilable, compile_program

OCEAN_DEFAULTS = Path("/work/shared/reference/ocean-defaults/port-app-config.yaml")


def _mapping_expressions(node: Any, inside_mappings: bool = False) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "query" and isinstance(value, str):
                found.append(value)
            found.extend(_mapping_expressions(value, inside_mappings or key == "mappings"))
    elif isinstance(node, list):
        for item in node:
            found.extend(_mapping_expressions(item, inside_mappings))
    elif isinstance(node, str) and inside_mappings:
        found.append(node)
    return found


def ocean_programs() -> list[str]:
    """Every jq expression in Ocean's default Azure DevOps mapping (selectors and mappings)."""
    config = yaml.safe_load(OCEAN_DEFAULTS.read_text())
    return sorted(set(_mapping_expressions(config["resources"])))


HAND_WRITTEN = [
    # identity and paths
    ".",
    ".a",
    ".a.b",
    '.["x y"]',
    '."x y".a',
    ".a[0]",
    ".a[-1]",
    ".a[1]",
    ".a?",
    ".a.b?",
    ".a[]",
    ".a[]?",
    ".[]?",
    ".a[1:]",
    ".a[:2]",
    ".a[-2:]",
    ".a[1:-1]",
    ".name[1:3]",
    '.["a"]["b"]',
    ".a[.i]",
    '.a | .["b"]',
    # pipes and commas
    ".a | .b",
    ".a, .b",
    "(.a, .b) | .c",
    "[.a, .id]",
    "[.[]?]",
    "[.a[]?]",
    "[]",
    # arithmetic
    ".a + .b",
    ".id + 1",
    ".a - .b",
    ".a * .b",
    ".a / .b",
    ".a % .b",
    ".id % 7",
    "null + .a",
    ".a + null",
    '.name + "-" + .id',
    "[.a] + [.b]",
    "{x: 1} + {y: .a}",
    "{x: {y: 1}} * {x: {z: .a}}",
    "[1, 2, 3, 1] - [.a, 1]",
    "-.id",
    "-.a",
    "(1, 2) + (10, 20)",
    ".id / 0",
    '"a" / .name',
    "10 - 2 - 3",
    "2 * 3 + 4",
    "2 + 3 * 4",
    "1.5 + .id",
    # alternative
    ".a // .b",
    ".a // 1",
    ".a.b // 1",
    "(.a, .b) // .id",
    "(null, false) // 2",
    "empty // 3",
    # comparisons and logic
    ".a == .b",
    ".a != 1",
    ".id < 5",
    ".a <= .b",
    '.name > "m"',
    ".a >= null",
    "[.a] == [.b]",
    "{a: .a} == {a: .b}",
    ".a and .b",
    ".a or .b",
    ".a | not",
    "(true, false) and (true, false)",
    "(true, false) or (true, false)",
    ".isEnabled and .isBlocking",
    # conditionals and select
    "if .a then 1 else 2 end",
    "if .a then .b end",
    'if .id == 1 then "one" elif .id == 2 then "two" else "many" end',
    "if (.a, .b) then 1 else 2 end",
    "select(.a)",
    "select(.id > 1) | .name",
    ".a[]? | select(. != null)",
    # construction
    "{a, b}",
    '{"b": .a, c: .id}',
    "{(.name): .id}",
    '{"k\\(.id)": 1}',
    "{a: (.a, .b)}",
    "{a: (1, 2), b: (3, 4)}",
    "{$__x}",
    "{x: $__x, y: .a}",
    "{a: .a | .b?}",
    "{a: -1}",
    "{if: 1, then: .a}",
    "[.a, .b, .id]",
    "[.a[]? | . ]",
    # interpolation
    '"\\(.a)-\\(.b)"',
    '"id=\\(.id), name=\\(.name)"',
    '"\\((1, 2))-\\((3, 4))"',
    '"x\\(.a | tostring)y"',
    '"\\u00e9\\t\\n\\(.name)"',
    # string builtins
    ".a | tostring",
    ".id | tostring",
    ".name | tostring",
    ". | tostring",
    ".a | tojson",
    ".name | tonumber",
    ".id | tonumber",
    ".a | tonumber",
    ".name | ascii_downcase",
    ".name | ascii_upcase",
    '.name | split("a")',
    '.name | split(", ")',
    '.a | split("-")',
    '.a | join("-")',
    '.a | join(", ")',
    '[.name, .id, null, true] | join("/")',
    '.name | startswith("a")',
    '.name | endswith("b")',
    '.a | startswith("x")',
    '.name | ltrimstr("a")',
    '.name | rtrimstr("b")',
    '.a | ltrimstr("x")',
    # regex
    '.name | test("a")',
    '.name | test("^a")',
    '.name | test("b$")',
    '.name | test("a.c")',
    '.name | test("[a-c]+")',
    '.name | test("(ab|cd)e?")',
    '.name | test("a"; "g")',
    '.name | gsub(" "; "")',
    '.name | gsub("a"; "b")',
    '.name | gsub("[ae]+"; "-")',
    '.name | gsub("(?<x>[a-z])"; "<\\(.x)>")',
    '.name | sub("a"; "b")',
    '.name | sub("a"; "b"; "g")',
    '.name | gsub("_release?releaseId="; "")',
    '.a | gsub("x"; "y")',
    '.a | test("x")',
    # collections
    ".a | map(. + 1)",
    ".a | map(tostring)",
    ".a | length",
    ".name | length",
    ".id | length",
    "length",
    "keys",
    ".a | keys",
    'has("a")',
    ".a | has(0)",
    '.a | has("x")',
    ".a | first",
    ".a | last",
    "first(.a[]?)",
    "last(.a[]?)",
    "first(empty)",
    ".a | type",
    "[.[]? | type]",
    "to_entries",
    ".a | to_entries",
    "to_entries | from_entries",
    ".a | any",
    ".a | all",
    ".a | any(. == 1)",
    "any(.a[]?; . == 1)",
    "all(.a[]?; . != null)",
    # empty and errors
    "empty",
    "[empty]",
    '.a, error("boom")',
    'error("x: \\(.name)")',
    ".name | error",
    "error(.a)",
    '.a[]? | if . == 1 then error("one") else . end',
    "(.a | error)?",
    '[.a[]? | (if . then error("no") else . end)?]',
    # optional steps against try
    ".a[0]?",
    ".a[1:]?",
    '.a[(0, "x", 1)]?',
    '(.a[(0, "x", 1)])?',
    "(.a, .b)[]?",
    "[.a[]?, .b[]?]",
    ".a?.b?",
    # unary minus and its neighbours
    "-.id + 1",
    "1 - -.id",
    "(-.id) * 2",
    "-(.id * 2)",
    # more regex
    '.name | gsub("a+?"; "-")',
    '.name | gsub("(a|b)c{1,2}"; "")',
    '.name | gsub("[^a-c ]"; "")',
    '.name | sub("^(?<first>.)"; "\\(.first)\\(.first)")',
    '.name | test("a.*b")',
    '.name | gsub("\\\\."; "/")',
    '.name | test("é")',
    # variables
    "$__x",
    "$__x.a",
    "$__x + .id",
    "[$__x, $__y]",
    ".name + ($__y | tostring)",
]


def _libjq_compiles(program: str) -> bool:
    try:
        jq.compile(program)
    except ValueError:
        return False
    return True


#: Ocean's defaults hold one program jq itself refuses (``// ''``: jq has no single quotes).
OCEAN_VALID = [program for program in ocean_programs() if _libjq_compiles(program)]
OCEAN_INVALID = [program for program in ocean_programs() if not _libjq_compiles(program)]
PROGRAMS = OCEAN_VALID + HAND_WRITTEN

KEYS = ["a", "b", "i", "id", "name", "x y", "isEnabled", "isBlocking", "url", "c", "é", ""]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.integers(min_value=-20, max_value=20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
    | st.sampled_from(["a", "b", "ab cd", "a, b", "abc-de", "x_release?releaseId=1", "1", "42", "-3", "007", " A b "])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=12,
)


def _item() -> st.SearchStrategy[Any]:
    """Items shaped like the API's, with generated leaves, so mappings reach their deep paths."""
    leaf = scalars
    return st.fixed_dictionaries(
        {
            "id": st.integers(min_value=0, max_value=10**6) | st.text(max_size=6),
            "name": st.text(max_size=10) | st.sampled_from(["ab c", "x y z"]),
            "url": leaf,
            "remoteUrl": leaf,
            "project": st.fixed_dictionaries({"id": leaf}),
            "__project": st.fixed_dictionaries({"id": st.text(max_size=6) | leaf}),
            "__projectId": leaf,
            "projectReference": st.fixed_dictionaries({"id": leaf}),
            "fields": st.dictionaries(
                st.sampled_from(
                    ["System.Title", "System.WorkItemType", "System.BoardColumn", "System.State", "System.Description"]
                ),
                leaf,
            ),
            "__includedFiles": st.dictionaries(st.sampled_from(["README.md", "CODEOWNERS"]), leaf),
            "_links": st.fixed_dictionaries({"web": st.fixed_dictionaries({"href": leaf})}),
            "type": st.fixed_dictionaries({"displayName": st.sampled_from(["Minimum number of reviewers", "x"])}),
            "a": json_values,
            "b": json_values,
        }
    )


inputs = json_values | _item()


def _json_text(value: Any) -> str:
    """The input as the engine hands it to jq (orjson; Python's json past 64-bit integers)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)


_LIBJQ: dict[str, Any] = {}


def libjq(program: str, value: Any, variables: dict[str, Any]) -> tuple[str, Any]:
    if variables:  # jq binds named arguments when it compiles
        compiled = jq.compile(program, args=variables)
    else:
        compiled = _LIBJQ.get(program) or _LIBJQ.setdefault(program, jq.compile(program))
    try:
        return "ok", compiled.input_text(_json_text(value)).all()
    except ValueError as exc:
        return "error", str(exc)


def ours(program: str, value: Any, variables: dict[str, Any]) -> tuple[str, Any] | None:
    compiled = compile_program(program, set(variables))
    try:
        return "ok", compiled.run(value, variables)
    except JqRuntimeError as exc:
        return "error", str(exc)
    except Deferred:
        return None


def _normal(value: Any) -> Any:
    """JSON values compared as jq prints them: an integral double is an integer."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_normal(item) for item in value]
    if isinstance(value, dict):
        return [(key, _normal(item)) for key, item in value.items()]  # key order matters
    return value


def _variables(program: str, draw: Any) -> dict[str, Any]:
    return {name: draw(json_values) for name in ("__x", "__y") if f"${name}" in program}


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_program_compiles(program: str) -> None:
    compile_program(program, {"__x", "__y"})


@pytest.mark.parametrize("program", OCEAN_INVALID)
def test_programs_libjq_refuses_are_not_compiled(program: str) -> None:
    with pytest.raises(NotCompilable):
        compile_program(program)


@pytest.mark.parametrize("program", PROGRAMS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_answers_as_libjq(program: str, data: st.DataObject) -> None:
    value = data.draw(inputs)
    variables = _variables(program, data.draw)
    mine = ours(program, value, variables)
    if mine is None:
        return
    theirs = libjq(program, value, variables)
    assert (mine[0], _normal(mine[1])) == (theirs[0], _normal(theirs[1])), (program, value)


def test_ocean_mappings_are_answered_without_libjq_for_typical_items() -> None:
    """Deferring is for corner cases: the defaults over ordinary items never need libjq."""
    item = {
        "id": 17,
        "name": "kiosk",
        "url": "https://dev.azure.com/org/_apis/projects/p1",
        "remoteUrl": "https://dev.azure.com/org/p/_git/kiosk",
        "project": {"id": "p 1"},
        "__project": {"id": "p 1"},
        "__projectId": "p 1",
        "projectReference": {"id": "p 1"},
        "fields": {"System.Title": "Fix", "System.WorkItemType": "Bug", "System.BoardColumn": "Doing"},
        "__includedFiles": {"README.md": "# hi"},
        "_links": {"web": {"href": "https://x/_release?releaseId=3"}},
        "type": {"displayName": "Minimum number of reviewers"},
        "settings": {"minimumApproverCount": 2},
        "isEnabled": True,
        "isBlocking": False,
        "__stateType": "InProgress",
        "__board": {"id": "b 1", "__project": {"id": "p 1"}},
    }
    assert len(OCEAN_VALID) > 30
    for program in OCEAN_VALID:
        mine = ours(program, item, {})
        assert mine is not None, program
        assert mine == libjq(program, item, {}), program
