"""The Azure DevOps kinds a mapping may name, with each kind's selector fields: data only.

One row per kind of Ocean's Azure DevOps integration (0.12.2, ``azure_devops/misc.py``'s ``Kind``
and the selector models of its ``integration.py``), so a mapping written for Ocean validates here
unchanged, and a kind or selector field Ocean does not know is refused with the list of those it
does. :mod:`kiosk.ingest.mapping` builds its per-kind selector models from this table; the resync
engine reads the Azure DevOps calls, paging and enrichment fields recorded beside them.

Every selector has ``query`` (a jq program giving a boolean, see :mod:`kiosk.ingest.mapping`);
the fields below are each kind's own. Their types are what Ocean declares, parsed as leniently as
Ocean's pydantic parses them (``defaultTeam: 'true'`` is the boolean true: Ocean's own default
mapping writes it so). Ocean's project selector class (``defaultTeam``) is also the selector of
thirteen other kinds, so Ocean accepts ``defaultTeam`` on them, where it does nothing; it is
accepted there too, so such a mapping is not refused, and it stays inert.

Calls are written as in the reference (``{org}`` the organisation URL, ``{vsrm}``/``{vssps}``/
``{vsaex}`` the release, identity and entitlement hosts, which are the organisation URL itself off
``dev.azure.com``); ``CT`` is continuation-token paging, ``TS`` ``$top``/``$skip`` paging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Literal

from annotated_types import Ge
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "KINDS",
    "AdvancedSecurityCriteria",
    "CodeCoverage",
    "FilePattern",
    "FolderPattern",
    "KindSpec",
    "RepositoryBranch",
    "SelectorField",
    "known_kinds",
]

_NESTED = ConfigDict(extra="forbid", frozen=True)


class FilePattern(BaseModel):
    """``file`` kind: ``files: {path, repos}`` — a path or glob, or a list of them, in some or all repositories."""

    model_config = _NESTED

    path: str | list[str]
    repos: list[str] | None = None


class RepositoryBranch(BaseModel):
    """``folder`` kind: one repository (by name) and the branch to scan (its default branch when absent)."""

    model_config = _NESTED

    name: str
    branch: str | None = None


class FolderPattern(BaseModel):
    """``folder`` kind: a folder path (``*`` matches within one segment) in the repositories listed."""

    model_config = _NESTED

    path: str
    repos: list[RepositoryBranch] = Field(default_factory=list)


class AdvancedSecurityCriteria(BaseModel):
    """``advanced-security-alert`` kind: ``criteria`` sent as ``criteria.states``/``severity``/``alertType``."""

    model_config = _NESTED

    states: list[Literal["active", "dismissed", "fixed", "autoDismissed"]] | None = None
    severity: list[Literal["low", "medium", "high", "critical", "note", "warning", "error"]] | None = None
    alertType: Literal["dependency", "code", "secret"] | None = None


class CodeCoverage(BaseModel):
    """``test-run`` kind: ``codeCoverage: {flags}`` asks for each run's coverage."""

    model_config = _NESTED

    flags: int | None = None


@dataclass(frozen=True)
class SelectorField:
    """One selector field of a kind: Ocean's camelCase name, its type (a pydantic annotation), its default."""

    name: str
    type: Any
    default: Any
    description: str
    required: bool = False


@dataclass(frozen=True)
class KindSpec:
    """One kind: its selector fields, and the Azure DevOps calls and enrichment the reference gives it."""

    name: str
    selector: tuple[SelectorField, ...]
    calls: tuple[str, ...]
    paging: str
    enrichment: tuple[str, ...] = ()

    def selector_names(self) -> list[str]:
        """Every selector key this kind accepts, ``query`` first."""
        return ["query", *(field.name for field in self.selector)]


_DEFAULT_TEAM = SelectorField(
    "defaultTeam",
    bool,
    False,
    "project: fetch each project again to add its defaultTeam; accepted and inert on the other kinds "
    "sharing Ocean's project selector",
)
_INCLUDED_FILES = SelectorField(
    "includedFiles", list[str], [], "file paths whose content is attached under __includedFiles{path: content}"
)

_KIND_LIST: tuple[KindSpec, ...] = (
    KindSpec(
        "project",
        (_DEFAULT_TEAM,),
        ("GET {org}/_apis/projects?includeCapabilities=true", "defaultTeam: GET {org}/_apis/projects/{id}"),
        "CT",
    ),
    KindSpec(
        "repository",
        (_INCLUDED_FILES,),
        (
            "GET {org}/{projectId}/_apis/git/repositories",
            "includedFiles: GET {org}/_apis/git/repositories/{repoId}/items?path=&versionType=Branch&version=",
        ),
        "none",
        ("__includedFiles",),
    ),
    KindSpec(
        "repository-policy",
        (_DEFAULT_TEAM,),
        ("GET {org}/{projectId}/_apis/git/policy/configurations?repositoryId=&refName=<defaultBranch>",),
        "none",
        ("__repository",),
    ),
    KindSpec(
        "branch",
        (_DEFAULT_TEAM,),
        ("GET {org}/{projectId}/_apis/git/repositories/{repoId}/refs?filter=heads/",),
        "CT",
        ("__repository",),
    ),
    KindSpec(
        "pull-request",
        (
            SelectorField(
                "minTimeInDays", Annotated[int, Ge(1)], 7, "closed pull requests closed within this many days"
            ),
            SelectorField(
                "maxResults", Annotated[int, Ge(1)], 100, "closed pull requests at most, per repository and status"
            ),
        ),
        (
            "GET {org}/{projectId}/_apis/git/repositories/{repoId}/pullrequests?searchCriteria.status=active",
            "GET …/pullrequests?searchCriteria.status=abandoned|completed"
            "&searchCriteria.queryTimeRangeType=closed&searchCriteria.minTime=",
        ),
        "TS",
    ),
    KindSpec(
        "pipeline",
        (SelectorField("includeRepo", bool, False, "add the build definition's repository as __repository"),),
        (
            "GET {org}/{projectId}/_apis/pipelines",
            "includeRepo: GET {org}/{projectId}/_apis/build/definitions/{id}",
        ),
        "CT",
        ("__projectId", "__repository"),
    ),
    KindSpec(
        "pipeline-run",
        (_DEFAULT_TEAM,),
        ("GET {org}/{projectId}/_apis/pipelines", "GET {org}/{projectId}/_apis/pipelines/{id}/runs"),
        "CT",
        ("__project", "__pipeline"),
    ),
    KindSpec(
        "pipeline-stage",
        (_DEFAULT_TEAM,),
        ("GET {org}/{projectId}/_apis/build/builds", "GET {org}/{projectId}/_apis/build/builds/{id}/timeline"),
        "CT",
        ("__project", "__build"),
    ),
    KindSpec(
        "build",
        (
            _DEFAULT_TEAM,
            SelectorField(
                "enrichWithFirstCommit", bool, False, "add the earliest commit the build shipped as __firstCommit"
            ),
        ),
        (
            "GET {org}/{projectId}/_apis/build/builds?queryOrder=queueTimeDescending",
            "enrichWithFirstCommit: GET {org}/{projectId}/_apis/build/builds/{id}/changes",
        ),
        "CT",
        ("__projectId", "__project", "__firstCommit"),
    ),
    KindSpec(
        "environment",
        (_DEFAULT_TEAM,),
        ("GET {org}/{projectId}/_apis/distributedtask/environments",),
        "CT",
    ),
    KindSpec(
        "pipeline-deployment",
        (_DEFAULT_TEAM,),
        ("GET {org}/{projectId}/_apis/distributedtask/environments/{envId}/environmentdeploymentrecords",),
        "CT",
        ("__project",),
    ),
    KindSpec(
        "release",
        (
            SelectorField(
                "expand",
                Literal["environments", "artifacts", "approvals", "manualInterventions", "variables", "tags"] | None,
                None,
                "sent as $expand",
            ),
            SelectorField("statusFilter", Literal["abandoned", "active", "draft", "undefined"] | None, None, ""),
            SelectorField("tagFilter", list[str] | None, None, "sent comma-separated"),
            SelectorField("sourceBranchFilter", str | None, None, "e.g. refs/heads/main"),
            SelectorField("minCreatedTime", str | None, None, "ISO 8601"),
            SelectorField("maxCreatedTime", str | None, None, "ISO 8601"),
        ),
        ("GET {vsrm}/{projectId}/_apis/release/releases",),
        "CT",
    ),
    KindSpec(
        "release-definition",
        (
            SelectorField(
                "expand",
                Literal["environments", "artifacts", "triggers", "variables", "tags", "lastRelease"] | None,
                "environments",
                "sent as $expand",
            ),
            SelectorField("tagFilter", list[str] | None, None, "sent comma-separated"),
        ),
        ("GET {vsrm}/{projectId}/_apis/release/definitions?$expand=environments",),
        "CT",
        ("__project",),
    ),
    KindSpec(
        "release-deployment",
        (_DEFAULT_TEAM,),
        ("GET {vsrm}/{projectId}/_apis/release/deployments",),
        "CT",
    ),
    KindSpec(
        "work-item",
        (
            SelectorField("wiql", str | None, None, "a WIQL WHERE fragment (not a whole query)"),
            SelectorField(
                "expand", Literal["None", "Fields", "Relations", "Links", "All"], "All", "the work items' $expand"
            ),
        ),
        (
            "POST {org}/{projectId}/_apis/wit/wiql?api-version=7.1-preview.2&$top=19999",
            "GET {org}/{projectId}/_apis/wit/workitems?ids=<=200&$expand=&api-version=7.1-preview.3",
        ),
        "WIQL id ranges, then 200-id batches",
        ("__projectId", "__project"),
    ),
    KindSpec(
        "board",
        (_DEFAULT_TEAM,),
        (
            "GET {org}/_apis/projects/{projectId}/teams",
            "GET {org}/{projectId}/{teamId}/_apis/work/boards",
            "GET {org}/{projectId}/{teamId}/_apis/work/boards/{boardId}",
        ),
        "TS",
        ("__project",),
    ),
    KindSpec(
        "column",
        (_DEFAULT_TEAM,),
        ("derived from boards: one item per column and stateMappings entry",),
        "none",
        ("__board", "__stateType", "__stateName"),
    ),
    KindSpec(
        "iteration",
        (_DEFAULT_TEAM,),
        (
            "GET {org}/_apis/projects/{projectId}/teams",
            "GET {org}/{projectId}/{teamId}/_apis/work/teamsettings/iterations?api-version=7.1",
        ),
        "none",
        ("__project", "__team"),
    ),
    KindSpec(
        "area-path",
        (SelectorField("depth", int | None, None, "levels of the area tree fetched in one call"),),
        ("GET {org}/{projectId}/_apis/wit/classificationnodes/Areas?$depth=&api-version=7.1",),
        "none",
        ("__project", "__parentIdentifier", "__normalizedPath"),
    ),
    KindSpec(
        "team",
        (
            SelectorField("includeMembers", bool, False, "add the team's members as __members"),
            SelectorField("includeAreaPaths", bool, False, "add the team's area paths as __areaPaths"),
        ),
        (
            "GET {org}/_apis/teams",
            "includeMembers: GET {org}/_apis/projects/{projectId}/teams/{teamId}/members",
            "includeAreaPaths: GET {org}/{projectId}/{teamId}/_apis/work/teamsettings/teamfieldvalues",
        ),
        "TS",
        ("__members", "__areaPaths"),
    ),
    KindSpec(
        "member",
        (_DEFAULT_TEAM,),
        ("GET {org}/_apis/teams", "GET {org}/_apis/projects/{projectId}/teams/{teamId}/members"),
        "TS",
        ("__teamId",),
    ),
    KindSpec(
        "user",
        (
            SelectorField("source", Literal["graph", "entitlements"], "entitlements", "where users are read from"),
            SelectorField("subjectTypes", list[str] | None, None, "graph only: subject subtypes (aad, msa, ...)"),
            SelectorField("includeGroupMemberships", bool, False, "graph only: add __groups and __projects"),
            SelectorField(
                "includeFields",
                list[Literal["license", "extensions", "projects", "groupRules"]] | None,
                None,
                "entitlements only: sent as select",
            ),
            SelectorField("apiVersion", str | None, None, "entitlements only: the api-version to send"),
        ),
        ("GET {vsaex}/_apis/userentitlements", "source graph: GET {vssps}/_apis/graph/users?api-version=7.1-preview.1"),
        "CT",
        ("__groups", "__projects"),
    ),
    KindSpec("group", (), ("GET {vssps}/_apis/graph/groups",), "CT"),
    KindSpec(
        "group-member",
        (),
        (
            "GET {vssps}/_apis/graph/groups",
            "GET {vssps}/_apis/graph/memberships/{groupDescriptor}?direction=Down",
            "POST {vssps}/_apis/graph/subjectlookup?api-version=7.1-preview.1",
        ),
        "CT",
        ("__group",),
    ),
    KindSpec(
        "test-run",
        (
            SelectorField("includeResults", bool, True, "add each run's results as __testResults"),
            SelectorField("codeCoverage", CodeCoverage | None, None, "add each run's coverage as __codeCoverage"),
        ),
        (
            "GET {org}/{projectId}/_apis/test/runs?includeRunDetails=true&api-version=7.1",
            "GET {org}/{projectId}/_apis/test/runs/{id}/results",
        ),
        "TS",
        ("__testResults", "__codeCoverage"),
    ),
    KindSpec(
        "advanced-security-alert",
        (SelectorField("criteria", AdvancedSecurityCriteria | None, None, "which alerts"),),
        ("GET {advsec}/{projectId}/_apis/alert/repositories/{repoId}/alerts?api-version=7.2-preview.1",),
        "CT",
        ("__repositoryId", "__projectId"),
    ),
    KindSpec(
        "file",
        (
            SelectorField("files", FilePattern, None, "which files, in which repositories", required=True),
            _INCLUDED_FILES,
        ),
        (
            "POST {org}/{projectId}/_apis/git/repositories/{repoId}/itemsbatch?api-version=7.1",
            "GET {org}/_apis/git/repositories/{repoId}/items?path=&versionType=Branch&version=",
        ),
        "none",
        ("__includedFiles",),
    ),
    KindSpec(
        "folder",
        (
            SelectorField("project_name", str | None, None, "only this project's repositories (Ocean's own spelling)"),
            SelectorField("folders", list[FolderPattern], [], "folder paths and the repositories to scan"),
            _INCLUDED_FILES,
        ),
        ("GET {org}/_apis/git/repositories/{repoId}/items?scopePath=&recursionLevel=oneLevel&api-version=7.1",),
        "CT",
        ("__repository", "__branch", "__pattern", "__includedFiles"),
    ),
    KindSpec(
        "wiki",
        (
            SelectorField("wikiType", Literal["projectWiki", "codeWiki"] | None, None, "both when absent"),
            SelectorField("includeContent", bool, False, "fetch each page's markdown"),
            SelectorField("apiVersion", str | None, None, "the api-version for the wiki calls"),
        ),
        (
            "GET {org}/{projectId}/_apis/wiki/wikis",
            "POST {org}/{projectId}/_apis/wiki/wikis/{wikiId}/pagesbatch",
        ),
        "CT",
        ("__wiki", "__project"),
    ),
)

#: Every kind by name, in the reference's order.
KINDS: Mapping[str, KindSpec] = MappingProxyType({kind.name: kind for kind in _KIND_LIST})


def known_kinds() -> list[str]:
    """Every kind's name, in the reference's order (for "unknown kind" messages)."""
    return list(KINDS)
