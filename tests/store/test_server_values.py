"""Server-wide values: made once, the same for every process, even when they start together."""

from __future__ import annotations

import threading

from kiosk.store import Database
from kiosk.store.server_values import shared_value


def test_concurrent_first_starts_agree_on_one_value(db: Database) -> None:
    made: list[str] = []
    seen: list[str] = []
    barrier = threading.Barrier(8)

    def make() -> str:
        value = f"value-{len(made)}-{threading.get_ident()}"
        made.append(value)
        return value

    def start() -> None:
        barrier.wait()
        seen.append(shared_value(db, "test_key", make))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(seen) == 8 and len(set(seen)) == 1
    assert shared_value(db, "test_key", lambda: "never used") == seen[0]
