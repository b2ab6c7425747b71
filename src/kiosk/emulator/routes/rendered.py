"""Rendered JSON kept between requests until the organisation changes: what makes the list endpoints cheap.

A page of 100 builds is 100 objects of ~40 fields (URLs, identities, dates), ~400 KB of JSON;
rendering and encoding it took ~5 ms a request, twenty times the HTTP stack's own cost. Encoded
once, a page is a join of bytes. Every mutation of an organisation moves
``Organisation.changes`` (its mutations call ``Organisation.changed``), and a moved counter
empties that organisation's cache before the next read, so nothing stale is ever served: a
renamed project, a completed build, a new repository show at once. Routes run on the event loop
thread only (no locks needed, as for the org data itself).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final, TypeVar
from weakref import WeakKeyDictionary

import orjson
from starlette.responses import Response

from kiosk.emulator.org.model import Organisation
from kiosk.emulator.routes.common import CONTINUATION_HEADER

__all__ = ["RenderedJson", "encoded_list"]

T = TypeVar("T")
_LIMIT: Final = 20_000
"""Encoded objects kept per organisation (the oldest dropped first): ~80 MB of builds at most."""


class _OrgRendered:
    __slots__ = ("derived", "encoded", "stamp")

    def __init__(self, stamp: int) -> None:
        self.stamp = stamp
        self.encoded: dict[Hashable, bytes] = {}
        self.derived: dict[Hashable, Any] = {}


class RenderedJson:
    """Per organisation: objects' encoded JSON and values derived from the org, both valid until it changes."""

    def __init__(self, limit: int = _LIMIT) -> None:
        self._limit = limit
        self._by_org: WeakKeyDictionary[Organisation, _OrgRendered] = WeakKeyDictionary()
        self._last: tuple[Organisation, _OrgRendered] | None = None
        """The org asked for last and its cache: a page asks 100 times in a row, and a weak-key lookup costs
        ~1 µs (it makes a weak reference each time)."""

    def _current(self, org: Organisation) -> _OrgRendered:
        last = self._last
        if last is not None and last[0] is org and last[1].stamp == org.changes:
            return last[1]
        found = self._by_org.get(org)
        if found is None or found.stamp != org.changes:
            found = self._by_org[org] = _OrgRendered(org.changes)
        self._last = (org, found)
        return found

    def encoded(self, org: Organisation, key: Hashable, render: Callable[[], Any]) -> bytes:
        """``render()`` encoded with orjson, from the cache while ``org`` has not changed."""
        cache = self._current(org).encoded
        found = cache.get(key)
        if found is None:
            if len(cache) >= self._limit:
                del cache[next(iter(cache))]
            found = cache[key] = orjson.dumps(render())
        return found

    def encoded_many(
        self,
        org: Organisation,
        kind: str,
        objects: Iterable[T],
        key: Callable[[T], Hashable],
        render: Callable[[T], Any],
    ) -> list[bytes]:
        """Each object's ``render(object)`` encoded, cached under ``(kind, key(object))``: a page's worth at once."""
        cache = self._current(org).encoded
        out = []
        for item in objects:
            cache_key = (kind, key(item))
            found = cache.get(cache_key)
            if found is None:
                if len(cache) >= self._limit:
                    del cache[next(iter(cache))]
                found = cache[cache_key] = orjson.dumps(render(item))
            out.append(found)
        return out

    def derived(self, org: Organisation, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` (an index, a sorted list…), from the cache while ``org`` has not changed.

        Callers must not change what they get back: the next request gets the same object.
        """
        cache = self._current(org).derived
        if key not in cache:
            cache[key] = compute()
        value: T = cache[key]
        return value


def encoded_list(items: Sequence[bytes], *, token: str | None = None) -> Response:
    """Azure's ``{count, value}`` list from already-encoded items, the next page's token in its header."""
    headers = {CONTINUATION_HEADER: token} if token is not None else None
    body = b'{"count":%d,"value":[%b]}' % (len(items), b",".join(items))
    return Response(body, media_type="application/json", headers=headers)
