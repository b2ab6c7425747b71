"""Everything long-running of one kiosk server, started and stopped as one by the app's lifespan.

The app factory (:func:`kiosk.web.app.create_app`) builds a :class:`Background` from what it made:
the receivers' writer and processor, the delivery worker, the live client list
(:class:`kiosk.auth.live.LiveClients`, reloaded every second), the periodic tasks
(:mod:`kiosk.runtime.tasks`) and the integrations' resyncs (:mod:`kiosk.runtime.integrations`).
Nothing starts until :meth:`Background.start`: an app that is built
and never served (a config check, a test) must not leave threads polling a database about to go
away. :meth:`Background.stop` stops them in the one order that is safe (see there) and releases
the jq workers and the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kiosk.core import jq_engine
from kiosk.runtime.periodic import Periodic
from kiosk.store import Database

__all__ = ["Background", "Service"]


class Service(Protocol):
    """A long-running part with its own threads: started once, stopped once."""

    def start(self) -> object: ...

    def stop(self) -> object: ...


class Background:
    """The server's long-running work: services, periodic tasks, and the resources they hold."""

    def __init__(
        self,
        db: Database,
        *,
        receivers: Service,
        delivery: Service,
        live_clients: Service,
        tasks: Sequence[Periodic] = (),
        integrations: Service | None = None,
    ) -> None:
        self.db = db
        self.receivers = receivers
        self.delivery = delivery
        self.live_clients = live_clients
        self.tasks = tuple(tasks)
        self.integrations = integrations

    def start(self) -> None:
        """Start the receivers, the live client list, the delivery worker, each periodic task, then
        the integrations' resyncs (the heaviest work, last)."""
        self.receivers.start()
        self.live_clients.start()
        self.delivery.start()
        for task in self.tasks:
            task.start()
        if self.integrations is not None:
            self.integrations.start()

    def stop(self) -> None:
        """Stop everything, blocking until each part has ended (call it from a worker thread).

        The order matters: the integrations' resyncs first (a cancelled resync hands its job back,
        to run again at the next start; it writes the catalog and runs jq), then the periodic
        tasks; the receivers before the database goes away
        (the writer stores the events already handed to it, the processor finishes its batch);
        the jq engine's workers after everything that evaluates jq has stopped; the database last.
        """
        if self.integrations is not None:
            self.integrations.stop()
        for task in self.tasks:
            task.stop()
        self.receivers.stop()
        self.delivery.stop()
        self.live_clients.stop()
        jq_engine.shutdown()
        self.db.dispose()
