"""Azure DevOps' ways of paging a list, as pure state machines (reference azure-devops-rest.md §4).

Each pager says what to ask for first (:meth:`first`), which items an answer holds (:meth:`items`)
and what to ask for next, or None at the end (:meth:`next`); :mod:`kiosk.azure.rest` does the HTTP.

- :class:`HeaderTokenPager` — ``$top`` + ``continuationToken`` query, the next token in the
  ``x-ms-continuationtoken`` answer header (projects, refs, builds, definitions, releases, graph…).
- :class:`BodyTokenPager` — the token in the body's ``continuationToken`` (user entitlements 5.0+:
  ``{items, members, continuationToken}``), null at the end.
- :class:`SkipPager` — ``$top``/``$skip`` with no token (teams, members, pull requests, pushes…):
  ends on a page shorter than asked (or, with ``stop_on_short=False``, only on an empty one).
- :class:`UnpagedList` — one answer holds the whole list (repositories, hooks subscriptions…).
- :class:`BatchTokenPager` — wiki ``pagesbatch``: a POST whose body carries ``top`` and the token,
  the next token in the answer header.

A token that does not change, or a ``$skip`` list that never ends, raises :class:`PagingError`
instead of looping forever; a body without its list raises it too (never an empty page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

__all__ = [
    "CONTINUATION_HEADER",
    "BatchTokenPager",
    "BodyTokenPager",
    "HeaderTokenPager",
    "PageRequest",
    "Pager",
    "PagingError",
    "SkipPager",
    "UnpagedList",
    "list_items",
]

CONTINUATION_HEADER: Final = "x-ms-continuationtoken"
#: No list an ingester reads has this many pages; past it the server is assumed to loop.
MAX_PAGES: Final = 1_000_000


class PagingError(ValueError):
    """An answer a pager cannot go on from (no list in the body, a token that does not advance)."""


@dataclass(frozen=True)
class PageRequest:
    """What to send for one page: query parameters, and for a POST pager the JSON body."""

    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


class Pager(Protocol):
    def first(self) -> PageRequest: ...

    def items(self, body: Any) -> list[Any]: ...

    def next(self, headers: Mapping[str, str], body: Any, items: list[Any]) -> PageRequest | None: ...


def list_items(body: Any, key: str = "value") -> list[Any]:
    """The list under ``key`` of an answer's JSON (Azure's ``{count, value}``); PagingError if absent."""
    if isinstance(body, dict) and isinstance(body.get(key), list):
        return list(body[key])
    got = type(body).__name__ if not isinstance(body, dict) else f"keys {sorted(body)[:8]}"
    raise PagingError(f"expected a JSON object with a list under {key!r}, got {got}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value or None


class _TokenSeen:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def check(self, token: str) -> str:
        if token in self.seen:
            raise PagingError(f"the continuation token {token[:80]!r} came back twice: the list does not advance")
        if len(self.seen) >= MAX_PAGES:
            raise PagingError(f"more than {MAX_PAGES} pages: the list does not end")
        self.seen.add(token)
        return token


class _ListPager:
    """What the listing pagers share: the list under ``items_key``, the first request the fixed params.

    A subclass says only what to ask for next (and, for a POST pager, what body to send first).
    """

    def __init__(self, params: Mapping[str, str] | None, items_key: str) -> None:
        self.params = dict(params or {})
        self.items_key = items_key

    def first(self) -> PageRequest:
        return PageRequest(dict(self.params))

    def items(self, body: Any) -> list[Any]:
        return list_items(body, self.items_key)


class HeaderTokenPager(_ListPager):
    """``$top`` + ``continuationToken``; next token in the ``x-ms-continuationtoken`` header."""

    def __init__(
        self, params: Mapping[str, str] | None = None, *, top: int | None = 100, top_param: str = "$top"
    ) -> None:
        super().__init__(params, "value")
        if top is not None:
            self.params[top_param] = str(top)
        self._tokens = _TokenSeen()

    def next(self, headers: Mapping[str, str], body: Any, items: list[Any]) -> PageRequest | None:
        token = _header(headers, CONTINUATION_HEADER)
        if token is None:
            return None
        return PageRequest({**self.params, "continuationToken": self._tokens.check(token)})


class BodyTokenPager(_ListPager):
    """User entitlements (5.0+): items under ``items_key``, the next token in the body, null at the end."""

    def __init__(self, params: Mapping[str, str] | None = None, *, items_key: str = "items") -> None:
        super().__init__(params, items_key)
        self._tokens = _TokenSeen()

    def next(self, headers: Mapping[str, str], body: Any, items: list[Any]) -> PageRequest | None:
        token = body.get("continuationToken") if isinstance(body, dict) else None
        if token in (None, ""):
            return None
        return PageRequest({**self.params, "continuationToken": self._tokens.check(str(token))})


class SkipPager:
    """``$top``/``$skip``: ask ``top`` at a time; a shorter page ends the list (``stop_on_short``), an empty one always.

    ``max_items`` caps the whole walk (OCEAN's ``maxResults`` for closed pull requests)."""

    def __init__(
        self,
        params: Mapping[str, str] | None = None,
        *,
        top: int = 100,
        top_param: str = "$top",
        skip_param: str = "$skip",
        stop_on_short: bool = True,
        max_items: int | None = None,
    ) -> None:
        if top < 1:
            raise ValueError("top must be at least 1")
        self.params = dict(params or {})
        self.top = top
        self.top_param = top_param
        self.skip_param = skip_param
        self.stop_on_short = stop_on_short
        self.max_items = max_items
        self.skip = 0
        self.pages = 0

    def _request(self) -> PageRequest:
        size = self.top if self.max_items is None else min(self.top, self.max_items - self.skip)
        params = {**self.params, self.top_param: str(size)}
        if self.skip:
            params[self.skip_param] = str(self.skip)
        return PageRequest(params)

    def first(self) -> PageRequest:
        return self._request()

    def items(self, body: Any) -> list[Any]:
        return list_items(body)

    def next(self, headers: Mapping[str, str], body: Any, items: list[Any]) -> PageRequest | None:
        self.pages += 1
        asked = int(self._request().params[self.top_param])
        if len(items) > asked:
            raise PagingError(f"asked for {asked} items, got {len(items)}: the server ignores {self.top_param}")
        self.skip += len(items)
        if not items or (self.stop_on_short and len(items) < asked):
            return None
        if self.max_items is not None and self.skip >= self.max_items:
            return None
        if self.pages >= MAX_PAGES:
            raise PagingError(f"more than {MAX_PAGES} pages: the list does not end")
        return self._request()


class UnpagedList(_ListPager):
    """A list Azure answers whole (``{count, value}``, or the list under ``items_key``)."""

    def __init__(self, params: Mapping[str, str] | None = None, *, items_key: str = "value") -> None:
        super().__init__(params, items_key)

    def next(self, headers: Mapping[str, str], body: Any, items: list[Any]) -> PageRequest | None:
        return None


class BatchTokenPager(_ListPager):
    """Wiki ``pagesbatch``: POST ``{top, continuationToken}``, the next token in the answer header."""

    def __init__(
        self, params: Mapping[str, str] | None = None, *, top: int = 100, body: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(params, "value")
        self.body = {**(body or {}), "top": top}
        self._tokens = _TokenSeen()

    def first(self) -> PageRequest:
        return PageRequest(dict(self.params), dict(self.body))

    def next(self, headers: Mapping[str, str], body: Any, items: list[Any]) -> PageRequest | None:
        token = _header(headers, CONTINUATION_HEADER)
        if token is None:
            return None
        return PageRequest(dict(self.params), {**self.body, "continuationToken": self._tokens.check(token)})
