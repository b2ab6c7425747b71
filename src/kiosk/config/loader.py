"""Read kiosk.yaml into a :class:`KioskConfig`, with file and line in every error.

ruamel.yaml's round-trip loader is used because it keeps the position of every mapping key and
sequence item; pydantic reports *where* in the document a value is wrong as a ``loc`` tuple, and
:class:`SourceMap` walks the same path through the YAML tree to find the line. The values handed
to pydantic are first turned into plain Python (ruamel's ``ScalarFloat``, ``TimeStamp``,
``CommentedMap`` ...), so the catalog stores, compares and serialises ordinary JSON data.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from kiosk.config.integrations import check_mapping
from kiosk.config.model import KioskConfig, Loc, SourceMap, format_loc
from kiosk.core.value_kinds import value_kind
from kiosk.errors import ConfigError
from kiosk.ingest.config import LoadedMapping

__all__ = ["load_config", "load_model", "parse_config", "parse_model"]

M = TypeVar("M", bound=BaseModel)

_DUPLICATE_KEY = re.compile(r'found duplicate key "(?P<key>.*?)" with value')


def load_config(path: Path) -> KioskConfig:
    """Load and validate the config file at ``path``; any problem is a :class:`ConfigError`."""
    return parse_config(_read(path), path)


def load_model(path: Path, model: type[M]) -> tuple[M, SourceMap]:
    """Load any YAML config file into ``model`` with kiosk.yaml's error reporting (file:line: field).

    For config files other than kiosk.yaml (the emulator's), so every file kiosk reads reports
    problems the same way.
    """
    return parse_model(_read(path), path, model)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read config file: {reason}") from None


def parse_model(text: str, path: Path, model: type[M]) -> tuple[M, SourceMap]:
    """Validate YAML ``text`` against ``model``; ``path`` names the file in errors and positions."""
    root = _parse_yaml(text, path)
    source = SourceMap(path, root)
    if root is None:
        root = {}
    if not isinstance(root, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping of sections, not {value_kind(root)}")
    try:
        return model.model_validate(to_plain(root)), source
    except ValidationError as exc:
        raise _config_error(exc.errors(include_url=False), source, model) from None


def parse_config(text: str, path: Path) -> KioskConfig:
    """Validate config ``text``; ``path`` is only used to name the file in errors and positions."""
    config, source = parse_model(text, path, KioskConfig)
    problems = config.consistency_errors()
    if problems:
        loc, message = problems[0]
        raise ConfigError(
            f"{source.describe(loc)}: {message}",
            details=[_detail(source, p_loc, p_msg) for p_loc, p_msg in problems],
        )
    return config.with_source(source).with_integration_mappings(_integration_mappings(config, source))


def _integration_mappings(config: KioskConfig, source: SourceMap) -> dict[str, LoadedMapping]:
    """Each integration's mapping, read (a path is relative to the config file) and checked."""
    loaded: dict[str, LoadedMapping] = {}
    for i, spec in enumerate(config.integrations):
        value = spec.mapping_value
        if value is None:
            loaded[spec.identifier] = config.integration_mapping(spec.identifier)
            continue
        key_loc: Loc = ("integrations", i, spec.mapping_key or "mapping")
        if isinstance(value, str):
            path = Path(value).expanduser()
            if not path.is_absolute():
                path = source.path.parent / path
            try:
                root = _parse_yaml(_read(path), path)
            except ConfigError as exc:
                raise ConfigError(f"{source.describe(key_loc)}: mapping file {exc}") from None
            loaded[spec.identifier] = check_mapping(
                spec.identifier, to_plain(root), SourceMap(path, root), (), str(path)
            )
        else:
            origin = f"{source.path}:{source.line(key_loc)}"
            loaded[spec.identifier] = check_mapping(spec.identifier, value, source, key_loc, origin)
    return loaded


def _parse_yaml(text: str, path: Path) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except DuplicateKeyError as exc:
        match = _DUPLICATE_KEY.search(exc.problem or "")
        key = f" {match.group('key')!r}" if match else ""
        first = f" (the mapping starts on line {exc.context_mark.line + 1})" if exc.context_mark else ""
        raise ConfigError(f"{path}:{_mark_line(exc)}: duplicate key{key}{first}") from None
    except MarkedYAMLError as exc:
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        context = ""
        if exc.context and exc.context_mark is not None and exc.problem:
            context = f" ({exc.context.strip()} started on line {exc.context_mark.line + 1})"
        raise ConfigError(f"{path}:{_mark_line(exc)}: YAML syntax error: {problem}{context}") from None
    except YAMLError as exc:  # errors without a position (rare: reader errors)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: YAML error: {first_line}") from None


def _mark_line(exc: MarkedYAMLError) -> int:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else 1


_EXPECTED = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
}


def to_plain(value: Any) -> Any:
    """ruamel's annotated types -> plain JSON-able Python (dict, list, str, int, float, bool, None).

    Unquoted YAML timestamps become ISO 8601 strings (``Z`` for UTC), the form Port's
    ``date-time`` properties hold.
    """
    if isinstance(value, dict):
        return {_plain_key(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dt.datetime):
        naive = dt.datetime(*value.timetuple()[:6], value.microsecond)
        offset = value.utcoffset()
        if offset is None:
            return naive.isoformat()
        text = naive.replace(tzinfo=dt.timezone(offset)).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _plain_key(key: Any) -> str:
    # JSON objects have string keys; YAML lets ``1: x`` or ``true: x`` through.
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _message(error: ErrorDetails, model: type[BaseModel]) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        key = loc[-1] if loc else "?"
        if len(loc) == 1:
            known = ", ".join(info.alias or name for name, info in model.model_fields.items())
            return f"unknown top-level key {key!r} (known keys: {known})"
        return f"unknown key {key!r}"
    if kind in _EXPECTED:
        # pydantic would name our model classes; say what the file should hold instead.
        return f"expected {_EXPECTED[kind]}, got {value_kind(error.get('input'))}"
    msg = error["msg"]
    return msg[:1].lower() + msg[1:] if msg[:1].isupper() and not msg[1:2].isupper() else msg


def _detail(source: SourceMap, loc: Loc, message: str) -> dict[str, Any]:
    return {"line": source.line(loc), "field": format_loc(loc), "message": message}


def _config_error(errors: list[ErrorDetails], source: SourceMap, model: type[BaseModel]) -> ConfigError:
    # Report the error nearest the top of the file first: that is where a reader starts.
    located = sorted(
        ((source.line(e["loc"]), i, tuple(e["loc"]), _message(e, model)) for i, e in enumerate(errors)),
        key=lambda t: (t[0], t[1]),
    )
    _, _, loc, message = located[0]
    text = f"{source.describe(loc)}: {message}"
    if len(located) > 1:
        text += f" (and {len(located) - 1} more error{'s' if len(located) > 2 else ''})"
    return ConfigError(text, details=[_detail(source, loc, msg) for _, _, loc, msg in located])
