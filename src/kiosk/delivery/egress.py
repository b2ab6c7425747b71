"""Which addresses outbound webhooks may reach, and a connection layer that enforces it.

A portal whose users configure webhook URLs is an open door into the network it runs in unless
targets are checked (SSRF): ``http://169.254.169.254/`` reads cloud credentials,
``http://10.0.0.5:8080/admin`` reaches internal services. So kiosk refuses targets whose addresses
are loopback, private, link-local, multicast, reserved, unspecified or otherwise not globally
routable — for IPv4 and IPv6 alike, looking through IPv4-mapped (``::ffff:127.0.0.1``), 6to4 and
NAT64 addresses at the IPv4 address inside — unless the configuration opens them
(:class:`~kiosk.delivery.config.EgressConfig`).

Checking a name and then letting the HTTP client resolve it again leaves a window in which DNS can
answer differently (DNS rebinding). :func:`checked_addresses` closes it: the host is resolved once,
every address checked, and the caller connects to a checked address itself, while the ``Host``
header, TLS server name indication and certificate checks keep using the host name from the URL.
Deliveries do that in :mod:`kiosk.delivery.http1`; :class:`PinnedBackend` does it below an httpx
connection pool for other outbound calls (:func:`kiosk.delivery.sender.create_client`).

The pure part (:func:`check_scheme`, :func:`refusal`, :class:`EgressPolicy`) has no IO.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore

from kiosk.delivery.config import EgressConfig

__all__ = [
    "EgressPolicy",
    "EgressRefused",
    "PinnedBackend",
    "Unresolvable",
    "check_scheme",
    "checked_addresses",
    "refusal",
    "resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: NAT64's well-known prefix (RFC 6052): the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
ALLOWED_SCHEMES = ("http", "https")


class EgressRefused(Exception):
    """A target the egress policy does not allow; permanent (retrying cannot help). The message says why."""


class Unresolvable(httpcore.ConnectError):
    """The host name did not resolve. Not a refusal: DNS may be down for a moment, so it is a
    connect error (retried). An httpcore error so that httpx translates it under :class:`PinnedBackend`."""


def check_scheme(scheme: str) -> str | None:
    """Why a URL scheme is refused, or None for http/https."""
    if scheme.lower() in ALLOWED_SCHEMES:
        return None
    return f"scheme {scheme!r} is not allowed (only http and https)"


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class EgressPolicy:
    """:class:`EgressConfig` parsed once: networks and host names that are let through."""

    allow_loopback: bool
    networks: tuple[IPNetwork, ...]
    hosts: frozenset[str]

    @classmethod
    def from_config(cls, config: EgressConfig) -> EgressPolicy:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in config.allow:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(_normal_host(entry))
        return cls(config.allow_loopback, tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        return _normal_host(host) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def _stands_for(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address *is* on the wire: IPv4-mapped (a dual-stack socket connects
    to the IPv4 address) or NAT64 (the gateway forwards to it). Such an address is judged as that IPv4
    address alone."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


#: Refused kinds of address, most specific first, as they read in an error message.
_CATEGORIES: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("an unspecified address", lambda a: a.is_unspecified),
    ("a loopback address", lambda a: a.is_loopback),
    ("a link-local address", lambda a: a.is_link_local),
    ("a multicast address", lambda a: a.is_multicast),
    ("a private address", lambda a: a.is_private),
    ("a reserved address", lambda a: a.is_reserved),
    ("not a globally routable address", lambda a: not a.is_global),
)


def _category(address: IPAddress) -> str | None:
    """The kind of non-public address this is, or None for a globally routable one."""
    return next((name for name, test in _CATEGORIES if test(address)), None)


def _reason(address: IPAddress, policy: EgressPolicy) -> str | None:
    """What kind of refused address this is ("a loopback address (...)"), or None when allowed."""
    if policy.allows_address(address):
        return None
    inner = _stands_for(address)
    if inner is not None:
        why = _reason(inner, policy)
        return None if why is None else f"{inner}, {why}"
    category = _category(address)
    if category == "a loopback address" and policy.allow_loopback:
        return None
    if category is not None:
        hint = "set egress.allowLoopback" if category == "a loopback address" else "add it to egress.allow"
        return f"{category} ({hint} to permit it)"
    if isinstance(address, ipaddress.IPv6Address) and address.sixtofour is not None:
        # 6to4 tunnels to the IPv4 address in bits 16-48: the tunnel's far end must be public too.
        why = _reason(address.sixtofour, policy)
        return None if why is None else f"a 6to4 tunnel to {address.sixtofour}, {why}"
    return None


def _display(address: IPAddress) -> str:
    # Python prints ::ffff:127.0.0.1 as ::ffff:7f00:1; show it the way people write it.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def refusal(address: IPAddress, policy: EgressPolicy, *, host: str | None = None) -> str | None:
    """Why connecting to ``address`` (named ``host`` in the URL) is refused, or None when allowed."""
    if host is not None and policy.allows_host(host):
        return None
    reason = _reason(address, policy)
    return None if reason is None else f"{_display(address)} is {reason}"


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to (an IP literal resolves to itself without DNS)."""
    bare = host.strip("[]")
    try:
        return [ipaddress.ip_address(bare)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # IPv6 link-local answers may carry a scope ("fe80::1%eth0"); the scope does not change the verdict.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def checked_addresses(
    host: str, port: int, policy: EgressPolicy, resolver: Callable[[str, int], Sequence[IPAddress]] = resolve
) -> list[IPAddress]:
    """Resolve ``host`` and check every address; raises :class:`EgressRefused` if any is refused
    and :class:`Unresolvable` if there is none.

    All must pass, not just one: otherwise a name with one public and one internal address would
    reach the internal one whenever the public one fails to connect.
    """
    try:
        addresses = list(resolver(host, port))
    except OSError as exc:
        raise Unresolvable(f"cannot resolve {host}: {exc.strerror or exc}") from None
    if not addresses:
        raise Unresolvable(f"cannot resolve {host}: no addresses")
    for address in addresses:
        why = refusal(address, policy, host=host)
        if why is not None:
            named = "" if _is_literal(host) else f"{host} resolves to "
            raise EgressRefused(f"egress refused: {named}{why}")
    return addresses


class PinnedBackend(httpcore.NetworkBackend):
    """httpcore's network layer with the egress check in front: resolve once, check, connect to that address."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Callable[[str, int], Sequence[IPAddress]] = resolve,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = checked_addresses(host, port, self.policy, self._resolver)
        last: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return stream
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise EgressRefused("egress refused: Unix sockets are not a webhook target")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
