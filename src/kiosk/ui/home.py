"""What the home page shows: the catalog's blueprints with their entity counts, how many
self-service actions there are, and the signed-in person's latest runs. Three bounded queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from kiosk.store.engine import Database
from kiosk.store.tables import action_runs, actions, blueprints, entities

__all__ = ["HomeView", "home_view"]

RECENT_RUNS = 10


@dataclass(frozen=True)
class HomeView:
    blueprints: list[dict[str, Any]]  # identifier, title, count
    action_count: int
    runs: list[dict[str, Any]]  # id, action, status, status_label, created_at


def _is_self_service(definition: dict[str, Any]) -> bool:
    trigger = definition.get("trigger")
    if isinstance(trigger, dict):
        return trigger.get("type") == "self-service"
    return isinstance(trigger, str)  # Port's older form (``trigger: CREATE``) is self-service


def home_view(db: Database, email: str) -> HomeView:
    """The home page's data for the person ``email``."""
    counts = sa.select(entities.c.blueprint, sa.func.count().label("n")).group_by(entities.c.blueprint).subquery()
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(blueprints.c.identifier, blueprints.c.definition, sa.func.coalesce(counts.c.n, 0).label("n"))
            .select_from(blueprints.outerjoin(counts, counts.c.blueprint == blueprints.c.identifier))
            .order_by(blueprints.c.identifier)
        ).all()
        definitions = conn.execute(sa.select(actions.c.definition)).scalars().all()
        runs = conn.execute(
            sa.select(
                action_runs.c.id,
                action_runs.c.action,
                action_runs.c.status,
                action_runs.c.status_label,
                action_runs.c.created_at,
            )
            .where(action_runs.c.created_by == email)
            .order_by(action_runs.c.created_at.desc())
            .limit(RECENT_RUNS)
        ).all()
    return HomeView(
        blueprints=[
            {"identifier": r.identifier, "title": r.definition.get("title") or r.identifier, "count": int(r.n)}
            for r in rows
        ],
        action_count=sum(1 for d in definitions if isinstance(d, dict) and _is_self_service(d)),
        runs=[dict(r._mapping) for r in runs],
    )
