"""Example-based tests for the ``${{ }}`` expression language: literals, accessors, every
function, the casting rules, errors and their positions, and the string helpers."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from kiosk.pipelines.errors import ExpressionError, PipelineError
from kiosk.pipelines.expressions import (
    FUNCTION_NAMES,
    MAX_DEPTH,
    Call,
    Filter,
    Index,
    Literal,
    Name,
    Property,
    Version,
    evaluate,
    find_expressions,
    is_truthy,
    parse,
    render,
    substitute,
    to_string,
    unparse,
)

CTX: dict[str, Any] = {
    "parameters": {
        "name": "Kiosk",
        "count": 3,
        "flag": True,
        "empty": "",
        "nothing": None,
        "list": ["a", "b", "c"],
        "numbers": [1, 2, 3],
        "obj": {"Alpha": 1, "beta": "two"},
        "jobs": [
            {"name": "build", "steps": [{"id": 1}, {"id": 2}]},
            {"name": "test", "steps": [{"id": 3}]},
            {"other": True},
        ],
        "map": {"x": {"v": 1}, "y": {"v": 2}},
    },
    "variables": {"Build.SourceBranch": "refs/heads/main", "configuration": "Release", "zero": "0"},
}


def ev(expression: str) -> Any:
    return evaluate(expression, CTX)


def error(expression: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        evaluate(expression, CTX)
    return info.value


# ---------------------------------------------------------------------------------- errors.py


def test_pipeline_error_str_with_full_location() -> None:
    err = ExpressionError("boom", file="pipeline.yml", line=12, column=7, expression="parameters.x.y")
    assert str(err) == 'pipeline.yml:12:7: boom in expression "parameters.x.y"'
    assert isinstance(err, PipelineError)


def test_pipeline_error_str_partial_locations() -> None:
    assert str(PipelineError("boom")) == "boom"
    assert str(PipelineError("boom", column=3)) == "column 3: boom"
    assert str(PipelineError("boom", line=2, column=3)) == "line 2, column 3: boom"
    assert str(PipelineError("boom", file="a.yml")) == "a.yml: boom"


def test_located_returns_a_copy_and_keeps_unset_fields() -> None:
    err = ExpressionError("boom", column=4, expression="x")
    moved = err.located("p.yml", 9)
    assert (moved.file, moved.line, moved.column, moved.expression) == ("p.yml", 9, 4, "x")
    assert type(moved) is ExpressionError
    assert err.file is None and err.line is None
    assert err.located(column=1).column == 1


def test_error_pickles() -> None:
    err = ExpressionError("boom", file="p.yml", line=1, column=2, expression="x")
    again = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own object
    assert str(again) == str(err)


# ---------------------------------------------------------------------------------- literals


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("False", False),
        ("null", None),
        ("NULL", None),
        ("0", 0),
        ("42", 42),
        ("-1", -1),
        ("1.5", 1.5),
        ("-1.2", -1.2),
        (".5", 0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ("-1.5e+2", -150.0),
        ("0x1F", 31),
        ("0XfF", 255),
        ("-0x10", -16),
        ("'text'", "text"),
        ("''", ""),
        ("'it''s'", "it's"),
        ("''''", "'"),
        ("'a b c'", "a b c"),
        ("'}}'", "}}"),
    ],
)
def test_literals(text: str, value: Any) -> None:
    result = ev(text)
    assert result == value
    assert type(result) is type(value)


def test_version_literals() -> None:
    assert ev("1.2.3") == Version((1, 2, 3))
    assert ev("1.2.3.4") == Version((1, 2, 3, 4))
    assert str(ev("10.0.3")) == "10.0.3"


def test_whitespace_anywhere() -> None:
    assert ev("  eq ( parameters . name , 'kiosk' )  ") is True
    assert ev("parameters [ 'list' ] [ 1 ]") == "b"
    assert ev("\tparameters.jobs . * . name\n") == ["build", "test"]


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("1.2.3.4.5", "invalid number '1.2.3.4.5'", 1),
        ("1.2.x", "invalid number '1.2.x'", 1),
        ("12abc", "invalid number '12abc'", 1),
        ("-", "unexpected '-'", 1),
        ("'abc", "unterminated string literal", 1),
        ("eq('a', 'b)", "unterminated string literal", 9),
        ("1" * 400, "number literal is too long", 1),
        ("1e999", "out of range", 1),
        ("99999999999.1.1", "version part out of range", 1),
        ('"x"', "unexpected character '\"'", 1),
        ("a + b", "unexpected character '+'", 3),
    ],
)
def test_lexer_errors_name_text_and_position(text: str, fragment: str, column: int) -> None:
    err = error(text)
    assert fragment in err.message
    assert err.column == column
    assert err.expression == text


# ---------------------------------------------------------------------------------- parser


def test_parse_produces_frozen_nodes() -> None:
    node = parse("eq(parameters.list[0], 'a')")
    assert node == Call(
        "eq",
        (Index(Property(Name("parameters", 3), "list", 13), Literal(0, 19), 18), Literal("a", 23)),
        0,
    )
    with pytest.raises(AttributeError):
        node.name = "ne"  # type: ignore[misc]


def test_parse_filter_node() -> None:
    node = parse("a.*.b")
    assert isinstance(node, Property)
    assert isinstance(node.target, Filter)


def test_unparse_round_trips_structure() -> None:
    source = "format('{0}''s', parameters.jobs.*.name[0], 1.5, true, null, 1.2.3)"
    assert unparse(parse(source)) == source
    assert unparse(parse("  EQ( a . b ,TRUE ) ")) == "EQ(a.b, true)"


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("", "expected an expression", 1),
        ("eq(1, 2", "unexpected end of expression", 8),
        ("eq(1, 2))", "unexpected ')'", 9),
        ("eq(1 2)", "expected ',' or ')' in the call to eq", 6),
        ("a[1", "expected ']'", 4),
        ("a[1)", "expected ']'", 4),
        ("a]", "unexpected ']'", 2),
        ("a.", "expected a property name", 3),
        ("a.1", "unexpected '1'", 3),
        ("(1)", "unexpected '('", 1),
        ("eq(,1)", "unexpected ','", 4),
        ("true.x", "unexpected '.'", 5),
        ("a b", "unexpected 'b'", 3),
        ("a.b(1)", "unexpected '('", 4),
    ],
)
def test_syntax_errors_name_text_and_position(text: str, fragment: str, column: int) -> None:
    err = error(text)
    assert fragment in err.message
    assert err.column == column


def test_unknown_function_is_named_with_position() -> None:
    err = error("and(true, frobnicate(1))")
    assert "unknown function 'frobnicate'" in err.message
    assert err.column == 11


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("eq(1)", "function 'eq' takes exactly 2 arguments, got 1"),
        ("not(1, 2)", "function 'not' takes exactly 1 argument, got 2"),
        ("and(true)", "function 'and' takes at least 2 arguments, got 1"),
        ("iif(true, 1)", "function 'iif' takes exactly 3 arguments, got 2"),
        ("in()", "function 'in' takes at least 1 arguments, got 0"),
        ("lower()", "function 'lower' takes exactly 1 argument, got 0"),
    ],
)
def test_arity_errors_name_the_function(text: str, fragment: str) -> None:
    assert fragment in error(text).message


def test_depth_limit_is_an_expression_error() -> None:
    ok = "not(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH
    assert ev(ok) is (MAX_DEPTH % 2 == 0)
    deep = "not(" * (MAX_DEPTH + 1) + "true" + ")" * (MAX_DEPTH + 1)
    assert "nests deeper than 50" in error(deep).message
    brackets = "parameters" + "[parameters" * 5000 + "]" * 5000
    assert "nests deeper" in error(brackets).message


def test_long_property_chain_does_not_recurse() -> None:
    assert ev("parameters" + ".x" * 5000) is None


# ---------------------------------------------------------------------------------- accessors


def test_property_access_and_case_insensitive_keys() -> None:
    assert ev("parameters.name") == "Kiosk"
    assert ev("PARAMETERS.NAME") == "Kiosk"
    assert ev("parameters.obj.alpha") == 1
    assert ev("parameters['OBJ']['BETA']") == "two"
    assert ev("variables['build.sourcebranch']") == "refs/heads/main"


def test_exact_key_wins_over_case_insensitive_match() -> None:
    assert evaluate("p.a", {"p": {"A": 1, "a": 2}}) == 2


def test_index_access() -> None:
    assert ev("parameters.list[0]") == "a"
    assert ev("parameters.list[2]") == "c"
    assert ev("parameters.list[parameters.numbers[0]]") == "b"
    assert ev("parameters[variables.missing]") is None
    assert ev("parameters.map[1]") is None


@pytest.mark.parametrize(
    "text",
    [
        "parameters.missing",
        "parameters.missing.deeper[0]",
        "parameters.list[3]",
        "parameters.list[-1]",
        "parameters.list[0.5]",
        "parameters.list['0']",
        "parameters.list.name",
        "parameters.name.length",
        "parameters.count[0]",
        "parameters.obj[parameters.list]",
        "parameters.nothing.x",
    ],
)
def test_misses_are_null_never_errors(text: str) -> None:
    assert ev(text) is None


def test_filter_projection() -> None:
    assert ev("parameters.jobs.*.name") == ["build", "test"]
    assert ev("parameters.jobs.*.steps.*.id") == [1, 2, 3]
    assert ev("parameters.map.*.v") == [1, 2]
    assert ev("parameters.list.*") == ["a", "b", "c"]
    assert ev("parameters.jobs.*['name']") == ["build", "test"]
    assert ev("parameters.name.*") is None
    result = ev("parameters.jobs.*.name")
    assert type(result) is list


def test_unknown_top_level_name_is_an_error() -> None:
    err = error("eq(pipeline.name, 'x')")
    assert "unrecognized value 'pipeline'" in err.message
    assert err.column == 4


# ---------------------------------------------------------------------------------- casting


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        (True, True),
        (0, False),
        (0.0, False),
        (float("nan"), False),
        (-1, True),
        (0.1, True),
        ("", False),
        ("false", True),
        ("0", True),
        ([], True),
        ({}, True),
        (Version((1, 0)), True),
    ],
)
def test_boolean_conversion(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "True"),
        (False, "False"),
        (3, "3"),
        (3.0, "3"),
        (-0.0, "0"),
        (1e20, "100000000000000000000"),
        (1.5, "1.5"),
        (float("inf"), "Infinity"),
        ("x", "x"),
        (Version((1, 2, 3)), "1.2.3"),
    ],
)
def test_string_conversion(value: Any, text: str) -> None:
    assert to_string(value) == text


def test_arrays_and_objects_do_not_convert_to_string() -> None:
    with pytest.raises(ExpressionError, match="an array cannot be converted to a string"):
        to_string([1])
    with pytest.raises(ExpressionError, match="an object cannot be converted to a string"):
        to_string({})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # right converted to the left's type
        ("eq(1, '1')", True),
        ("eq(1, ' 1.0 ')", True),
        ("eq(0, '')", True),
        ("eq(0, null)", True),
        ("eq(1, true)", True),
        ("eq(1, 'abc')", False),
        ("ne(1, 'abc')", True),
        ("eq('1', 1)", True),
        ("eq('True', true)", True),
        ("eq('true', true)", True),
        ("eq('', null)", True),
        ("eq(true, 'false')", True),  # non-empty string is true
        ("eq(false, '')", True),
        ("eq(true, 2)", True),
        ("eq(false, 0)", True),
        ("eq(null, null)", True),
        ("eq(null, '')", True),  # the table's String to Null: '' -> Null
        ("eq(null, 0)", False),
        ("eq(1.2.3, '1.2.3')", True),
        ("eq(1.2.3, 'x')", False),
        ("eq('ABC', 'abc')", True),
        ("ne('ABC', 'abd')", True),
        ("eq(parameters.list, parameters.list)", True),
        ("eq(parameters.list, 'a')", False),
        ("eq('a', parameters.list)", False),
        ("eq(parameters.flag, 'True')", True),
        ("eq(variables.zero, 0)", True),
        ("eq(0, variables.zero)", True),
        ("eq(1, 1.0)", True),
        ("eq('Straße', 'STRASSE')", False),  # ordinal: no full case folding
        ("eq('é', 'É')", True),
        # ordering
        ("gt(2, '10')", False),
        ("gt('2', 10)", True),  # string comparison: '2' > '10'
        ("lt('a', 'B')", True),
        ("ge('abc', 'ABC')", True),
        ("le(1, 1)", True),
        ("gt(true, false)", True),
        ("lt(1.2.3, '1.10.0')", True),
        ("gt(1.2.3, 1.2)", True),
        ("ge(null, null)", True),
        ("lt(3, parameters.count)", False),
        ("le(3, parameters.count)", True),
        ("gt(parameters.count, '2')", True),
        ("gt(1, null)", True),
    ],
)
def test_comparisons_and_casting(text: str, expected: bool) -> None:
    assert ev(text) is expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("gt(1, 'abc')", "gt() cannot compare a number with a string ('abc' does not convert to number)"),
        ("lt(1.2.3, 'x')", "lt() cannot compare a version with a string"),
        ("ge(null, 1)", "ge() cannot compare a null with a number"),
        ("le('a', parameters.list)", "le() cannot compare a string with an array"),
        ("gt(parameters.list, parameters.list)", "gt() cannot compare an array with an array"),
    ],
)
def test_ordering_conversion_failure_raises(text: str, fragment: str) -> None:
    err = error(text)
    assert fragment in err.message
    assert err.column == 1


# ---------------------------------------------------------------------------------- functions


def test_function_names_are_case_insensitive() -> None:
    assert ev("EQ(1, 1)") is True
    assert ev("StartsWith('abc', 'A')") is True
    assert ev("CONVERTTOJSON(1)") == "1"
    assert ev("notin('x', 'a')") is True


def test_function_table_is_the_documented_one() -> None:
    assert set(FUNCTION_NAMES) == set(
        [
            "and",
            "or",
            "not",
            "xor",
            "eq",
            "ne",
            "gt",
            "ge",
            "lt",
            "le",
            "in",
            "notIn",
            "contains",
            "containsValue",
            "startsWith",
            "endsWith",
            "format",
            "coalesce",
            "join",
            "replace",
            "lower",
            "upper",
            "split",
            "length",
            "convertToJson",
            "iif",
            "trim",
        ]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("and(true, true)", True),
        ("and(true, 1, 'x', parameters.list)", True),
        ("and(true, '')", False),
        ("or(false, 0, null, '')", False),
        ("or(false, 'a')", True),
        ("not(0)", True),
        ("not('x')", False),
        ("xor(true, false)", True),
        ("xor(1, 'a')", False),
    ],
)
def test_logical(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_and_or_iif_coalesce_short_circuit() -> None:
    # The second argument would fail (gt conversion error) if it were evaluated.
    assert ev("and(false, gt(1, 'x'))") is False
    assert ev("or(true, gt(1, 'x'))") is True
    assert ev("iif(true, 'yes', gt(1, 'x'))") == "yes"
    assert ev("iif(0, gt(1, 'x'), 'no')") == "no"
    assert ev("coalesce('first', gt(1, 'x'))") == "first"
    with pytest.raises(ExpressionError):
        ev("and(true, gt(1, 'x'))")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in('b', 'a', 'B')", True),
        ("in('x', 'a', 'b')", False),
        ("in('x')", False),
        ("in(1, '1.0', 2)", True),
        ("in('b', parameters.list)", False),  # eq semantics: a string never equals an array
        ("notIn('x', 'a', 'b')", True),
        ("notIn('A', 'a')", False),
        ("contains('ABCDE', 'bcd')", True),
        ("contains('abc', 'x')", False),
        ("contains(123, 2)", True),
        ("contains('abc', '')", True),
        ("containsValue(parameters.list, 'B')", True),
        ("containsValue(parameters.list, 'z')", False),
        ("containsValue(parameters.numbers, 2)", True),
        ("containsValue(parameters.numbers, '2')", True),
        ("containsValue(parameters.obj, 'TWO')", True),
        ("containsValue(parameters.obj, 1)", True),
        ("containsValue('abc', 'a')", False),
        ("containsValue(parameters.missing, 'a')", False),
        ("startsWith('refs/heads/main', 'REFS/')", True),
        ("startsWith('abc', 'b')", False),
        ("endsWith('file.YML', '.yml')", True),
        ("endsWith('abc', 'b')", False),
        ("startsWith(variables['Build.SourceBranch'], 'refs/heads/')", True),
    ],
)
def test_membership_and_string_tests(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_contains_on_array_is_an_error_pointing_to_contains_value() -> None:
    err = error("contains(parameters.list, 'a')")
    assert "argument 1 of contains() is an array" in err.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("format('{0} {1}', 'a', 'b')", "a b"),
        ("format('{1}-{0}-{1}', 'a', 'b')", "b-a-b"),
        ("format('{{0}} is {0}', 'x')", "{0} is x"),
        ("format('}}{{')", "}{"),
        ("format('{0}', true)", "True"),
        ("format('{0}|{1}|{2}', null, 1.0, 1.2.3)", "|1|1.2.3"),
        ("format('plain')", "plain"),
        ("format('{ 0 }', 'x')", "x"),
        ("coalesce(null, '', 'x', 'y')", "x"),
        ("coalesce(parameters.missing, parameters.empty, 0)", 0),
        ("coalesce(null, '')", None),
        ("coalesce(false, 'x')", False),
        ("join(';', parameters.list)", "a;b;c"),
        ("join(', ', parameters.numbers)", "1, 2, 3"),
        ("join('-', parameters.jobs)", "--"),  # complex items become ''
        ("join(',', 'single')", "single"),
        ("join(',', null)", ""),
        ("replace('a-b-a', 'a', 'x')", "x-b-x"),
        ("replace('ABA', 'a', 'x')", "ABA"),  # ordinal, case-sensitive
        ("replace('abc', '', 'x')", "abc"),
        ("lower('ABC')", "abc"),
        ("upper('abc')", "ABC"),
        ("upper(true)", "TRUE"),
        ("trim('  a b \t')", "a b"),
        ("split('a,b', ',')", ["a", "b"]),
        ("split('a,,b,', ',')", ["a", "", "b", ""]),
        ("split('a::b', '::')", ["a", "b"]),
        ("split('abc', '')", ["abc"]),
        ("split(null, ',')", [""]),
        ("length('abc')", 3),
        ("length('')", 0),
        ("length('\U0001f600')", 2),  # UTF-16 code units, like .NET
        ("length(parameters.list)", 3),
        ("length(parameters.obj)", 2),
        ("length(parameters.missing)", 0),
        ("length(split('a,b,c', ','))", 3),
        ("iif(eq(variables.configuration, 'release'), 'opt', 'debug')", "opt"),
        ("iif(parameters.empty, 1, 2)", 2),
        ("iif(true, parameters.obj, 1)", {"Alpha": 1, "beta": "two"}),
    ],
)
def test_value_functions(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


def test_convert_to_json_is_pretty_with_two_spaces() -> None:
    assert ev("convertToJson(parameters.obj)") == '{\n  "Alpha": 1,\n  "beta": "two"\n}'
    assert ev("convertToJson(parameters.numbers)") == "[\n  1,\n  2,\n  3\n]"
    assert ev("convertToJson('x')") == '"x"'
    assert ev("convertToJson(null)") == "null"
    assert ev("convertToJson(true)") == "true"
    assert ev("convertToJson(1.2.3)") == '"1.2.3"'
    assert ev("convertToJson('é')") == '"é"'


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("format('{0}')", "placeholder '{0}' but only 0 argument(s) given"),
        ("format('{1}', 'a')", "placeholder '{1}' but only 1 argument(s) given"),
        ("format('{x}', 'a')", "invalid placeholder '{x}'"),
        ("format('{0', 'a')", "unmatched '{'"),
        ("format('a}', 'a')", "unmatched '}'"),
        ("format('{0:yyyy}', 'a')", "format specifier"),
        ("format('{0}', parameters.obj)", "argument 1 of format() is an object"),
        ("join(parameters.list, ',')", "argument 1 of join() is an array"),
        ("join(',', parameters.obj)", "argument 1 of join() is an object"),
        ("length(1)", "length() needs a string, array or object, not a number"),
        ("lower(parameters.list)", "argument 1 of lower() is an array"),
        ("split(parameters.obj, ',')", "argument 1 of split() is an object"),
    ],
)
def test_function_errors(text: str, fragment: str) -> None:
    err = error(text)
    assert fragment in err.message
    assert err.column == 1
    assert err.expression == text


def test_error_column_points_at_the_failing_call() -> None:
    err = error("and(true, length(1))")
    assert err.column == 11


def test_unsupported_python_value_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="unsupported value of Python type object"):
        evaluate("eq(p, 1)", {"p": object()})


def test_evaluate_accepts_a_node_and_names_it_in_errors() -> None:
    assert evaluate(Call("eq", (Literal(1), Literal("1"))), {}) is True
    with pytest.raises(ExpressionError) as info:
        evaluate(Call("bogus", (Literal(1),)), {})
    assert info.value.expression == "bogus(1)"


def test_deeply_nested_context_value_fails_cleanly() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ExpressionError):
        evaluate("convertToJson(p)", {"p": deep})


# ---------------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "True"), (False, "False"), (2, "2"), (2.0, "2"), (2.5, "2.5"), ("s", "s")],
)
def test_render_scalars(value: Any, text: str) -> None:
    assert render(value) == text


@pytest.mark.parametrize(("value", "kind"), [({"a": 1}, "an object"), ([1], "an array")])
def test_render_refuses_arrays_and_objects(value: Any, kind: str) -> None:
    with pytest.raises(ExpressionError) as info:
        render(value, "parameters.x")
    assert f"cannot be inserted into a string: it is {kind}" in info.value.message
    assert info.value.expression == "parameters.x"


# ---------------------------------------------------------------------------------- in text


def test_find_expressions() -> None:
    text = "a ${{ x }} b ${{'}}'}} c ${{ eq('it''s', '}}') }}"
    spans = find_expressions(text)
    assert [s[2] for s in spans] == ["x", "'}}'", "eq('it''s', '}}')"]
    for start, end, _ in spans:
        assert text[start:end].startswith("${{") and text[start:end].endswith("}}")
    assert spans[0][:2] == (2, 10)


def test_find_expressions_none_and_plain_dollar() -> None:
    assert find_expressions("echo $(var) and ${ x } and $[ y ]") == ()


@pytest.mark.parametrize(("text", "column"), [("ab ${{ x", 4), ("${{ 'x }}", 1), ("ok ${{ a }} ${{ 'b", 13)])
def test_find_expressions_unterminated(text: str, column: int) -> None:
    with pytest.raises(ExpressionError, match="unterminated expression") as info:
        find_expressions(text)
    assert info.value.column == column


def test_substitute_whole_value_keeps_type() -> None:
    assert substitute("${{ parameters.obj }}", CTX) == {"Alpha": 1, "beta": "two"}
    assert substitute("${{ parameters.list }}", CTX) == ["a", "b", "c"]
    assert substitute("${{ parameters.count }}", CTX) == 3
    assert substitute("${{ true }}", CTX) is True
    assert substitute("${{ parameters.missing }}", CTX) is None
    assert substitute("${{ 1.2.3 }}", CTX) == "1.2.3"
    assert substitute("${{parameters.name}}", CTX) == "Kiosk"


def test_substitute_embedded_renders() -> None:
    assert substitute("echo ${{ parameters.name }}!", CTX) == "echo Kiosk!"
    assert substitute("${{ parameters.flag }} and ${{ parameters.count }}", CTX) == "True and 3"
    assert substitute(" ${{ parameters.missing }} ", CTX) == "  "
    assert substitute("${{ 'a' }}${{ 'b' }}", CTX) == "ab"


def test_substitute_without_expressions_is_identity() -> None:
    text = "echo $(Build.SourceBranch) }} {{ $"
    assert substitute(text, CTX) is text


def test_substitute_object_in_string_fails_with_column_and_expression() -> None:
    with pytest.raises(ExpressionError) as info:
        substitute("echo ${{ parameters.obj }}", CTX)
    err = info.value
    assert err.column == 6
    assert err.expression == "parameters.obj"
    assert "cannot be inserted into a string: it is an object" in err.message
    located = err.located("azure-pipelines.yml", 7)
    assert str(located).startswith("azure-pipelines.yml:7:6: the value cannot be inserted into a string")
    assert str(located).endswith('in expression "parameters.obj"')


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("x ${{ nope(1) }}", 3, "unknown function 'nope'"),
        ("${{ eq(1) }}", 1, "takes exactly 2 arguments"),
        ("abc ${{ a[ }}", 5, "unexpected end of expression"),
        ("a ${{ b }} ${{ gt(1, 'x') }}", 12, "gt() cannot compare"),
        ("${{ }}", 1, "expected an expression"),
    ],
)
def test_substitute_errors_carry_the_expression_start_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        substitute(text, {"a": 1, "b": 2})
    assert info.value.column == column
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("+7", 7),
        (" \t7\n", 7),
        ("1,000", 1000),
        ("1,000,000.25", 1000000.25),
        ("1,", 1),  # .NET accepts a group separator anywhere after the first digit
        ("1.", 1.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("", 0),
    ],
)
def test_strings_convert_to_numbers_as_dotnet_tryparse_does(text: str, number: int | float) -> None:
    """Microsoft's "Type casting" table: '' is 0, otherwise TryParse with AllowDecimalPoint |
    AllowLeadingSign | AllowLeadingWhite | AllowThousands | AllowTrailingWhite, invariant culture."""
    assert evaluate(f"eq({number!r}, variables.x)", {"variables": {"x": text}}) is True
    assert evaluate("ge(variables.n, variables.x)", {"variables": {"x": text, "n": number}}) is True


@pytest.mark.parametrize(
    "text",
    [" ", "1e3", "1E3", "0x10", ",1", "1.2,3", "- 5", "--5", "1 000", ".", "-", "Infinity", "NaN", "\u0661", "1_000"],
)
def test_strings_outside_the_documented_styles_do_not_convert_to_numbers(text: str) -> None:
    assert evaluate("eq(0, variables.x)", {"variables": {"x": text}}) is False
    assert evaluate("ne(1, variables.x)", {"variables": {"x": text}}) is True
    with pytest.raises(ExpressionError, match="cannot compare a number with a string"):
        evaluate("gt(1, variables.x)", {"variables": {"x": text}})
