"""What a configuration value is, named as the file's author knows it — never the value itself.

Config and mapping errors say "expected a list, found a string" without quoting what was found:
the value may be a secret. One wording for every file kiosk reads (kiosk.yaml, Ocean mappings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["value_kind"]


def value_kind(value: Any) -> str:
    """``a string``, ``a list``, ``a mapping``, ``nothing (null)``… for ``value`` as YAML or JSON reads it."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"
