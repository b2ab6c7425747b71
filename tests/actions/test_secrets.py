"""Secret inputs sealed at rest: AES-GCM bound to the run, under a key named in every seal."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus, unquote_plus

import orjson
import pytest

from kiosk.actions.secrets import SecretBox, mask_text
from kiosk.auth.keys import KeyRing
from kiosk.logs import redact_text


def test_seal_and_open() -> None:
    box = SecretBox(bytes(32))
    sealed = box.seal("r_1", {"token": "hunter2-sealed", "pin": "0000"})
    assert sealed.startswith("v2:k0:") and "hunter2" not in sealed
    assert box.seal("r_1", {"token": "hunter2-sealed"}) != box.seal("r_1", {"token": "hunter2-sealed"})  # fresh nonce
    assert box.open("r_1", sealed) == {"token": "hunter2-sealed", "pin": "0000"}
    # opening registers the values with the log redaction
    assert redact_text("value hunter2-sealed") == "value ***"
    with pytest.raises(ValueError, match="do not open"):
        box.open("r_2", sealed)  # bound to its run
    with pytest.raises(ValueError, match="do not open"):
        SecretBox(b"\x01" * 32).open("r_1", sealed)
    with pytest.raises(ValueError, match="format"):
        box.open("r_1", "v0:abc")
    assert "\\x00" not in repr(box) and repr(box) == "SecretBox(***)"


def test_seals_name_their_key_and_still_open_after_a_rotation() -> None:
    old, new = b"o" * 32, b"n" * 32
    before = SecretBox.from_keyring(KeyRing.from_secrets([old]))
    sealed = before.seal("r_1", {"token": "rotated-secret"})
    body = before.seal_body("msg_1", b"rotated-body", ["rotated-body"])
    assert sealed.startswith(f"v2:{before.key_id}:") and body.startswith(b"kb2:" + before.key_id.encode())
    after = SecretBox.from_keyring(KeyRing.from_secrets([new, old]))  # new key first, old one retired
    assert after.key_id != before.key_id and after.seal("r_1", {}).startswith(f"v2:{after.key_id}:")
    assert after.open("r_1", sealed) == {"token": "rotated-secret"}
    assert after.open_body("msg_1", body).body == b"rotated-body"
    dropped = SecretBox.from_keyring(KeyRing.from_secrets([new]))  # old key dropped too early
    with pytest.raises(ValueError, match=f"made under key {before.key_id}"):
        dropped.open("r_1", sealed)


def test_mask_text() -> None:
    assert mask_text("a secret-long and secret", {"x": "secret", "y": "secret-long"}, "****") == "a **** and ****"
    assert mask_text("nothing", {"x": ""}, "****") == "nothing"


def test_seal_and_open_a_delivery_body() -> None:
    box = SecretBox(bytes(32))
    body = b'{"token":"body-secret-42","n":1}'
    sealed = box.seal_body("msg_1", body, ["body-secret-42", "body-secret-42"])
    assert sealed.startswith(b"kb2:k0:") and b"body-secret" not in sealed
    assert box.seal_body("msg_1", body, []) != box.seal_body("msg_1", body, [])  # fresh nonce
    opened = box.open_body("msg_1", sealed)
    assert opened.body == body and opened.secret_values == ("body-secret-42",)
    assert "body-secret" not in repr(opened)
    assert redact_text("x body-secret-42") == "x ***"  # registered with the log redaction when opened
    with pytest.raises(ValueError, match="does not open"):
        box.open_body("msg_2", sealed)  # bound to its delivery
    with pytest.raises(ValueError, match="does not open"):
        SecretBox(b"\x01" * 32).open_body("msg_1", sealed)
    with pytest.raises(ValueError, match="not a sealed delivery body"):
        box.open_body("msg_1", body)
    # A run's sealed inputs and a sealed body never stand in for each other.
    with pytest.raises(ValueError):
        box.open("msg_1", sealed.decode("latin-1"))


def test_mask_text_takes_plain_values_too() -> None:
    assert mask_text("a b-long b", ["b", "b-long"], "****") == "a **** ****"


#: URL-encoding, JSON escaping and case all change this one: '/', '+', '$', a space, quotes, 'ü'.
AWKWARD = 'Pa$$/w0rd+ü "q"-9Zk'


def _b64_inside(secret: bytes, before: int, *, urlsafe: bool = False, pad: bool = True) -> str:
    """base64 of ``secret`` inside a larger byte string, ``before`` bytes after its start."""
    raw = b"{" * before + secret + b"} and more bytes after it"
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    return text if pad else text.rstrip("=")


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(AWKWARD.upper(), id="upper"),
        pytest.param(AWKWARD.lower(), id="lower"),
        pytest.param(AWKWARD.swapcase(), id="swapcase"),
        pytest.param(quote(AWKWARD, safe=""), id="url"),
        pytest.param(quote(AWKWARD, safe="").lower(), id="url-lower-hex"),
        pytest.param(quote_plus(AWKWARD), id="url-plus"),
        pytest.param(orjson.dumps(AWKWARD).decode()[1:-1], id="json"),
        pytest.param(json.dumps(AWKWARD)[1:-1], id="json-ascii"),
        pytest.param(AWKWARD.encode().hex(), id="hex"),
        pytest.param(AWKWARD.encode().hex().upper(), id="HEX"),
        pytest.param(base64.b64encode(AWKWARD.encode()).decode(), id="base64"),
        pytest.param(base64.b64encode(AWKWARD.encode()).decode().rstrip("="), id="base64-unpadded"),
        pytest.param(base64.urlsafe_b64encode(AWKWARD.encode()).decode(), id="base64url"),
        pytest.param(base64.urlsafe_b64encode(AWKWARD.encode()).decode().rstrip("="), id="base64url-unpadded"),
        *(pytest.param(_b64_inside(AWKWARD.encode(), n), id=f"base64-inside-{n}") for n in range(6)),
        *(
            pytest.param(_b64_inside(AWKWARD.encode(), n, urlsafe=True, pad=False), id=f"base64url-inside-{n}")
            for n in range(3)
        ),
        pytest.param(base64.b64encode(orjson.dumps({"token": AWKWARD})).decode(), id="base64-of-json-with-escapes"),
    ],
)
def test_mask_text_masks_simple_transforms(form: str) -> None:
    echoed = f"the receiver said: {form} (end)"
    masked = mask_text(echoed, [AWKWARD], "****")
    assert "****" in masked and masked.startswith("the receiver said: ") and masked.endswith(" (end)")
    assert not _readable(masked, AWKWARD), masked


def _readable(text: str, secret: str) -> bool:
    """Whether ``secret`` can be read back from ``text`` by undoing any of the transforms."""
    raw = secret.encode()
    lowered = text.lower()
    if secret.lower() in lowered or raw.hex() in lowered or secret.lower() in unquote_plus(text).lower():
        return True
    if orjson.dumps(secret).decode()[1:-1].lower() in lowered or json.dumps(secret)[1:-1].lower() in lowered:
        return True
    for run in re.findall(r"[A-Za-z0-9+/_=-]{8,}", text):
        run = run.rstrip("=").replace("-", "+").replace("_", "/")
        for start in range(4):
            chunk = run[start:]
            chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk
            decoded = base64.b64decode(chunk + "=" * (-len(chunk) % 4))
            if raw in decoded or orjson.dumps(secret)[1:-1] in decoded:
                return True
    return False


def test_mask_text_leaves_unrelated_text_and_short_forms_alone() -> None:
    # Pieces of a short secret's forms ("YW" of its base64, "61" of its hex) are not masked: that
    # would blank out unrelated text. The secret itself always is.
    assert mask_text("YW 61 cab", ["ab"], "*") == "YW 61 c*"
    text = "status 200, body {'ok': true}"
    assert mask_text(text, [AWKWARD, "another-secret"], "****") == text
