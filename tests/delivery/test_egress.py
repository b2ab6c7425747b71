"""The egress policy (pure) and the pinned connection layer (resolve once, connect to what was checked)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import httpcore
import pytest
from tests.support.receiver import Receiver
from tests.support.servers import serving

from kiosk.delivery.config import EgressConfig
from kiosk.delivery.egress import (
    EgressPolicy,
    EgressRefused,
    IPAddress,
    PinnedBackend,
    Unresolvable,
    check_scheme,
    checked_addresses,
    refusal,
    resolve,
)

DEFAULT = EgressPolicy.from_config(EgressConfig())


def _refusal(address: str, policy: EgressPolicy = DEFAULT, host: str | None = None) -> str | None:
    return refusal(ipaddress.ip_address(address), policy, host=host)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address (set egress.allowLoopback to permit it)"),
        ("127.8.9.10", "127.8.9.10 is a loopback address"),
        ("10.0.0.5", "10.0.0.5 is a private address (add it to egress.allow to permit it)"),
        ("172.16.3.4", "172.16.3.4 is a private address"),
        ("192.168.1.1", "192.168.1.1 is a private address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("224.0.0.1", "224.0.0.1 is a multicast address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),  # noqa: S104 - an address to refuse, not to bind
        ("240.0.0.1", "240.0.0.1 is a private address"),  # reserved, which Python files under private
        ("100.64.0.1", "100.64.0.1 is not a globally routable address"),  # carrier-grade NAT
        ("255.255.255.255", "255.255.255.255 is a"),
        ("::1", "::1 is a loopback address"),
        ("::", ":: is an unspecified address"),
        ("fe80::1", "fe80::1 is a link-local address"),
        ("fc00::1", "fc00::1 is a private address"),
        ("ff02::1", "ff02::1 is a multicast address"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1 is 127.0.0.1, a loopback address"),
        ("::ffff:10.1.1.1", "::ffff:10.1.1.1 is 10.1.1.1, a private address"),
        ("::ffff:169.254.169.254", "::ffff:169.254.169.254 is 169.254.169.254, a link-local address"),
        ("64:ff9b::a01:101", "64:ff9b::a01:101 is 10.1.1.1, a private address"),  # NAT64
        ("2002:7f00:1::1", "2002:7f00:1::1 is a 6to4 tunnel to 127.0.0.1, a loopback address"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    found = _refusal(address)
    assert found is not None
    assert found.startswith(reason)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert _refusal(address) is None


def test_allow_loopback_opens_loopback_only() -> None:
    policy = EgressPolicy.from_config(EgressConfig(allowLoopback=True))
    assert _refusal("127.0.0.1", policy) is None
    assert _refusal("::1", policy) is None
    assert _refusal("::ffff:127.0.0.1", policy) is None
    assert _refusal("10.0.0.1", policy) is not None
    assert _refusal("169.254.169.254", policy) is not None


def test_allow_by_cidr_address_or_host_name() -> None:
    policy = EgressPolicy.from_config(
        EgressConfig(allow=["10.20.0.0/16", "192.168.1.7", "fd00::/8", "Hooks.Internal."])
    )
    assert _refusal("10.20.3.4", policy) is None
    assert _refusal("10.21.3.4", policy) is not None
    assert _refusal("192.168.1.7", policy) is None
    assert _refusal("192.168.1.8", policy) is not None
    assert _refusal("fd12::1", policy) is None
    assert _refusal("::ffff:10.20.0.1", policy) is None  # judged as the IPv4 address it is
    assert _refusal("10.9.9.9", policy, host="hooks.internal") is None  # exact host name, any address
    assert _refusal("10.9.9.9", policy, host="other.hooks.internal") is not None  # exact, not a suffix
    assert _refusal("127.0.0.1", policy) is not None  # allow does not open loopback by itself


@pytest.mark.parametrize(("scheme", "refused"), [("http", False), ("HTTPS", False), ("ftp", True), ("file", True)])
def test_only_http_and_https(scheme: str, refused: bool) -> None:
    assert (check_scheme(scheme) is not None) == refused


def _resolver(answers: dict[str, list[str]]) -> tuple[list[str], object]:
    calls: list[str] = []

    def resolve_(host: str, port: int) -> Sequence[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address(a) for a in answers[host]]

    return calls, resolve_


def test_every_resolved_address_must_pass() -> None:
    _calls, resolver = _resolver({"mixed.example": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(EgressRefused, match=r"egress refused: mixed\.example resolves to 10\.0\.0\.1 is a private"):
        checked_addresses("mixed.example", 443, DEFAULT, resolver)  # type: ignore[arg-type]


def test_resolution_failure_is_a_connect_error_not_a_refusal() -> None:
    def broken(host: str, port: int) -> Sequence[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(Unresolvable, match=r"cannot resolve nowhere\.invalid") as raised:
        checked_addresses("nowhere.invalid", 80, DEFAULT, broken)
    assert isinstance(raised.value, httpcore.ConnectError)  # httpx translates it under PinnedBackend


def test_resolve_ip_literals_without_dns() -> None:
    assert resolve("127.0.0.1", 80) == [ipaddress.ip_address("127.0.0.1")]
    assert resolve("[::1]", 80) == [ipaddress.ip_address("::1")]
    assert ipaddress.ip_address("127.0.0.1") in resolve("localhost", 80)


def test_pinned_backend_connects_to_the_address_it_checked() -> None:
    """DNS rebinding: the name is resolved once; a second, different answer is never used."""
    app = Receiver()
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # the second lookup would answer with an internal address
        calls: list[str] = []

        def rebinding(host: str, port_: int) -> Sequence[IPAddress]:
            calls.append(host)
            return [ipaddress.ip_address(a) for a in next(answers)]

        policy = EgressPolicy.from_config(EgressConfig(allowLoopback=True))
        with httpcore.ConnectionPool(network_backend=PinnedBackend(policy, resolver=rebinding)) as pool:
            response = pool.request("POST", f"http://hooks.example:{port}/x", content=b"hi")
        assert response.status == 200
        assert calls == ["hooks.example"]
        [request] = app.requests
        assert request.headers["host"] == f"hooks.example:{port}"  # Host (and for TLS, SNI) keep the name
        assert request.body == b"hi"


def test_pinned_backend_refuses_before_connecting() -> None:
    _calls, resolver = _resolver({"metadata.example": ["169.254.169.254"]})
    backend = PinnedBackend(DEFAULT, resolver=resolver)  # type: ignore[arg-type]
    with pytest.raises(EgressRefused, match=r"169\.254\.169\.254 is a link-local address"):
        backend.connect_tcp("metadata.example", 80)
    with pytest.raises(EgressRefused):
        backend.connect_unix_socket("/var/run/docker.sock")


def test_pinned_backend_tries_the_next_checked_address() -> None:
    app = Receiver()
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        # ::1 first: nothing listens there (the test server is IPv4 only), so 127.0.0.1 is used.
        _calls, resolver = _resolver({"dual.example": ["::1", "127.0.0.1"]})
        policy = EgressPolicy.from_config(EgressConfig(allowLoopback=True))
        with httpcore.ConnectionPool(network_backend=PinnedBackend(policy, resolver=resolver)) as pool:  # type: ignore[arg-type]
            assert pool.request("GET", f"http://dual.example:{port}/").status == 200
