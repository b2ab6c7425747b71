"""Reading pipeline YAML: scalars resolved by the YAML 1.2 core schema (as the ruamel loader this
replaced did), positions of keys, values and items, quoted and block scalars, aliases and merge
keys, duplicate keys, syntax errors, read-only trees and the parse cache."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.pipelines.yaml_source import (
    BlockStr,
    QuotedStr,
    YamlMap,
    YamlSeq,
    YamlSyntaxError,
    _ParseCache,
    clear_parse_cache,
    dump_yaml,
    is_block_scalar,
    is_quoted_scalar,
    item_position,
    key_position,
    node_position,
    parse_yaml,
    parse_yaml_cached,
    plain_key,
    to_plain,
    value_position,
)


def value(text: str) -> Any:
    """The value of ``k: <text>``."""
    return parse_yaml(f"k: {text}\n", "f.yml")["k"]


def error(text: str) -> YamlSyntaxError:
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml(text, "f.yml")
    assert info.value.file == "f.yml"
    return info.value


# ---------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.1 booleans are text in 1.2
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("Yes", "Yes"),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("tRue", "tRue"),
        # null
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("~", None),
        ("", None),
        ("nul", "nul"),
        # integers: decimal (leading zeros are not octal), 0o, 0x, 0b, underscores
        ("0", 0),
        ("-12", -12),
        ("+12", 12),
        ("0777", 777),
        ("012", 12),
        ("09", 9),
        ("0o17", 15),
        ("-0o7", -7),
        ("0x1F", 31),
        ("0x_1F", 31),
        ("0X1F", "0X1F"),
        ("0b101", 5),
        ("0b2", "0b2"),
        ("0o9", "0o9"),
        ("1_000", 1000),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("_1", "_1"),
        # floats
        ("1.5", 1.5),
        ("1.", 1.0),
        ("-.5", -0.5),
        ("1e3", 1000.0),
        ("1.0e-3", 0.001),
        ("1_000.5", 1000.5),
        (".5e3", ".5e3"),
        (".inf", math.inf),
        ("-.inf", -math.inf),
        ("+.INF", math.inf),
        ("inf", "inf"),
        ("nan", "nan"),
        ("-.nan", "-.nan"),
        # YAML 1.1 sexagesimal numbers and version-like text stay text
        ("1:30", "1:30"),
        ("1.2.3", "1.2.3"),
        ("1e3.5", "1e3.5"),
        # timestamps are kept as ISO text (pipelines have no date type)
        ("2024-01-01", "2024-01-01"),
        ("2024-1-1", "2024-1-1"),
        ("2024-01-01 10:00:00", "2024-01-01T10:00:00"),
        ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00+00:00"),
        ("2024-01-01t10:00:00.5+02:00", "2024-01-01T10:00:00.500000+02:00"),
        ("2024-01-01 10:00:00 -5", "2024-01-01T10:00:00-05:00"),
        ("2024-01-01 10:00:00.9999996", "2024-01-01T10:00:01"),
        # what looks like a number or a date but cannot be one is text, not a failure
        ("-_", "-_"),
        ("0x_", "0x_"),
        ("._", "._"),
        ("2024-13-45", "2024-13-45"),
        ("2024-02-30 10:00:00", "2024-02-30 10:00:00"),
        # other plain text
        ("=", "="),
        ("<<", "<<"),
        ("a b", "a b"),
        ("echo ${{ parameters.x }}", "echo ${{ parameters.x }}"),
    ],
)
def test_plain_scalars_follow_the_yaml_1_2_core_schema(text: str, expected: Any) -> None:
    got = value(text)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
        return
    assert got == expected
    assert type(got) is type(expected)


def test_nan_is_a_float() -> None:
    assert math.isnan(value(".nan"))
    assert math.isnan(value(".NaN"))


@pytest.mark.parametrize(
    "text", ["'true'", '"12"', "'null'", "''", "'0x1F'", '"1.5"', "|\n  12\n", ">-\n  yes\n", '"~"']
)
def test_quoted_and_block_scalars_are_always_strings(text: str) -> None:
    assert isinstance(value(text), str)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!!str 123", "123"),
        ("!!str true", "true"),
        ("!!str", ""),
        ("!!int '12'", 12),
        ("!!int 0x10", 16),
        ("!!float 1", 1.0),
        ("!!float '1.5'", 1.5),
        ("!!bool yes", True),
        ("!!bool 'False'", False),
        ("!!null ''", None),
        ("!!null x", None),
        ("!!timestamp 2024-1-1", "2024-01-01"),
        ("!custom 12", "12"),
        ("! 12", 12),
        ("!<tag:yaml.org,2002:str> 5", "5"),
    ],
)
def test_explicit_tags_are_honoured(text: str, expected: Any) -> None:
    got = value(text)
    assert got == expected
    assert type(got) is type(expected)


def test_tags_on_collections() -> None:
    doc = parse_yaml("a: !!map {b: 1}\nc: !!seq [1]\nd: !custom {e: 2}\n", "f.yml")
    assert to_plain(doc) == {"a": {"b": 1}, "c": [1], "d": {"e": 2}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!!int abc", "not a valid !!int"),
        ("!!bool maybe", "not a valid !!bool"),
        ("!!float x", "not a valid !!float"),
        ("!!binary aGk=", "not supported"),
        ("!!set {a, b}", "not supported"),
        ("!!omap [a: 1]", "not supported"),
        ("!!seq {a: 1}", "not supported"),
    ],
)
def test_bad_or_unsupported_tags_are_located_errors(text: str, message: str) -> None:
    err = error(f"x: 1\nk: {text}\n")
    assert message in err.message
    assert (err.line, err.column) == (2, 4)


def test_keys_are_resolved_like_values_and_plain_key_names_them() -> None:
    doc = parse_yaml("true: a\n2: b\nnull: c\n'2': d\n1.50: e\n", "f.yml")
    assert list(doc) == [True, 2, None, "2", 1.5]
    assert [plain_key(k) for k in doc] == ["true", "2", "None", "2", "1.5"]


# ---------------------------------------------------------------- positions and styles

POSITIONS = """\
name: demo
steps:
- script: echo one
  displayName: 'quoted'
- bash: |
    echo two
  env: {A: 1, B: "x"}
- [nested, "list"]
- plain
"""


def test_positions_of_keys_values_items_and_nodes() -> None:
    doc = parse_yaml(POSITIONS, "f.yml")
    assert node_position(doc) == (1, 1)
    assert key_position(doc, "steps") == (2, 1)
    assert value_position(doc, "name") == (1, 7)
    steps = doc["steps"]
    assert isinstance(steps, YamlSeq)
    assert node_position(steps) == (3, 1)
    assert [item_position(steps, i) for i in range(4)] == [(3, 3), (5, 3), (8, 3), (9, 3)]
    first = steps[0]
    assert node_position(first) == (3, 3)
    assert key_position(first, "displayName") == (4, 3)
    assert value_position(first, "displayName") == (4, 16)
    env = steps[1]["env"]
    assert node_position(env) == (7, 8)
    assert (key_position(env, "B"), value_position(env, "B")) == ((7, 15), (7, 18))
    assert item_position(steps[2], 1) == (8, 12)


def test_positions_fall_back_to_the_node_and_are_none_for_scalars() -> None:
    doc = parse_yaml(POSITIONS, "f.yml")
    assert key_position(doc, "absent") == (1, 1)
    assert value_position(doc, "absent") == (1, 1)
    assert item_position(doc["steps"], 99) == (3, 1)
    assert node_position("text") is None
    assert key_position({"a": 1}, "a") is None
    assert item_position([1], 0) is None


def test_columns_count_characters_not_bytes_and_crlf_is_a_line_break() -> None:
    doc = parse_yaml("héllo: wörld\r\nnäme: 'çödé'\r\n", "f.yml")
    assert value_position(doc, "héllo") == (1, 8)
    assert value_position(doc, "näme") == (2, 7)
    assert doc["näme"] == "çödé"


def test_empty_values_are_positioned_after_their_colon() -> None:
    doc = parse_yaml("a:\nb: 1\n", "f.yml")
    assert doc["a"] is None
    assert value_position(doc, "a") == (1, 3)


def test_quoted_and_block_scalars_are_marked() -> None:
    doc = parse_yaml(POSITIONS, "f.yml")
    steps = doc["steps"]
    assert is_quoted_scalar(steps[0]["displayName"])
    assert isinstance(steps[1]["env"]["B"], QuotedStr)
    assert is_block_scalar(steps[1]["bash"])
    assert isinstance(steps[1]["bash"], BlockStr)
    assert steps[1]["bash"] == "echo two\n"
    for plain in (steps[0]["script"], doc["name"], steps[3]):
        assert type(plain) is str
        assert not is_quoted_scalar(plain)
        assert not is_block_scalar(plain)
    folded = parse_yaml("k: >-\n  a\n  b\n", "f.yml")["k"]
    assert is_block_scalar(folded)
    assert folded == "a b"


def test_quoted_keys_are_marked_and_equal_to_plain_text() -> None:
    doc = parse_yaml("'${{ x }}': 1\n", "f.yml")
    (key,) = doc
    assert is_quoted_scalar(key)
    assert key == "${{ x }}"
    assert doc["${{ x }}"] == 1


# ---------------------------------------------------------------- aliases and merge keys


def test_aliases_share_the_anchored_node_and_its_position() -> None:
    doc = parse_yaml("a: &s hello\nb: *s\nc: &l [1, 2]\nd: *l\n&k key: v\n", "f.yml")
    assert doc["b"] == "hello"
    assert doc["d"] is doc["c"]
    assert value_position(doc, "b") == value_position(doc, "a") == (1, 4)
    assert value_position(doc, "d") == (3, 4)
    assert doc["key"] == "v"


def test_a_reused_anchor_name_refers_to_the_latest_node() -> None:
    assert to_plain(parse_yaml("a: &x 1\nb: &x 2\nc: *x\n", "f.yml")) == {"a": 1, "b": 2, "c": 2}


def test_merge_keys_explicit_keys_win_then_earlier_sources() -> None:
    doc = parse_yaml("x: &a {p: 1, q: 2}\nz: &b {p: 9, r: 3}\ny:\n  <<: [*a, *b]\n  q: 5\n", "f.yml")
    y = doc["y"]
    assert to_plain(y) == {"q": 5, "p": 1, "r": 3}
    assert key_position(y, "q") == (5, 3)
    assert key_position(y, "p") == (1, 8)  # where the merged key was written
    assert value_position(y, "r") == (2, 17)


def test_merge_of_a_single_mapping_and_of_an_aliased_list() -> None:
    assert to_plain(parse_yaml("x: &a {p: 1}\ny:\n  <<: *a\n", "f.yml")["y"]) == {"p": 1}
    assert to_plain(parse_yaml("x: &l [{a: 1}]\ny:\n  <<: *l\n", "f.yml")["y"]) == {"a": 1}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("x: &a 5\ny:\n  <<: *a\n", 1, "merge key"),
        ("y:\n  <<: [1]\n", 2, "merge key"),
        ("y:\n  <<: {a: 1}\n  <<: {b: 1}\n", 3, "duplicate merge key"),
        ("a: *nope\n", 1, "undefined alias 'nope'"),
        ("a: &x [1, *x]\n", 1, "contains it"),
    ],
)
def test_alias_and_merge_errors(text: str, line: int, message: str) -> None:
    err = error(text)
    assert err.line == line
    assert message in err.message


def test_a_quoted_merge_key_is_an_ordinary_key() -> None:
    assert to_plain(parse_yaml("'<<': 1\n", "f.yml")) == {"<<": 1}


# ---------------------------------------------------------------- duplicate keys and syntax errors


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: 1\na: 2\n", 2, 1),
        ("a: 1\n'a': 2\n", 2, 1),
        ("top:\n  b: 1\n  c: 2\n  b: 3\n", 4, 3),
        ("{a: 1, a: 2}\n", 1, 8),
        ("true: a\n1: b\n", 2, 1),  # equal keys, as the previous loader judged them
        ("&k key: v\n*k : w\n", 1, 1),  # an alias has the position of what it names
    ],
)
def test_duplicate_keys_are_located_syntax_errors(text: str, line: int, column: int) -> None:
    err = error(text)
    assert (err.line, err.column) == (line, column)
    assert "duplicate key" in err.message


def test_equal_text_with_a_different_type_is_not_a_duplicate() -> None:
    assert list(parse_yaml("1: a\n'1': b\n", "f.yml")) == [1, "1"]


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("steps:\n- script: a\n  bad: [\n", 4, 1, "expected node content"),
        ("x: [1, 2\n", 2, 1, "',' or ']'"),
        ("x: 'abc\n", 2, 1, "unexpected end of stream"),
        ("a:\n\tb: 1\n", 2, 1, "character '\\t'"),
        ("a: b: c\n", 1, 5, "mapping values are not allowed"),
        ("k: @x\n", 1, 4, "character '@'"),
        ("---\na: 1\n---\nb: 2\n", 3, 1, "another document"),
        ("? [a]\n: 1\n", 1, 3, "key must be a scalar"),
        ("a: 1\nb: x\x1fy\n", 2, 5, "control characters"),
    ],
)
def test_syntax_errors_carry_file_line_and_column(text: str, line: int, column: int, message: str) -> None:
    err = error(text)
    assert (err.line, err.column) == (line, column)
    assert message in err.message
    assert str(err).startswith(f"f.yml:{line}:{column}: invalid YAML")


def test_empty_documents_are_none() -> None:
    assert parse_yaml("", "f.yml") is None
    assert parse_yaml("# only a comment\n", "f.yml") is None
    assert parse_yaml("---\n", "f.yml") is None
    assert to_plain(parse_yaml("---\na: 1\n...\n", "f.yml")) == {"a": 1}


def test_nesting_beyond_the_limit_is_a_syntax_error() -> None:
    error("a: " + "[" * 5000 + "]" * 5000 + "\n")


# ---------------------------------------------------------------- read-only trees, to_plain, the cache


def test_trees_are_read_only() -> None:
    doc = parse_yaml("a: 1\nb: [1, 2]\n", "f.yml")
    assert isinstance(doc, YamlMap)
    seq = doc["b"]
    with pytest.raises(TypeError, match="read-only"):
        doc["c"] = 3
    with pytest.raises(TypeError):
        doc.update({"c": 3})
    with pytest.raises(TypeError):
        doc.pop("a")
    with pytest.raises(TypeError):
        del doc["a"]
    with pytest.raises(TypeError):
        seq.append(3)
    with pytest.raises(TypeError):
        seq[0] = 5
    with pytest.raises(TypeError):
        seq += [4]
    assert copy.deepcopy(doc) is doc
    assert copy.copy(seq) is seq
    editable = dict(doc)
    editable["c"] = 3
    assert "c" not in doc
    assert to_plain(doc) == {"a": 1, "b": [1, 2]}


def test_to_plain_returns_fresh_plain_data() -> None:
    doc = parse_yaml("a: 'q'\nb: |\n  x\nc: [1, {d: 2}]\n", "f.yml")
    plain = to_plain(doc)
    assert plain == {"a": "q", "b": "x\n", "c": [1, {"d": 2}]}
    assert type(plain) is dict
    assert type(plain["c"]) is list
    assert type(plain["a"]) is str
    assert type(plain["b"]) is str
    assert plain["c"] is not doc["c"]


def test_the_parse_cache_returns_the_same_tree_until_cleared() -> None:
    clear_parse_cache()
    text = "steps:\n- script: cached\n"
    first = parse_yaml_cached(text, "a.yml")
    assert parse_yaml_cached(text, "a.yml") is first
    assert parse_yaml_cached(text, "b.yml") is not first  # keyed by file too
    clear_parse_cache()
    assert parse_yaml_cached(text, "a.yml") is not first


def test_the_parse_cache_does_not_keep_errors() -> None:
    for _ in range(2):
        with pytest.raises(YamlSyntaxError):
            parse_yaml_cached("a: [\n", "bad.yml")


def test_the_parse_cache_is_bounded_by_entries_and_by_text() -> None:
    a, b, c = (f"k: {name}\n" for name in "abc")
    cache = _ParseCache(entries=2, chars=100)
    tree_a, tree_b = cache.get(a, "f"), cache.get(b, "f")
    assert cache.get(a, "f") is tree_a  # a is now the most recently used...
    cache.get(c, "f")  # ...so the third entry pushes out b
    assert cache.get(a, "f") is tree_a
    assert cache.get(b, "f") is not tree_b
    big = "k: " + "x" * 200 + "\n"
    assert cache.get(big, "f") is not cache.get(big, "f")  # larger than the whole budget: never kept
    small_budget = _ParseCache(entries=100, chars=20)
    tree_a = small_budget.get(a, "f")
    for name in "defgh":
        small_budget.get(f"k: {name}\n", "f")
    assert small_budget.get(a, "f") is not tree_a  # pushed out by the text budget, not the count


# ---------------------------------------------------------------- writing reads back the same

# Printable text: ruamel writes control characters and U+0085 as they are, which libyaml (a YAML
# 1.1 reader) rejects or reads as a line break.
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=True),
    TEXT,
    st.sampled_from(["yes", "no", "on", "0777", "0o17", "1:30", "1.2.3", "~", "", "2024-01-01", "a\nb\n", "<<"]),
)
DOCS = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT.filter(bool), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(doc=st.dictionaries(TEXT.filter(bool), DOCS, min_size=1, max_size=4))
def test_dump_yaml_output_reads_back_as_the_same_data(doc: dict[str, Any]) -> None:
    assert to_plain(parse_yaml(dump_yaml(doc), "f.yml")) == doc
