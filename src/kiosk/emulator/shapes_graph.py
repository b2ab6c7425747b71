"""Azure's JSON for an organisation's identities: graph subjects, memberships, descriptors, user entitlements.

Pure functions of :mod:`kiosk.emulator.org.model` objects (reference section 3.2). Graph routes live
on Azure's ``vssps`` host and entitlements on ``vsaex``; the emulator serves both at the org's own
URL (as Azure DevOps Server does), so every ``url`` and ``_links`` href here is one it answers,
except the avatar, which Azure serves from the org's main host and the emulator does not render.

Descriptors: a user's is ``aad.…``, a group's ``vssgp.…``, a scope's (a project, the organisation)
``scp.`` + base64url of its GUID, which is how Azure spells a project's scope descriptor. A subject's
storage key is its GUID: a user's identity id (the ``id`` of its IdentityRefs), a group's id, a
scope's project or organisation id.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from kiosk.emulator.org.model import Group, Organisation, Project, User
from kiosk.emulator.shapes_core import azure_date, links_json

__all__ = [
    "LICENSE_IDS",
    "descriptor_result_json",
    "graph_group_json",
    "graph_scope_json",
    "graph_subject_json",
    "graph_user_json",
    "membership_json",
    "membership_state_json",
    "scope_descriptor",
    "scope_storage_key",
    "storage_key_json",
    "subject_kind",
    "user_entitlement_json",
]

_GRAPH: Final = "_apis/Graph"

LICENSE_IDS: Final = {
    "express": "Account-Express",
    "stakeholder": "Account-Stakeholder",
    "advanced": "Account-Advanced",
    "professional": "Account-Professional",
    "earlyAdopter": "Account-EarlyAdopter",
    "none": "Account-None",
}
"""``accountLicenseType`` → the ``licenseId`` a user-entitlement ``$filter`` names it by."""

_PROJECT_GROUP_TYPES: Final = {
    "Contributors": "projectContributor",
    "Readers": "projectReader",
    "Project Administrators": "projectAdministrator",
    "Project Valid Users": "projectValidUsers",
    "Build Administrators": "projectBuildAdministrator",
}


def scope_descriptor(scope_id: str) -> str:
    """The ``scp.`` descriptor of a project or of the organisation (its GUID, base64url, unpadded)."""
    return "scp." + base64.urlsafe_b64encode(scope_id.encode()).decode().rstrip("=")


def scope_storage_key(descriptor: str) -> str | None:
    """The GUID inside a ``scp.`` descriptor; None when ``descriptor`` is not one."""
    kind, _, payload = descriptor.partition(".")
    if kind.lower() != "scp" or not payload:
        return None
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().lower()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def subject_kind(descriptor: str) -> str:
    """A descriptor's subject type, the part before the dot (``aad``, ``vssgp``, ``scp``…), lower-cased."""
    return descriptor.partition(".")[0].lower()


def _subject_links(org: Organisation, descriptor: str, self_url: str) -> dict[str, Any]:
    graph = f"{org.url}/{_GRAPH}"
    return links_json(
        self=self_url,
        memberships=f"{graph}/Memberships/{descriptor}",
        membershipState=f"{graph}/MembershipStates/{descriptor}",
        storageKey=f"{graph}/StorageKeys/{descriptor}",
        avatar=f"{org.url}/_apis/GraphProfile/MemberAvatars/{descriptor}",
    )


def subject_url(org: Organisation, subject: User | Group) -> str:
    kind = "Users" if isinstance(subject, User) else "Groups"
    return f"{org.url}/{_GRAPH}/{kind}/{subject.descriptor}"


def graph_user_json(org: Organisation, user: User) -> dict[str, Any]:
    """A ``GraphUser``."""
    url = subject_url(org, user)
    return {
        "subjectKind": user.subject_kind,
        "metaType": user.meta_type,
        "directoryAlias": None,
        "domain": user.domain,
        "principalName": user.principal_name,
        "mailAddress": user.mail,
        "origin": user.origin,
        "originId": user.origin_id,
        "displayName": user.display_name,
        "_links": _subject_links(org, user.descriptor, url),
        "url": url,
        "descriptor": user.descriptor,
        "isDeletedInOrigin": user.is_deleted_in_origin,
    }


def graph_group_json(org: Organisation, group: Group) -> dict[str, Any]:
    """A ``GraphGroup``: a project's groups carry the project's domain, the organisation's its identity domain."""
    url = subject_url(org, group)
    return {
        "subjectKind": "group",
        "description": group.description,
        "domain": group.domain,
        "principalName": group.principal_name,
        "mailAddress": None,
        "origin": group.origin,
        "originId": group.origin_id,
        "displayName": group.display_name,
        "_links": _subject_links(org, group.descriptor, url),
        "url": url,
        "descriptor": group.descriptor,
        "isCrossProject": group.is_cross_project,
    }


def graph_scope_json(org: Organisation, project: Project | None) -> dict[str, Any]:
    """A ``GraphScope``: a project (``TeamProject``) or, with None, the organisation (``ServiceHost``)."""
    scope_id = project.id if project is not None else org.id
    descriptor = scope_descriptor(scope_id)
    graph = f"{org.url}/{_GRAPH}"
    return {
        "subjectKind": "scope",
        "scopeType": "TeamProject" if project is not None else "ServiceHost",
        "isGlobal": project is None,
        "origin": "vsts",
        "originId": scope_id,
        "displayName": project.name if project is not None else org.name,
        "_links": {"self": {"href": f"{graph}/Descriptors/{scope_id}"}},
        "url": f"{graph}/Descriptors/{scope_id}",
        "descriptor": descriptor,
    }


def graph_subject_json(org: Organisation, subject: User | Group) -> dict[str, Any]:
    return graph_user_json(org, subject) if isinstance(subject, User) else graph_group_json(org, subject)


def membership_json(org: Organisation, member: User | Group, container: Group) -> dict[str, Any]:
    """A ``GraphMembership``: ``member`` directly in ``container``."""
    graph = f"{org.url}/{_GRAPH}"
    return {
        "_links": {
            "self": {"href": f"{graph}/Memberships/{member.descriptor}/{container.descriptor}"},
            "member": {"href": subject_url(org, member)},
            "container": {"href": subject_url(org, container)},
        },
        "containerDescriptor": container.descriptor,
        "memberDescriptor": member.descriptor,
    }


def membership_state_json(org: Organisation, descriptor: str, *, active: bool) -> dict[str, Any]:
    """A ``GraphMembershipState``: whether the subject is active in the organisation."""
    return {
        "_links": {"self": {"href": f"{org.url}/{_GRAPH}/MembershipStates/{descriptor}"}},
        "active": active,
    }


def storage_key_json(org: Organisation, descriptor: str, storage_key: str) -> dict[str, Any]:
    """A ``GraphStorageKeyResult``."""
    graph = f"{org.url}/{_GRAPH}"
    here, there = f"{graph}/StorageKeys/{descriptor}", f"{graph}/Descriptors/{storage_key}"
    return {"value": storage_key, "_links": links_json(self=here, descriptor=there)}


def descriptor_result_json(org: Organisation, storage_key: str, descriptor: str) -> dict[str, Any]:
    """A ``GraphDescriptorResult``."""
    graph = f"{org.url}/{_GRAPH}"
    here, there = f"{graph}/Descriptors/{storage_key}", f"{graph}/StorageKeys/{descriptor}"
    return {"value": descriptor, "_links": links_json(self=here, storageKey=there)}


# --- member entitlements --------------------------------------------------------------------------


def _project_entitlements(org: Organisation, user: User) -> list[dict[str, Any]]:
    """One entry per project where the user is in one of the project's groups (the first such group)."""
    by_project: dict[str, dict[str, Any]] = {}
    for group in org.groups.values():
        if group.project_id is None or user.descriptor not in group.member_descriptors:
            continue
        project = org.projects.get(group.project_id)
        if project is None or project.id in by_project:
            continue
        teams = [
            {"id": team.id, "name": team.name} for team in org.project_teams(project.id) if user.id in team.member_ids
        ]
        by_project[project.id] = {
            "assignmentSource": "unknown",
            "group": {
                "groupType": _PROJECT_GROUP_TYPES.get(group.display_name, "custom"),
                "displayName": group.display_name,
            },
            "projectPermissionInherited": "notSet",
            "projectRef": {"id": project.id, "name": project.name},
            "teamRefs": teams,
        }
    return list(by_project.values())


def _group_assignments(org: Organisation, user: User) -> list[dict[str, Any]]:
    return [
        {"group": graph_group_json(org, group), "id": group.id}
        for group in org.memberships_up(user.descriptor)
        if group.project_id is None
    ]


def user_entitlement_json(org: Organisation, user: User, select: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A ``UserEntitlement``. ``select`` (lower-case: ``projects``, ``extensions``, ``grouprules``, ``all``)
    fills the lists it names; the others stay empty, as Azure leaves what was not selected."""
    level = user.access_level
    every = "all" in select
    return {
        "id": user.id,
        "user": graph_user_json(org, user),
        "accessLevel": {
            "licensingSource": level.licensing_source,
            "accountLicenseType": level.account_license_type,
            "msdnLicenseType": level.msdn_license_type,
            "licenseDisplayName": level.license_display_name,
            "status": level.status,
            "statusMessage": "",
            "assignmentSource": level.assignment_source,
        },
        "lastAccessedDate": azure_date(user.last_accessed_date),
        "dateCreated": azure_date(user.date_created),
        "projectEntitlements": _project_entitlements(org, user) if every or "projects" in select else [],
        "extensions": [],
        "groupAssignments": _group_assignments(org, user) if every or "grouprules" in select else [],
    }
