"""One attempt at sending a delivery over HTTP, and the connection pool all attempts share.

Deliveries go through :mod:`kiosk.delivery.http1`, a small keep-alive HTTP/1.1 client over
``http.client`` (httpx's per-request overhead was the throughput ceiling; the numbers are there).
:func:`create_client` keeps an httpx client, with the same rules, for other outbound calls. Both are
built for talking to URLs other people configured:

* timeouts from the config on every phase (connect, each write, each read), plus an overall
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

import http.cookiejar
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import httpcore
import httpx

from kiosk import __version__
from kiosk.core.signing import sign_azure_checksum, webhook_signature_headers
from kiosk.delivery import http1
from kiosk.delivery.config import DeliveryConfig, EgressConfig
from kiosk.delivery.egress import EgressPolicy, EgressRefused, PinnedBackend, check_scheme
from kiosk.delivery.outbox import DEFAULT_SIGNATURE_HEADER, Delivery
from kiosk.store.queue import utcnow

__all__ = ["Attempt", "PinnedTransport", "create_client", "create_transport", "send", "signed_headers"]

log = logging.getLogger(__name__)

USER_AGENT = f"kiosk-webhooks/{__version__}"
#: identity: only the raw bytes of an answer are read (capped), so a compressed one would be stored compressed.
BASE_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
#: How long a kept-alive connection may sit idle before it is closed (and the name resolved again).
IDLE_SECONDS = 30.0


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


def create_transport(config: DeliveryConfig, egress: EgressConfig) -> http1.ConnectionPool:
    """The connection pool every delivery attempt goes through (thread safe; close it when done)."""
    # A connection per sender thread plus a spare each, kept alive between deliveries to the same
    # receiver.
    return http1.ConnectionPool(
        EgressPolicy.from_config(egress), max_idle_per_key=config.workers * 2, idle_seconds=IDLE_SECONDS
    )


def create_client(config: DeliveryConfig, egress: EgressConfig) -> httpx.Client:
    """An httpx client with the same rules, for other outbound calls to user-configured URLs.

    Deliveries themselves use :func:`send` on :mod:`~kiosk.delivery.http1`'s pool: httpx's
    per-request work was the delivery throughput's ceiling, and none of its features are wanted
    there.
    """
    size = config.workers * 2
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=IDLE_SECONDS)
    return httpx.Client(
        transport=PinnedTransport(EgressPolicy.from_config(egress), limits),
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


_PHASES: dict[type[http1.Timeout], str] = {
    http1.ConnectTimeout: "connecting",
    http1.ReadTimeout: "waiting for the response",
    http1.WriteTimeout: "sending the request",
    http1.ReadDeadline: "receiving the response",
}


def _describe(exc: http1.TransportError, timeout: float) -> tuple[str, bool]:
    """An error text for a failed request, and whether it was a timeout."""
    if isinstance(exc, http1.Timeout):
        return f"timed out after {timeout:g}s {_PHASES.get(type(exc), 'receiving the response')}", True
    if isinstance(exc, http1.ConnectError):
        return f"connection failed: {exc}", False
    if isinstance(exc, http1.ProtocolError):
        return f"the receiver broke the HTTP protocol: {exc}", False
    return f"{type(exc).__name__}: {exc}", False


def send(
    transport: http1.ConnectionPool,
    delivery: Delivery,
    secret: str | None,
    *,
    timeout: float,
    max_response_bytes: int,
) -> Attempt:
    """Make one attempt at ``delivery`` with ``secret`` (None when it is unsigned); never raises.

    The request goes straight to the pool: there is no redirect, cookie or auth handling on this
    path at all, so a 3xx comes back as it is and nothing carries over between deliveries.
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
        target = http1.split_url(delivery.url)
    except http1.InvalidURL as exc:
        return failed(f"invalid URL: {exc}", permanent=True)
    refused_scheme = check_scheme(target.scheme)
    if refused_scheme is not None:
        return failed(f"egress refused: {refused_scheme}", permanent=True)
    if not target.host:
        return failed("invalid URL: no host", permanent=True)

    try:
        headers = {**BASE_HEADERS, **signed_headers(delivery, secret)}
        response = transport.request(
            delivery.method,
            target,
            headers,
            delivery.body,
            timeout=timeout,
            deadline=start + timeout,
            max_body=max_response_bytes,
        )
    except EgressRefused as exc:
        return failed(str(exc), permanent=True)
    except http1.InvalidURL as exc:
        return failed(f"invalid URL: {exc}", permanent=True)
    except http1.InvalidRequest as exc:
        # The request itself cannot be sent (a header value with a line break, say): no retry can help.
        return failed(f"invalid request: {exc}", permanent=True)
    except http1.TransportError as exc:
        error, timed_out = _describe(exc, timeout)
        return failed(error, timed_out=timed_out)
    except OSError as exc:  # anything the socket layer raised that the pool did not translate
        return failed(f"network error: {exc}")
    duration = (time.monotonic() - start) * 1000.0
    log.debug(
        "delivery attempt answered",
        extra={"delivery": delivery.id, "status": response.status, "duration_ms": round(duration, 1)},
    )
    return Attempt(
        started_at,
        duration,
        response.status,
        None,
        response.text(),
        retry_after=response.header("retry-after"),
    )
