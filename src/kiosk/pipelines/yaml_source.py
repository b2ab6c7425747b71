"""Reading pipeline YAML with positions, and the file loader templates are read through.

Template expansion must report errors at the file, line and column the author wrote, so the YAML
is read with ruamel's round-trip loader (which remembers where every key and item came from)
rather than a plain ``safe_load``. Everything else in expansion works on plain Python data; this
module is the only place that knows about ruamel's node types.

File access is injected (a ``Callable[[str], str]``) so expansion stays pure and testable with a
dict; :func:`directory_loader` is the default that reads real files without letting a template
path escape its base directory.
"""

from __future__ import annotations

import datetime
import posixpath
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from kiosk.pipelines.errors import PipelineError

__all__ = [
    "Loader",
    "TemplatePathError",
    "YamlSyntaxError",
    "dict_loader",
    "directory_loader",
    "is_block_scalar",
    "is_quoted_scalar",
    "item_position",
    "key_position",
    "node_position",
    "parse_yaml",
    "resolve_path",
    "to_plain",
    "value_position",
]

Loader = Callable[[str], str]
"""Maps a template path (already resolved against the including file, '/'-separated, relative to
the root) to the file's text; raises :class:`PipelineError` (or ``OSError``/``KeyError``) when absent."""


class YamlSyntaxError(PipelineError):
    """The text is not valid YAML (or uses a YAML feature pipelines do not allow)."""


class TemplatePathError(PipelineError):
    """A template path cannot be resolved or read (missing, escaping the base, other repository)."""


def parse_yaml(text: str, file: str) -> Any:
    """Parse ``text`` with positions kept; syntax errors become :class:`YamlSyntaxError` at their line."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True  # so error columns inside quoted scalars can be corrected
    try:
        return yaml.load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = err.problem or err.context or "invalid YAML"
        raise YamlSyntaxError(f"invalid YAML: {problem}", file=file, line=line, column=column) from None
    except YAMLError as err:
        raise YamlSyntaxError(f"invalid YAML: {err}", file=file) from None


def _pos(pair: Any) -> tuple[int, int] | None:
    if pair is None:
        return None
    line, column = pair
    return (int(line) + 1, int(column) + 1)


def node_position(node: Any) -> tuple[int, int] | None:
    """1-based (line, column) where a mapping or sequence starts, if known."""
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None
    return (int(lc.line) + 1, int(lc.col) + 1)


def key_position(node: CommentedMap, key: Any) -> tuple[int, int] | None:
    """1-based position of ``key`` in a round-trip mapping (None when ruamel did not record it)."""
    try:
        return _pos(node.lc.key(key))
    except (KeyError, AttributeError, TypeError):
        return node_position(node)


def value_position(node: CommentedMap, key: Any) -> tuple[int, int] | None:
    """1-based position of the value under ``key``."""
    try:
        return _pos(node.lc.value(key))
    except (KeyError, AttributeError, TypeError):
        return key_position(node, key)


def item_position(node: CommentedSeq, index: int) -> tuple[int, int] | None:
    """1-based position of item ``index`` of a round-trip sequence."""
    try:
        return _pos(node.lc.item(index))
    except (KeyError, IndexError, AttributeError, TypeError):
        return node_position(node)


def is_block_scalar(value: Any) -> bool:
    """``|`` or ``>`` scalars: their text starts on the line after the recorded position."""
    return isinstance(value, LiteralScalarString | FoldedScalarString)


def is_quoted_scalar(value: Any) -> bool:
    """Quoted scalars: their text starts one column after the recorded position."""
    return isinstance(value, SingleQuotedScalarString | DoubleQuotedScalarString)


def to_plain(value: Any) -> Any:
    """Round-trip nodes → plain dict/list/str/int/float/bool/None (dates become ISO text)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime.date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, Mapping):
        return {plain_key(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [to_plain(v) for v in value]
    return str(value)


def plain_key(key: Any) -> str:
    """Pipeline keys are strings; a YAML ``true:`` or ``1:`` key is kept as it was written."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(to_plain(key))


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
