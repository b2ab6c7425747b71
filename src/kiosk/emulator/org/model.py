"""An emulated Azure DevOps organisation's data: plain dataclasses with Azure's ids and links.

The REST layer renders these objects into Azure's JSON shapes; the generator
(:mod:`kiosk.emulator.org.generate`) fills them. Nothing here does IO or knows HTTP.

Conventions, so every reader resolves links the same way:

- Ids are Azure's: GUID strings for projects, teams, users, groups, repositories, environments'
  plans, wikis; increasing integers (per organisation) for work items, builds, pull requests,
  build/release definitions, releases, deployments, policy configurations; pushes count per
  repository, as Azure's do.
- Links between objects are ids (``project_id``, ``repository_id``, ``created_by`` = a
  :class:`User` id), looked up through :class:`Organisation`.
- Work-item identity fields (``System.CreatedBy``, ``System.ChangedBy``, ``System.AssignedTo``) hold
  the :class:`User` object itself, so the REST layer renders an IdentityRef without a lookup.
- Times are timezone-aware UTC datetimes; the REST layer formats them.
- Names compare case-insensitively within their scope (:func:`name_key`), as Azure's do.
- ``Organisation.changes`` counts every mutation, so readers can tell that something changed.

Slotted dataclasses keep 100,000 work items well under the generator's memory budget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

__all__ = [
    "BOARD_STATES",
    "BOARD_TYPES",
    "POLICY_BUILD",
    "POLICY_MINIMUM_REVIEWERS",
    "POLICY_REQUIRED_REVIEWERS",
    "POLICY_WORK_ITEM_LINKING",
    "STATE_REASONS",
    "AccessLevel",
    "Board",
    "BoardColumn",
    "Build",
    "BuildDefinition",
    "ClassificationNode",
    "Commit",
    "CoverageFunction",
    "CoverageModule",
    "Deployment",
    "Environment",
    "EnvironmentDeployment",
    "FieldValue",
    "FileChange",
    "GitRef",
    "GitRepository",
    "Group",
    "HistoryEntry",
    "Organisation",
    "PolicyConfiguration",
    "Project",
    "PullRequest",
    "Push",
    "RefUpdate",
    "Release",
    "ReleaseDefinition",
    "ReleaseEnvironment",
    "RepoFile",
    "Reviewer",
    "SecurityAlert",
    "Team",
    "TestResult",
    "TestRun",
    "TimelineStep",
    "User",
    "Wiki",
    "WikiPage",
    "WorkItem",
    "WorkItemRelation",
    "WorkItemRevision",
    "WorkItemState",
    "WorkItemType",
    "blob_sha1",
    "board_column",
    "build_timeline",
    "name_key",
    "tree_sha1",
]

POLICY_MINIMUM_REVIEWERS: Final = "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd"
POLICY_WORK_ITEM_LINKING: Final = "40e92b44-2fe1-4dd6-b3d8-74a9c21d0c6e"
POLICY_BUILD: Final = "0609b952-1397-4640-95ec-e00a01b2c241"
POLICY_REQUIRED_REVIEWERS: Final = "fd2167ab-b0be-447a-8ec8-39368250530e"
POLICY_DISPLAY_NAMES: Final = {
    POLICY_MINIMUM_REVIEWERS: "Minimum number of reviewers",
    POLICY_WORK_ITEM_LINKING: "Work item linking",
    POLICY_BUILD: "Build",
    POLICY_REQUIRED_REVIEWERS: "Required reviewers",
}
"""Azure's policy type ids and the display names cloud returns (reference file, 3.3)."""


def name_key(name: str) -> str:
    """How Azure compares names (projects, repositories, teams…): case-insensitively."""
    return name.casefold()


def blob_sha1(content: bytes) -> str:
    """Git's object id for a blob with ``content`` (``git hash-object``), as Azure reports objectId."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def tree_sha1(files: Mapping[str, RepoFile]) -> str:
    """A commit's ``treeId``: a SHA-1 over its paths and blob ids, so equal trees have equal ids."""
    joined = "".join(f"{path}{f.object_id}" for path, f in sorted(files.items()))
    return hashlib.sha1(joined.encode(), usedforsecurity=False).hexdigest()


# --- identities -----------------------------------------------------------------------------------


@dataclass(slots=True)
class AccessLevel:
    """A user entitlement's license (``accessLevel`` of a UserEntitlement)."""

    account_license_type: str = "express"
    license_display_name: str = "Basic"
    licensing_source: str = "account"
    msdn_license_type: str = "none"
    status: str = "active"
    assignment_source: str = "unknown"


@dataclass(slots=True, eq=False)
class User:
    """A graph user with its entitlement; ``id`` is the identity GUID used in IdentityRefs."""

    id: str
    descriptor: str
    principal_name: str
    display_name: str
    mail: str
    origin: str
    origin_id: str
    domain: str
    access_level: AccessLevel
    date_created: datetime
    last_accessed_date: datetime
    subject_kind: str = "user"
    meta_type: str = "member"
    is_deleted_in_origin: bool = False


@dataclass(slots=True, eq=False)
class Group:
    """A graph group; ``member_descriptors`` are users' or groups' descriptors (direction "down")."""

    id: str
    descriptor: str
    display_name: str
    principal_name: str
    description: str
    domain: str
    origin: str
    origin_id: str
    project_id: str | None = None
    member_descriptors: list[str] = field(default_factory=list)
    is_cross_project: bool = False


# --- core -----------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Team:
    id: str
    name: str
    project_id: str
    description: str = ""
    member_ids: list[str] = field(default_factory=list)
    admin_ids: set[str] = field(default_factory=set)
    area_path: str = ""
    """The team's default area path (``System.AreaPath`` form: ``Project\\Area``)."""
    iteration_paths: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Project:
    id: str
    name: str
    description: str
    state: str
    visibility: str
    revision: int
    last_update_time: datetime
    default_team_id: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    """Project properties, tags as ``Microsoft.TeamFoundation.Project.Tag.<tag>`` = ``"true"``."""
    process_template: str = "Agile"
    process_template_id: str = "adcc42ab-9882-485e-a3ed-7678f01f66bc"
    configured: bool = False
    """Declared in the emulator config (its pipelines run there), rather than generated."""


# --- git ------------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class RepoFile:
    path: str
    """Absolute in the repository: ``/README.md``."""
    content: bytes
    object_id: str

    @classmethod
    def of(cls, path: str, content: bytes) -> RepoFile:
        return cls(path, content, blob_sha1(content))


@dataclass(slots=True, frozen=True)
class FileChange:
    change_type: str
    """``add``, ``edit``, ``delete`` (Azure's VersionControlChangeType names)."""
    path: str
    object_id: str | None
    original_object_id: str | None = None


@dataclass(slots=True, eq=False)
class Commit:
    """A commit with its whole (small) tree: ``files`` maps path → file, shared between commits."""

    commit_id: str
    tree_id: str
    parents: list[str]
    author_name: str
    author_email: str
    author_date: datetime
    committer_name: str
    committer_email: str
    committer_date: datetime
    comment: str
    files: dict[str, RepoFile]
    changes: list[FileChange]
    push_id: int | None = None

    @classmethod
    def authored(
        cls,
        commit_id: str,
        tree_id: str,
        parents: list[str],
        author: User,
        at: datetime,
        message: str,
        files: dict[str, RepoFile],
        changes: list[FileChange],
    ) -> Commit:
        """A commit its author also committed at the same time: every commit the emulator writes
        (generated or pushed through the mutation API) is one."""
        return cls(
            commit_id=commit_id,
            tree_id=tree_id,
            parents=parents,
            author_name=author.display_name,
            author_email=author.mail,
            author_date=at,
            committer_name=author.display_name,
            committer_email=author.mail,
            committer_date=at,
            comment=message,
            files=files,
            changes=changes,
        )


@dataclass(slots=True, frozen=True)
class RefUpdate:
    name: str
    old_object_id: str
    new_object_id: str


@dataclass(slots=True, eq=False)
class Push:
    push_id: int
    date: datetime
    pushed_by: str
    ref_updates: list[RefUpdate]
    commit_ids: list[str]


@dataclass(slots=True, eq=False)
class GitRef:
    name: str
    """Full ref name: ``refs/heads/main``."""
    object_id: str
    creator_id: str
    is_locked: bool = False


@dataclass(slots=True, eq=False)
class GitRepository:
    id: str
    name: str
    project_id: str
    default_branch: str | None
    size: int
    is_disabled: bool
    is_fork: bool
    remote_url: str
    ssh_url: str
    web_url: str
    parent_repository_id: str | None = None
    is_in_maintenance: bool = False
    refs: dict[str, GitRef] = field(default_factory=dict)
    """By full ref name, in creation order."""
    commits: dict[str, Commit] = field(default_factory=dict)
    """By commit id, oldest first."""
    pushes: list[Push] = field(default_factory=list)

    def head(self, ref_name: str | None = None) -> Commit | None:
        """The commit ``ref_name`` (default: the default branch) points at, if any."""
        ref = self.refs.get(ref_name or self.default_branch or "")
        return self.commits.get(ref.object_id) if ref is not None else None


@dataclass(slots=True, frozen=True)
class Reviewer:
    user_id: str
    vote: int
    """10 approved, 5 approved with suggestions, 0 none, -5 waiting for author, -10 rejected."""
    is_required: bool = False
    has_declined: bool = False
    is_flagged: bool = False


@dataclass(slots=True, eq=False)
class PullRequest:
    id: int
    repository_id: str
    status: str
    """``active``, ``completed`` or ``abandoned``."""
    created_by: str
    creation_date: datetime
    title: str
    description: str
    source_ref_name: str
    target_ref_name: str
    merge_status: str
    is_draft: bool
    merge_id: str
    last_merge_source_commit: str
    last_merge_target_commit: str
    last_merge_commit: str | None = None
    closed_date: datetime | None = None
    closed_by: str | None = None
    reviewers: list[Reviewer] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    work_item_ids: list[int] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class PolicyConfiguration:
    id: int
    project_id: str
    type_id: str
    created_by: str
    created_date: datetime
    settings: dict[str, object]
    """Azure's settings object, ``scope`` list included (``repositoryId``, ``refName``, ``matchKind``)."""
    revision: int = 1
    is_enabled: bool = True
    is_blocking: bool = True
    is_deleted: bool = False

    @property
    def type_display_name(self) -> str:
        return POLICY_DISPLAY_NAMES.get(self.type_id, "Policy")


# --- builds, environments, releases ---------------------------------------------------------------


@dataclass(slots=True, eq=False)
class BuildDefinition:
    id: int
    name: str
    project_id: str
    repository_id: str
    path: str
    """Folder, Azure's backslash form: ``\\`` or ``\\Services``."""
    revision: int
    created_date: datetime
    authored_by: str
    yaml_filename: str = "azure-pipelines.yml"
    queue_status: str = "enabled"
    default_branch: str = "refs/heads/main"


@dataclass(slots=True, frozen=True)
class TimelineStep:
    """One timeline record of a build (Stage, Phase, Job or Task)."""

    id: str
    parent_id: str | None
    type: str
    name: str
    order: int
    state: str
    result: str | None
    start_time: datetime | None
    finish_time: datetime | None


def build_timeline(
    guid: Callable[[], str], start: datetime, finish: datetime | None, result: str | None
) -> list[TimelineStep]:
    """A build's timeline as the emulator lays out every build (generated or queued through the mutation
    API): a stage, a phase, a job and three tasks, completed with ``result`` once ``finish`` is set, in
    progress before. ``guid`` gives the records' ids in that order, so a seeded generator stays reproducible."""
    state = "completed" if finish else "inProgress"
    stage = TimelineStep(guid(), None, "Stage", "Build", 1, state, result, start, finish)
    phase = TimelineStep(guid(), stage.id, "Phase", "Job", 1, state, result, start, finish)
    job = TimelineStep(guid(), phase.id, "Job", "Job", 1, state, result, start, finish)
    tasks = [
        TimelineStep(guid(), job.id, "Task", name, order, state, result if finish else None, start, finish)
        for order, name in enumerate(("Checkout", "Build", "Test"), start=1)
    ]
    return [stage, phase, job, *tasks]


@dataclass(slots=True, eq=False)
class Build:
    id: int
    build_number: str
    status: str
    """``completed``, ``inProgress``, ``notStarted``, ``cancelling``."""
    result: str | None
    """``succeeded``, ``partiallySucceeded``, ``failed``, ``canceled``; None until completed."""
    queue_time: datetime
    start_time: datetime | None
    finish_time: datetime | None
    definition_id: int
    project_id: str
    repository_id: str
    source_branch: str
    source_version: str
    requested_for: str
    requested_by: str
    reason: str = "individualCI"
    queue_id: int = 9
    queue_name: str = "Azure Pipelines"
    tags: list[str] = field(default_factory=list)
    timeline: list[TimelineStep] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class EnvironmentDeployment:
    """An environment deployment record (``environmentdeploymentrecords``)."""

    id: int
    environment_id: int
    plan_id: str
    stage_name: str
    job_name: str
    definition_id: int
    definition_name: str
    owner_id: int
    """The build (run) that deployed."""
    owner_name: str
    result: str
    queue_time: datetime
    start_time: datetime
    finish_time: datetime
    stage_attempt: int = 1
    job_attempt: int = 1


@dataclass(slots=True, eq=False)
class Environment:
    id: int
    name: str
    description: str
    project_id: str
    created_by: str
    created_on: datetime
    last_modified_on: datetime
    deployments: list[EnvironmentDeployment] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class ReleaseEnvironment:
    """A stage of a release definition (``id``/``rank``) or of a release (``status`` set)."""

    id: int
    name: str
    rank: int
    definition_environment_id: int
    status: str = "notStarted"


@dataclass(slots=True, eq=False)
class ReleaseDefinition:
    id: int
    name: str
    project_id: str
    path: str
    revision: int
    description: str
    created_by: str
    created_on: datetime
    modified_on: datetime
    environments: list[ReleaseEnvironment]
    release_name_format: str = "Release-$(rev:r)"
    is_deleted: bool = False
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Release:
    id: int
    name: str
    status: str
    """``active``, ``abandoned`` or ``draft``."""
    definition_id: int
    project_id: str
    created_on: datetime
    modified_on: datetime
    created_by: str
    reason: str
    description: str
    environments: list[ReleaseEnvironment]
    build_id: int | None = None
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Deployment:
    id: int
    release_id: int
    release_definition_id: int
    release_environment_id: int
    definition_environment_id: int
    project_id: str
    attempt: int
    reason: str
    deployment_status: str
    operation_status: str
    requested_by: str
    requested_for: str
    queued_on: datetime
    started_on: datetime
    completed_on: datetime | None
    last_modified_on: datetime


# --- work item tracking ---------------------------------------------------------------------------

FieldValue = str | int | float | bool | datetime | User | None
"""A work item field's value; identity fields hold the :class:`User`."""


@dataclass(slots=True, frozen=True)
class WorkItemRelation:
    rel: str
    """``System.LinkTypes.Hierarchy-Reverse`` (parent), ``…-Forward`` (child), ``ArtifactLink``…"""
    target: int | str
    """A work item id for work-item links; a ``vstfs:///`` URI for artifact links."""
    name: str = ""
    """The ``attributes.name`` Azure shows: ``Parent``, ``Child``, ``Related``, ``Pull Request``."""


@dataclass(slots=True, frozen=True)
class WorkItemRevision:
    """One update: the fields it changed (old, new) and the relations it added.

    Revision 1 (creation) records no fields: :meth:`WorkItem.fields_at` rebuilds them.
    """

    rev: int
    revised_by: User
    revised_date: datetime
    fields: dict[str, tuple[FieldValue, FieldValue]]
    relations_added: tuple[WorkItemRelation, ...] = ()


@dataclass(slots=True, eq=False)
class WorkItemComment:
    """A comment in a work item's discussion (``…/workItems/{id}/comments``); deleted ones stay, flagged."""

    id: int
    """Per work item, from 1, as Azure numbers them."""
    text: str
    created_by: User
    created_date: datetime
    modified_by: User
    modified_date: datetime
    version: int = 1
    is_deleted: bool = False


@dataclass(slots=True, eq=False)
class WorkItem:
    id: int
    rev: int
    project_id: str
    fields: dict[str, FieldValue]
    """Reference names → values: ``System.*``, ``Microsoft.VSTS.*``; ``System.Tags`` is ``"a; b"``."""
    relations: list[WorkItemRelation] = field(default_factory=list)
    revisions: list[WorkItemRevision] = field(default_factory=list)
    comments: list[WorkItemComment] = field(default_factory=list)
    is_deleted: bool = False

    @property
    def work_item_type(self) -> str:
        return str(self.fields["System.WorkItemType"])

    def fields_at(self, rev: int) -> dict[str, FieldValue]:
        """The fields as they were at revision ``rev`` (1 = as created), for ``asOf``, revisions and updates.

        Revisions store only what they changed (old, new), so earlier states are rebuilt by undoing
        later revisions from the current fields; ``System.ChangedDate``/``ChangedBy`` come from the
        revision itself, and closing dates exist only once the item reached that state.
        """
        if not 1 <= rev <= self.rev:
            raise ValueError(f"work item {self.id} has revisions 1 to {self.rev}, not {rev}")
        fields = dict(self.fields)
        for revision in reversed(self.revisions[rev:]):
            for name, (old, _new) in revision.fields.items():
                if old is None:
                    fields.pop(name, None)
                else:
                    fields[name] = old
        if rev < self.rev:
            revision = self.revisions[rev - 1]
            fields["System.ChangedDate"] = revision.revised_date
            fields["System.ChangedBy"] = revision.revised_by
            fields["Microsoft.VSTS.Common.StateChangeDate"] = revision.revised_date
            if fields.get("System.State") != "Closed":
                fields.pop("Microsoft.VSTS.Common.ClosedDate", None)
            if fields.get("System.State") not in ("Resolved", "Closed"):
                fields.pop("Microsoft.VSTS.Common.ResolvedDate", None)
        return fields

    def update_fields(self, rev: int) -> dict[str, tuple[FieldValue, FieldValue]]:
        """What revision ``rev`` changed, as ``workItems/{id}/updates`` lists it: (oldValue, newValue)."""
        after = self.fields_at(rev)
        before: dict[str, FieldValue] = self.fields_at(rev - 1) if rev > 1 else {}
        return {
            name: (before.get(name), value)
            for name, value in after.items()
            if name not in before or before[name] != value
        }

    @property
    def parent_id(self) -> int | None:
        for relation in self.relations:
            if relation.rel == "System.LinkTypes.Hierarchy-Reverse" and isinstance(relation.target, int):
                return relation.target
        return None


STATE_REASONS: Final = {
    "New": "New",
    "Active": "Implementation started",
    "Resolved": "Code complete",
    "Closed": "Acceptance tests pass",
    "Removed": "Removed from the backlog",
}
"""The ``System.Reason`` of a move into each state: the generator's, and the org changes' unless one is given."""

BOARD_TYPES: Final = (("Epics", ("Epic",)), ("Features", ("Feature",)), ("Stories", ("User Story", "Bug")))
"""Each team's boards and the work item types on each (a Task is on none), as generated."""
BOARD_STATES: Final = ("New", "Active", "Resolved", "Closed")
"""A generated board's columns, in order: one per state, named as the state it maps."""


def board_column(work_item_type: str, state: str | None) -> str | None:
    """``System.BoardColumn`` as Azure keeps it on a work item whose type is on a board: the column
    whose state mapping holds the item's state (a generated board names each column after its
    state); None for a type on no board or a state no column maps (``Removed``)."""
    on_board = any(work_item_type in kinds for _, kinds in BOARD_TYPES)
    return state if on_board and state in BOARD_STATES else None


@dataclass(slots=True, frozen=True)
class WorkItemState:
    name: str
    category: str
    """``Proposed``, ``InProgress``, ``Resolved``, ``Completed``, ``Removed``."""
    color: str


@dataclass(slots=True, eq=False)
class WorkItemType:
    name: str
    reference_name: str
    description: str
    color: str
    icon: str
    states: list[WorkItemState]


@dataclass(slots=True, frozen=True)
class BoardColumn:
    id: str
    name: str
    item_limit: int
    state_mappings: dict[str, str]
    column_type: str
    """``incoming``, ``inProgress`` or ``outgoing``."""
    is_split: bool = False
    description: str = ""


@dataclass(slots=True, eq=False)
class Board:
    id: str
    name: str
    team_id: str
    columns: list[BoardColumn]
    rows: list[tuple[str, str | None]] = field(default_factory=lambda: [("00000000-0000-0000-0000-000000000000", None)])
    """(id, name) per swimlane; the default lane has no name."""
    revision: int = 0


@dataclass(slots=True, eq=False)
class ClassificationNode:
    """An area or iteration node; ``path`` is Azure's node form ``\\Project\\Area\\Web``."""

    id: int
    identifier: str
    name: str
    structure_type: str
    """``area`` or ``iteration``."""
    path: str
    children: list[ClassificationNode] = field(default_factory=list)
    start_date: datetime | None = None
    finish_date: datetime | None = None

    def walk(self) -> Iterator[ClassificationNode]:
        yield self
        for child in self.children:
            yield from child.walk()


# --- wikis ----------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class WikiPage:
    id: int
    path: str
    """``/Home`` or ``/Guides/Setup``."""
    order: int
    content: str

    @property
    def git_item_path(self) -> str:
        return (
            "/" + "/".join(quote(part.replace(" ", "-"), safe="") for part in self.path.strip("/").split("/")) + ".md"
        )


@dataclass(slots=True, eq=False)
class Wiki:
    id: str
    name: str
    type: str
    """``projectWiki`` or ``codeWiki``."""
    project_id: str
    repository_id: str
    mapped_path: str = "/"
    pages: list[WikiPage] = field(default_factory=list)


# --- test runs, code coverage, advanced security --------------------------------------------------


@dataclass(slots=True, frozen=True)
class TestResult:
    """One test case's outcome in a run (``TestCaseResult``); ids count from 100000 within their run."""

    __test__ = False  # not a pytest class

    id: int
    test_case_title: str
    automated_test_name: str
    automated_test_storage: str
    outcome: str
    """``Passed``, ``Failed``, ``NotExecuted``…"""
    duration_ms: int
    started_date: datetime
    completed_date: datetime
    priority: int = 2
    error_message: str | None = None


@dataclass(slots=True, eq=False)
class TestRun:
    """A test run published by a build (``TestRun``)."""

    __test__ = False

    id: int
    name: str
    project_id: str
    build_id: int | None
    state: str
    """``Completed``, ``InProgress``, ``Aborted``…"""
    is_automated: bool
    owner_id: str
    started_date: datetime
    completed_date: datetime | None
    results: list[TestResult] = field(default_factory=list)
    revision: int = 1

    def count(self, outcome: str) -> int:
        return sum(1 for result in self.results if result.outcome == outcome)


@dataclass(slots=True, frozen=True)
class CoverageFunction:
    """One function's coverage inside a module (``FunctionCoverage``)."""

    name: str
    namespace: str
    class_name: str
    blocks_covered: int
    blocks_not_covered: int
    lines_covered: int
    lines_not_covered: int
    lines_partially_covered: int


@dataclass(slots=True, frozen=True)
class CoverageModule:
    """One module's coverage of a build (``ModuleCoverage``)."""

    name: str
    signature: str
    block_count: int
    blocks_covered: int
    lines_covered: int
    lines_not_covered: int
    lines_partially_covered: int
    functions: tuple[CoverageFunction, ...] = ()


@dataclass(slots=True, eq=False)
class SecurityAlert:
    """An Advanced Security alert of a repository (``Alert``); ``alertId`` is unique in the organisation."""

    id: int
    repository_id: str
    project_id: str
    alert_type: str
    """``dependency``, ``code`` or ``secret``."""
    severity: str
    state: str
    """``active``, ``dismissed``, ``fixed`` or ``autoDismissed``."""
    title: str
    rule_id: str
    rule_name: str
    tool_name: str
    file_path: str
    line: int
    commit_id: str
    first_seen: datetime
    last_seen: datetime
    fixed: datetime | None = None


# --- history and the container --------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class HistoryEntry:
    """Something renamed or deleted, kept as Azure keeps it (deleted projects, renamed repos…)."""

    change: int
    at: datetime
    kind: str
    """``project``, ``repository``, ``team``, ``workItem``…"""
    action: str
    """``renamed`` or ``deleted``."""
    object_id: str
    old_name: str
    new_name: str | None = None


class Organisation:
    """An organisation's data with lookups by id and case-insensitive name.

    Collections are plain dicts keyed by id (insertion order = creation order). Add objects
    through the ``add_*`` methods so name indexes and the change counter stay consistent.
    """

    def __init__(self, name: str, org_id: str, base_url: str) -> None:
        self.name = name
        self.id = org_id
        self.base_url = base_url.rstrip("/")
        self.changes = 0
        self.projects: dict[str, Project] = {}
        self.teams: dict[str, Team] = {}
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.repositories: dict[str, GitRepository] = {}
        self.pull_requests: dict[int, PullRequest] = {}
        self.policies: dict[int, PolicyConfiguration] = {}
        self.build_definitions: dict[int, BuildDefinition] = {}
        self.builds: dict[int, Build] = {}
        self.environments: dict[int, Environment] = {}
        self.release_definitions: dict[int, ReleaseDefinition] = {}
        self.releases: dict[int, Release] = {}
        self.deployments: dict[int, Deployment] = {}
        self.work_items: dict[int, WorkItem] = {}
        self.work_item_types: dict[str, list[WorkItemType]] = {}
        """By project id."""
        self.boards: dict[str, list[Board]] = {}
        """By team id."""
        self.areas: dict[str, ClassificationNode] = {}
        """Root area node by project id."""
        self.iterations: dict[str, ClassificationNode] = {}
        """Root iteration node by project id."""
        self.wikis: dict[str, Wiki] = {}
        self.test_runs: dict[int, TestRun] = {}
        self.code_coverage: dict[int, list[CoverageModule]] = {}
        """By build id."""
        self.alerts: dict[int, SecurityAlert] = {}
        self.advanced_security: set[str] = set()
        """Ids of the repositories with Advanced Security on (Azure's default is off)."""
        self.history: list[HistoryEntry] = []
        self._project_names: dict[str, str] = {}
        self._repo_names: dict[tuple[str, str], str] = {}
        self._team_names: dict[tuple[str, str], str] = {}
        self._descriptors: dict[str, User | Group] = {}
        self._principals: dict[str, str] = {}
        self._counters: dict[str, int] = {}

    # -- counters --

    def changed(self) -> int:
        """Count one mutation; returns the new change number."""
        self.changes += 1
        return self.changes

    def next_id(self, kind: str) -> int:
        """The next integer id of ``kind`` (``workItem``, ``build``, ``pullRequest``…), from 1."""
        value = self._counters.get(kind, 0) + 1
        self._counters[kind] = value
        return value

    # -- URLs --

    @property
    def url(self) -> str:
        """The organisation's collection URL: ``{base}/{org}``."""
        return f"{self.base_url}/{quote(self.name, safe='')}"

    def repository_urls(self, project_name: str, repo_name: str) -> tuple[str, str, str]:
        """(remoteUrl, sshUrl, webUrl) for a repository, built from the base URL as Azure builds its own."""
        web = f"{self.url}/{quote(project_name, safe='')}/_git/{quote(repo_name, safe='')}"
        host = urlsplit(self.base_url).hostname or "localhost"
        ssh = f"git@{host}:v3/{quote(self.name, safe='')}/{quote(project_name, safe='')}/{quote(repo_name, safe='')}"
        return web, ssh, web

    # -- projects --

    def add_project(self, project: Project) -> Project:
        key = name_key(project.name)
        if key in self._project_names:
            raise ValueError(f"project {project.name!r} exists already in {self.name!r}")
        self.projects[project.id] = project
        self._project_names[key] = project.id
        self.changed()
        return project

    def project(self, id_or_name: str) -> Project | None:
        """A project by GUID or by name (any case); deleted projects are not found."""
        found = self.projects.get(id_or_name) or self.projects.get(id_or_name.lower())
        if found is None:
            project_id = self._project_names.get(name_key(id_or_name))
            found = self.projects.get(project_id) if project_id else None
        return found

    def rename_project(self, project: Project, new_name: str, at: datetime) -> None:
        key = name_key(new_name)
        if key in self._project_names and self._project_names[key] != project.id:
            raise ValueError(f"project {new_name!r} exists already in {self.name!r}")
        del self._project_names[name_key(project.name)]
        self.history.append(HistoryEntry(self.changed(), at, "project", "renamed", project.id, project.name, new_name))
        project.name = new_name
        project.revision += 1
        project.last_update_time = at
        self._project_names[key] = project.id
        for repo in self.repositories.values():
            if repo.project_id == project.id:
                repo.remote_url, repo.ssh_url, repo.web_url = self.repository_urls(new_name, repo.name)

    def delete_project(self, project: Project, at: datetime) -> None:
        """Delete ``project`` and everything in it; the history keeps its id and name."""
        pid = project.id
        del self._project_names[name_key(project.name)]
        del self.projects[pid]
        for repo in self.project_repositories(pid):
            del self._repo_names[(pid, name_key(repo.name))]
            del self.repositories[repo.id]
        for team in self.project_teams(pid):
            del self._team_names[(pid, name_key(team.name))]
            del self.teams[team.id]
            self.boards.pop(team.id, None)
        for group in [g for g in self.groups.values() if g.project_id == pid]:
            del self.groups[group.id]
            del self._descriptors[group.descriptor]
        tables: tuple[dict[Any, Any], ...] = (
            self.pull_requests, self.policies, self.build_definitions, self.builds, self.environments,
            self.release_definitions, self.releases, self.deployments, self.work_items, self.wikis,
            self.test_runs, self.alerts,
        )  # fmt: skip
        for table in tables:
            self._drop(table, pid)
        for per_project in (self.work_item_types, self.areas, self.iterations):
            per_project.pop(pid, None)
        self.history.append(HistoryEntry(self.changed(), at, "project", "deleted", pid, project.name))

    def _drop(self, table: dict[Any, Any], project_id: str) -> None:
        """Remove a project's objects from ``table`` (pull requests go with their repositories)."""
        for key, value in list(table.items()):
            owner = getattr(value, "project_id", None)
            if owner is None and isinstance(value, PullRequest):
                owner = project_id if value.repository_id not in self.repositories else None
            if owner == project_id:
                del table[key]

    # -- teams --

    def add_team(self, team: Team) -> Team:
        key = (team.project_id, name_key(team.name))
        if key in self._team_names:
            raise ValueError(f"team {team.name!r} exists already in its project")
        self.teams[team.id] = team
        self._team_names[key] = team.id
        self.changed()
        return team

    def team(self, project_id: str, id_or_name: str) -> Team | None:
        team = self.teams.get(id_or_name.lower())
        if team is not None and team.project_id == project_id:
            return team
        team_id = self._team_names.get((project_id, name_key(id_or_name)))
        return self.teams.get(team_id) if team_id else None

    def project_teams(self, project_id: str) -> list[Team]:
        return [team for team in self.teams.values() if team.project_id == project_id]

    # -- identities --

    def add_user(self, user: User) -> User:
        self.users[user.id] = user
        self._descriptors[user.descriptor] = user
        self._principals[name_key(user.principal_name)] = user.id
        self.changed()
        return user

    def add_group(self, group: Group) -> Group:
        self.groups[group.id] = group
        self._descriptors[group.descriptor] = group
        self.changed()
        return group

    def user(self, id_or_principal: str) -> User | None:
        """A user by identity GUID or principal name (any case)."""
        user = self.users.get(id_or_principal.lower())
        if user is None:
            user_id = self._principals.get(name_key(id_or_principal))
            user = self.users.get(user_id) if user_id else None
        return user

    def subject(self, descriptor: str) -> User | Group | None:
        return self._descriptors.get(descriptor)

    def memberships_up(self, descriptor: str) -> list[Group]:
        """Groups that directly contain ``descriptor`` (graph Memberships, direction up)."""
        return [group for group in self.groups.values() if descriptor in group.member_descriptors]

    # -- repositories --

    def add_repository(self, repo: GitRepository) -> GitRepository:
        key = (repo.project_id, name_key(repo.name))
        if key in self._repo_names:
            raise ValueError(f"repository {repo.name!r} exists already in its project")
        self.repositories[repo.id] = repo
        self._repo_names[key] = repo.id
        self.changed()
        return repo

    def repository(self, id_or_name: str, project_id: str | None = None) -> GitRepository | None:
        """A repository by GUID (any project, or within ``project_id``) or by name within ``project_id``."""
        repo = self.repositories.get(id_or_name.lower())
        if repo is not None:
            return repo if project_id is None or repo.project_id == project_id else None
        if project_id is None:
            return None
        repo_id = self._repo_names.get((project_id, name_key(id_or_name)))
        return self.repositories.get(repo_id) if repo_id else None

    def project_repositories(self, project_id: str) -> list[GitRepository]:
        return [repo for repo in self.repositories.values() if repo.project_id == project_id]

    def rename_repository(self, repo: GitRepository, new_name: str, at: datetime) -> None:
        key = (repo.project_id, name_key(new_name))
        if key in self._repo_names and self._repo_names[key] != repo.id:
            raise ValueError(f"repository {new_name!r} exists already in its project")
        del self._repo_names[(repo.project_id, name_key(repo.name))]
        self.history.append(HistoryEntry(self.changed(), at, "repository", "renamed", repo.id, repo.name, new_name))
        repo.name = new_name
        self._repo_names[key] = repo.id
        repo.remote_url, repo.ssh_url, repo.web_url = self.repository_urls(
            self.projects[repo.project_id].name, new_name
        )

    def delete_repository(self, repo: GitRepository, at: datetime) -> None:
        del self._repo_names[(repo.project_id, name_key(repo.name))]
        del self.repositories[repo.id]
        self.history.append(HistoryEntry(self.changed(), at, "repository", "deleted", repo.id, repo.name))

    # -- the rest --

    def add_pull_request(self, pull_request: PullRequest) -> PullRequest:
        self.pull_requests[pull_request.id] = pull_request
        self.changed()
        return pull_request

    def add_work_item(self, item: WorkItem) -> WorkItem:
        self.work_items[item.id] = item
        self.changed()
        return item

    def wiki(self, id_or_name: str, project_id: str | None = None) -> Wiki | None:
        wiki = self.wikis.get(id_or_name.lower())
        if wiki is None:
            key = name_key(id_or_name)
            wiki = next((w for w in self.wikis.values() if name_key(w.name) == key), None)
        if wiki is not None and project_id is not None and wiki.project_id != project_id:
            return None
        return wiki
