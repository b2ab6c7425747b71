"""A pipeline's ``resources.webhooks`` declarations and the filters that decide whether a call triggers it.

Azure decides per pipeline, before any expansion: a pipeline listens to an incoming webhook when
one of its ``resources.webhooks`` entries names the service connection, and a call triggers it only
when every filter of that entry matches the JSON body (AND). Azure documents the filter format
(``path`` + ``value``) but not its details, so the choices below are the defaults the reference file
gives, each one a setting where users may need the other behaviour:

* an optional leading ``$.`` is ignored; segments are dotted names and ``[n]`` indexes;
* the selected value is compared as a string, exactly (``case_insensitive`` relaxes that);
* a path that selects nothing never matches (not even an empty ``value``).

Pure: no IO, plain data in and out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from kiosk.pipelines.errors import PipelineError

__all__ = [
    "ALIAS_PATTERN",
    "FilterMismatch",
    "WebhookFilter",
    "WebhookResource",
    "check_filters",
    "select_path",
    "webhook_resources",
]

ALIAS_PATTERN: Final = re.compile(r"^[-_A-Za-z0-9]*$")
"""Azure's rule for webhook aliases and WebHook Names."""

_SEGMENT: Final = re.compile(r"\[(\d+)\]|\[['\"]([^'\"]*)['\"]\]|([^.\[\]]+)")


@dataclass(frozen=True, slots=True)
class WebhookFilter:
    path: str
    value: str


@dataclass(frozen=True, slots=True)
class WebhookResource:
    """One ``resources.webhooks`` entry: the alias the body is bound to and the connection it listens on."""

    alias: str
    connection: str
    type: str
    filters: tuple[WebhookFilter, ...]


@dataclass(frozen=True, slots=True)
class FilterMismatch:
    """Why a call did not trigger: the first filter that failed and what the body held there."""

    filter: WebhookFilter
    found: bool
    actual: str | None

    def describe(self) -> str:
        if not self.found:
            return (
                f"filter {self.filter.path} = {self.filter.value!r} did not match: the body has no {self.filter.path}"
            )
        return f"filter {self.filter.path} = {self.filter.value!r} did not match: the body has {self.actual!r}"


def _text(value: Any) -> str:
    """A filter's expected value or a selected body value as the string it is compared as."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"  # JSON's spelling: what the sender wrote
    if value is None:
        return ""
    return orjson.dumps(value).decode()  # numbers, arrays and objects in their compact JSON form


def webhook_resources(document: Mapping[str, Any], *, file: str = "azure-pipelines.yml") -> list[WebhookResource]:
    """The webhook resources a (plain, unexpanded) pipeline document declares.

    A malformed declaration is a :class:`PipelineError`: Azure would refuse to save such a pipeline,
    and the emulator should say which entry is wrong rather than silently ignore it.
    """
    resources = document.get("resources")
    if resources is None:
        return []
    if not isinstance(resources, Mapping):
        raise PipelineError("resources must be a mapping", file=file)
    hooks = resources.get("webhooks")
    if hooks is None:
        return []
    if not isinstance(hooks, Sequence) or isinstance(hooks, str):
        raise PipelineError("resources.webhooks must be a list", file=file)
    found: list[WebhookResource] = []
    for index, hook in enumerate(hooks):
        where = f"resources.webhooks[{index}]"
        if not isinstance(hook, Mapping):
            raise PipelineError(f"{where} must be a mapping with webhook and connection", file=file)
        alias = hook.get("webhook")
        connection = hook.get("connection")
        if not isinstance(alias, str) or not alias:
            raise PipelineError(f"{where}.webhook (the alias) is required", file=file)
        if not ALIAS_PATTERN.match(alias):
            raise PipelineError(f"{where}.webhook '{alias}' must match {ALIAS_PATTERN.pattern}", file=file)
        if not isinstance(connection, str) or not connection:
            raise PipelineError(f"{where}.connection (the Incoming WebHook service connection) is required", file=file)
        filters_raw = hook.get("filters") or []
        if not isinstance(filters_raw, Sequence) or isinstance(filters_raw, str):
            raise PipelineError(f"{where}.filters must be a list of {{path, value}}", file=file)
        filters: list[WebhookFilter] = []
        for f_index, item in enumerate(filters_raw):
            if not isinstance(item, Mapping) or not isinstance(item.get("path"), str) or "value" not in item:
                raise PipelineError(f"{where}.filters[{f_index}] needs a path and a value", file=file)
            filters.append(WebhookFilter(path=item["path"], value=_text(item["value"])))
        kind = hook.get("type") or ""
        found.append(WebhookResource(alias, connection, str(kind), tuple(filters)))
    return found


def _segments(path: str) -> list[str | int] | None:
    """``$.a.b[0]['c d']`` → ``['a', 'b', 0, 'c d']``; ``None`` when the path is malformed."""
    text = path.strip()
    if text.startswith("$."):
        text = text[2:]
    elif text == "$":
        return []
    out: list[str | int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "." and out:
            pos += 1
        match = _SEGMENT.match(text, pos)
        if match is None or match.end() == pos:
            return None
        index, quoted, name = match.groups()
        out.append(int(index) if index is not None else quoted if quoted is not None else name)
        pos = match.end()
    return out


def select_path(body: Any, path: str) -> tuple[bool, Any]:
    """The value at ``path`` in ``body`` as ``(found, value)``; names match exactly, indexes pick items."""
    segments = _segments(path)
    if segments is None:
        return False, None
    current = body
    for segment in segments:
        if isinstance(segment, int):
            if isinstance(current, list) and segment < len(current):
                current = current[segment]
                continue
            return False, None
        if isinstance(current, Mapping) and segment in current:
            current = current[segment]
            continue
        return False, None
    return True, current


def check_filters(
    body: Any, filters: Sequence[WebhookFilter], *, case_insensitive: bool = False
) -> FilterMismatch | None:
    """``None`` when every filter matches ``body``; otherwise the first mismatch."""
    for item in filters:
        found, value = select_path(body, item.path)
        if not found:
            return FilterMismatch(item, False, None)
        actual = _text(value)
        same = actual.casefold() == item.value.casefold() if case_insensitive else actual == item.value
        if not same:
            return FilterMismatch(item, True, actual)
    return None
