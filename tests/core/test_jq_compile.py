"""The jq compiler, form by form: what each form gives, what it defers, what it refuses.

libjq is the reference for all of it (tests/core/test_jq_compile_differential.py compares the
two over generated inputs); these tests pin each form's behaviour by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.core.jq_compile import CompiledProgram, Deferred, JqRuntimeError, NotCompilable, compile_program

ITEM = {
    "id": 7,
    "name": "ab c",
    "tags": ["x", "y", "z"],
    "project": {"id": "p 1", "name": "Kiosk"},
    "fields": {"System.Title": "Fix it", "Effort": None},
    "x y": 1,
    "flag": False,
}


def run(program: str, value: Any = ITEM, **variables: Any) -> list[Any]:
    return compile_program(program, set(variables)).run(value, variables)


@pytest.mark.parametrize(
    ("program", "outputs"),
    [
        (".", [ITEM]),
        (".project.id", ["p 1"]),
        ('.["x y"]', [1]),
        ('.fields."System.Title"', ["Fix it"]),
        (".tags[0]", ["x"]),
        (".tags[-1]", ["z"]),
        (".tags[5]", [None]),
        (".tags[1:]", [["y", "z"]]),
        (".name[:2]", ["ab"]),
        (".tags[]", ["x", "y", "z"]),
        (".missing.deeper", [None]),
        (".name.x?", []),
        (".tags[]?", ["x", "y", "z"]),
        (".id | . + 1", [8]),
        (".id, .name", [7, "ab c"]),
        ("[.tags[] | ascii_upcase]", [["X", "Y", "Z"]]),
    ],
)
def test_paths_pipes_and_commas(program: str, outputs: list[Any]) -> None:
    assert run(program) == outputs


@pytest.mark.parametrize(
    ("program", "outputs"),
    [
        ('.name + "-" + (.id | tostring)', ["ab c-7"]),
        (".tags + [1]", [["x", "y", "z", 1]]),
        ("{a: 1, b: 2} + {a: 3}", [{"a": 3, "b": 2}]),
        ("{a: {b: 1}} * {a: {c: 2}}", [{"a": {"b": 1, "c": 2}}]),
        ("null + .id", [7]),
        (".id / 2", [3.5]),
        (".id * 2", [14]),
        (".id % 4, (-7) % 3", [3, -1]),
        ('.tags - ["y"]', [["x", "z"]]),
        ('"a,b" / ","', [["a", "b"]]),
        ("(1, 2) + (10, 20)", [11, 12, 21, 22]),
    ],
)
def test_arithmetic_follows_jq_typing(program: str, outputs: list[Any]) -> None:
    assert run(program) == outputs


def test_type_errors_carry_libjq_messages() -> None:
    with pytest.raises(JqRuntimeError, match=r'^object \(\{"a":1\}\) and number \(1\) cannot be added$'):
        run("{a: 1} + 1")
    with pytest.raises(JqRuntimeError, match=r'^Cannot index string with string \("x"\)$'):
        run(".name.x")
    with pytest.raises(JqRuntimeError, match=r"^Cannot iterate over number \(7\)$"):
        run(".id[]")
    with pytest.raises(JqRuntimeError, match=r"divisor is zero$"):
        run(".id / 0")
    with pytest.raises(JqRuntimeError, match=r"^boom 7$"):
        run('error("boom \\(.id)")')


@pytest.mark.parametrize(
    ("program", "outputs"),
    [
        (".fields.Effort // -1", [-1]),
        (".flag // .missing // 3", [3]),
        ('.id == 7, .id != 7, .id < 8, .name >= "b"', [True, False, True, False]),
        ('null < false, false < true, true < 0, 0 < "", "" < [], [] < {}', [True] * 6),
        (".id and .flag, .id or .flag, (.flag | not)", [False, True, True]),
        ('if .id > 5 then "big" elif .id > 1 then "small" else "tiny" end', ["big"]),
        ("if .flag then 1 end", [ITEM]),
        ('.tags[] | select(. != "y")', ["x", "z"]),
        ("empty", []),
        ("[.tags[] | empty]", [[]]),
    ],
)
def test_alternatives_comparisons_and_conditionals(program: str, outputs: list[Any]) -> None:
    assert run(program) == outputs


def test_object_construction_in_jq_key_order() -> None:
    assert run('{id, "title": .name, (.project.name): .project.id, $__x}', __x=5) == [
        {"id": 7, "title": "ab c", "Kiosk": "p 1", "__x": 5}
    ]
    assert run("{a: (1, 2), b: (3, 4)}") == [{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(JqRuntimeError, match=r"^Cannot use number \(7\) as object key$"):
        run("{(.id): 1}")


def test_string_interpolation_and_string_builtins() -> None:
    assert run('"\\(.project.id)/\\(.id)"') == ["p 1/7"]
    assert run('"\\((1, 2))-\\((3, 4))"') == ["1-3", "2-3", "1-4", "2-4"]
    assert run("(.tags | tostring), (.name | tojson)") == ['["x","y","z"]', '"ab c"']
    assert run('"12" | tonumber') == [12]
    assert run('.name | ascii_upcase, split(" "), startswith("ab"), endswith("c")') == [
        "AB C",
        ["ab", "c"],
        True,
        True,
    ]
    assert run('.name | ltrimstr("ab "), rtrimstr(" c"), ltrimstr("zz")') == ["c", "ab", "ab c"]
    assert run('.tags | join("-")') == ["x-y-z"]
    assert run('[1, null, "a", true] | join(",")') == ["1,,a,true"]


def test_regular_expressions() -> None:
    assert run('.project.id | gsub(" "; "")') == ["p1"]
    assert run('"aXbXc" | sub("X"; "-"), gsub("X"; "-"), sub("X"; "-"; "g")') == ["a-bXc", "a-b-c", "a-b-c"]
    # Ocean's release link mapping: in a regex ``?`` makes the ``e`` optional, it is no literal
    assert run('"x/_release?releaseId=3", "x/_releasereleaseId=3" | gsub("_release?releaseId="; "")') == [
        "x/_release?releaseId=3",
        "x/3",
    ]
    assert run('"ab12" | gsub("(?<d>[0-9])"; "<\\(.d)>")') == ["ab<1><2>"]
    assert run('.name | test("^a"), test("c$"), test("^c")') == [True, True, False]
    with pytest.raises(JqRuntimeError, match=r"^number \(7\) cannot be matched, as it is not a string$"):
        run('.id | test("7")')


def test_collection_builtins() -> None:
    assert run(".tags | map(ascii_upcase), length, first, last") == [["X", "Y", "Z"], 3, "x", "z"]
    assert run('.project | keys, length, has("id"), to_entries') == [
        ["id", "name"],
        2,
        True,
        [{"key": "id", "value": "p 1"}, {"key": "name", "value": "Kiosk"}],
    ]
    assert run('[{key: "a", value: 1}] | from_entries') == [{"a": 1}]
    assert run(".id | type, length") == ["number", 7]
    assert run('.tags | any(. == "y"), all(. == "y"), any, all') == [True, False, True, True]
    assert run("first(.tags[]), last(.tags[]), first(empty)") == ["x", "z"]
    assert run('first(1, error("never reached"))') == [1]


def test_variables_are_the_callers() -> None:
    program = compile_program("$__x.a + .id", {"__x"})
    assert program.run({"id": 1}, {"__x": {"a": 2}}) == [3]
    with pytest.raises(KeyError):
        program.run({"id": 1})
    with pytest.raises(NotCompilable):
        compile_program("$__y")


def test_numbers_come_back_as_jq_gives_them() -> None:
    assert run(".") == [ITEM]
    assert run("1.5 + 1.5") == [3]
    assert isinstance(run("1.5 + 1.5")[0], int)
    assert run(".a", {"a": 2.0}) == [2]
    assert run(". / 4", 2) == [0.5]


@pytest.mark.parametrize(
    ("program", "value"),
    [
        (".", 2**60),  # past 2^53 jq holds doubles
        ("tostring", 1.5),  # jq 1.7+ prints input numbers as written
        (". + 1", {"a" * 40: 1}),  # the error would quote a truncated value
        ('gsub("x*"; "-")', "abc"),  # empty matches: jq's own rules
        ('"ab" * 2', None),
        ("tonumber", "1e3"),
    ],
)
def test_inputs_needing_libjq_are_deferred(program: str, value: Any) -> None:
    with pytest.raises(Deferred):
        run(program, value)


@pytest.mark.parametrize(
    "program",
    [
        "..",
        ".[] as $x | $x",
        "reduce .[] as $x (0; . + $x)",
        "foreach .[] as $x (0; . + $x)",
        "def f: 1; f",
        "try error(1) catch .",
        "label $out | 1",
        ".a = 1",
        ".a |= 1",
        ".a += 1",
        "@base64",
        '@csv "\\(.)"',
        "$ENV",
        "env",
        "$__loc__",
        "input",
        "range(10)",
        "limit(1; .[])",
        "tostream",
        "paths",
        'splits("a")',
        'match("a")',
        'capture("(?<a>.)")',
        'scan("a")',
        "test(.x)",
        'test("a"; "i")',
        'test("a"; "x")',
        'test("\\\\d")',
        'test("\\\\w+")',
        'test("[[:alpha:]]")',
        'test("(?i)a")',
        'test("a++")',
        'test("(a+)+b")',  # a quantified group may backtrack exponentially
        'test("(ab)*")',
        'test("(?:a|b){2}")',
        'test("^*")',
        'test("(?=a)")',
        'gsub("é[à-ü]"; "")',
        'split("a"; "g")',
        "{a: 1 + 2}",
        "1 == 2 == 3",
        "-.a * 2",
        "1e3",
        "1.0",
        "'a'",
        'import "a" as a; .',
        'include "a"; .',
        "foo::bar",
        "not(1)",
        ".a ?// .b",
        'getpath(["a"])',
        "",
        "(",
        ".a)",
        '"unterminated',
    ],
)
def test_forms_outside_the_subset_are_not_compilable(program: str) -> None:
    with pytest.raises(NotCompilable):
        compile_program(program)


def test_a_compiled_program_is_reusable_and_first_is_lazy() -> None:
    program = compile_program('.tags[] | if . == "y" then error("stop") else . end')
    assert isinstance(program, CompiledProgram)
    assert program.first(ITEM) == "x"
    assert program.first({"tags": []}) is None
    with pytest.raises(JqRuntimeError, match=r"^stop$"):
        program.run(ITEM)


def test_products_past_the_step_budget_are_deferred_not_run() -> None:
    """No loops, but products grow with the input: past the budget libjq's workers decide."""
    program = compile_program("[{a: .[], b: .[], c: .[]}] | length")
    assert program.run(list(range(10))) == [1000]
    with pytest.raises(Deferred, match="steps"):
        program.run(list(range(100)))  # 10^6 objects


def test_values_past_the_size_budget_are_deferred() -> None:
    program = compile_program(". + . | . + . | . + . | . + . | length")
    assert program.run("ab") == [32]
    with pytest.raises(Deferred, match="items"):
        program.run("x" * 300_000)


def test_regex_work_is_bounded_by_the_text_length() -> None:
    """Quantifiers sit on single atoms only, so backtracking is polynomial in the text; texts
    longer than the pattern's bound go to libjq's workers and their time limit."""
    program = compile_program('test("a*a*b")')
    assert program.run("a" * 100 + "b") == [True]
    with pytest.raises(Deferred, match="too long"):
        program.run("a" * 1000)
    assert compile_program('gsub(" "; "")').run("a b " * 100_000) == ["ab" * 100_000]


def test_inputs_nested_past_pythons_stack_are_deferred() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(Deferred, match="nested"):
        compile_program(".").run(deep)
    with pytest.raises(Deferred, match="nested"):
        compile_program(". == .").first(deep)
