"""Reading pipeline YAML with positions, and the file loader templates are read through.

Template expansion must report errors at the file, line and column the author wrote, and the
emulator expands a pipeline on every webhook trigger, so reading YAML has to keep positions *and*
be fast. libyaml's C parser (through PyYAML) reports every node with its mark; this module builds
kiosk's own tree from that event stream:

* :class:`YamlMap` (a ``dict``) and :class:`YamlSeq` (a ``list``) remember where they, each key,
  each value and each item start (1-based line and column);
* scalars are resolved by the YAML 1.2 core schema, the way ruamel's round-trip loader (which
  this module replaced) resolved them — *not* by PyYAML's YAML 1.1 rules, under which ``on``,
  ``yes`` and ``no`` are booleans and ``0777`` is octal;
* quoted and block (``|``/``>``) strings are :class:`QuotedStr` and :class:`BlockStr`, because an
  error column inside them needs correcting (a quote before the text, a block starting a line
  below its indicator).

Trees are read-only, so a parsed tree can be cached and shared (:func:`parse_yaml_cached`): the
emulator expands the same pipeline text on every trigger. Everything else in expansion works on
these types and on plain data; this is the only module that knows the YAML library (ruamel.yaml
is still what writes YAML out, in :func:`dump_yaml`).

File access is injected (a ``Callable[[str], str]``) so expansion stays pure and testable with a
dict; :func:`directory_loader` is the default that reads real files without letting a template
path escape its base directory.
"""

from __future__ import annotations

import datetime
import io
import posixpath
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)

from kiosk.pipelines.errors import PipelineError

__all__ = [
    "PARSE_CACHE_CHARS",
    "PARSE_CACHE_SIZE",
    "WITH_LIBYAML",
    "BlockStr",
    "Loader",
    "Position",
    "QuotedStr",
    "TemplatePathError",
    "YamlMap",
    "YamlSeq",
    "YamlSyntaxError",
    "clear_parse_cache",
    "dict_loader",
    "directory_loader",
    "dump_yaml",
    "is_block_scalar",
    "is_quoted_scalar",
    "item_position",
    "key_position",
    "node_position",
    "parse_yaml",
    "parse_yaml_cached",
    "plain_key",
    "resolve_path",
    "to_plain",
    "value_position",
]

Loader = Callable[[str], str]
"""Maps a template path (already resolved against the including file, '/'-separated, relative to
the root) to the file's text; raises :class:`PipelineError` (or ``OSError``/``KeyError``) when absent."""

PARSE_CACHE_SIZE: Final = 256
"""Parsed trees kept by :func:`parse_yaml_cached` (pipeline files and templates, least recently used out)."""
PARSE_CACHE_CHARS: Final = 4 * 1024 * 1024
"""...and the most text they may come from in total (trees take ~17x their text: ~70 MB at most)."""


class YamlSyntaxError(PipelineError):
    """The text is not valid YAML (or uses a YAML feature pipelines do not allow)."""


class TemplatePathError(PipelineError):
    """A template path cannot be resolved or read (missing, escaping the base, other repository)."""


# ---------------------------------------------------------------- the tree


def _read_only(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(f"a parsed YAML {type(self).__name__} is read-only (trees are cached and shared)")


Position = tuple[int, int]
"""1-based (line, column)."""


class YamlMap(dict[Any, Any]):
    """A YAML mapping: a read-only ``dict`` that knows where it, each key and each value start.

    Read-only because one parsed tree serves every expansion of the same text (the parse cache);
    a change made by one caller would leak into the next run. Copy with ``dict(m)`` to edit.
    """

    __slots__ = ("locations", "position")

    def __init__(
        self, items: dict[Any, Any], position: Position, locations: dict[Any, tuple[Position, Position]]
    ) -> None:
        super().__init__(items)
        self.position = position
        """Where the mapping starts (its first key, or its ``{``)."""
        self.locations = locations
        """key → (position of the key, position of its value); a merged (``<<``) key's are where it was written."""

    def key_position(self, key: Any) -> Position:
        """Position of ``key`` (the mapping's own position for a key it does not hold)."""
        location = self.locations.get(key)
        return location[0] if location is not None else self.position

    def value_position(self, key: Any) -> Position:
        """Position of the value under ``key`` (the mapping's own position for a key it does not hold)."""
        location = self.locations.get(key)
        return location[1] if location is not None else self.position

    def __copy__(self) -> YamlMap:
        return self  # read-only all the way down: a copy could not differ

    def __deepcopy__(self, memo: dict[int, Any]) -> YamlMap:
        return self

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only


class YamlSeq(list[Any]):
    """A YAML sequence: a read-only ``list`` that knows where it and each item start."""

    __slots__ = ("locations", "position")

    def __init__(self, items: list[Any], position: Position, locations: list[Position]) -> None:
        super().__init__(items)
        self.position = position
        """Where the sequence starts (its first ``-``, or its ``[``)."""
        self.locations = locations
        """The position of each item, by index."""

    def item_position(self, index: int) -> Position:
        """Position of item ``index`` (the sequence's own position when out of range)."""
        if 0 <= index < len(self.locations):
            return self.locations[index]
        return self.position

    def __copy__(self) -> YamlSeq:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> YamlSeq:
        return self

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only


class QuotedStr(str):
    """A ``'single'`` or ``"double"`` quoted scalar: its text starts one column after its position."""

    __slots__ = ()


class BlockStr(str):
    """A ``|`` or ``>`` block scalar: its text starts on the line after its position."""

    __slots__ = ()


def node_position(node: Any) -> tuple[int, int] | None:
    """1-based (line, column) where a mapping or sequence starts; None for anything else."""
    if isinstance(node, YamlMap | YamlSeq):
        return node.position
    return None


def key_position(node: Any, key: Any) -> tuple[int, int] | None:
    """1-based position of ``key`` in a parsed mapping (None when ``node`` is not one)."""
    return node.key_position(key) if isinstance(node, YamlMap) else None


def value_position(node: Any, key: Any) -> tuple[int, int] | None:
    """1-based position of the value under ``key`` in a parsed mapping."""
    return node.value_position(key) if isinstance(node, YamlMap) else None


def item_position(node: Any, index: int) -> tuple[int, int] | None:
    """1-based position of item ``index`` of a parsed sequence."""
    return node.item_position(index) if isinstance(node, YamlSeq) else None


def is_block_scalar(value: Any) -> bool:
    """``|`` or ``>`` scalars: their text starts on the line after the recorded position."""
    return isinstance(value, BlockStr)


def is_quoted_scalar(value: Any) -> bool:
    """Quoted scalars: their text starts one column after the recorded position."""
    return isinstance(value, QuotedStr)


def to_plain(value: Any) -> Any:
    """Tree values → new plain dict/list/str/int/float/bool/None (dates become ISO text).

    Containers are always fresh, so an expanded document never shares a list or dict with a
    cached tree (or with another expansion).
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {plain_key(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [to_plain(v) for v in value]
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime.date):  # datetime is a date too
        return value.isoformat()
    return str(value)


def plain_key(key: Any) -> str:
    """Pipeline keys are strings; a YAML ``true:`` or ``1:`` key becomes ``"true"``/``"1"``."""
    if type(key) is str:
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(to_plain(key))


# ---------------------------------------------------------------- scalars: the YAML 1.2 core schema

_TAG: Final = "tag:yaml.org,2002:"
_STR: Final = _TAG + "str"
_MAP: Final = _TAG + "map"
_SEQ: Final = _TAG + "seq"
_WORDS: Final[dict[str, Any]] = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
    "null": None,
    "Null": None,
    "NULL": None,
    "~": None,
    "": None,
}
_NUMBER_START: Final = frozenset("-+0123456789.")
_FLOAT: Final = re.compile(
    r"""[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
      | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
      | [-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
      | [-+]?\.(?:inf|Inf|INF)
      | \.(?:nan|NaN|NAN)""",
    re.VERBOSE,
)
_INT: Final = re.compile(r"[-+]?(?:0b[01_]+|0o?[0-7_]+|[0-9_]+|0x[0-9a-fA-F_]+)")
_TIMESTAMP: Final = re.compile(
    r"""(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})
        (?:(?:[Tt]|[ \t]+)
           (?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]*))?
           (?:[ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9]{1,2})(?::(?P<tz_minute>[0-9]{2}))?))?
        )?""",
    re.VERBOSE,
)
_BOOL_TAGGED: Final = {"yes": True, "no": False, "y": True, "n": False, "true": True, "false": False}
_BOOL_TAGGED.update({"on": True, "off": False})
_UNRESOLVED: Final = object()


def _plain_value(text: str) -> Any:
    """Resolve an untagged plain scalar: bool, null, int, float, timestamp (as ISO text) or str.

    Text that matches a number or date pattern but cannot be converted (``-_``, ``2024-13-45``)
    stays text rather than failing the whole file.
    """
    word = _WORDS.get(text, _UNRESOLVED)
    if word is not _UNRESOLVED:
        return word
    if text[0] not in _NUMBER_START:
        return text
    if _FLOAT.fullmatch(text):
        number = _float(text)
        return text if number is None else number
    if _INT.fullmatch(text):
        integer = _int(text)
        return text if integer is None else integer
    stamp = _timestamp(text, implicit=True)
    return text if stamp is None else stamp


def _int(text: str) -> int | None:
    """YAML 1.2 integers (``0b``, ``0o``, ``0x``, ``_`` separators); leading zeros are decimal."""
    digits = text.replace("_", "")
    sign = 1
    if digits[:1] in ("+", "-"):
        sign = -1 if digits[0] == "-" else 1
        digits = digits[1:]
    base = {"0b": 2, "0o": 8, "0x": 16}.get(digits[:2], 10)
    if base != 10:
        digits = digits[2:]
    try:
        return sign * int(digits, base)
    except ValueError:
        return None


def _float(text: str) -> float | None:
    digits = text.replace("_", "").lower()
    unsigned = digits.lstrip("+-")
    if unsigned == ".inf":
        return float("-inf") if digits[0] == "-" else float("inf")
    if unsigned == ".nan":
        return float("nan")
    try:
        return float(digits)
    except ValueError:
        return None


def _timestamp(text: str, *, implicit: bool) -> str | None:
    """A YAML timestamp as ISO 8601 text (``2024-01-01``, ``2024-01-01T10:00:00+00:00``).

    Pipelines have no date type, so the value is kept as text, normalised the way the previous
    loader printed dates. An untagged date needs two-digit month and day (``2024-1-1`` is text).
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    part = match.groupdict()
    try:
        if part["hour"] is None:
            if implicit and (len(part["month"]) != 2 or len(part["day"]) != 2):
                return None
            return datetime.date(int(part["year"]), int(part["month"]), int(part["day"])).isoformat()
        fraction = (part["fraction"] or "")[:7]
        micro = int(fraction[:6].ljust(6, "0"))
        if len(fraction) > 6 and int(fraction[6]) > 4:
            micro += 1
        carry = micro > 999_999
        tz: datetime.tzinfo | None = None
        if part["tz_sign"]:
            offset = datetime.timedelta(hours=int(part["tz_hour"]), minutes=int(part["tz_minute"] or 0))
            tz = datetime.timezone(-offset if part["tz_sign"] == "-" else offset)
        elif part["tz"] == "Z":
            tz = datetime.UTC
        stamp = datetime.datetime(
            int(part["year"]),
            int(part["month"]),
            int(part["day"]),
            int(part["hour"]),
            int(part["minute"]),
            int(part["second"]),
            0 if carry else micro,
            tz,
        )
        if carry:
            stamp += datetime.timedelta(seconds=1)
        return stamp.isoformat()
    except (ValueError, OverflowError):
        return None


# ---------------------------------------------------------------- parsing

WITH_LIBYAML: Final = bool(getattr(yaml, "__with_libyaml__", False))
"""Whether YAML is read by libyaml (C); without it PyYAML's pure-Python parser does the same, ~10x slower."""
_Parser: type[Any] = yaml.CSafeLoader if WITH_LIBYAML else yaml.SafeLoader


def parse_yaml(text: str, file: str) -> Any:
    """Parse ``text`` into a read-only tree with positions (None for an empty document).

    Syntax errors, duplicate keys, more than one document, undefined or self-containing aliases
    and unsupported tags are :class:`YamlSyntaxError` at their line and column.
    """
    parser = _Parser(text)
    try:
        return _Builder(parser.get_event, file).document()
    except yaml.MarkedYAMLError as err:
        raise _syntax_error(err, text, file) from None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow; it has no mark, only an offset
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        raise YamlSyntaxError(f"invalid YAML: {err.reason}", file=file, line=line, column=column) from None
    except yaml.YAMLError as err:
        raise YamlSyntaxError(f"invalid YAML: {err}", file=file) from None
    except RecursionError:
        raise YamlSyntaxError("invalid YAML: the document nests too deeply", file=file) from None
    finally:
        parser.dispose()


def _syntax_error(err: yaml.MarkedYAMLError, text: str, file: str) -> YamlSyntaxError:
    mark = err.problem_mark or err.context_mark
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    problem = err.problem or err.context or "invalid YAML"
    if mark is not None and problem.startswith("found character that cannot start"):
        lines = text.splitlines()
        if mark.line < len(lines) and mark.column < len(lines[mark.line]):
            problem = problem.replace("character", f"character {lines[mark.line][mark.column]!r}", 1)
    if err.context and err.problem:
        problem = f"{problem} ({err.context})"
    return YamlSyntaxError(f"invalid YAML: {problem}", file=file, line=line, column=column)


class _ParseCache:
    """A least-recently-used cache of parsed trees keyed by (file, text), bounded twice.

    By entries, and by the total length of the cached texts, because a tree takes about 17 times
    the memory of its text (1 MiB for a 2,000-line pipeline) and a few large files must not pin
    hundreds of megabytes. Thread-safe; a text is parsed outside the lock.
    """

    def __init__(self, entries: int, chars: int) -> None:
        self.entries = entries
        self.chars = chars
        self._trees: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, text: str, file: str) -> Any:
        key = (file, text)
        with self._lock:
            if key in self._trees:
                self._trees.move_to_end(key)
                return self._trees[key]
        tree = parse_yaml(text, file)  # errors propagate and are not cached
        if len(text) > self.chars:
            return tree
        with self._lock:
            if key not in self._trees:
                self._trees[key] = tree
                self._size += len(text)
            while len(self._trees) > self.entries or self._size > self.chars:
                (_, old_text), _ = self._trees.popitem(last=False)
                self._size -= len(old_text)
        return tree

    def clear(self) -> None:
        with self._lock:
            self._trees.clear()
            self._size = 0


_CACHE: Final = _ParseCache(PARSE_CACHE_SIZE, PARSE_CACHE_CHARS)


def parse_yaml_cached(text: str, file: str) -> Any:
    """:func:`parse_yaml` through a bounded LRU cache keyed by (file, text).

    Safe because trees are read-only; failed parses are not cached (the error is raised again).
    """
    return _CACHE.get(text, file)


def clear_parse_cache() -> None:
    """Empty the parse cache (benchmarks measure cold parses; tests start clean)."""
    _CACHE.clear()


def _position(event: Any) -> Position:
    mark: Any = event.start_mark
    return (mark.line + 1, mark.column + 1)


class _Builder:
    """Builds the tree straight from libyaml's event stream (events are typed ``Any``: PyYAML's
    classes put ``anchor``, ``tag`` and the marks on different subclasses, checked by ``type()``).

    Not from ``yaml.compose``: the composed node graph is one more object per node (plus two
    marks) alive while the tree is built, and measured on a 2,000-line pipeline the collections it
    provoked doubled the parse time (27 ms against 12 ms). Events are dropped as soon as they
    are read. The common case, an untagged plain scalar that is just text, is handled inline.
    """

    def __init__(self, next_event: Callable[[], Any], file: str) -> None:
        self.next = next_event
        self.file = file
        # anchor -> (value, position of the anchored node); None while its collection is being built
        self.anchors: dict[str, tuple[Any, Position] | None] = {}

    def fail(self, message: str, position: Position) -> YamlSyntaxError:
        line, column = position
        return YamlSyntaxError(f"invalid YAML: {message}", file=self.file, line=line, column=column)

    def document(self) -> Any:
        """The single document of the stream (None when there is none)."""
        self.next()  # StreamStartEvent
        if type(self.next()) is StreamEndEvent:
            return None
        root, _ = self.node(self.next())
        self.next()  # DocumentEndEvent
        event = self.next()
        if type(event) is not StreamEndEvent:
            raise self.fail("but found another document (expected a single document in the stream)", _position(event))
        return root

    def node(self, event: Any) -> tuple[Any, Position]:
        """Build the node ``event`` starts; returns it with its position."""
        kind = type(event)
        position = _position(event)
        if kind is AliasEvent:
            anchor = event.anchor
            if anchor not in self.anchors:
                raise self.fail(f"found undefined alias '{anchor}'", position)
            target = self.anchors[anchor]
            if target is None:
                raise self.fail(f"the alias '{anchor}' refers to a node that contains it", position)
            return target  # the anchored node's position, as for any shared node
        anchor = event.anchor
        value: Any
        if kind is ScalarEvent:
            value = self.scalar(event, position)
        else:
            tag = event.tag
            expected = _MAP if kind is MappingStartEvent else _SEQ
            if tag is not None and tag != expected and tag.startswith(_TAG):
                raise self.fail(f"the tag !!{tag[len(_TAG) :]} is not supported in pipelines", position)
            if anchor is not None:
                self.anchors[anchor] = None
            value = self.mapping(position) if kind is MappingStartEvent else self.sequence(position)
        if anchor is not None:
            self.anchors[anchor] = (value, position)  # YAML allows re-using a name: the latest wins
        return value, position

    def scalar(self, event: Any, position: Position) -> Any:
        tag, text, style = event.tag, event.value, event.style
        if tag is None or tag == "!":
            if event.implicit[0]:  # plain: resolved by the YAML 1.2 core schema, never quoted or block
                return _plain_value(text)
            value: Any = text
        elif tag == _STR or not tag.startswith(_TAG):
            value = text  # unknown local tags (!foo) are ignored: the text is kept
        else:
            value = self.tagged(tag[len(_TAG) :], text, position)
        if type(value) is str and style:
            if style in ("'", '"'):
                return QuotedStr(value)
            if style in ("|", ">"):
                return BlockStr(value)
        return value

    def tagged(self, name: str, text: str, position: Position) -> Any:
        """An explicitly tagged scalar (``!!int '12'``): converted, or an error when it cannot be."""
        value: Any = None
        if name == "null":
            return None
        if name == "bool":
            value = _BOOL_TAGGED.get(text.lower())
        elif name == "int":
            value = _int(text) if _INT.fullmatch(text) else None
        elif name == "float":
            if _FLOAT.fullmatch(text):
                value = _float(text)
            elif _INT.fullmatch(text):
                integer = _int(text)
                value = None if integer is None else float(integer)
        elif name == "timestamp":
            value = _timestamp(text, implicit=False)
        else:
            raise self.fail(f"the tag !!{name} is not supported in pipelines", position)
        if value is None:
            raise self.fail(f"'{text}' is not a valid !!{name}", position)
        return value

    def mapping(self, position: Position) -> YamlMap:
        next_event = self.next
        items: dict[Any, Any] = {}
        locations: dict[Any, tuple[Position, Position]] = {}
        merges: list[YamlMap] | None = None
        while True:
            event = next_event()
            if type(event) is MappingEndEvent:
                break
            if type(event) is ScalarEvent and event.tag is None and event.anchor is None and event.implicit[0]:
                text = event.value
                mark: Any = event.start_mark
                key_pos = (mark.line + 1, mark.column + 1)
                if text == "<<":  # a YAML merge key
                    if merges is not None:
                        raise self.fail("duplicate merge key '<<'", key_pos)
                    merges = self.merge_sources(next_event())
                    continue
                key = _WORDS.get(text, text) if text and text[0] not in _NUMBER_START else _plain_value(text)
            else:
                key, key_pos = self.node(event)
                if isinstance(key, YamlMap | YamlSeq):
                    raise self.fail("a mapping key must be a scalar", key_pos)
            if key in items:
                first = locations[key][0][0]
                raise self.fail(f"duplicate key '{plain_key(key)}' (first defined on line {first})", key_pos)
            event = next_event()
            if type(event) is ScalarEvent and event.tag is None and event.anchor is None and event.implicit[0]:
                text = event.value
                mark = event.start_mark
                value_pos = (mark.line + 1, mark.column + 1)
                items[key] = _WORDS.get(text, text) if text and text[0] not in _NUMBER_START else _plain_value(text)
            else:
                items[key], value_pos = self.node(event)
            locations[key] = (key_pos, value_pos)
        for source in merges or ():  # explicit keys win, then earlier sources
            for key, value in source.items():
                if key not in items:
                    items[key] = value
                    locations[key] = source.locations[key]
        return YamlMap(items, position, locations)

    def merge_sources(self, event: Any) -> list[YamlMap]:
        """The mappings a ``<<:`` key merges: one mapping, or a sequence of mappings."""
        value, position = self.node(event)
        sources = list(value) if isinstance(value, YamlSeq) else [value]
        if not all(isinstance(source, YamlMap) for source in sources):
            raise self.fail("a merge key '<<' needs a mapping or a list of mappings", position)
        return sources

    def sequence(self, position: Position) -> YamlSeq:
        next_event = self.next
        items: list[Any] = []
        locations: list[Position] = []
        while True:
            event = next_event()
            if type(event) is SequenceEndEvent:
                break
            if type(event) is ScalarEvent and event.tag is None and event.anchor is None and event.implicit[0]:
                text = event.value
                mark: Any = event.start_mark
                locations.append((mark.line + 1, mark.column + 1))
                items.append(_WORDS.get(text, text) if text and text[0] not in _NUMBER_START else _plain_value(text))
            else:
                value, item_pos = self.node(event)
                items.append(value)
                locations.append(item_pos)
        return YamlSeq(items, position, locations)


# ---------------------------------------------------------------- writing


def dump_yaml(doc: Any) -> str:
    """Readable block-style YAML of an expanded document (multi-line strings as ``|`` blocks).

    ruamel writes it, in YAML 1.2, so what it prints reads back as the same values here.
    """

    def prepare(value: Any) -> Any:
        if isinstance(value, dict):
            return {plain_key(k): prepare(v) for k, v in value.items()}
        if isinstance(value, list):
            return [prepare(v) for v in value]
        if isinstance(value, str) and "\n" in value:
            return LiteralScalarString(value)
        if isinstance(value, str):
            return str(value)
        return value

    writer = YAML(typ="rt")
    writer.default_flow_style = False
    writer.width = 4096
    stream = io.StringIO()
    writer.dump(prepare(doc), stream)
    return stream.getvalue()


# ---------------------------------------------------------------- template files


def resolve_path(including_file: str, path: str) -> str:
    """Resolve a template ``path`` against the file that includes it.

    Relative paths are relative to the including file's directory; a leading ``/`` means the
    repository root (Azure's rule). The result is normalised and must stay inside the root, since
    a template outside the repository is never what the author meant and would let a pipeline read
    arbitrary files.
    """
    if "@" in path:
        raise TemplatePathError(f"not supported: templates from other repositories ('{path}')")
    cleaned = path.strip().replace("\\", "/")
    if not cleaned:
        raise TemplatePathError("empty template path")
    if cleaned.startswith("/"):
        joined = cleaned.lstrip("/")
    else:
        joined = posixpath.join(posixpath.dirname(including_file), cleaned)
    normal = posixpath.normpath(joined)
    if normal == ".." or normal.startswith("../") or posixpath.isabs(normal):
        raise TemplatePathError(f"template path '{path}' escapes the repository root")
    return normal


def directory_loader(base: str | Path) -> Loader:
    """A loader reading UTF-8 files under ``base``; paths resolving outside it (symlinks too) are refused."""
    root = Path(base).resolve()

    def load(path: str) -> str:
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise TemplatePathError(f"template path '{path}' escapes the base directory")
        try:
            return target.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TemplatePathError(f"template file '{path}' not found") from None
        except (OSError, UnicodeDecodeError) as err:
            raise TemplatePathError(f"template file '{path}' cannot be read: {err}") from None

    return load


def dict_loader(files: Mapping[str, str]) -> Loader:
    """A loader over an in-memory ``{path: text}`` mapping (tests, previews of uncommitted files)."""

    def load(path: str) -> str:
        try:
            return files[path]
        except KeyError:
            raise TemplatePathError(f"template file '{path}' not found") from None

    return load
