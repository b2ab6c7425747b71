"""What a run's webhook carries, checked and rendered before the transaction that stores the run.

The entity a run acts on and the entities its inputs name must exist (a 422 naming the field
otherwise, and where an entity of that identifier does live); entity inputs reach the body as the
catalog shows those entities; the body is Port's default payload or the action's jq template.
Doing all of it before ``db.begin()`` is what lets a refused run leave nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.actions.inputs import ValidatedInputs
from kiosk.actions.invocation import OutboundRequest, render_request
from kiosk.actions.model import Action
from kiosk.actions.payload import RunContext, default_payload, jq_input
from kiosk.actions.runs.states import invalid
from kiosk.actions.service import Actions
from kiosk.catalog.identifiers import is_entity_identifier
from kiosk.catalog.service import Catalog
from kiosk.errors import NotFound
from kiosk.store.tables import entities as ent_table


def run_entity(conn: Connection, catalog: Catalog, action: Action, given: str | None) -> dict[str, Any] | None:
    """The entity a run acts on: none for CREATE, an existing one of the blueprint otherwise."""
    if action.operation == "CREATE":
        if given is not None:
            raise invalid(
                "entity",
                f"entity: action {action.identifier!r} is a CREATE action; it takes no entity",
                code="entity_not_allowed",
            )
        return None
    if given is None:
        raise invalid(
            "entity",
            f"entity is required: action {action.identifier!r} ({action.operation}) runs on an existing "
            f"entity of blueprint {action.blueprint!r}",
            code="entity_required",
        )
    return input_entity(conn, catalog, action.blueprint, given, "entity")


def input_entity(conn: Connection, catalog: Catalog, blueprint: str, identifier: str, field: str) -> dict[str, Any]:
    """The entity as the catalog renders it, or a 422 naming ``field`` (and where it lives)."""
    if not is_entity_identifier(identifier):
        raise invalid(field, f"{field} must be an entity identifier", code="entity_not_found")
    try:
        return catalog.get_entity(blueprint, identifier, conn=conn)
    except NotFound:
        pass
    elsewhere = list(
        conn.execute(
            sa.select(ent_table.c.blueprint)
            .where(ent_table.c.identifier == identifier)
            .order_by(ent_table.c.blueprint)
            .limit(3)
        ).scalars()
    )
    hint = f" (there is one of blueprint {', '.join(map(repr, elsewhere))})" if elsewhere else ""
    raise invalid(
        field,
        f"{field}: entity {identifier!r} of blueprint {blueprint!r} does not exist{hint}",
        code="entity_not_found",
    )


def expand_entity_inputs(conn: Connection, catalog: Catalog, inputs: ValidatedInputs) -> dict[str, Any]:
    """The inputs as a run's body carries them: entity inputs become the entity documents."""
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for ref in inputs.entity_refs:
        key = (ref.blueprint, ref.identifier)
        if key not in docs:
            docs[key] = input_entity(conn, catalog, ref.blueprint, ref.identifier, f"properties.{ref.input}")
    out = dict(inputs.values)
    for name, value in inputs.values.items():
        refs = [r for r in inputs.entity_refs if r.input == name]
        if not refs:
            continue
        bp = refs[0].blueprint
        if isinstance(value, list):
            out[name] = [docs.get((bp, v), v) if isinstance(v, str) else v for v in value]
        elif isinstance(value, str):
            out[name] = docs[(bp, value)]
    return out


def outbound_request(
    actions: Actions, action: Action, ctx: RunContext, secret_values: Mapping[str, str]
) -> OutboundRequest:
    """Render the body (Port's payload or the action's template) and build the request.

    The body carries secret inputs in clear (the pipeline needs them);
    :func:`~kiosk.actions.runs.store.queue_delivery`
    stores it sealed.
    """
    return render_request(
        action.invocation,
        jq_input(ctx),
        lambda: default_payload(ctx),
        orgs=actions.azure_orgs,
        sign_webhooks=actions.sign_webhooks,
        secrets=secret_values,
    )
