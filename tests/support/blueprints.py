"""Blueprints as the tests and benchmarks declare them: the catalog's input, built from a name, a
title and the few typed properties and single relations a mapping writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["blueprint"]


def blueprint(
    identifier: str,
    title: str,
    properties: Mapping[str, str | Mapping[str, Any]] | None = None,
    relations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A blueprint as the catalog API takes it: ``properties`` name -> JSON type (or a whole property
    schema), ``relations`` name -> target blueprint, each one optional and single — the shape every
    mapping of the tests and benchmarks writes into."""
    declared: dict[str, Any] = {"identifier": identifier, "title": title}
    if properties is not None:
        schemas = {name: {"type": kind} if isinstance(kind, str) else dict(kind) for name, kind in properties.items()}
        declared["schema"] = {"properties": schemas}
    if relations is not None:
        declared["relations"] = {
            name: {"target": target, "required": False, "many": False} for name, target in relations.items()
        }
    return declared
