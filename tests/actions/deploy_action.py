"""The deploy action the run and automation tests start, and the rows they count after it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from kiosk.config.model import AzureDevOpsOrg
from kiosk.config.secrets import SecretRef
from kiosk.store import Database
from kiosk.store.tables import action_runs, deliveries, jobs

#: A DAY-2 action on ``service`` entities with a secret input, sent to the ``contoso`` org.
DEPLOY: dict[str, Any] = {
    "identifier": "deploy",
    "title": "Deploy",
    "trigger": {
        "type": "self-service",
        "operation": "DAY-2",
        "blueprintIdentifier": "service",
        "userInputs": {"properties": {"token": {"type": "string", "format": "secret"}}},
    },
    "invocationMethod": {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "deploy"},
}
#: The org the deploy action's webhook belongs to (its signing secret is never read here).
AZURE_ORGS = {"contoso": AzureDevOpsOrg(signingSecret=SecretRef(env="X"))}


TABLES = (action_runs, deliveries, jobs)


def row_counts(db: Database) -> tuple[int, int, int]:
    """How many runs, deliveries and queue jobs are stored."""
    with db.connect() as conn:
        counted = (conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in TABLES)
        return tuple(counted)  # type: ignore[return-value]
