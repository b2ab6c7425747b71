"""The master key and the database: recognise it, migrate old installs to it, re-seal after rotation.

The database never holds key material. It holds one *check value* (``server_state.key_check``,
see :class:`kiosk.auth.keys.MasterKey`) naming the key its seals and tokens are made with, so a
process given another key refuses to start with one line instead of sealing data the others
cannot open and signing tokens they refuse (:func:`bind_keyring`).

Versions before key files kept ``token_signing_key`` and ``action_secrets_key`` in
``server_state``. :func:`migrate_legacy_keys` re-seals what the old sealing key sealed (run secret
inputs, delivery bodies) under the master key, then deletes both rows; tokens signed with the old
key stop working (they expire within the token lifetime anyway).

After a rotation (a new current key, the old one retired behind it) :func:`reseal_stored`, behind
``kiosk keys rotate``, re-seals everything still sealed under a retired key, so the retired key
can be dropped once the tokens it signed have expired.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from kiosk.actions.secrets import BODY_VERSION, LEGACY_BODY_VERSION, LEGACY_KEY_NAME, SecretBox
from kiosk.auth.keys import KeyRing
from kiosk.errors import ConfigError
from kiosk.store.engine import Database
from kiosk.store.server_values import shared_value
from kiosk.store.tables import action_runs, deliveries, server_state

__all__ = [
    "CHECK_ROW",
    "LEGACY_TOKEN_KEY_NAME",
    "ResealReport",
    "bind_keyring",
    "migrate_legacy_keys",
    "reseal_stored",
]

log = logging.getLogger("kiosk.auth")

CHECK_ROW = "key_check"
#: The ``server_state`` row where versions before key files kept the token signing key.
LEGACY_TOKEN_KEY_NAME = "token_signing_key"  # noqa: S105 - a row name, not a secret
BATCH = 500


def bind_keyring(db: Database, ring: KeyRing) -> None:
    """Check that ``ring`` holds the key this database uses; record it on a new database.

    A database whose key is a *retired* key of ``ring`` (the ring was rotated) moves to the ring's
    current key. A database whose key ``ring`` does not hold raises :class:`ConfigError`.
    """
    stored = shared_value(db, CHECK_ROW, lambda: ring.current.check)
    used = ring.by_check(stored)
    if used is None:
        raise ConfigError(
            f"the master key from {ring.source} (key id {ring.current.key_id}) is not the key this database "
            "uses: give every kiosk process on one database the same KIOSK_SECRET_KEY (while rotating, "
            "list the new key first and the old one after it)"
        )
    if used is not ring.current:
        with db.begin() as conn:
            conn.execute(
                sa.update(server_state)
                .where(server_state.c.key == CHECK_ROW, server_state.c.value == stored)
                .values(value=ring.current.check)
            )
        log.warning(
            "the database now uses the new master key; run `kiosk keys rotate` to re-seal stored secrets",
            extra={"key_id": ring.current.key_id, "retired_key_id": used.key_id},
        )


@dataclass(frozen=True)
class ResealReport:
    """What a re-seal pass did: seals moved to the current key, and seals it could not open."""

    runs: int = 0
    bodies: int = 0
    unopened: tuple[str, ...] = ()

    @property
    def resealed(self) -> int:
        return self.runs + self.bodies


def _batches(db: Database, query: sa.Select[Any], id_column: sa.Column[str]) -> Iterator[Sequence[sa.Row[Any]]]:
    """The rows of ``query`` in ``id_column`` order, BATCH at a time, each batch read in its own
    short transaction so a re-seal pass over a large table never holds one open."""
    after = ""
    while True:
        with db.connect() as conn:
            rows = conn.execute(query.where(id_column > after).order_by(id_column).limit(BATCH)).all()
        if not rows:
            return
        after = rows[-1].id
        yield rows


def _reseal_runs(db: Database, box: SecretBox, unopened: list[str]) -> int:
    done = 0
    current = f"v2:{box.key_id}:"
    query = sa.select(action_runs.c.id, action_runs.c.secrets).where(action_runs.c.secrets.is_not(None))
    for rows in _batches(db, query, action_runs.c.id):
        with db.begin() as conn:
            for row in rows:
                if row.secrets.startswith(current):
                    continue
                try:
                    resealed = box.seal(row.id, box.open(row.id, row.secrets))
                except ValueError as exc:
                    unopened.append(f"run {row.id}: {exc}")
                    continue
                # Only if nobody changed it meanwhile (a run that finished dropped its secrets).
                conn.execute(
                    sa.update(action_runs)
                    .where(action_runs.c.id == row.id, action_runs.c.secrets == row.secrets)
                    .values(secrets=resealed)
                )
                done += 1
    return done


def _reseal_bodies(db: Database, box: SecretBox, unopened: list[str]) -> int:
    done = 0
    current = BODY_VERSION + box.key_id.encode() + b":"
    prefix = sa.func.substr(deliveries.c.body, 1, len(BODY_VERSION))
    query = sa.select(deliveries.c.id, deliveries.c.body, deliveries.c.target).where(
        prefix.in_([BODY_VERSION, LEGACY_BODY_VERSION])
    )
    for rows in _batches(db, query, deliveries.c.id):
        with db.begin() as conn:
            for row in rows:
                body = bytes(row.body)
                if not (row.target or {}).get("sealed") or body.startswith(current):
                    continue  # a clear body that happens to start like a seal, or already current
                try:
                    opened = box.open_body(row.id, body)
                except ValueError as exc:
                    unopened.append(f"delivery {row.id}: {exc}")
                    continue
                conn.execute(
                    sa.update(deliveries)
                    .where(deliveries.c.id == row.id, deliveries.c.body == body)
                    .values(body=box.seal_body(row.id, opened.body, opened.secret_values))
                )
                done += 1
    return done


def reseal_stored(db: Database, box: SecretBox) -> ResealReport:
    """Re-seal under ``box``'s current key every run's secret inputs and every sealed delivery body
    sealed under another key ``box`` holds; the ones it cannot open are named in the report."""
    unopened: list[str] = []
    runs = _reseal_runs(db, box, unopened)
    bodies = _reseal_bodies(db, box, unopened)
    return ResealReport(runs=runs, bodies=bodies, unopened=tuple(unopened))


def migrate_legacy_keys(db: Database, ring: KeyRing) -> ResealReport | None:
    """Move a database from the keys older versions kept in it to ``ring``: re-seal what the old
    sealing key sealed, then delete both old key rows. None when there is nothing to migrate."""
    with db.connect() as conn:
        rows = dict(
            conn.execute(
                sa.select(server_state.c.key, server_state.c.value).where(
                    server_state.c.key.in_([LEGACY_KEY_NAME, LEGACY_TOKEN_KEY_NAME])
                )
            ).all()
        )
    if not rows:
        return None
    report = ResealReport()
    legacy = rows.get(LEGACY_KEY_NAME)
    if legacy is not None:
        report = reseal_stored(db, SecretBox.from_keyring(ring, legacy=bytes.fromhex(legacy)))
        if report.unopened:
            # Keep the old key: deleting it would lose these for good. The next start tries again.
            raise ConfigError(
                f"moving sealed secrets to the master key failed for {len(report.unopened)} item(s) "
                f"(first: {report.unopened[0]}); the old key stays in the database until they move"
            )
    with db.begin() as conn:
        conn.execute(sa.delete(server_state).where(server_state.c.key.in_(list(rows))))
    log.warning(
        "moved the signing and sealing keys out of the database; tokens issued before this start are no "
        "longer accepted (clients request new ones)",
        extra={"resealed_runs": report.runs, "resealed_bodies": report.bodies},
    )
    return report
