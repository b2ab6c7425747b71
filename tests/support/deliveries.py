"""Webhook deliveries put straight into the outbox, for the tests (and benchmarks) of what the
delivery worker does with them: one place that knows :func:`~kiosk.delivery.outbox.create_delivery`'s
arguments and picks the usual ones."""

from __future__ import annotations

from sqlalchemy import Connection

from kiosk.delivery.outbox import BodySealer, OutboundRequest, Signing, create_delivery


def new_delivery(
    conn: Connection,
    url: str,
    *,
    body: bytes = b'{"hello":"world"}',
    signing: Signing | None = None,
    headers: dict[str, str] | None = None,
    run_id: str | None = "r_1",
    method: str = "POST",
    seal: BodySealer | None = None,
) -> str:
    """A delivery of an action's webhook to ``url`` (JSON unless ``headers`` say otherwise), created
    in the caller's transaction; its id."""
    request = OutboundRequest(
        method=method,
        url=url,
        headers={"Content-Type": "application/json"} if headers is None else headers,
        body=body,
        signing=signing,
    )
    return create_delivery(conn, request, source="action", run_id=run_id, seal=seal)
