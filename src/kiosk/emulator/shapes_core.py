"""Azure's JSON for an organisation's core objects: identities, projects, teams, team members.

Pure functions of :mod:`kiosk.emulator.org.model` objects (reference section 3.1). Every ``url``
is one the emulator serves; web pages (``_links.web``) point where Azure's would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kiosk.emulator.org.model import Organisation, Project, Team, User

__all__ = [
    "azure_date",
    "collection_json",
    "identity_ref",
    "links_json",
    "project_json",
    "project_properties",
    "project_reference",
    "team_json",
    "team_member_json",
]


def links_json(**hrefs: str) -> dict[str, Any]:
    """Azure's ``_links``: each name to ``{"href": url}``, in the order given (``self`` first, as Azure)."""
    return {name: {"href": url} for name, url in hrefs.items()}


def azure_date(value: datetime | None) -> str | None:
    """Azure's timestamps: ISO 8601, UTC, seven fractional digits, ``Z``.

    ``isoformat`` rather than ``strftime``: a list of 100 builds formats 600 dates, and ``strftime``
    costs several times more per call.
    """
    if value is None:
        return None
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "0Z"


def identity_ref(org: Organisation, user: User | None) -> dict[str, Any] | None:
    """An ``IdentityRef`` (who created, pushed, requested…)."""
    if user is None:
        return None
    avatar = f"{org.url}/_apis/GraphProfile/MemberAvatars/{user.descriptor}"
    return {
        "displayName": user.display_name,
        "url": f"{org.url}/_apis/Identities/{user.id}",
        "_links": {"avatar": {"href": avatar}},
        "id": user.id,
        "uniqueName": user.principal_name,
        "imageUrl": avatar,
        "descriptor": user.descriptor,
    }


def user_ref(org: Organisation, user_id: str | None) -> dict[str, Any] | None:
    """:func:`identity_ref` of a user id (None when unknown)."""
    return identity_ref(org, org.users.get(user_id)) if user_id else None


def project_url(org: Organisation, project: Project) -> str:
    return f"{org.url}/_apis/projects/{project.id}"


def project_reference(org: Organisation, project: Project) -> dict[str, Any]:
    """A ``TeamProjectReference`` (lists, and the ``project`` of repositories, builds…)."""
    reference: dict[str, Any] = {
        "id": project.id,
        "name": project.name,
        "url": project_url(org, project),
        "state": project.state,
        "revision": project.revision,
        "visibility": project.visibility,
        "lastUpdateTime": azure_date(project.last_update_time),
    }
    if project.description:
        reference["description"] = project.description
    return reference


def team_url(org: Organisation, team: Team) -> str:
    return f"{org.url}/_apis/projects/{team.project_id}/teams/{team.id}"


def project_json(org: Organisation, project: Project, *, capabilities: bool = True) -> dict[str, Any]:
    """A ``TeamProject``: the reference plus default team, capabilities and links."""
    body = project_reference(org, project)
    team = org.teams.get(project.default_team_id or "")
    if team is not None:
        body["defaultTeam"] = {"id": team.id, "name": team.name, "url": team_url(org, team)}
    if capabilities:
        body["capabilities"] = {
            "versioncontrol": {"sourceControlType": "Git", "gitEnabled": "True", "tfvcEnabled": "False"},
            "processTemplate": {
                "templateName": project.process_template,
                "templateTypeId": project.process_template_id,
            },
        }
    body["_links"] = {
        "self": {"href": project_url(org, project)},
        "collection": {"href": f"{org.url}/_apis/projectCollections/{org.id}"},
        "web": {"href": f"{org.url}/{quote(project.name, safe='')}"},
    }
    return body


def project_properties(org: Organisation, project: Project) -> dict[str, str]:
    """A project's properties as ``…/properties`` lists them: Azure's system ones, then the project's own
    (tags are ``Microsoft.TeamFoundation.Project.Tag.<tag>``)."""
    teams = org.project_teams(project.id)
    properties = {
        "System.CurrentProcessTemplateId": project.process_template_id,
        "System.OriginalProcessTemplateId": project.process_template_id,
        "System.ProcessTemplateType": project.process_template_id,
        "System.Process Template": project.process_template,
        "System.SourceControlCapabilityFlags": "2",
        "System.SourceControlGitEnabled": "True",
        "System.SourceControlGitPermissionsInitialized": "True",
        "System.Microsoft.TeamFoundation.Team.Count": str(len(teams)),
    }
    if project.default_team_id:
        properties["System.Microsoft.TeamFoundation.Team.Default"] = project.default_team_id
    properties.update(project.properties)
    return properties


def collection_json(org: Organisation) -> dict[str, Any]:
    """The organisation as a ``TeamProjectCollection``."""
    url = f"{org.url}/_apis/projectCollections/{org.id}"
    return {
        "id": org.id,
        "name": org.name,
        "url": url,
        "state": "Started",
        "_links": {"self": {"href": url}, "web": {"href": f"{org.url}/"}},
    }


def team_json(org: Organisation, team: Team) -> dict[str, Any]:
    """A ``WebApiTeam``."""
    project = org.projects.get(team.project_id)
    return {
        "id": team.id,
        "name": team.name,
        "url": team_url(org, team),
        "description": team.description,
        "identityUrl": f"{org.url}/_apis/Identities/{team.id}",
        "projectName": project.name if project is not None else None,
        "projectId": team.project_id,
    }


def team_member_json(org: Organisation, team: Team, user: User) -> dict[str, Any]:
    """A ``TeamMember``: the identity, and whether it administers the team."""
    member: dict[str, Any] = {"identity": identity_ref(org, user)}
    if user.id in team.admin_ids:
        member["isTeamAdmin"] = True
    return member
