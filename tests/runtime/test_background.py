"""``Background``: what the app's lifespan starts and stops, in the order that is safe."""

from __future__ import annotations

from pathlib import Path

from kiosk.runtime.background import Background
from kiosk.runtime.periodic import Periodic
from kiosk.store import create_database


class Recorded:
    """A long-running part that writes down when it is started and stopped."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_start_and_stop_in_order(tmp_path: Path) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'kiosk.db'}")
    log: list[str] = []
    task = Periodic("t", 3600.0, lambda: bool(log.append("task ran")))
    background = Background(
        db,
        receivers=Recorded("receivers", log),
        delivery=Recorded("delivery", log),
        live_clients=Recorded("live clients", log),
        tasks=[task],
    )
    background.start()
    assert log[:3] == ["start receivers", "start live clients", "start delivery"]
    background.stop()
    assert task.stopping.is_set()
    # The tasks first (stopped above), then the receivers, before the jq engine and the database.
    assert log[-3:] == ["stop receivers", "stop delivery", "stop live clients"]
