"""A database prepared the way kiosk did before key files: both keys in ``server_state``, secret
inputs and a delivery body sealed in the old ``v1:``/``kb1:`` forms. Shared by the key tests."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk.store import Database
from kiosk.store.migrate import alembic_config
from kiosk.store.tables import action_runs, deliveries, server_state

RUN_ID = "r_legacy000000000000000001"
DELIVERY_ID = "msg_legacy00000000000000001"
RUN_SECRETS = {"token": "legacy-run-secret-1"}
BODY = b'{"token":"legacy-body-secret-2"}'
BODY_SECRETS = ["legacy-body-secret-2"]


@dataclass(frozen=True)
class LegacyInstall:
    token_key: bytes
    sealing_key: bytes


def legacy_seal(key: bytes, run_id: str, values: dict[str, str]) -> str:
    """``v1:<base64(nonce || ciphertext)>`` exactly as the old SecretBox.seal made it."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key).encrypt(nonce, orjson.dumps(values), run_id.encode())
    return "v1:" + base64.b64encode(nonce + sealed).decode()


def legacy_seal_body(key: bytes, delivery_id: str, body: bytes, values: list[str]) -> bytes:
    """``kb1:`` + nonce + ciphertext exactly as the old SecretBox.seal_body made it."""
    envelope = orjson.dumps({"body": base64.b64encode(body).decode(), "secrets": sorted(set(values))})
    nonce = secrets.token_bytes(12)
    return b"kb1:" + nonce + AESGCM(key).encrypt(nonce, envelope, b"delivery-body\x00" + delivery_id.encode())


def prepare_legacy_database(db: Database, *, schema: str = "0003") -> LegacyInstall:
    """Migrate ``db`` to ``schema`` (the last one before key files) and fill it as the old code did."""
    command.upgrade(alembic_config(db), schema)
    install = LegacyInstall(token_key=secrets.token_bytes(32), sealing_key=AESGCM.generate_key(bit_length=256))
    with db.begin() as conn:
        conn.execute(
            sa.insert(server_state),
            [
                {"key": "token_signing_key", "value": install.token_key.hex()},
                {"key": "action_secrets_key", "value": install.sealing_key.hex()},
            ],
        )
        _insert_run_and_delivery(
            conn,
            run_status="WAITING_FOR_APPROVAL",
            properties={"token": "****"},
            run_secrets=legacy_seal(install.sealing_key, RUN_ID, RUN_SECRETS),
            body=legacy_seal_body(install.sealing_key, DELIVERY_ID, BODY, BODY_SECRETS),
            delivery_status="delivered",
            attempts=1,
        )
    return install


def stored(db: Database) -> tuple[str, bytes, dict[str, str]]:
    """The run's sealed secrets, the delivery's stored body, and every ``server_state`` row."""
    with db.connect() as conn:
        run_secrets = conn.execute(sa.select(action_runs.c.secrets).where(action_runs.c.id == RUN_ID)).scalar_one()
        body = conn.execute(sa.select(deliveries.c.body).where(deliveries.c.id == DELIVERY_ID)).scalar_one()
        state = dict(conn.execute(sa.select(server_state.c.key, server_state.c.value)).all())
    return run_secrets, bytes(body), state


def insert_run_and_body(db: Database, run_secrets: str, body: bytes) -> None:
    """A run with sealed secret inputs and a pending delivery with a sealed body, as given."""
    with db.begin() as conn:
        _insert_run_and_delivery(
            conn,
            run_status="IN_PROGRESS",
            properties={},
            run_secrets=run_secrets,
            body=body,
            delivery_status="pending",
            attempts=0,
        )


def _insert_run_and_delivery(
    conn: sa.Connection,
    *,
    run_status: str,
    properties: dict[str, Any],
    run_secrets: str,
    body: bytes,
    delivery_status: str,
    attempts: int,
) -> None:
    """Run ``RUN_ID`` of action ``deploy`` and its delivery ``DELIVERY_ID``, sealed as given."""
    now = datetime.now(UTC)
    conn.execute(
        sa.insert(action_runs).values(
            id=RUN_ID,
            action="deploy",
            status=run_status,
            properties=properties,
            secrets=run_secrets,
            links=[],
            origin="API",
            created_at=now,
            updated_at=now,
        )
    )
    conn.execute(
        sa.insert(deliveries).values(
            id=DELIVERY_ID,
            run_id=RUN_ID,
            source="action",
            target={"method": "POST", "url": "http://127.0.0.1:9/", "headers": {}, "sealed": True},
            body=body,
            status=delivery_status,
            attempts=attempts,
            created_at=now,
            updated_at=now,
        )
    )
