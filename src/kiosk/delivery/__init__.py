"""Outbound webhooks, delivered durably: at least once, retried on a schedule, every attempt recorded.

    outbox    create_delivery / list_deliveries / get_delivery / redeliver: the ``deliveries`` table
    worker    DeliveryWorker: claims delivery jobs, sends them, records each attempt
    http1     a keep-alive HTTP/1.1 client over http.client (pinned egress, timeouts, capped answers)
    sender    one attempt -> Attempt (signing, error texts), and the httpx client for other calls
    schedule  pure: delivered, retry when, or dead
    egress    which addresses may be reached; resolve once and connect to the checked address
    config    the ``delivery`` and ``egress`` sections of kiosk.yaml

Errors: a target the egress policy refuses raises :class:`~kiosk.delivery.egress.EgressRefused`
inside the sender, which records it as a permanent failure (the delivery goes dead, never a crash).
"""

# kiosk.config first, whatever imported us: kiosk.config's model embeds this package's config
# models, and kiosk.delivery.config needs kiosk.config.secrets. Importing the whole of kiosk.config
# here, before kiosk.delivery.config, lets that cycle resolve in either import order.
import kiosk.config  # noqa: F401  (isort: keep first)
