"""What a value is, by name: JSON's type names, and the words a configuration error uses.

Config and mapping errors say "expected a list, found a string" without quoting what was found:
the value may be a secret. One wording for every file kiosk reads (kiosk.yaml, Ocean mappings).
The JSON names are the ones jq and Port's search rules compare values by.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["json_type", "value_kind"]


def json_type(value: Any) -> str | None:
    """JSON's name for ``value`` (``null``, ``boolean``, ``number``, ``string``, ``array``, ``object``),
    None for what JSON does not hold; ``bool`` comes before ``number`` (it is an ``int`` in Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


_AUTHOR_WORDS: Final = {
    "null": "nothing (null)",
    "boolean": "a boolean",
    "number": "a number",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
}


def value_kind(value: Any) -> str:
    """``a string``, ``a list``, ``a mapping``, ``nothing (null)``… for ``value`` as YAML or JSON reads it."""
    if isinstance(value, Mapping):
        return "a mapping"
    kind = json_type(value)
    return _AUTHOR_WORDS[kind] if kind is not None else f"a {type(value).__name__}"
