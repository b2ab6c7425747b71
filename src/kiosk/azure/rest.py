"""The async Azure DevOps REST client an ingester reads an organisation with.

One :class:`AzureDevOpsRest` per organisation: an ``httpx.AsyncClient`` kept alive across calls,
the PAT as Basic auth with an empty user name (Azure's rule; ``X-TFS-FedAuthRedirect: Suppress`` so
a bad PAT is a 401, not a 203 sign-in page), ``api-version`` on every call (7.1 unless the call
says otherwise), and the org's hosts from :class:`~kiosk.azure.urls.OrgUrls`.

Every call goes through, in order: a slot of :class:`~kiosk.azure.ratelimit.AdaptiveConcurrency`,
the :class:`~kiosk.azure.ratelimit.BudgetPacer` (waits out a ``Retry-After`` gate and keeps usage
inside the budget Azure stated), the request, then the pacer and the limiter learn from the answer.
A failed call is retried by :class:`~kiosk.azure.ratelimit.RetryPolicy` only when it is safe to
repeat: every GET, and a POST the caller marks ``idempotent=True`` (WIQL, itemsbatch,
workitemsbatch, pagesbatch, subjectlookup). What is left raises from :mod:`kiosk.azure.errors`;
nothing is ever turned into an empty result. :attr:`AzureDevOpsRest.stats` counts requests,
retries and throttled waits.

The pagers (:meth:`pages`) yield each page's items as its answer arrives; the kinds of paging are
in :mod:`kiosk.azure.paging`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import httpx
import orjson

from kiosk.azure.errors import (
    AuthenticationFailed,
    AzureRestError,
    ConnectionFailed,
    MalformedResponse,
    RequestTimeout,
    TransportError,
    status_error,
)
from kiosk.azure.paging import (
    BatchTokenPager,
    BodyTokenPager,
    HeaderTokenPager,
    Pager,
    PageRequest,
    PagingError,
    SkipPager,
    UnpagedList,
)
from kiosk.azure.ratelimit import (
    AdaptiveConcurrency,
    BudgetPacer,
    ClientStats,
    RateLimitInfo,
    RetryPolicy,
    parse_rate_limit,
)
from kiosk.azure.urls import Host, OrgUrls

__all__ = ["API_VERSION", "Answer", "AzureDevOpsRest"]

API_VERSION: Final = "7.1"
_log = logging.getLogger("kiosk.azure.rest")


@dataclass(frozen=True)
class Answer:
    """A successful answer: status, headers and the decoded JSON (None for an empty body)."""

    status: int
    headers: httpx.Headers
    body: Any


class _Slots:
    """In-flight requests under the adaptive limit (asyncio; the limit may change while requests wait)."""

    def __init__(self, policy: AdaptiveConcurrency) -> None:
        self.policy = policy
        self.in_flight = 0
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.policy.limit)
            self.in_flight += 1

    async def release(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()


class AzureDevOpsRest:
    """Reads one organisation (``https://dev.azure.com/org``, or a server/emulator URL with a path).

    ``transport`` is httpx's seam for tests; ``clock`` gives epoch seconds (Azure's ``Reset`` is
    epoch-based) and ``sleep`` waits, both replaceable.
    """

    def __init__(
        self,
        organization_url: str,
        pat: str,
        *,
        api_version: str = API_VERSION,
        max_concurrency: int = 8,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        pace_guard: float = 0.02,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        user_agent: str = "kiosk-azure-devops",
    ) -> None:
        self.urls = OrgUrls.parse(organization_url)
        self.api_version = api_version
        self.retry = retry or RetryPolicy()
        self.pacer = BudgetPacer(guard=pace_guard)
        self.concurrency = AdaptiveConcurrency(max_concurrency)
        self.stats = ClientStats(concurrency=self.concurrency.limit)
        self._slots = _Slots(self.concurrency)
        self._clock = clock
        self._sleep = sleep
        self._random = random.Random()
        auth = "Basic " + base64.b64encode(f":{pat}".encode()).decode()
        self._http = httpx.AsyncClient(
            headers={
                "Authorization": auth,
                "Accept": "application/json",
                "X-TFS-FedAuthRedirect": "Suppress",
                "User-Agent": user_agent,
            },
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ calls

    async def get(self, path: str, *, host: Host = "core", params: Mapping[str, str] | None = None) -> Any:
        """GET ``path`` on ``host``; the decoded JSON."""
        return (await self.request("GET", path, host=host, params=params)).body

    async def post(
        self,
        path: str,
        body: Any,
        *,
        idempotent: bool,
        host: Host = "core",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """POST ``body``; ``idempotent=True`` only for read-only POSTs (WIQL, itemsbatch…), which are then retried."""
        return (await self.request("POST", path, host=host, params=params, json=body, idempotent=idempotent)).body

    async def request(
        self,
        method: str,
        path: str,
        *,
        host: Host = "core",
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Answer:
        """One call with pacing and retries; ``idempotent`` defaults to True for GET/HEAD/OPTIONS only."""
        method = method.upper()
        safe = idempotent if idempotent is not None else method in ("GET", "HEAD", "OPTIONS")
        url = self.urls.url(host, path)
        query = {"api-version": self.api_version, **(params or {})}
        content = orjson.dumps(json) if json is not None else None
        shown = str(httpx.URL(url, params=query))
        attempt = 0
        while True:
            attempt += 1
            status, headers, data, failure = await self._attempt(method, url, query, content)
            now = self._clock()
            info = parse_rate_limit(headers, now) if headers is not None else RateLimitInfo()
            if status is not None and 200 <= status < 300 and status != 203:
                return Answer(status, headers or httpx.Headers(), self._decode(method, shown, status, data, attempt))
            wait = self.retry.wait(
                attempt=attempt, idempotent=safe, status=status, info=info, now=now, jitter=self._random.random()
            )
            if wait is None:
                self.stats.errors += 1
                if failure is not None:
                    kind, text = failure
                    raise kind(method, shown, text, attempts=attempt)
                raise self._status_failure(method, shown, status, data, info, attempt)
            self.stats.retries += 1
            if status == 429 or info.retry_after is not None:
                self.stats.throttle_waits += 1
                self.stats.throttle_wait_seconds += wait
            _log.info(
                "azure: %s %s answered %s; retry %d in %.2f s",
                method,
                shown,
                status if status is not None else failure[1] if failure else "nothing",
                attempt,
                wait,
            )
            await self._sleep(wait)

    async def _attempt(
        self, method: str, url: str, query: dict[str, str], content: bytes | None
    ) -> tuple[int | None, httpx.Headers | None, bytes, tuple[type[TransportError], str] | None]:
        """Send once under a slot and the pacer; (status, headers, body, transport failure)."""
        await self._slots.acquire()
        sent_at: float | None = None
        try:
            await self._pace()
            sent_at = self._clock()
            self.pacer.sent(sent_at)
            self.stats.requests += 1
            headers = {"Content-Type": "application/json"} if content is not None else None
            try:
                response = await self._http.request(method, url, params=query, content=content, headers=headers)
            except httpx.TimeoutException as exc:
                self.concurrency.on_throttled()
                return None, None, b"", (RequestTimeout, f"timed out ({type(exc).__name__})")
            except httpx.TransportError as exc:
                self.concurrency.on_throttled()
                return None, None, b"", (ConnectionFailed, f"no answer ({type(exc).__name__})")
            now = self._clock()
            info = parse_rate_limit(response.headers, now)
            self.pacer.observe(sent_at, now, info, response.status_code)
            sent_at = None  # observed
            if response.status_code == 429:
                self.stats.throttled += 1
            if info.delay:
                self.stats.server_delayed += 1
            if response.status_code == 429 or info.throttling or response.status_code >= 500:
                self.concurrency.on_throttled()
            else:
                self.concurrency.on_success()
            self.stats.concurrency = self.concurrency.limit
            return response.status_code, response.headers, response.content, None
        finally:
            if sent_at is not None:  # no answer (failed or cancelled): the pacer must not wait for one
                self.pacer.observe(sent_at, self._clock(), RateLimitInfo(), None)
            await self._slots.release()

    async def _pace(self) -> None:
        """Wait until the pacer lets one more request out (Azure's gate, then the budget)."""
        while True:
            now = self._clock()
            gate = max(0.0, self.pacer.gate - now)
            wait = self.pacer.delay(now)
            if wait <= 0:
                return
            if gate > 0:
                self.stats.throttle_waits += 1
                self.stats.throttle_wait_seconds += wait
            else:
                self.stats.paced_waits += 1
                self.stats.paced_wait_seconds += wait
            await self._sleep(wait)

    def _decode(self, method: str, shown: str, status: int, data: bytes, attempt: int) -> Any:
        if not data:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise MalformedResponse(method, shown, "the answer is not JSON", status=status, attempts=attempt) from None

    def _status_failure(
        self, method: str, shown: str, status: int | None, data: bytes, info: RateLimitInfo, attempt: int
    ) -> AzureRestError:
        assert status is not None
        if status == 203:  # Azure's sign-in page for a client that did not suppress the redirect
            return AuthenticationFailed(method, shown, "answered with a sign-in page", status=203, attempts=attempt)
        message, type_key = _azure_error(data, status)
        return status_error(method, shown, status, message, type_key, attempts=attempt, retry_after=info.retry_after)

    # ------------------------------------------------------------------ pagers

    async def pages(
        self, pager: Pager, path: str, *, host: Host = "core", method: str = "GET", idempotent: bool | None = None
    ) -> AsyncIterator[list[Any]]:
        """Walk ``pager`` over ``path``, yielding each page's items (a list) as it arrives."""
        request: PageRequest | None = pager.first()
        while request is not None:
            answer = await self.request(
                method,
                path,
                host=host,
                params=request.params,
                json=request.body,
                idempotent=idempotent,
            )
            try:
                items = pager.items(answer.body)
                following = pager.next(answer.headers, answer.body, items)
            except PagingError as exc:
                shown = str(httpx.URL(self.urls.url(host, path), params=request.params))
                self.stats.errors += 1
                raise MalformedResponse(method, shown, str(exc), status=answer.status) from None
            request = following
            yield items

    def pages_by_header_token(
        self, path: str, *, host: Host = "core", params: Mapping[str, str] | None = None, top: int | None = 100
    ) -> AsyncIterator[list[Any]]:
        """``$top`` + ``continuationToken``, the next token in ``x-ms-continuationtoken``."""
        return self.pages(HeaderTokenPager(params, top=top), path, host=host)

    def pages_by_body_token(
        self, path: str, *, host: Host = "vsaex", params: Mapping[str, str] | None = None, items_key: str = "items"
    ) -> AsyncIterator[list[Any]]:
        """The token in the body (user entitlements: ``{items, continuationToken}``)."""
        return self.pages(BodyTokenPager(params, items_key=items_key), path, host=host)

    def pages_by_skip(
        self,
        path: str,
        *,
        host: Host = "core",
        params: Mapping[str, str] | None = None,
        top: int = 100,
        stop_on_short: bool = True,
        max_items: int | None = None,
    ) -> AsyncIterator[list[Any]]:
        """``$top``/``$skip`` with no token: ends on a short (or empty) page."""
        pager = SkipPager(params, top=top, stop_on_short=stop_on_short, max_items=max_items)
        return self.pages(pager, path, host=host)

    def whole_list(
        self, path: str, *, host: Host = "core", params: Mapping[str, str] | None = None, items_key: str = "value"
    ) -> AsyncIterator[list[Any]]:
        """An unpaged list: one page."""
        return self.pages(UnpagedList(params, items_key=items_key), path, host=host)

    def wiki_pages_batch(
        self,
        path: str,
        *,
        top: int = 100,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Wiki ``pagesbatch`` (``{p}/_apis/wiki/wikis/{w}/pagesbatch``): a read-only POST, retried like a GET."""
        return self.pages(BatchTokenPager(params, top=top, body=body), path, method="POST", idempotent=True)


def _azure_error(data: bytes, status: int) -> tuple[str, str | None]:
    """Azure's ``message`` and ``typeKey`` from an error answer, else its first line of text."""
    try:
        body = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        key = body.get("typeKey")
        return str(body["message"])[:1000], str(key) if isinstance(key, str) else None
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return (lines[0][:300] if lines else f"HTTP {status}"), None
