"""Secret inputs sealed at rest: AES-GCM bound to the run, one key per database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kiosk.actions.secrets import KEY_NAME, SecretBox, mask_text, secret_inputs_key
from kiosk.logs import redact_text
from kiosk.store import Database
from kiosk.store.tables import server_state


def test_seal_and_open() -> None:
    box = SecretBox(bytes(32))
    sealed = box.seal("r_1", {"token": "hunter2-sealed", "pin": "0000"})
    assert sealed.startswith("v1:") and "hunter2" not in sealed
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


def test_key_is_made_once_per_database(db: Database) -> None:
    key = secret_inputs_key(db)
    assert len(key) == 32
    assert secret_inputs_key(db) == key
    with db.connect() as conn:
        rows = conn.execute(sa.select(server_state.c.value).where(server_state.c.key == KEY_NAME)).all()
    assert [bytes.fromhex(r.value) for r in rows] == [key]


def test_mask_text() -> None:
    assert mask_text("a secret-long and secret", {"x": "secret", "y": "secret-long"}, "****") == "a **** and ****"
    assert mask_text("nothing", {"x": ""}, "****") == "nothing"


def test_seal_and_open_a_delivery_body() -> None:
    box = SecretBox(bytes(32))
    body = b'{"token":"body-secret-42","n":1}'
    sealed = box.seal_body("msg_1", body, ["body-secret-42", "body-secret-42"])
    assert sealed.startswith(b"kb1:") and b"body-secret" not in sealed
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
