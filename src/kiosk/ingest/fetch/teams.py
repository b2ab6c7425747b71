"""Fetchers of the kinds team, member, user, group, group-member: who is in the organisation.

Calls, paging and item shapes follow the reference, so Ocean's mappings read the same fields:

- team: every team of the organisation (``GET _apis/teams``, ``$top``/``$skip``), with
  ``includeMembers`` → ``__members`` (the team's members, every page) and ``includeAreaPaths`` →
  ``__areaPaths`` (the team's ``teamfieldvalues``);
- member: each team's members, each with ``__teamId``;
- user: user entitlements by default (``{vsaex}/_apis/userentitlements``, the continuation token in
  the body, ``includeFields`` sent as ``select``, ``apiVersion`` as the api-version, and below 7.0
  the legacy ``top``/``skip`` paging); with ``source: graph`` the Graph users (``subjectTypes``),
  and ``includeGroupMemberships`` → ``__groups`` (the user's direct groups, looked up) and
  ``__projects`` (project names read from those groups' ``[Project]\\Group`` principal names);
- group: the Graph groups;
- group-member: each group's direct members, looked up, each with ``__group``.

Where the reference logs and drops a failed membership or lookup call (a user then shows no
groups, a group no members) the error raises here: a resync must not write a wrong membership and
delete the right one. A descriptor that subject lookup does not know (Azure leaves it out of the
answer) is skipped and counted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

from kiosk.azure.errors import MalformedResponse
from kiosk.azure.paging import SkipPager
from kiosk.ingest.fetch.base import Batch, FetchContext, Item, gather_bounded, merge_batches
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "fetch_group_members",
    "fetch_groups",
    "fetch_members",
    "fetch_teams",
    "fetch_users",
    "is_legacy_entitlements_version",
    "lookup_subjects",
    "memberships",
    "project_of_group",
    "team_members",
]

TEAMS_PAGE: Final = 100
MEMBERS_PAGE: Final = 100
ENTITLEMENTS_LEGACY_PAGE: Final = 100
SUBJECTS_PER_LOOKUP: Final = 500
"""Descriptors per ``subjectlookup`` call, as the reference sends at most."""
TEAMS_API_VERSION: Final = "7.1-preview.3"
"""``_apis/teams`` (every team of the organisation) exists only as a preview route."""
GRAPH_API_VERSION: Final = "7.1-preview.1"
ENTITLEMENTS_API_VERSION: Final = "7.1-preview.3"
SKIPPED_UNKNOWN_SUBJECT: Final = "subject unknown to subjectlookup"
_GROUP_PROJECT: Final = re.compile(r"^\[(?P<project>.+?)\]\\")


def is_legacy_entitlements_version(api_version: str | None) -> bool:
    """Whether the user entitlements api-version is one of the old ones paged by ``top``/``skip``
    with the list under ``value`` (below 7, as the reference decides; an unreadable one counts as old)."""
    if not api_version:
        return False
    major = api_version.strip().split(".", 1)[0]
    return not major.isdigit() or int(major) < 7


def project_of_group(principal_name: str) -> str | None:
    """The project of a project-scoped group's principal name ``[Project]\\Contributors``."""
    match = _GROUP_PROJECT.match(principal_name or "")
    return match.group("project") if match else None


def _batches(values: list[str], size: int) -> Iterable[list[str]]:
    return (values[start : start + size] for start in range(0, len(values), size))


# --------------------------------------------------------------------------------------- teams


async def _all_teams(ctx: FetchContext) -> AsyncIterator[Batch]:
    async for page in ctx.rest.pages_by_skip("_apis/teams", params={"api-version": TEAMS_API_VERSION}, top=TEAMS_PAGE):
        yield page


async def team_members(ctx: FetchContext, team: Item) -> list[Item]:
    """Every member of ``team`` (``$top``/``$skip`` to the end)."""
    members: list[Item] = []
    path = f"_apis/projects/{team['projectId']}/teams/{team['id']}/members"
    async for page in ctx.rest.pages_by_skip(path, top=MEMBERS_PAGE):
        members.extend(page)
    return members


async def _team_area_paths(ctx: FetchContext, team: Item) -> Any:
    return await ctx.rest.get(f"{team['projectId']}/{team['id']}/_apis/work/teamsettings/teamfieldvalues")


async def fetch_teams(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every team of the organisation, enriched as the selector asks."""
    with_members = bool(resource.selector_value("includeMembers"))
    with_areas = bool(resource.selector_value("includeAreaPaths"))
    async for teams in _all_teams(ctx):
        if with_members:
            found = await gather_bounded([functools.partial(team_members, ctx, t) for t in teams], ctx.concurrency)
            for team, members in zip(teams, found, strict=True):
                team["__members"] = members
        if with_areas:
            areas = await gather_bounded([functools.partial(_team_area_paths, ctx, t) for t in teams], ctx.concurrency)
            for team, values in zip(teams, areas, strict=True):
                team["__areaPaths"] = values
        yield [ctx.stamp(team) for team in teams]


async def fetch_members(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every team's members, each with ``__teamId``."""

    async def of_team(team: Item) -> AsyncIterator[Batch]:
        members = await team_members(ctx, team)
        yield [ctx.stamp({**member, "__teamId": team["id"]}) for member in members]

    async for teams in _all_teams(ctx):
        async for batch in merge_batches([functools.partial(of_team, team) for team in teams], ctx.concurrency):
            yield batch


# --------------------------------------------------------------------------------------- graph


async def lookup_subjects(ctx: FetchContext, descriptors: list[str]) -> dict[str, Item]:
    """The Graph subjects of ``descriptors`` by descriptor (at most 500 a call); unknown ones are absent."""
    unique = list(dict.fromkeys(descriptors))

    async def lookup(batch: list[str]) -> dict[str, Item]:
        answer = await ctx.rest.post(
            "_apis/graph/subjectlookup",
            {"lookupKeys": [{"descriptor": descriptor} for descriptor in batch]},
            idempotent=True,
            host="vssps",
            params={"api-version": GRAPH_API_VERSION},
        )
        value = answer.get("value") if isinstance(answer, dict) else None
        if not isinstance(value, dict):
            shown = ctx.rest.urls.url("vssps", "_apis/graph/subjectlookup")
            raise MalformedResponse("POST", shown, "a subject lookup answer without its value dictionary")
        return value

    found: dict[str, Item] = {}
    for part in await gather_bounded(
        [functools.partial(lookup, batch) for batch in _batches(unique, SUBJECTS_PER_LOOKUP)], ctx.concurrency
    ):
        found.update(part)
    return found


async def memberships(ctx: FetchContext, descriptor: str, direction: str) -> list[Item]:
    """Direct memberships of ``descriptor``: its groups (``Up``) or its members (``Down``)."""
    answer = await ctx.rest.get(
        f"_apis/graph/memberships/{descriptor}",
        host="vssps",
        params={"direction": direction, "api-version": GRAPH_API_VERSION},
    )
    value = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(value, list):
        shown = ctx.rest.urls.url("vssps", f"_apis/graph/memberships/{descriptor}")
        raise MalformedResponse("GET", shown, "a memberships answer without its value list")
    return value


async def _with_group_memberships(ctx: FetchContext, users: Batch) -> Batch:
    """``users`` with ``__groups`` (their direct groups' subjects) and ``__projects``."""
    candidates = [user for user in users if user.get("descriptor")]
    found = await gather_bounded(
        [functools.partial(memberships, ctx, str(user["descriptor"]), "Up") for user in candidates], ctx.concurrency
    )
    containers = {
        str(user["descriptor"]): [str(m["containerDescriptor"]) for m in listed if m.get("containerDescriptor")]
        for user, listed in zip(candidates, found, strict=True)
    }
    wanted = [descriptor for listed in containers.values() for descriptor in listed]
    subjects = await lookup_subjects(ctx, wanted) if wanted else {}
    for descriptor in dict.fromkeys(wanted):
        if descriptor not in subjects:
            ctx.skip(SKIPPED_UNKNOWN_SUBJECT, unread=True)
    for user in users:
        groups = [subjects[d] for d in containers.get(str(user.get("descriptor", "")), []) if d in subjects]
        projects = {name for group in groups if (name := project_of_group(str(group.get("principalName", ""))))}
        user["__groups"] = groups
        user["__projects"] = sorted(projects)
    return users


async def fetch_users(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The organisation's users from entitlements (default) or Graph, as the selector's ``source`` says."""
    if resource.selector_value("source") == "graph":
        params = {"api-version": GRAPH_API_VERSION}
        subject_types = resource.selector_value("subjectTypes")
        if subject_types:
            params["subjectTypes"] = ",".join(subject_types)
        with_groups = bool(resource.selector_value("includeGroupMemberships"))
        async for users in ctx.rest.pages_by_header_token("_apis/graph/users", host="vssps", params=params, top=None):
            if with_groups:
                users = await _with_group_memberships(ctx, users)
            yield [ctx.stamp(user) for user in users]
        return
    api_version = resource.selector_value("apiVersion")
    params = {"api-version": api_version or ENTITLEMENTS_API_VERSION}
    fields = resource.selector_value("includeFields")
    if fields:
        params["select"] = ",".join(fields)
    if is_legacy_entitlements_version(api_version):
        pager = SkipPager(params, top=ENTITLEMENTS_LEGACY_PAGE, top_param="top", skip_param="skip")
        pages = ctx.rest.pages(pager, "_apis/userentitlements", host="vsaex")
    else:
        pages = ctx.rest.pages_by_body_token("_apis/userentitlements", host="vsaex", params=params, items_key="items")
    async for users in pages:
        yield [ctx.stamp(user) for user in users]


async def _groups(ctx: FetchContext) -> AsyncIterator[Batch]:
    async for page in ctx.rest.pages_by_header_token(
        "_apis/graph/groups", host="vssps", params={"api-version": GRAPH_API_VERSION}, top=None
    ):
        yield page


async def fetch_groups(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every Graph group of the organisation (all scopes)."""
    async for groups in _groups(ctx):
        yield [ctx.stamp(group) for group in groups]


async def fetch_group_members(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Each group's direct members (no recursion), each the member's subject with ``__group``."""

    async def of_group(group: Item) -> AsyncIterator[Batch]:
        listed = await memberships(ctx, str(group["descriptor"]), "Down")
        descriptors = [str(m["memberDescriptor"]) for m in listed if m.get("memberDescriptor")]
        if not descriptors:
            return
        subjects = await lookup_subjects(ctx, descriptors)
        members: Batch = []
        for descriptor in descriptors:
            subject = subjects.get(descriptor)
            if subject is None:
                ctx.skip(SKIPPED_UNKNOWN_SUBJECT, unread=True)
                continue
            members.append(ctx.stamp({**subject, "__group": group}))
        yield members

    async for groups in _groups(ctx):
        async for batch in merge_batches([functools.partial(of_group, group) for group in groups], ctx.concurrency):
            yield batch
