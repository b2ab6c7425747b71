"""Run report tokens: the credential a run's own pipeline reports back with, good for that run only.

Reporting on a run (``PATCH /v1/actions/runs/{id}``, ``POST /v1/actions/runs/{id}/logs``) is for
admins and for the run's pipeline. A pipeline holds no API client: it gets a **report token** in the
payload kiosk sends it (``context.reportToken``, ``.run.reportToken`` in body templates) and
presents it as ``Authorization: Bearer krt_…``.

A token is ``krt_<run id>.<base64url(HMAC-SHA256(report key, run id))>``: stateless (nothing is
stored, so nothing in the database can be read back as a token), scoped to the one run it names
(the run id is inside, so a token shown for another run is told apart from a forged one: 403, not
401), and checked in constant time. It is not an API token: every other route refuses it (401).

The token never rests in the database: the run's body is rendered and stored with
:data:`PLACEHOLDER` where the token goes, and the delivery worker puts the run's token in its place
only in memory, just before it signs and sends the request (:meth:`ReportTokens.fill`). So a stored
delivery body, the deliveries API and the CLI show ``krt_****``; the signature covers the bytes the
pipeline actually receives; and the token is masked in whatever the receiver answers.

The key is derived from the server's master key (:mod:`kiosk.auth.keys`, kept outside the
database) under its own label (:meth:`ReportTokens.from_keyring`); after a rotation, tokens made
with a retired master key are still accepted, so runs under way can finish their reports.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kiosk.errors import Forbidden, Unauthorized

if TYPE_CHECKING:  # only the type: the payload builders import this module for PLACEHOLDER alone
    from kiosk.auth.keys import KeyRing

__all__ = ["KEY_LABEL", "PLACEHOLDER", "PREFIX", "ReportTokens", "is_report_token"]

#: How a report token starts: what tells it apart from an API token in an ``Authorization`` header.
PREFIX = "krt_"
#: What stored bodies hold where the run's report token goes; replaced at send time. JSON-safe
#: (no character orjson escapes), so it appears byte for byte in a minified body.
PLACEHOLDER = "krt_****"
#: The HKDF label of the report key: no other use of the master key shares it.
KEY_LABEL = b"kiosk run report tokens"
#: Longest header value taken for a report token (a real one is ~75 characters).
MAX_TOKEN_LENGTH = 200
_MAC_CONTEXT = b"kiosk-run-report\x00"


def is_report_token(token: str) -> bool:
    """Is this bearer credential a report token (by its prefix)?"""
    return token.startswith(PREFIX)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _mac(key: bytes, run_id: str) -> str:
    return _b64(hmac.new(key, _MAC_CONTEXT + run_id.encode(), hashlib.sha256).digest())


class ReportTokens:
    """Mints and checks the report tokens of one server (every process with the same key agrees).

    ``key`` mints and checks; ``retired`` keys (after a rotation of the key material) still check,
    so a pipeline already running with a token of the old key can finish its report.
    """

    def __init__(self, key: bytes, *retired: bytes) -> None:
        self._key = key
        self._keys = (key, *retired)

    @classmethod
    def from_keyring(cls, ring: KeyRing) -> ReportTokens:
        """The server's: keys derived from every master key under :data:`KEY_LABEL`, current first."""
        current, *retired = ring.derive_all(KEY_LABEL)
        return cls(current, *retired)

    def __repr__(self) -> str:
        return "ReportTokens(***)"

    def token_for(self, run_id: str) -> str:
        """The report token of run ``run_id``."""
        return f"{PREFIX}{run_id}.{_mac(self._key, run_id)}"

    def check(self, token: str, run_id: str) -> None:
        """Accept ``token`` for reports on run ``run_id``, or raise.

        :class:`Unauthorized` (401) for a token this server did not mint; :class:`Forbidden` (403)
        for a genuine token of another run.
        """
        named, _, mac = token[len(PREFIX) :].rpartition(".")
        if not is_report_token(token) or len(token) > MAX_TOKEN_LENGTH or not named or not mac:
            raise Unauthorized("the run report token is malformed", code="invalid_report_token")
        if not any(hmac.compare_digest(mac.encode(), _mac(key, named).encode()) for key in self._keys):
            raise Unauthorized("the run report token is not valid", code="invalid_report_token")
        if named != run_id:
            raise Forbidden(
                f"this report token is for run {named!r}, not {run_id!r}: a pipeline reports only on its own run",
                code="report_token_for_another_run",
                details={"run": run_id},
            )

    def fill(self, run_id: str, body: bytes, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str], str | None]:
        """``body`` and ``headers`` with :data:`PLACEHOLDER` replaced by run ``run_id``'s token, and
        that token (None when neither held the placeholder, so nothing is to be masked)."""
        placeholder = PLACEHOLDER.encode()
        in_headers = any(PLACEHOLDER in value for value in headers.values())
        if placeholder not in body and not in_headers:
            return body, dict(headers), None
        token = self.token_for(run_id)
        filled = {name: value.replace(PLACEHOLDER, token) for name, value in headers.items()}
        return body.replace(placeholder, token.encode()), filled, token
