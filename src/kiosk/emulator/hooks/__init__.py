"""Service hooks, as Azure DevOps runs them: subscriptions, matching, envelopes, delivery.

- :mod:`.catalogue`: the publishers (``tfs``, ``pipelines``, ``rm``), their event types and the
  filters each takes, the ``webHooks`` consumer;
- :mod:`.subscriptions`: validation as Azure does it, the stored subscription and its JSON;
- :mod:`.matching`: a subscription's filters against an event;
- :mod:`.envelopes`: the JSON a subscription receives, trimmed as Azure trims it;
- :mod:`.delivery`: the POSTs, Azure's retries and probation, the record of every attempt;
- :mod:`.notifications`: Azure's per-subscription notification records;
- :mod:`.run_events`: the events of the runs the emulator executes;
- :mod:`.service`: :class:`ServiceHooks`, all of it behind the emulator's event sink.

Org changes reach the hooks as :class:`~kiosk.emulator.org.events.OrgEvent` through
``Emulator.publish``; the hooks never build resources, the publishers never see subscriptions.
"""

from kiosk.emulator.hooks.run_events import RunEvents
from kiosk.emulator.hooks.service import ServiceHooks
from kiosk.emulator.hooks.settings import HooksSettings

__all__ = ["HooksSettings", "RunEvents", "ServiceHooks"]
