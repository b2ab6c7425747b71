"""Parsing of Azure Pipelines logging commands: ``##vso[area.action key=value;...]message``.

Scripts talk to the agent by printing these lines (``##vso[task.setvariable variable=x]1``).
This module only parses; what a command does is in :mod:`~kiosk.pipelines.command_effects`.
The escaping rules are the agent's: in property values ``%3B`` is ``;``, ``%5D`` is ``]``,
``%0D``/``%0A`` are CR/LF and ``%25`` is ``%``; in the message the same except ``;`` and ``]``
need no escaping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["LoggingCommand", "parse_bool", "parse_logging_command"]

_PREFIX: Final = "##vso["
_NAME: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_PROPERTY_ESCAPES: Final = (("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]"))
_DATA_ESCAPES: Final = (("%0D", "\r"), ("%0A", "\n"))


@dataclass(frozen=True)
class LoggingCommand:
    """A parsed command; ``area``/``action`` lower-cased, property names lower-cased."""

    area: str
    action: str
    properties: Mapping[str, str] = field(default_factory=dict)
    data: str = ""

    @property
    def name(self) -> str:
        """``area.action``, e.g. ``task.setvariable``."""
        return f"{self.area}.{self.action}"


def _unescape(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    # %25 last, so "%253B" becomes "%3B" and not ";" (the agent's order). Case-sensitive, as there.
    for escaped, plain in escapes:
        text = text.replace(escaped, plain)
    return text.replace("%25", "%")


def parse_logging_command(line: str) -> LoggingCommand | None:
    """The command in ``line``, or ``None`` if the line holds none (or a malformed one).

    Like the agent, the ``##vso[`` may appear anywhere in the line (so a prefix such as a
    timestamp does not hide it); text before it is ignored.
    """
    start = line.find(_PREFIX)
    if start < 0:
        return None
    end = line.find("]", start + len(_PREFIX))
    if end < 0:
        return None
    header = line[start + len(_PREFIX) : end].strip()
    data = line[end + 1 :]
    command_text, _, properties_text = header.partition(" ")
    match = _NAME.fullmatch(command_text)
    if match is None:
        return None
    properties: dict[str, str] = {}
    for pair in properties_text.split(";"):
        if not pair.strip():
            continue
        key, separator, value = pair.partition("=")
        if not separator:
            continue  # the agent ignores a property without '='
        properties[key.strip().lower()] = _unescape(value, _PROPERTY_ESCAPES)
    return LoggingCommand(match.group(1).lower(), match.group(2).lower(), properties, _unescape(data, _DATA_ESCAPES))


def parse_bool(text: str | None) -> bool:
    """A command's boolean property: ``true`` in any case is true, anything else false."""
    return text is not None and text.strip().lower() == "true"
