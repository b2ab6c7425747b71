"""The incoming-webhook checksum, against the seed's test vector."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.pipelines import SEED_BODY, SEED_CHECKSUM

from kiosk.core.signing import (
    minify_json,
    sign_azure_checksum,
    sign_port_webhook,
    sign_standard_webhook,
    verify_azure_checksum,
    verify_port_webhook,
    verify_standard_webhook,
    webhook_signature_headers,
)


def test_seed_test_vector() -> None:
    assert sign_azure_checksum("secret", SEED_BODY) == SEED_CHECKSUM
    assert verify_azure_checksum("secret", SEED_BODY, SEED_CHECKSUM)
    assert verify_azure_checksum("secret", SEED_BODY, SEED_CHECKSUM.lower())


def test_pretty_printed_body_has_another_checksum_until_minified() -> None:
    pretty = (
        b'{\n  "resource": {\n    "message": {\n      "title": "Hello, world!",\n'
        b'      "subtitle": "I\'m using WebHooks!"\n    }\n  }\n}\n'
    )
    assert not verify_azure_checksum("secret", pretty, SEED_CHECKSUM)
    assert minify_json(pretty) == SEED_BODY
    assert sign_azure_checksum("secret", minify_json(pretty)) == SEED_CHECKSUM


def test_minify_keeps_non_ascii_and_order() -> None:
    assert minify_json('{ "b": 1, "a": "Zürich" }'.encode()) == '{"b":1,"a":"Zürich"}'.encode()
    with pytest.raises(ValueError):
        minify_json(b"{nope")


@pytest.mark.parametrize("header", ["", "sha1=" + SEED_CHECKSUM, SEED_CHECKSUM[:-1], "é" * 40, SEED_CHECKSUM + "0"])
def test_wrong_checksums_are_refused(header: str) -> None:
    assert not verify_azure_checksum("secret", SEED_BODY, header)


def test_sha1_prefix_only_when_allowed() -> None:
    assert verify_azure_checksum("secret", SEED_BODY, "sha1=" + SEED_CHECKSUM.lower(), allow_sha1_prefix=True)


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=200))
def test_sign_then_verify(secret: str, body: bytes) -> None:
    checksum = sign_azure_checksum(secret, body)
    assert verify_azure_checksum(secret, body, checksum)
    assert not verify_azure_checksum(secret + "x", body, checksum)


# ------------------------------------------------------------------------------------------------
# Generic webhooks: Standard Webhooks and Port's HMAC-SHA256 schemes. Expected values are computed
# here with hmac/hashlib/base64 directly, not with the functions under test.

MSG_ID = "msg_0123456789abcdef0123456789"
BODY = '{"action":"deploy","région":"eu"}'.encode()
TS = 1_795_000_000


def _b64_hmac_sha256(key: bytes, content: bytes) -> str:
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def test_standard_webhooks_published_test_vector() -> None:
    # The Standard Webhooks specification's own example: a whsec_ secret is keyed by its decoded bytes.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign_standard_webhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    assert verify_standard_webhook(
        secret, body, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp="1614265330", signature=expected, now=1614265330
    )


def test_standard_webhooks_signature_with_a_plain_secret() -> None:
    expected = "v1," + _b64_hmac_sha256(b"s3cret", f"{MSG_ID}.{TS}.".encode() + BODY)
    assert sign_standard_webhook("s3cret", MSG_ID, TS, BODY) == expected


def test_port_signature() -> None:
    expected = "v1," + _b64_hmac_sha256(b"s3cret", f"{TS}.".encode() + BODY)
    assert sign_port_webhook("s3cret", TS, BODY) == expected
    assert verify_port_webhook("s3cret", BODY, timestamp=str(TS), signature=expected, now=TS + 10)


def test_webhook_signature_headers_carry_both_schemes() -> None:
    headers = webhook_signature_headers("s3cret", MSG_ID, TS, BODY)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TS),
        "webhook-signature": "v1," + _b64_hmac_sha256(b"s3cret", f"{MSG_ID}.{TS}.".encode() + BODY),
        "X-Port-Timestamp": str(TS),
        "X-Port-Signature": "v1," + _b64_hmac_sha256(b"s3cret", f"{TS}.".encode() + BODY),
    }


KEY = "s3cret"


def _verify(signature: str, *, secret: str = KEY, body: bytes = BODY, msg_id: str = MSG_ID, now: float = TS) -> bool:
    return verify_standard_webhook(secret, body, msg_id=msg_id, timestamp=str(TS), signature=signature, now=now)


def test_standard_webhooks_verification_rules() -> None:
    good = sign_standard_webhook("s3cret", MSG_ID, TS, BODY)
    assert _verify(good)
    assert _verify(good, now=TS + 300) and _verify(good, now=TS - 300)  # 5 minutes either way
    assert not _verify(good, now=TS + 301)  # a replay, too late
    assert not _verify(good, now=TS - 301)  # from the future
    assert not _verify(good, secret="other")
    assert not _verify(good, body=BODY + b" ")
    assert not _verify(good, msg_id="msg_other")  # the id is signed: it cannot be swapped
    assert _verify("v1,bm90LXRoaXM= " + good)  # several signatures (secret rotation): any may match
    assert not _verify("v2," + good[3:])  # unknown versions are ignored
    assert not _verify("")
    assert not _verify("v1,é")
    assert not verify_standard_webhook("s3cret", BODY, msg_id=MSG_ID, timestamp="soon", signature=good, now=TS)


def test_port_verification_rejects_stale_and_forged() -> None:
    good = sign_port_webhook("s3cret", TS, BODY)
    assert not verify_port_webhook("s3cret", BODY, timestamp=str(TS), signature=good, now=TS + 301)
    assert not verify_port_webhook("s3cret", BODY, timestamp=str(TS + 1), signature=good, now=TS)
    assert not verify_port_webhook("other", BODY, timestamp=str(TS), signature=good, now=TS)


def test_malformed_whsec_secret_is_an_error() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign_standard_webhook("whsec_not base64!", MSG_ID, TS, BODY)


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=200), ts=st.integers(0, 2**33))
def test_webhook_sign_then_verify(secret: str, body: bytes, ts: int) -> None:
    signature = sign_standard_webhook(secret, MSG_ID, ts, body)
    assert verify_standard_webhook(secret, body, msg_id=MSG_ID, timestamp=str(ts), signature=signature, now=ts)
    port = sign_port_webhook(secret, ts, body)
    assert verify_port_webhook(secret, body, timestamp=str(ts), signature=port, now=ts)
