"""Identifier rules shared by blueprints, properties, relations and entities (Port's)."""

from __future__ import annotations

import re

#: Port's entity identifier pattern.
ENTITY_IDENTIFIER = re.compile(r"^[A-Za-z0-9@_.+:\\/=-]+$")
#: Blueprint, property and relation identifiers: also used inside JSON paths and index names.
SCHEMA_IDENTIFIER = re.compile(r"^[A-Za-z0-9@_=-]+$")

MAX_ENTITY_IDENTIFIER = 1000
MAX_SCHEMA_IDENTIFIER = 100


def is_entity_identifier(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ENTITY_IDENTIFIER
        and ENTITY_IDENTIFIER.fullmatch(value) is not None
    )


def is_schema_identifier(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_SCHEMA_IDENTIFIER
        and SCHEMA_IDENTIFIER.fullmatch(value) is not None
    )
