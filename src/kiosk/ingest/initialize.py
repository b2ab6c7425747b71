"""``initializePortResources``: the reference's default blueprints, created on first start.

Ocean's rule, kept: if any of the default blueprints already exists, nothing is created (the
user has their own model, or an earlier start made it). Creation runs in two passes as Port's
needs it: every blueprint bare first (schema only), then each in full (relations and mirror
properties), so a relation's target always exists when the relation is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiosk.catalog.service import Catalog
from kiosk.ingest.defaults import default_blueprints

__all__ = ["InitializeOutcome", "initialize_defaults"]

_LINKED = ("relations", "mirrorProperties", "calculationProperties", "aggregationProperties")


@dataclass(frozen=True)
class InitializeOutcome:
    """What :func:`initialize_defaults` did: the blueprints it created, or which existing one stopped it."""

    created: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()


def initialize_defaults(catalog: Catalog, *, actor: str) -> InitializeOutcome:
    """Create Ocean's default Azure DevOps blueprints unless one of them exists already."""
    blueprints = default_blueprints()
    names = [str(blueprint["identifier"]) for blueprint in blueprints]
    known = {str(blueprint["identifier"]) for blueprint in catalog.list_blueprints()}
    existing = tuple(name for name in names if name in known)
    if existing:
        return InitializeOutcome(existing=existing)
    for blueprint in blueprints:
        catalog.create_blueprint(_bare(blueprint), actor=actor)
    for blueprint in blueprints:
        if any(blueprint.get(key) for key in _LINKED):
            catalog.replace_blueprint(str(blueprint["identifier"]), blueprint, actor=actor)
    return InitializeOutcome(created=tuple(names))


def _bare(blueprint: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in blueprint.items() if key not in _LINKED}
