"""The incoming-webhook checksum, against the seed's test vector."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.core.signing import minify_json, sign_azure_checksum, verify_azure_checksum

SEED_BODY = b'{"resource":{"message":{"title":"Hello, world!","subtitle":"I\'m using WebHooks!"}}}'
SEED_CHECKSUM = "750D33212D3AD4932CC390819050734831A0A94F"


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
