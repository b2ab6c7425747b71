"""Cost of checking a bearer token, the work every authenticated request does, against its baseline.

Measured in process, no HTTP: the same token checked N times (default 200,000) by

* **baseline** — what kiosk did before live clients: ``verify_token(key, token)`` (an HMAC and a
  JSON parse), with the one key;
* **kiosk** — what ``kiosk.web.auth.current_principal`` does now: ``verify_token`` over the keyring
  (current key first), then ``LiveClients.principal`` (a dict lookup in the per-process snapshot
  of live clients, no database);
* **retired key** — the same for a token signed with a retired key after a rotation (one more HMAC).

    python -m bench.token_check [--n 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kiosk.auth.clients import Principal, create_client
from kiosk.auth.keys import TOKEN_LABEL, KeyRing
from kiosk.auth.live import LiveClients
from kiosk.auth.tokens import issue_token, verify_token
from kiosk.store import create_database, upgrade_to_head


def per_call_us(n: int, call: Callable[[], object]) -> float:
    """The best of five rounds of ``n`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, time.perf_counter() - started)
    return best / n * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    n = parser.parse_args(argv).n
    with tempfile.TemporaryDirectory() as tmp:
        db = create_database(f"sqlite:///{Path(tmp) / 'k.db'}")
        upgrade_to_head(db)
        for _ in range(50):  # a realistic number of clients in the snapshot
            create_client(db, "member")
        client_id, _ = create_client(db, "admin")
        live = LiveClients(db, max_age=3600)  # loaded once: under the server a thread reloads, not the request
        live.reload()

        old, new = b"o" * 32, b"n" * 32
        ring = KeyRing.from_secrets([new, old])
        keys = ring.derive_all(TOKEN_LABEL)
        who = Principal(client_id, "admin")
        baseline_key = keys[0]
        token = issue_token(keys[0], who, 3600)
        retired_token = issue_token(keys[1], who, 3600)

        baseline = per_call_us(n, lambda: verify_token(baseline_key, token))
        kiosk = per_call_us(n, lambda: live.principal(verify_token(keys, token)))
        retired = per_call_us(n, lambda: live.principal(verify_token(keys, retired_token)))
        db.dispose()
    print(f"token check, {n:,} calls, best of 5 (µs per request):")
    print(f"  baseline (HMAC + parse, one key):          {baseline:6.2f}")
    print(f"  kiosk (keyring + live client, no DB):      {kiosk:6.2f}   ({kiosk / baseline:.2f}x baseline)")
    print(f"  kiosk, token of a retired key:             {retired:6.2f}   ({retired / baseline:.2f}x baseline)")


if __name__ == "__main__":
    main()
