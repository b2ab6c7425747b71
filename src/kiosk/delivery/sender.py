"""One attempt at sending a delivery over HTTP, and the one httpx transport all attempts share.

The transport (and :func:`create_client` for other outbound calls) is built for talking to URLs
other people configured:

* timeouts from the config on every phase (connect, write, pool, each read), plus an overall
  deadline checked while the response body is read;
* no redirects followed (a 3xx is a failed attempt), no cookies kept between deliveries, no proxy
  or certificate settings taken from the environment (kiosk's own config decides);
* connections go through the egress check (:mod:`kiosk.delivery.egress`) that resolves once and
  connects to the address it checked;
* at most ``maxResponseBytes`` of a response are read and kept.

:func:`send` never raises for anything the network or the receiver does: every outcome, including
a refused target or a missing secret, comes back as an :class:`Attempt`. Secrets and signature
header values are never logged and never part of an attempt. A sealed delivery
(:attr:`~kiosk.delivery.outbox.Delivery.sealed`) is never signed or sent as it is: the worker
opens it in memory first, and :func:`send` refuses one it did not.
"""

from __future__ import annotations

import codecs
import http.cookiejar
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import httpcore
import httpx

from kiosk import __version__
from kiosk.core.signing import sign_azure_checksum, webhook_signature_headers
from kiosk.delivery.config import DeliveryConfig, EgressConfig
from kiosk.delivery.egress import EgressPolicy, EgressRefused, PinnedBackend, check_scheme
from kiosk.delivery.outbox import DEFAULT_SIGNATURE_HEADER, Delivery
from kiosk.store.queue import utcnow

__all__ = ["Attempt", "PinnedTransport", "create_client", "create_transport", "send", "signed_headers"]

log = logging.getLogger(__name__)

USER_AGENT = f"kiosk-webhooks/{__version__}"
#: identity: only the raw bytes of an answer are read (capped), so a compressed one would be stored compressed.
BASE_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}


@dataclass(frozen=True)
class Attempt:
    """What one attempt did. ``status_code`` is None when no answer came (``error`` says why).

    ``permanent`` marks failures no retry can fix (a refused target, a bad URL, a missing secret):
    the delivery goes dead at once. ``retry_after`` is the response's header, for the schedule.
    """

    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response_body: str | None
    timed_out: bool = False
    retry_after: str | None = None
    permanent: bool = False


class _Deadline(Exception):
    pass


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Accept nothing: a cookie one receiver sets must never ride along to another delivery."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool whose network layer is the egress check.

    httpx does not expose httpcore's ``network_backend``; the pool is rebuilt with it (the same
    arguments httpx would pass). httpx's request/response mapping and exception translation are
    unchanged. No proxy and no certificate settings come from the environment.
    """

    def __init__(self, policy: EgressPolicy, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(policy),
        )


def create_transport(config: DeliveryConfig, egress: EgressConfig) -> PinnedTransport:
    """The transport every delivery attempt goes through (thread safe; close it when done)."""
    # A connection per sender thread plus a spare each, kept alive between deliveries to the same
    # receiver.
    size = config.workers * 2
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=30.0)
    return PinnedTransport(EgressPolicy.from_config(egress), limits)


def create_client(config: DeliveryConfig, egress: EgressConfig) -> httpx.Client:
    """An httpx client with the same rules, for other outbound calls to user-configured URLs.

    Deliveries themselves use :func:`send` on the bare transport: the client's per-request cookie
    and request-merging work measured at a quarter of a loopback delivery's cost, and none of it
    is wanted there.
    """
    return httpx.Client(
        transport=create_transport(config, egress),
        timeout=httpx.Timeout(config.timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
        headers=BASE_HEADERS,
    )


def signed_headers(delivery: Delivery, secret: str | None, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers of one attempt: the delivery's own, ``webhook-id``, and its signature headers.

    Signed afresh per attempt: the webhook schemes cover a timestamp that receivers check.
    """
    if delivery.sealed:
        raise ValueError("a sealed delivery body must be opened before it is signed")
    headers = dict(delivery.headers)
    headers["webhook-id"] = delivery.id
    signing = delivery.signing
    if signing is None:
        return headers
    if secret is None:
        raise ValueError("a signed delivery needs its secret")
    if signing.scheme == "azure":
        headers[signing.header or DEFAULT_SIGNATURE_HEADER] = sign_azure_checksum(secret, delivery.body)
    else:
        stamp = int(time.time()) if timestamp is None else timestamp
        headers.update(webhook_signature_headers(secret, delivery.id, stamp, delivery.body))
    return headers


def _timeouts(seconds: float) -> dict[str, float]:
    """httpcore's per-phase timeouts: each of connect, write, pool and every read gets ``seconds``."""
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}


def _charset(response: httpx.Response) -> str:
    """The response's declared charset if Python knows it, else UTF-8 (decoding replaces what does not fit)."""
    declared = response.charset_encoding
    if declared:
        try:
            codecs.lookup(declared)
        except LookupError:
            return "utf-8"
        return declared
    return "utf-8"


def _read_capped(response: httpx.Response, cap: int, deadline: float) -> bytes:
    """At most ``cap`` bytes of the body; stops reading there (the rest is never downloaded)."""
    chunks: list[bytes] = []
    size = 0
    if cap <= 0:
        return b""
    for chunk in response.iter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= cap:
            break
        if time.monotonic() > deadline:
            raise _Deadline
    return b"".join(chunks)[:cap]


def _describe(exc: Exception, timeout: float) -> tuple[str, bool]:
    """An error text for a failed request, and whether it was a timeout."""
    if isinstance(exc, httpx.TimeoutException | _Deadline):
        phases: dict[type[Exception], str] = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the response",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }
        phase = phases.get(type(exc), "receiving the response")
        return f"timed out after {timeout:g}s {phase}", True
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc}", False
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the receiver broke the HTTP protocol: {exc}", False
    return f"{type(exc).__name__}: {exc}", False


def send(
    transport: httpx.BaseTransport,
    delivery: Delivery,
    secret: str | None,
    *,
    timeout: float,
    max_response_bytes: int,
) -> Attempt:
    """Make one attempt at ``delivery`` with ``secret`` (None when it is unsigned); never raises.

    The request goes straight to ``transport``: there is no redirect, cookie or auth handling on
    this path at all, so a 3xx comes back as it is and nothing carries over between deliveries.
    """
    started_at = utcnow()
    start = time.monotonic()

    def failed(error: str, *, permanent: bool = False, timed_out: bool = False) -> Attempt:
        duration = (time.monotonic() - start) * 1000.0
        return Attempt(started_at, duration, None, error, None, timed_out=timed_out, permanent=permanent)

    if delivery.sealed:
        # Sending the sealed bytes would hand the receiver ciphertext under a valid signature.
        return failed("the delivery's body is still sealed; it was not opened for sending", permanent=True)
    if delivery.signing is not None and secret is None:
        ref = delivery.signing.secret_ref
        return failed(f"no signing secret is configured for {ref!r}", permanent=True)
    try:
        url = httpx.URL(delivery.url)
    except httpx.InvalidURL as exc:
        return failed(f"invalid URL: {exc}", permanent=True)
    refused_scheme = check_scheme(url.scheme)
    if refused_scheme is not None:
        return failed(f"egress refused: {refused_scheme}", permanent=True)
    if not url.host:
        return failed("invalid URL: no host", permanent=True)

    deadline = start + timeout
    try:
        headers = {**BASE_HEADERS, **signed_headers(delivery, secret)}
        request = httpx.Request(
            delivery.method, url, content=delivery.body, headers=headers, extensions={"timeout": _timeouts(timeout)}
        )
        response = transport.handle_request(request)
        try:
            raw = _read_capped(response, max_response_bytes, deadline)
        finally:
            response.close()
    except EgressRefused as exc:
        return failed(str(exc), permanent=True)
    except (httpx.LocalProtocolError, UnicodeError, ValueError) as exc:
        # The request itself cannot be sent (a header value with a line break, say): no retry can help.
        return failed(f"invalid request: {exc}", permanent=True)
    except (httpx.HTTPError, _Deadline) as exc:
        error, timed_out = _describe(exc, timeout)
        return failed(error, timed_out=timed_out)
    except OSError as exc:  # anything the socket layer raised that httpx did not translate
        return failed(f"network error: {exc}")
    duration = (time.monotonic() - start) * 1000.0
    body = raw.decode(_charset(response), errors="replace") if raw else ""
    log.debug(
        "delivery attempt answered",
        extra={"delivery": delivery.id, "status": response.status_code, "duration_ms": round(duration, 1)},
    )
    return Attempt(
        started_at,
        duration,
        response.status_code,
        None,
        body,
        retry_after=response.headers.get("retry-after"),
    )
