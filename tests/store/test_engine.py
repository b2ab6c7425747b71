"""SQLite write transactions of one process queue on the engine's own lock, not on SQLite's busy
handler: many writers at once all commit, each in turn, and an error gives the turn back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from kiosk.store import create_database
from kiosk.store.engine import Database, HeldConnection, _writer_lock

COUNTER = sa.Table("counter", sa.MetaData(), sa.Column("n", sa.Integer, nullable=False))


@pytest.fixture
def sqlite(tmp_path: Path) -> Database:
    db = create_database(f"sqlite:///{tmp_path / 'writers.db'}")
    COUNTER.metadata.create_all(db.engine)
    with db.begin() as conn:
        conn.execute(COUNTER.insert().values(n=0))
    return db


def test_writers_of_one_process_take_turns_and_all_commit(sqlite: Database) -> None:
    inside = 0
    most_inside = 0
    guard = threading.Lock()

    def write(times: int) -> None:
        nonlocal inside, most_inside
        for _ in range(times):
            with sqlite.begin() as conn:
                with guard:
                    inside += 1
                    most_inside = max(most_inside, inside)
                current = conn.execute(sa.select(COUNTER.c.n)).scalar_one()
                conn.execute(COUNTER.update().values(n=current + 1))  # a lost update if two overlapped
                with guard:
                    inside -= 1

    held = HeldConnection(sqlite, "test writer")

    def write_held(times: int) -> None:
        for _ in range(times):
            with held.transaction() as conn:
                conn.execute(COUNTER.update().values(n=COUNTER.c.n + 1))

    threads = [threading.Thread(target=write, args=(25,)) for _ in range(8)]
    threads.append(threading.Thread(target=write_held, args=(25,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    held.close()
    with sqlite.connect() as conn:
        assert conn.execute(sa.select(COUNTER.c.n)).scalar_one() == 9 * 25
    assert most_inside == 1
    assert not _writer_lock(sqlite.engine).locked()


def test_a_failed_write_gives_the_turn_back(sqlite: Database) -> None:
    with pytest.raises(RuntimeError), sqlite.begin() as conn:
        conn.execute(COUNTER.update().values(n=5))
        raise RuntimeError("the caller fails")
    assert not _writer_lock(sqlite.engine).locked()
    with sqlite.begin() as conn:  # would wait if the turn were still taken
        conn.execute(COUNTER.update().values(n=COUNTER.c.n + 1))
    with sqlite.connect() as conn:
        assert conn.execute(sa.select(COUNTER.c.n)).scalar_one() == 1  # the failed one rolled back
    with sqlite.connect() as conn:  # a read takes no turn
        conn.execute(sa.select(COUNTER.c.n)).scalar_one()
        assert not _writer_lock(sqlite.engine).locked()
