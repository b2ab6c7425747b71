"""Graph routes (reference 3.2; Azure's ``vssps`` host, served at the org's URL): users, groups, memberships,
subject lookup and query, descriptors and storage keys.

Users and groups are paged by continuation token in the ``X-MS-ContinuationToken`` header, 500 a
page as Azure pages them (Microsoft's client returns the token with the page). ``subjectTypes``
keeps the subjects whose descriptor starts with one of the listed types (``aad``, ``msa``,
``svc``; ``vssgp``, ``aadgp``); ``scopeDescriptor`` (a project's ``scp.`` descriptor, from
``graph/descriptors/{projectId}``) narrows users to the project's members and groups to the
project's groups; the organisation's own scope descriptor narrows groups to the collection's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from starlette.responses import Response

from kiosk.emulator.bodies import read_json
from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import Group, Organisation, Project, User
from kiosk.emulator.routes.common import ApiVersion, DeclaredResponses, Token, continuation_page, from_query, wrapped
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_graph import (
    descriptor_result_json,
    graph_group_json,
    graph_scope_json,
    graph_subject_json,
    graph_user_json,
    membership_json,
    membership_state_json,
    scope_descriptor,
    scope_storage_key,
    storage_key_json,
    subject_kind,
)
from kiosk.web.responses import FastJSONResponse

__all__ = ["GRAPH_PAGE", "add_graph_routes"]

GRAPH_PAGE: Final = 500
"""Subjects per page of ``graph/users`` and ``graph/groups``, as Azure pages them."""
_MAX_LOOKUP_BODY: Final = 1024 * 1024
_MAX_LOOKUP_KEYS: Final = 1000
_QUERY_LIMIT: Final = 100
"""Subjects a ``subjectquery`` answers at most, as Azure's does."""
_Subject = TypeVar("_Subject", User, Group)

SubjectTypes = Annotated[str | None, Query(alias="subjectTypes", max_length=200)]
_SCOPE_DESCRIPTOR: Final = re.compile(r"scp\.[A-Za-z0-9_-]+={0,2}")
ScopeDescriptor = Annotated[
    str | None, Query(alias="scopeDescriptor", max_length=200, pattern=f"^{_SCOPE_DESCRIPTOR.pattern}$")
]
_QUERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["query"],
    "properties": {
        "query": {"type": "string", "minLength": 1},
        "subjectKind": {"type": "array", "items": {"type": "string"}},
        "scopeDescriptor": {"type": "string", "pattern": f"^{_SCOPE_DESCRIPTOR.pattern}$"},
    },
}
_LOOKUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["lookupKeys"],
    "properties": {
        "lookupKeys": {
            "type": "array",
            "items": {"type": "object", "properties": {"descriptor": {"type": "string"}}},
        }
    },
}


def _not_found(what: str, key: str) -> AzureError:
    return AzureError(404, "GraphSubjectNotFoundException", f"The {what} {key[:200]} could not be found.")


def _subject_types(value: str | None) -> frozenset[str] | None:
    if value is None or not value.strip():
        return None
    return frozenset(part.strip().lower() for part in value.split(",") if part.strip())


def _scope(org: Organisation, descriptor: str | None) -> Project | str | None:
    """The project a ``scopeDescriptor`` names, ``"org"`` for the organisation's own, None when not given."""
    if descriptor is None or not descriptor.strip():
        return None
    key = scope_storage_key(descriptor.strip())
    if key is not None and key == org.id:
        return "org"
    project = org.projects.get(key) if key is not None else None
    if project is None:
        raise _not_found("scope", descriptor)
    return project


def _project_member_descriptors(org: Organisation, project: Project) -> set[str]:
    """Descriptors of everything inside the project's groups, through nested groups."""
    found: set[str] = set()
    frontier = [g for g in org.groups.values() if g.project_id == project.id]
    while frontier:
        group = frontier.pop()
        for descriptor in group.member_descriptors:
            if descriptor in found:
                continue
            found.add(descriptor)
            inner = org.subject(descriptor)
            if isinstance(inner, Group):
                frontier.append(inner)
    return found


def _user(org: Organisation, descriptor: str) -> User:
    subject = org.subject(descriptor)
    if not isinstance(subject, User):
        raise _not_found("user", descriptor)
    return subject


def _group(org: Organisation, descriptor: str) -> Group:
    subject = org.subject(descriptor)
    if not isinstance(subject, Group):
        raise _not_found("group", descriptor)
    return subject


def _memberships(org: Organisation, subject: User | Group, direction: str, depth: int) -> list[dict[str, Any]]:
    """Memberships ``depth`` edges away from ``subject``: the groups containing it (up) or its members (down)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    frontier: list[User | Group] = [subject]
    for _ in range(depth):
        following: list[User | Group] = []
        for current in frontier:
            if direction == "up":
                pairs = [(current, container) for container in org.memberships_up(current.descriptor)]
            elif isinstance(current, Group):
                members = (org.subject(d) for d in current.member_descriptors)
                pairs = [(member, current) for member in members if member is not None]
            else:
                pairs = []
            for member, container in pairs:
                key = (member.descriptor, container.descriptor)
                if key in seen:
                    continue
                seen.add(key)
                out.append(membership_json(org, member, container))
                following.append(container if direction == "up" else member)
        frontier = following
    return out


def _users_in(org: Organisation, scope: Project | str | None) -> list[User]:
    """The users a scope (:func:`_scope`) holds: a project's members, else every user."""
    members = _project_member_descriptors(org, scope) if isinstance(scope, Project) else None
    return [user for user in org.users.values() if members is None or user.descriptor in members]


def _groups_in(org: Organisation, scope: Project | str | None) -> list[Group]:
    """The groups a scope (:func:`_scope`) holds: the org's own (``"org"``), a project's, or every group."""
    return [
        group
        for group in org.groups.values()
        if scope is None
        or (scope == "org" and group.project_id is None)
        or (isinstance(scope, Project) and group.project_id == scope.id)
    ]


def _storage_key(org: Organisation, descriptor: str) -> str:
    subject = org.subject(descriptor)
    if subject is not None:
        return subject.id
    key = scope_storage_key(descriptor)
    if key is not None and (key == org.id or key in org.projects):
        return key
    raise _not_found("subject descriptor", descriptor)


@dataclass(frozen=True, slots=True)
class SubjectsQuery:
    """Which users or groups: by ``subjectTypes`` and ``scopeDescriptor``, a page by token."""

    subject_types: SubjectTypes = None
    scope: ScopeDescriptor = None
    token: Token = None


SubjectsParams = Annotated[SubjectsQuery, Depends(from_query(SubjectsQuery))]


@dataclass(frozen=True, slots=True)
class MembershipsQuery:
    """Which way memberships are followed from a subject (``direction``), and how far (``depth``)."""

    direction: Annotated[str | None, Query(max_length=20)] = None
    depth: Annotated[int, Query(ge=1, le=20)] = 1


MembershipsParams = Annotated[MembershipsQuery, Depends(from_query(MembershipsQuery))]


def _subjects_page(
    org: Organisation,
    query: SubjectsQuery,
    subjects_in: Callable[[Organisation, Project | str | None], list[_Subject]],
    to_json: Callable[[Organisation, _Subject], dict[str, Any]],
) -> Response:
    """One page of ``graph/users`` or ``graph/groups``: the scope's subjects of the asked types, by token.

    Users and groups are listed, filtered and paged the same way; only which subjects a scope holds
    and how one is written differ, so the two routes pass those in.
    """
    kinds = _subject_types(query.subject_types)
    found = _scope(org, query.scope)
    listed = [s for s in subjects_in(org, found) if kinds is None or subject_kind(s.descriptor) in kinds]
    page, next_token = continuation_page(listed, None, query.token, default=GRAPH_PAGE)
    return wrapped([to_json(org, s) for s in page], token=next_token)


def add_graph_routes(app: FastAPI, emulator: Emulator, responses: DeclaredResponses, write: DeclaredResponses) -> None:
    """Add the graph routes over each org's users and groups."""

    @app.get("/{org}/_apis/graph/users", responses=responses)
    async def users(org: str, query: SubjectsParams, api_version: ApiVersion) -> Response:
        """``GraphUser`` list, 500 a page, the next page's token in ``X-MS-ContinuationToken``."""
        return _subjects_page(emulator.organisation(org), query, _users_in, graph_user_json)

    @app.get("/{org}/_apis/graph/users/{descriptor}", responses=responses)
    async def user(org: str, descriptor: str, api_version: ApiVersion) -> Response:
        data = emulator.organisation(org)
        return FastJSONResponse(graph_user_json(data, _user(data, descriptor)))

    @app.get("/{org}/_apis/graph/groups", responses=responses)
    async def groups(org: str, query: SubjectsParams, api_version: ApiVersion) -> Response:
        """``GraphGroup`` list (every scope's, or one scope's), paged like users."""
        return _subjects_page(emulator.organisation(org), query, _groups_in, graph_group_json)

    @app.get("/{org}/_apis/graph/groups/{descriptor}", responses=responses)
    async def group(org: str, descriptor: str, api_version: ApiVersion) -> Response:
        data = emulator.organisation(org)
        return FastJSONResponse(graph_group_json(data, _group(data, descriptor)))

    @app.get("/{org}/_apis/graph/memberships/{descriptor}", responses=responses)
    async def memberships(org: str, descriptor: str, query: MembershipsParams, api_version: ApiVersion) -> Response:
        """Direct memberships (``depth`` 1): the groups ``descriptor`` is in (``up``, the default) or its members."""
        data = emulator.organisation(org)
        subject = data.subject(descriptor)
        if subject is None:
            raise _not_found("subject descriptor", descriptor)
        way = (query.direction or "up").lower()
        if way not in ("up", "down"):
            raise AzureError(400, "ArgumentException", f"direction {query.direction!r}: use up or down")
        return wrapped(_memberships(data, subject, way, query.depth))

    def _membership(org: str, member: str, container: str) -> tuple[Organisation, User | Group, Group]:
        data = emulator.organisation(org)
        subject = data.subject(member)
        group_found = data.subject(container)
        if subject is None or not isinstance(group_found, Group) or member not in group_found.member_descriptors:
            raise AzureError(
                404,
                "GraphMembershipNotFoundException",
                f"The membership of {member[:200]} in {container[:200]} could not be found.",
            )
        return data, subject, group_found

    @app.get("/{org}/_apis/graph/memberships/{member}/{container}", responses=responses)
    async def membership(org: str, member: str, container: str, api_version: ApiVersion) -> Response:
        """One direct membership, or 404 (``check_membership_existence`` sends HEAD here)."""
        return FastJSONResponse(membership_json(*_membership(org, member, container)))

    @app.head("/{org}/_apis/graph/memberships/{member}/{container}", responses=responses)
    async def membership_exists(org: str, member: str, container: str, api_version: ApiVersion) -> Response:
        _membership(org, member, container)
        return Response(status_code=200)

    @app.get("/{org}/_apis/graph/membershipstates/{descriptor}", responses=responses)
    async def membership_state(org: str, descriptor: str, api_version: ApiVersion) -> Response:
        """Whether a subject is active (every user and group the emulator holds is)."""
        data = emulator.organisation(org)
        if data.subject(descriptor) is None:
            raise _not_found("subject descriptor", descriptor)
        return FastJSONResponse(membership_state_json(data, descriptor, active=True))

    @app.post(
        "/{org}/_apis/graph/subjectlookup",
        responses=write,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _LOOKUP_SCHEMA}}}},
    )
    async def subject_lookup(org: str, request: Request, api_version: ApiVersion) -> Response:
        """Subjects by descriptor: ``value`` is a dictionary keyed by descriptor (unknown ones left out)."""
        body = await read_json(request, _MAX_LOOKUP_BODY)
        keys = body.get("lookupKeys") if isinstance(body, dict) else None
        if not isinstance(keys, list) or not all(
            isinstance(k, dict) and isinstance(k.get("descriptor"), str) for k in keys
        ):
            raise AzureError(400, "ArgumentException", "lookupKeys: a list of {descriptor} objects is required")
        if len(keys) > _MAX_LOOKUP_KEYS:
            raise AzureError(400, "ArgumentException", f"lookupKeys: at most {_MAX_LOOKUP_KEYS} descriptors")
        data = emulator.organisation(org)
        value: dict[str, Any] = {}
        for key in keys:
            descriptor = key["descriptor"]
            subject = data.subject(descriptor)
            if subject is not None:
                value[descriptor] = graph_subject_json(data, subject)
                continue
            scope_key = scope_storage_key(descriptor)
            if scope_key == data.id:
                value[descriptor] = graph_scope_json(data, None)
            elif scope_key is not None and scope_key in data.projects:
                value[descriptor] = graph_scope_json(data, data.projects[scope_key])
        return FastJSONResponse({"count": len(value), "value": value})

    @app.post(
        "/{org}/_apis/graph/subjectquery",
        responses=write,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _QUERY_SCHEMA}}}},
    )
    async def subject_query(org: str, request: Request, api_version: ApiVersion) -> Response:
        """Users and groups whose display name, principal name or mail starts with ``query`` (any case), at
        most 100; ``subjectKind`` (``User``, ``Group``) and ``scopeDescriptor`` narrow them as the lists do."""
        body = await read_json(request, _MAX_LOOKUP_BODY)
        if not isinstance(body, dict):
            raise AzureError(400, "ArgumentException", "the body must be a subject query object")
        text, kinds, scope = body.get("query"), body.get("subjectKind"), body.get("scopeDescriptor")
        if not isinstance(text, str) or not text:
            raise AzureError(400, "ArgumentException", "query: a search text is required")
        if "subjectKind" in body and not (isinstance(kinds, list) and all(isinstance(k, str) for k in kinds)):
            raise AzureError(400, "ArgumentException", "subjectKind: a list of User and Group is expected")
        if "scopeDescriptor" in body and not (isinstance(scope, str) and _SCOPE_DESCRIPTOR.fullmatch(scope)):
            raise AzureError(400, "ArgumentException", "scopeDescriptor: a scope descriptor (scp.…) is expected")
        data = emulator.organisation(org)
        found = _scope(data, scope)
        wanted = {k.lower() for k in kinds} if kinds else {"user", "group"}
        prefix = text.casefold()
        subjects: list[User | Group] = []
        if "user" in wanted:
            subjects += _users_in(data, found)
        if "group" in wanted:
            subjects += _groups_in(data, found)
        matching = [
            s
            for s in subjects
            if any(
                name.casefold().startswith(prefix)
                for name in (s.display_name, s.principal_name, s.mail if isinstance(s, User) else "")
                if name
            )
        ]
        return wrapped([graph_subject_json(data, s) for s in matching[:_QUERY_LIMIT]])

    @app.get("/{org}/_apis/graph/descriptors/{storage_key}", responses=responses)
    async def descriptor_of(org: str, storage_key: str, api_version: ApiVersion) -> Response:
        """The descriptor of a storage key: a user's or group's id, or a project's (its ``scp.`` scope descriptor)."""
        data = emulator.organisation(org)
        key = storage_key.lower()
        subject: User | Group | None = data.users.get(key) or data.groups.get(key)
        if subject is not None:
            found = subject.descriptor
        elif key == data.id or key in data.projects:
            found = scope_descriptor(key)
        else:
            raise _not_found("storage key", storage_key)
        return FastJSONResponse(descriptor_result_json(data, key, found))

    @app.get("/{org}/_apis/graph/storagekeys/{descriptor}", responses=responses)
    async def storage_key_of(org: str, descriptor: str, api_version: ApiVersion) -> Response:
        """The storage key (GUID) of a subject or scope descriptor."""
        data = emulator.organisation(org)
        return FastJSONResponse(storage_key_json(data, descriptor, _storage_key(data, descriptor)))
