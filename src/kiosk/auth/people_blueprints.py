"""Port's system blueprints for people: ``_user`` and ``_team``, and the ``_user`` entity of a person.

Port creates both in every account; users and teams are their entities, the email being a user's
identifier. kiosk creates them at start when missing (an existing definition is left as it is, so
properties and relations a team added survive) and upserts the ``_user`` entity at each sign-in,
which is what lets "Me" filters, approvers and ownership refer to people as Port does.
"""

from __future__ import annotations

from typing import Any

from kiosk.auth.users import User
from kiosk.catalog.service import Catalog
from kiosk.errors import NotFound

__all__ = ["TEAM_BLUEPRINT", "USER_BLUEPRINT", "ensure_people_blueprints", "upsert_user_entity"]

TEAM_BLUEPRINT: dict[str, Any] = {
    "identifier": "_team",
    "title": "Team",
    "icon": "Team",
    "description": "A team of people in the organisation (Port's system blueprint)",
    "schema": {
        "properties": {
            "description": {"title": "Description", "type": "string"},
        },
        "required": [],
    },
    "relations": {},
}

USER_BLUEPRINT: dict[str, Any] = {
    "identifier": "_user",
    "title": "User",
    "icon": "User",
    "description": "A person who uses the portal; the identifier is their email (Port's system blueprint)",
    "schema": {
        "properties": {
            "port_role": {"title": "Port Role", "type": "string", "enum": ["Admin", "Member", "Moderator"]},
            "port_type": {"title": "User Type", "type": "string", "enum": ["Standard", "Service Account"]},
            "status": {"title": "Status", "type": "string", "enum": ["Active", "Invited", "Disabled"]},
            "moderated_blueprints": {"title": "Moderated Blueprints", "type": "array", "items": {"type": "string"}},
        },
        "required": [],
    },
    "relations": {
        "teams": {"title": "Teams", "target": "_team", "required": False, "many": True},
    },
}


def ensure_people_blueprints(catalog: Catalog) -> None:
    """Create ``_team`` then ``_user`` (which relates to it) when they do not exist yet."""
    for blueprint in (TEAM_BLUEPRINT, USER_BLUEPRINT):
        try:
            catalog.get_blueprint(blueprint["identifier"])
        except NotFound:
            catalog.create_blueprint(blueprint, actor="kiosk")


def upsert_user_entity(catalog: Catalog, user: User) -> None:
    """The person's ``_user`` entity, merged so the teams and properties set by others stay."""
    catalog.upsert_entity(
        "_user",
        {
            "identifier": user.email,
            "title": user.display_name,
            "properties": {
                "port_role": "Admin" if user.is_admin else "Member",
                "port_type": "Standard",
                "status": "Active",
            },
        },
        upsert=True,
        merge=True,
        actor=user.email,
    )
