"""Generate a deterministic, realistic organisation: projects, repos, PRs, builds, work items and more.

``generate_org(name, base_url, projects=…, repos=…, workitems=…, seed=…)`` gives the same ids,
names and contents for the same arguments (one ``random.Random(seed)`` drives everything, and
GUIDs come from it, not from ``uuid4``). Dates are laid out backwards from ``now`` (a fixed
default, so tests and benchmarks are reproducible; the emulator passes the start of the current
UTC day so "@today - 7" finds recent items).

Realism an ingester must cope with: names with spaces and non-ASCII letters, empty projects (every
third project from the third on has no repositories and no work items), disabled, forked and empty
repositories, renamed and deleted repositories and a deleted project in ``Organisation.history``,
pull requests in all three states (closed ones with dates), builds with every result, work items
of every Agile type and state with parent/child links, area/iteration paths, tags and revisions.

Speed matters (100,000 work items in well under 10 s, see ``bench/emulator_generate.py``): the
work-item loop builds plain dicts and slotted dataclasses and nothing else.
"""

from __future__ import annotations

import gc
import random
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from kiosk.emulator.org.model import (
    BOARD_STATES,
    BOARD_TYPES,
    POLICY_MINIMUM_REVIEWERS,
    POLICY_WORK_ITEM_LINKING,
    STATE_REASONS,
    AccessLevel,
    Board,
    BoardColumn,
    Build,
    BuildDefinition,
    ClassificationNode,
    Commit,
    Deployment,
    Environment,
    EnvironmentDeployment,
    FieldValue,
    FileChange,
    GitRef,
    GitRepository,
    Group,
    Organisation,
    PolicyConfiguration,
    Project,
    PullRequest,
    Push,
    RefUpdate,
    Release,
    ReleaseDefinition,
    ReleaseEnvironment,
    RepoFile,
    Reviewer,
    Team,
    User,
    Wiki,
    WikiPage,
    WorkItem,
    WorkItemComment,
    WorkItemRelation,
    WorkItemRevision,
    WorkItemState,
    WorkItemType,
    board_column,
    build_timeline,
    name_key,
    tree_sha1,
)
from kiosk.emulator.org.quality import make_alerts, make_test_runs, quality_random

__all__ = [
    "DEFAULT_NOW",
    "GenerateSettings",
    "add_configured_project",
    "generate_org",
    "generate_organisation",
]

DEFAULT_NOW: Final = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""The fixed "now" generation lays dates out from unless told otherwise."""


@dataclass(frozen=True)
class GenerateSettings:
    """How big a generated organisation is; the same settings (seed included) give the same org."""

    projects: int = 3
    repos: int = 20
    workitems: int = 200
    seed: int = 0
    users: int | None = None
    """Default: 8 + 2 per project, at most 500."""
    pull_requests: int = 3
    """Per (enabled, non-empty) repository."""
    builds: int = 3
    """Per build definition (one definition per enabled, non-empty repository)."""

    def __post_init__(self) -> None:
        for name in ("projects", "repos", "workitems", "seed", "pull_requests", "builds"):
            if getattr(self, name) < 0:
                raise ValueError(f"generate: {name} must not be negative")
        if self.users is not None and self.users < 1:
            raise ValueError("generate: users must be at least 1")
        if self.projects == 0 and (self.repos or self.workitems):
            raise ValueError("generate: repos and workitems need at least one project")


# --- vocabulary -----------------------------------------------------------------------------------

_PEOPLE: Final = (
    ("Ana", "García"), ("Björn", "Lindqvist"), ("Chloé", "Martin"), ("Dmitri", "Ivanov"), ("Emma", "Schmidt"),
    ("François", "Dubois"), ("Grace", "Okafor"), ("Hiroshi", "Tanaka"), ("Inés", "Fernández"), ("Jonas", "Müller"),
    ("Kateřina", "Nováková"), ("Liam", "O'Brien"), ("María", "López"), ("Nils", "Østergaard"), ("Olivia", "Smith"),
    ("Paweł", "Kowalski"), ("Quentin", "Leroy"), ("Rania", "Haddad"), ("Søren", "Kierkegaard"), ("Tomás", "Silva"),
    ("Uma", "Patel"), ("Václav", "Dvořák"), ("Wei", "Zhang"), ("Ximena", "Rojas"), ("Yusuf", "Y\u0131lmaz"),
    ("Zoë", "Adams"), ("Ingrid", "Bergström"), ("Amélie", "Rousseau"), ("Łukasz", "Nowak"), ("Ayşe", "Demir"),
)  # fmt: skip
_ASCII: Final = {
    ord("ł"): "l",
    ord("Ł"): "L",
    ord("ø"): "o",
    ord("Ø"): "O",
    ord("\u0131"): "i",
    ord("æ"): "ae",
    ord("'"): "-",
}


def _ascii(text: str) -> str:
    """``text`` without accents (for e-mail addresses and slugs): Søren → Soren, Łukasz → Lukasz."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII))
    return decomposed.encode("ascii", "ignore").decode()


_PROJECT_NAMES: Final = (
    "Payments Platform", "Données Clients", "Kiosk Mobile", "Fulfilment", "Search Ünified", "Identity",
    "Data Lake", "Storefront Web", "Inventory", "Logística", "Observability", "Billing Engine",
    "Partner API", "Mobile Banking", "Risk & Compliance", "Plattform Infrastruktur", "Marketing Site",
    "Customer Support", "Analytics", "Checkout",
)  # fmt: skip
_REPO_WORDS: Final = (
    "api", "web", "worker", "gateway", "ledger", "catalog", "auth", "notifications", "reports", "search",
    "infra", "terraform", "helm-charts", "mobile-app", "sdk", "docs", "pipelines", "schemas", "export",
    "importer", "scheduler", "billing", "pricing", "inventory", "analytics", "frontend", "backend", "cli",
)  # fmt: skip
_REPO_SHAPES: Final = ("{p}-{w}", "{w}", "{W} Service", "{p} {W}", "{w}-données", "{w}.core", "{W}")
_LANGUAGES: Final = (
    ("python", "/src/app/main.py", "def main() -> None:\n    print('hello from {name}')\n"),
    ("typescript", "/src/index.ts", "export function main(): void {{\n  console.log('hello from {name}');\n}}\n"),
    ("go", "/cmd/server/main.go", 'package main\n\nimport "fmt"\n\nfunc main() {{ fmt.Println("{name}") }}\n'),
    ("csharp", "/src/Program.cs", 'Console.WriteLine("hello from {name}");\n'),
    ("java", "/src/main/java/App.java", 'class App {{ void run() {{ System.out.println("{name}"); }} }}\n'),
)  # fmt: skip
_TAGS: Final = (
    "frontend",
    "backend",
    "tech-debt",
    "security",
    "customer",
    "performance",
    "ux",
    "documentation",
    "ops",
    "ça-marche",
)
_VERBS: Final = (
    "Add",
    "Fix",
    "Refactor",
    "Remove",
    "Document",
    "Migrate",
    "Speed up",
    "Investigate",
    "Support",
    "Validate",
)
_THINGS: Final = (
    "login flow", "invoice export", "search ranking", "Überweisung limits", "retry policy", "health checks",
    "CSV import", "rate limiting", "dark mode", "audit log", "cache invalidation", "webhook delivery",
    "pagination", "password reset", "feature flags", "café menu sync", "error pages", "SSO with Entra ID",
)  # fmt: skip

# Agile process: each type's states with their categories.
_FULL_CYCLE: Final = (("New", "Proposed"), ("Active", "InProgress"), ("Resolved", "Resolved"), ("Closed", "Completed"))
_AGILE_STATES: Final = {
    "Epic": (*_FULL_CYCLE, ("Removed", "Removed")),
    "Feature": (*_FULL_CYCLE, ("Removed", "Removed")),
    "User Story": (*_FULL_CYCLE, ("Removed", "Removed")),
    "Task": (("New", "Proposed"), ("Active", "InProgress"), ("Closed", "Completed"), ("Removed", "Removed")),
    "Bug": _FULL_CYCLE,
    "Issue": (("Active", "InProgress"), ("Closed", "Completed")),
}
_TYPE_META: Final = {
    "Epic": ("Microsoft.VSTS.WorkItemTypes.Epic", "FF7B00", "icon_crown"),
    "Feature": ("Microsoft.VSTS.WorkItemTypes.Feature", "773B93", "icon_trophy"),
    "User Story": ("Microsoft.VSTS.WorkItemTypes.UserStory", "009CCC", "icon_book"),
    "Task": ("Microsoft.VSTS.WorkItemTypes.Task", "F2CB1D", "icon_clipboard"),
    "Bug": ("Microsoft.VSTS.WorkItemTypes.Bug", "CC293D", "icon_insect"),
    "Issue": ("Microsoft.VSTS.WorkItemTypes.Issue", "B4009E", "icon_traffic_cone"),
}
_STATE_COLORS: Final = {
    "Proposed": "b2b2b2",
    "InProgress": "007acc",
    "Resolved": "ff9d00",
    "Completed": "339933",
    "Removed": "ffffff",
}
# The type of each work item cycles through this (parents come before their children in a block).
_TYPE_CYCLE: Final = ("Epic",) + ("Feature",) * 3 + ("User Story",) * 12 + ("Task",) * 16 + ("Bug",) * 7 + ("Issue",)
_PARENT_TYPE: Final = {"Feature": "Epic", "User Story": "Feature", "Task": "User Story", "Bug": "User Story"}
_PARENT: Final = "System.LinkTypes.Hierarchy-Reverse"
_CHILD: Final = "System.LinkTypes.Hierarchy-Forward"
_SPRINTS: Final = 8
_SPRINT_DAYS: Final = 14
_COMMENTS: Final = (
    "<div>Reproduced on staging; looking into it.</div>",
    "<div>Can we split this into two stories?</div>",
    "<div>Fixed in the last build, please verify.</div>",
    "<div>Blocked until the API change is deployed.</div>",
    "<div>Merci ! Ça marche maintenant.</div>",
)
"""Discussion texts; every fifth work item gets one to three of them (``System.CommentCount``)."""


class _Ids:
    """GUIDs and SHA-1s from the seeded generator, so the same seed gives the same ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"


def _descriptor(prefix: str, text: str) -> str:
    """Azure-like subject descriptor: prefix + base64url of an origin id (no padding)."""
    import base64

    return prefix + "." + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unique_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``wanted 2``, ``wanted 3``… — unique case-insensitively among ``taken``."""
    name, n = wanted, 1
    while name_key(name) in taken:
        n += 1
        name = f"{wanted} {n}" if " " in wanted or not wanted.replace("-", "").isascii() else f"{wanted}-{n}"
    taken.add(name_key(name))
    return name


class _Generator:
    def __init__(
        self, org: Organisation, settings: GenerateSettings, now: datetime, rng: random.Random | None = None
    ) -> None:
        self.org = org
        self.settings = settings
        self.now = now
        self.rng = rng or random.Random(settings.seed)
        self.ids = _Ids(self.rng)
        self.users: list[User] = []
        self.area_names: dict[str, list[str]] = {}
        self.types: list[WorkItemType] = [
            WorkItemType(
                name,
                _TYPE_META[name][0],
                f"Tracks a {name.lower()}.",
                _TYPE_META[name][1],
                _TYPE_META[name][2],
                [WorkItemState(state, category, _STATE_COLORS[category]) for state, category in states],
            )
            for name, states in _AGILE_STATES.items()
        ]

    def ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)

    # -- identities --

    def make_users(self, count: int) -> None:
        domain = self.ids.guid()
        for index in range(count):
            first, last = _PEOPLE[index % len(_PEOPLE)]
            round_ = index // len(_PEOPLE)
            display = f"{first} {last}" + (f" {round_ + 1}" if round_ else "")
            local = _ascii(f"{first}.{last}").lower() + (str(round_ + 1) if round_ else "")
            origin_id = self.ids.guid()
            guest = index % 11 == 10
            mail = f"{local}@{'partner.example' if guest else 'contoso.example'}"
            level = (
                AccessLevel("stakeholder", "Stakeholder")
                if index % 7 == 6
                else AccessLevel("advanced", "Basic + Test Plans")
                if index % 13 == 5
                else AccessLevel()
            )
            created = self.ago(400 + self.rng.random() * 600)
            user = User(
                id=self.ids.guid(),
                descriptor=_descriptor("aad", origin_id),
                principal_name=mail,
                display_name=display,
                mail=mail,
                origin="aad",
                origin_id=origin_id,
                domain=domain,
                access_level=level,
                date_created=created,
                last_accessed_date=self.ago(self.rng.random() * 60),
                meta_type="guest" if guest else "member",
            )
            self.users.append(self.org.add_user(user))
        admins = self.group("Project Collection Administrators", "Administrators of the organisation.", None)
        valid = self.group("Project Collection Valid Users", "All users of the organisation.", None)
        admins.member_descriptors.append(self.users[0].descriptor)
        valid.member_descriptors.extend(user.descriptor for user in self.users)

    def group(self, name: str, description: str, project: Project | None) -> Group:
        origin_id = self.ids.guid()
        scope = f"[{project.name}]" if project else f"[{self.org.name}]"
        domain = (
            f"vstfs:///Classification/TeamProject/{project.id}"
            if project
            else f"vstfs:///Framework/IdentityDomain/{self.org.id}"
        )
        return self.org.add_group(
            Group(
                id=origin_id,
                descriptor=_descriptor("vssgp", origin_id),
                display_name=name,
                principal_name=f"{scope}\\{name}",
                description=description,
                domain=domain,
                origin="vsts",
                origin_id=origin_id,
                project_id=project.id if project else None,
            )
        )

    def some_users(self, count: int) -> list[User]:
        return self.rng.sample(self.users, min(count, len(self.users)))

    # -- projects --

    def make_project(
        self, name: str, *, empty: bool, configured: bool = False, project_id: str | None = None
    ) -> Project:
        rng = self.rng
        project = Project(
            id=project_id or self.ids.guid(),
            name=name,
            description="" if rng.random() < 0.2 else f"{name}: services and work of the {name} teams.",
            state="wellFormed",
            visibility="public" if rng.random() < 0.15 else "private",
            revision=rng.randrange(10, 900),
            last_update_time=self.ago(rng.random() * 300),
            configured=configured,
        )
        for tag in rng.sample(("team-a", "pci", "gdpr", "legacy", "customer-facing", "intern"), rng.randrange(0, 3)):
            project.properties[f"Microsoft.TeamFoundation.Project.Tag.{tag}"] = "true"
        project.properties["System.Process Template"] = "Agile"
        self.org.add_project(project)
        contributors = self.group(
            "Contributors", "Members can add, modify and delete items within the project.", project
        )
        readers = self.group("Readers", "Members can view the project.", project)
        admins = self.group("Project Administrators", "Members can administer the project.", project)
        members = self.some_users(rng.randrange(3, 9))
        contributors.member_descriptors.extend(user.descriptor for user in members[1:])
        readers.member_descriptors.extend(user.descriptor for user in self.some_users(2))
        admins.member_descriptors.append(members[0].descriptor)
        self.make_classification(project, empty=empty)
        self.org.work_item_types[project.id] = self.types
        team_names = [f"{name} Team"] + (
            []
            if empty
            else [f"{name} {suffix}" for suffix in rng.sample(("Web", "Core", "Ops", "Ünits"), rng.randrange(0, 3))]
        )
        for index, team_name in enumerate(team_names):
            team = self.org.add_team(
                Team(
                    id=self.ids.guid(),
                    name=team_name,
                    project_id=project.id,
                    description="The default project team." if index == 0 else f"The {team_name} team.",
                    member_ids=[user.id for user in members],
                    admin_ids={members[0].id},
                    area_path=name
                    if index == 0
                    else f"{name}\\{self.area_names[project.id][(index - 1) % len(self.area_names[project.id])]}",
                    iteration_paths=[f"{name}\\Sprint {n}" for n in range(1, _SPRINTS + 1)],
                )
            )
            if index == 0:
                project.default_team_id = team.id
            group = self.group(team_name, f"The team {team_name}.", project)
            group.member_descriptors.extend(user.descriptor for user in members)
            self.org.boards[team.id] = self.make_boards(team)
        return project

    def make_classification(self, project: Project, *, empty: bool) -> None:
        node_id = self.org.next_id("classificationNode")
        area = ClassificationNode(node_id, self.ids.guid(), project.name, "area", f"\\{project.name}\\Area")
        children = [] if empty else self.rng.sample(("Web", "Mobile", "Platform", "Données", "Ops", "Security"), 3)
        for child in children:
            node = ClassificationNode(
                self.org.next_id("classificationNode"), self.ids.guid(), child, "area", f"{area.path}\\{child}"
            )
            area.children.append(node)
        self.area_names[project.id] = children or [project.name]
        iteration = ClassificationNode(
            self.org.next_id("classificationNode"),
            self.ids.guid(),
            project.name,
            "iteration",
            f"\\{project.name}\\Iteration",
        )
        # Sprints: most in the past, one current, two in the future.
        first = self.now - timedelta(days=_SPRINT_DAYS * (_SPRINTS - 2) + (self.now.weekday()))
        for n in range(1, _SPRINTS + 1):
            start = (first + timedelta(days=_SPRINT_DAYS * (n - 1))).replace(hour=0, minute=0, second=0, microsecond=0)
            iteration.children.append(
                ClassificationNode(
                    self.org.next_id("classificationNode"),
                    self.ids.guid(),
                    f"Sprint {n}",
                    "iteration",
                    f"{iteration.path}\\Sprint {n}",
                    start_date=start,
                    finish_date=start + timedelta(days=_SPRINT_DAYS - 3),
                )
            )
        self.org.areas[project.id] = area
        self.org.iterations[project.id] = iteration

    def make_boards(self, team: Team) -> list[Board]:
        boards = []
        kinds_of_column = dict(zip(BOARD_STATES, ("incoming", "inProgress", "inProgress", "outgoing"), strict=True))
        for board_name, kinds in BOARD_TYPES:
            columns = [
                BoardColumn(
                    self.ids.guid(),
                    state,
                    5 if kinds_of_column[state] == "inProgress" else 0,
                    {kind: state for kind in kinds},
                    kinds_of_column[state],
                    is_split=board_name == "Stories" and state == "Active",
                )
                for state in BOARD_STATES
            ]
            boards.append(Board(self.ids.guid(), board_name, team.id, columns))
        return boards

    # -- repositories --

    def repo_files(self, repo_name: str, project: Project, owners: list[User]) -> list[RepoFile]:
        language, source_path, source = _LANGUAGES[self.rng.randrange(len(_LANGUAGES))]
        slug = _ascii(repo_name).lower().replace(" ", "-")
        owner_lines = "".join(f"* @{user.principal_name}\n" for user in owners[:2])
        port = (
            f"identifier: {slug}\ntitle: {repo_name}\nblueprint: service\nproperties:\n"
            f"  language: {language}\n  lifecycle: {self.rng.choice(('production', 'experimental', 'deprecated'))}\n"
            f"  project: {project.name}\n"
        )
        return [
            RepoFile.of(
                "/README.md", f"# {repo_name}\n\nPart of {project.name}. Owned by {owners[0].display_name}.\n".encode()
            ),
            RepoFile.of("/CODEOWNERS", owner_lines.encode()),
            RepoFile.of("/port.yml", port.encode()),
            RepoFile.of(
                "/azure-pipelines.yml",
                b"trigger: [main]\npool: {vmImage: ubuntu-latest}\nsteps:\n  - script: make test\n",
            ),
            RepoFile.of(source_path, source.format(name=repo_name).encode()),
            RepoFile.of("/.gitignore", b"*.log\n/build/\n"),
        ]

    def make_repository(
        self, project: Project, name: str, *, disabled: bool, empty: bool, parent: GitRepository | None
    ) -> GitRepository:
        rng = self.rng
        remote, ssh, web = self.org.repository_urls(project.name, name)
        repo = GitRepository(
            id=self.ids.guid(),
            name=name,
            project_id=project.id,
            default_branch=None if empty else "refs/heads/main",
            size=0,
            is_disabled=disabled,
            is_fork=parent is not None,
            remote_url=remote,
            ssh_url=ssh,
            web_url=web,
            parent_repository_id=parent.id if parent else None,
        )
        self.org.add_repository(repo)
        if empty:
            return repo
        owners = self.some_users(3)
        files = self.repo_files(name, project, owners)
        # Commit 1 adds all files but the source file; commit 2 adds it; later commits edit README.
        start = self.ago(200 + rng.random() * 300)
        tree: dict[str, RepoFile] = {}
        head: Commit | None = None
        plan: list[tuple[str, list[RepoFile]]] = [
            ("Initial commit", files[:4] + files[5:]),
            ("Add the service skeleton", [files[4]]),
        ]
        for n in range(rng.randrange(0, 3)):
            readme = tree.get("/README.md") or files[0]
            edited = RepoFile.of("/README.md", readme.content + f"\nChange {n + 1}: {rng.choice(_THINGS)}.\n".encode())
            plan.append((f"{rng.choice(_VERBS)} {rng.choice(_THINGS)}", [edited]))
        for index, (message, changed) in enumerate(plan):
            author = owners[index % len(owners)]
            when = start + timedelta(days=index * 3 + rng.random())
            changes = [
                FileChange(
                    "edit" if f.path in tree else "add",
                    f.path,
                    f.object_id,
                    tree[f.path].object_id if f.path in tree else None,
                )
                for f in changed
            ]
            tree = dict(tree)
            tree.update((f.path, f) for f in changed)
            head = self.commit(repo, author, when, message, tree, changes, [head.commit_id] if head else [])
            self.push(repo, author, when, "refs/heads/main", head.parents[0] if head.parents else "0" * 40, [head])
        assert head is not None
        repo.size = sum(len(f.content) for f in tree.values()) + 512
        for branch in rng.sample(
            ("feature/login", "feature/ça-va", "bugfix/timeout", "release/2024.1", "spike/cache"), rng.randrange(0, 4)
        ):
            author = rng.choice(owners)
            when = head.author_date + timedelta(days=rng.random() * 20)
            source = tree[files[4].path]
            edited = RepoFile.of(source.path, source.content + f"// {branch}\n".encode())
            branch_tree = dict(tree)
            branch_tree[edited.path] = edited
            commit = self.commit(
                repo,
                author,
                when,
                f"{rng.choice(_VERBS)} {rng.choice(_THINGS)}",
                branch_tree,
                [FileChange("edit", edited.path, edited.object_id, source.object_id)],
                [head.commit_id],
            )
            self.push(repo, author, when, f"refs/heads/{branch}", "0" * 40, [commit])
        return repo

    def commit(
        self,
        repo: GitRepository,
        author: User,
        when: datetime,
        message: str,
        tree: dict[str, RepoFile],
        changes: list[FileChange],
        parents: list[str],
    ) -> Commit:
        commit = Commit.authored(self.ids.sha(), tree_sha1(tree), parents, author, when, message, tree, changes)
        repo.commits[commit.commit_id] = commit
        return commit

    def push(
        self, repo: GitRepository, user: User, when: datetime, ref_name: str, old: str, commits: list[Commit]
    ) -> Push:
        push = Push(
            len(repo.pushes) + 1,
            when,
            user.id,
            [RefUpdate(ref_name, old, commits[-1].commit_id)],
            [c.commit_id for c in commits],
        )
        for commit in commits:
            commit.push_id = push.push_id
        repo.pushes.append(push)
        existing = repo.refs.get(ref_name)
        if existing is None:
            repo.refs[ref_name] = GitRef(ref_name, commits[-1].commit_id, user.id)
        else:
            existing.object_id = commits[-1].commit_id
        return push

    def make_pull_requests(self, repo: GitRepository, count: int) -> None:
        rng = self.rng
        main = repo.head()
        assert main is not None
        branches = [name for name in repo.refs if name != "refs/heads/main"] or ["refs/heads/feature/update"]
        for n in range(count):
            status = ("active", "completed", "completed", "abandoned")[(n + rng.randrange(4)) % 4]
            author = rng.choice(self.users)
            created = self.ago(1 + rng.random() * 120)
            source_ref = branches[n % len(branches)]
            source_ref_obj = repo.refs.get(source_ref)
            closed = created + timedelta(hours=2 + rng.random() * 100) if status != "active" else None
            votes = {"active": (0, 0, 5, -5, 10), "completed": (10, 10, 5), "abandoned": (0, -10, -5)}[status]
            reviewers = [
                Reviewer(user.id, rng.choice(votes), is_required=index == 0)
                for index, user in enumerate(
                    rng.sample(
                        [u for u in self.users if u is not author], min(rng.randrange(1, 4), len(self.users) - 1)
                    )
                )
            ]
            pr_id = self.org.next_id("pullRequest")
            title = f"{rng.choice(_VERBS)} {rng.choice(_THINGS)}"
            self.org.add_pull_request(
                PullRequest(
                    id=pr_id,
                    repository_id=repo.id,
                    status=status,
                    created_by=author.id,
                    creation_date=created,
                    title=title,
                    description=f"{title}.\n\nThis change touches {repo.name}."
                    + (" " + "Details. " * 80 if n % 5 == 4 else ""),
                    source_ref_name=source_ref,
                    target_ref_name="refs/heads/main",
                    merge_status="succeeded" if status != "active" or rng.random() < 0.8 else "conflicts",
                    is_draft=status == "active" and rng.random() < 0.2,
                    merge_id=self.ids.guid(),
                    last_merge_source_commit=source_ref_obj.object_id if source_ref_obj else self.ids.sha(),
                    last_merge_target_commit=main.commit_id,
                    last_merge_commit=self.ids.sha() if status == "completed" else None,
                    closed_date=closed,
                    closed_by=(author.id if status == "abandoned" else reviewers[0].user_id) if closed else None,
                    reviewers=reviewers,
                    labels=["needs-review"] if status == "active" and rng.random() < 0.3 else [],
                )
            )

    def make_policies(self, project: Project, repos: list[GitRepository]) -> None:
        """Minimum reviewers and work item linking on the main branch of a project's first repositories."""
        minimum: dict[str, object] = {
            "minimumApproverCount": 2,
            "creatorVoteCounts": False,
            "allowDownvotes": False,
            "resetOnSourcePush": True,
        }
        for repo in repos[:3]:
            for type_id, settings in ((POLICY_MINIMUM_REVIEWERS, minimum), (POLICY_WORK_ITEM_LINKING, {})):
                scoped = dict(settings)
                scoped["scope"] = [{"repositoryId": repo.id, "refName": "refs/heads/main", "matchKind": "exact"}]
                policy_id = self.org.next_id("policy")
                self.org.policies[policy_id] = PolicyConfiguration(
                    policy_id, project.id, type_id, self.users[0].id, self.ago(300 + self.rng.random() * 50), scoped
                )

    # -- builds, environments, releases --

    def make_builds(self, project: Project, repos: list[GitRepository]) -> list[Build]:
        rng = self.rng
        builds: list[Build] = []
        for repo in repos:
            main = repo.head()
            assert main is not None
            definition = BuildDefinition(
                id=self.org.next_id("buildDefinition"),
                name=repo.name,
                project_id=project.id,
                repository_id=repo.id,
                path="\\" if rng.random() < 0.6 else "\\Services",
                revision=rng.randrange(1, 12),
                created_date=main.author_date,
                authored_by=rng.choice(self.users).id,
            )
            self.org.build_definitions[definition.id] = definition
            for n in range(self.settings.builds):
                queued = self.ago((self.settings.builds - n) * 2 + rng.random())
                in_progress = n == self.settings.builds - 1 and rng.random() < 0.2
                result = (
                    None
                    if in_progress
                    else rng.choice(("succeeded", "succeeded", "succeeded", "failed", "partiallySucceeded", "canceled"))
                )
                start = queued + timedelta(seconds=5 + rng.random() * 60)
                finish = None if in_progress else start + timedelta(seconds=30 + rng.random() * 600)
                build_id = self.org.next_id("build")
                user = rng.choice(self.users)
                build = Build(
                    id=build_id,
                    build_number=f"{queued:%Y%m%d}.{n + 1}",
                    status="inProgress" if in_progress else "completed",
                    result=result,
                    queue_time=queued,
                    start_time=start,
                    finish_time=finish,
                    definition_id=definition.id,
                    project_id=project.id,
                    repository_id=repo.id,
                    source_branch="refs/heads/main",
                    source_version=main.commit_id,
                    requested_for=user.id,
                    requested_by=user.id,
                    reason=rng.choice(("individualCI", "manual", "pullRequest", "schedule")),
                    timeline=build_timeline(self.ids.guid, start, finish, result),
                )
                self.org.builds[build_id] = build
                builds.append(build)
        return builds

    def make_environments(self, project: Project, builds: list[Build]) -> None:
        rng = self.rng
        for name in ("dev", "staging", "production"):
            env_id = self.org.next_id("environment")
            environment = Environment(
                env_id,
                name,
                f"The {name} environment.",
                project.id,
                self.users[0].id,
                self.ago(365),
                self.ago(rng.random() * 30),
            )
            for build in builds:
                if (
                    build.finish_time is None
                    or build.result == "canceled"
                    or (name == "production" and build.result != "succeeded")
                ):
                    continue
                definition = self.org.build_definitions[build.definition_id]
                record_id = self.org.next_id("environmentDeployment")
                environment.deployments.append(
                    EnvironmentDeployment(
                        record_id,
                        env_id,
                        self.ids.guid(),
                        f"Deploy {name}",
                        "Deploy",
                        definition.id,
                        definition.name,
                        build.id,
                        build.build_number,
                        "succeeded" if build.result == "succeeded" else "failed",
                        build.finish_time,
                        build.finish_time + timedelta(seconds=10),
                        build.finish_time + timedelta(seconds=90),
                    )
                )
            self.org.environments[env_id] = environment

    def make_releases(self, project: Project, builds: list[Build]) -> None:
        rng = self.rng
        stages = [
            ReleaseEnvironment(self.org.next_id("releaseDefinitionEnvironment"), name, rank, 0)
            for rank, name in enumerate(("QA", "Production"), start=1)
        ]
        stages = [ReleaseEnvironment(s.id, s.name, s.rank, s.id) for s in stages]
        author = self.users[0]
        definition = ReleaseDefinition(
            self.org.next_id("releaseDefinition"),
            f"{project.name} release",
            project.id,
            "\\",
            3,
            "Classic release.",
            author.id,
            self.ago(300),
            self.ago(20),
            stages,
        )
        self.org.release_definitions[definition.id] = definition
        # Beside it, one in a folder and one deleted (kept for ``isDeleted=true``); neither has releases.
        for name, path, deleted in (
            (f"{project.name} hotfix", "\\Hotfix", False),
            (f"{project.name} legacy", "\\", True),
        ):
            other = ReleaseDefinition(
                self.org.next_id("releaseDefinition"),
                name,
                project.id,
                path,
                1,
                "Classic release.",
                author.id,
                self.ago(280),
                self.ago(60),
                [ReleaseEnvironment(self.org.next_id("releaseDefinitionEnvironment"), "Production", 1, 0)],
                is_deleted=deleted,
            )
            other.environments = [ReleaseEnvironment(s.id, s.name, s.rank, s.id) for s in other.environments]
            self.org.release_definitions[other.id] = other
        for n, build in enumerate(b for b in builds[:4] if b.result == "succeeded"):
            created = (build.finish_time or self.now) + timedelta(minutes=5)
            release_id = self.org.next_id("release")
            statuses = ("succeeded", "succeeded") if n % 3 != 2 else ("succeeded", "rejected")
            environments = [
                ReleaseEnvironment(self.org.next_id("releaseEnvironment"), s.name, s.rank, s.id, status)
                for s, status in zip(stages, statuses, strict=True)
            ]
            self.org.releases[release_id] = Release(
                release_id,
                f"Release-{n + 1}",
                "abandoned" if n % 5 == 4 else "active",
                definition.id,
                project.id,
                created,
                created + timedelta(hours=1),
                author.id,
                "continuousIntegration",
                "",
                environments,
                build.id,
            )
            for env in environments:
                started = created + timedelta(minutes=10 * env.rank)
                deployment_id = self.org.next_id("deployment")
                requester = rng.choice(self.users)
                self.org.deployments[deployment_id] = Deployment(
                    deployment_id,
                    release_id,
                    definition.id,
                    env.id,
                    env.definition_environment_id,
                    project.id,
                    1,
                    "automated",
                    # A stage whose approval was rejected was never deployed.
                    "succeeded" if env.status == "succeeded" else "notDeployed",
                    "Approved" if env.status == "succeeded" else "Rejected",
                    requester.id,
                    requester.id,
                    started,
                    started + timedelta(seconds=30),
                    started + timedelta(minutes=4),
                    started + timedelta(minutes=4),
                )

    # -- work items --

    def make_work_items(self, project: Project, count: int) -> None:
        """``count`` work items; parents come first in each cycle block, children link back to them."""
        rng = self.rng
        random_ = rng.random
        org_items = self.org.work_items
        users = self.users
        n_users = len(users)
        areas = [project.name] + [
            f"{project.name}\\{name}" for name in self.area_names[project.id] if name != project.name
        ]
        iterations = [f"{project.name}\\Sprint {n}" for n in range(1, _SPRINTS + 1)]
        states = {name: [state for state, _ in spec] for name, spec in _AGILE_STATES.items()}
        latest: dict[str, int] = {}
        things = [f"{verb} {thing}" for verb in _VERBS for thing in _THINGS]
        n_things = len(things)
        tag_sets = ["", *_TAGS, *(f"{a}; {b}" for a, b in zip(_TAGS, _TAGS[3:] + _TAGS[:3], strict=True))]
        n_tags = len(tag_sets)
        team_project = project.name
        project_id = project.id
        cycle = _TYPE_CYCLE
        n_cycle = len(cycle)
        now = self.now
        for index in range(count):
            item_id = self.org.next_id("workItem")
            kind = cycle[index % n_cycle]
            kind_states = states[kind]
            rank = int(random_() * len(kind_states))
            state = kind_states[rank]
            age = 1 + random_() * 720
            created = now - timedelta(days=age)
            changed = created + timedelta(days=random_() * (age - 0.5)) if rank else created
            creator = users[int(random_() * n_users)]
            changer = users[int(random_() * n_users)] if rank else creator
            fields: dict[str, FieldValue] = {
                "System.Id": item_id,
                "System.AreaPath": areas[int(random_() * len(areas))],
                "System.TeamProject": team_project,
                "System.IterationPath": iterations[int(random_() * _SPRINTS)],
                "System.WorkItemType": kind,
                "System.State": state,
                "System.Reason": STATE_REASONS[state],
                "System.CreatedDate": created,
                "System.CreatedBy": creator,
                "System.ChangedDate": changed,
                "System.ChangedBy": changer,
                "System.CommentCount": 0,
                "System.Title": things[int(random_() * n_things)],
                "Microsoft.VSTS.Common.Priority": 1 + int(random_() * 4),
                "Microsoft.VSTS.Common.StateChangeDate": changed,
            }
            column = board_column(kind, state)
            if column is not None:
                fields["System.BoardColumn"] = column
                fields["System.BoardColumnDone"] = False
            if random_() < 0.7:
                fields["System.AssignedTo"] = users[int(random_() * n_users)]
            tags = tag_sets[int(random_() * n_tags)] if random_() < 0.5 else ""
            if tags:
                fields["System.Tags"] = tags
            if kind == "User Story":
                fields["Microsoft.VSTS.Scheduling.StoryPoints"] = float((1, 2, 3, 5, 8, 13)[int(random_() * 6)])
            elif kind == "Task":
                fields["Microsoft.VSTS.Scheduling.RemainingWork"] = float(int(random_() * 16))
            elif kind == "Bug":
                fields["Microsoft.VSTS.Common.Severity"] = ("1 - Critical", "2 - High", "3 - Medium", "4 - Low")[
                    int(random_() * 4)
                ]
                fields["Microsoft.VSTS.TCM.ReproSteps"] = "<div>Open the page, click the button, see the error.</div>"
            if rank and kind_states[rank] in ("Closed", "Resolved"):
                fields[
                    "Microsoft.VSTS.Common.ClosedDate" if state == "Closed" else "Microsoft.VSTS.Common.ResolvedDate"
                ] = changed
            # Revisions: 1 = creation, then one per state step (State/Reason/ChangedDate changed).
            revisions = [WorkItemRevision(1, creator, created, {})]
            previous = kind_states[0]
            for step in range(1, rank + 1):
                step_state = kind_states[step]
                when = changed if step == rank else created + (changed - created) * (step / (rank + 1))
                revisions.append(
                    WorkItemRevision(
                        step + 1,
                        changer,
                        when,
                        {
                            "System.State": (previous, step_state),
                            "System.Reason": (STATE_REASONS[previous], STATE_REASONS[step_state]),
                        },
                    )
                )
                previous = step_state
            item = WorkItem(item_id, len(revisions), project_id, fields, [], revisions)
            if item_id % 5 == 0:  # from the id, not the random stream: other objects keep their values
                item.comments = _comments(item_id, users, created, changed)
                fields["System.CommentCount"] = len(item.comments)
            parent_kind = _PARENT_TYPE.get(kind)
            parent_id = latest.get(parent_kind) if parent_kind else None
            if parent_id is not None and random_() < 0.9:
                parent = org_items[parent_id]
                item.relations.append(WorkItemRelation(_PARENT, parent_id, "Parent"))
                parent.relations.append(WorkItemRelation(_CHILD, item_id, "Child"))
            latest[kind] = item_id
            org_items[item_id] = item
        self.org.changes += count

    # -- wikis and history --

    def make_wiki(self, project: Project, code_repo: GitRepository | None) -> None:
        wiki = Wiki(self.ids.guid(), f"{project.name}.wiki", "projectWiki", project.id, self.ids.guid())
        # ``order`` is a page's place among its siblings; every sub-page's parent page exists, as in Azure.
        for path, order, content in (
            ("/Home", 0, f"# {project.name}\n\nWelcome. See [[Guides/Setup]].\n"),
            ("/Guides", 1, "# Guides\n"),
            ("/Guides/Setup", 0, "# Setup\n\n1. Clone the repositories.\n2. Run `make dev`.\n"),
            ("/Runbooks", 2, "# Runbooks\n"),
            ("/Runbooks/On call", 0, "# On call\n\nPage the owner of the failing service.\n"),
            ("/Architektur Überblick", 3, "# Architektur\n\nDienste, Datenflüsse und Zuständigkeiten.\n"),
        ):
            wiki.pages.append(WikiPage(self.org.next_id("wikiPage"), path, order, content))
        self.org.wikis[wiki.id] = wiki
        if code_repo is not None:
            code = Wiki(self.ids.guid(), f"{code_repo.name} docs", "codeWiki", project.id, code_repo.id, "/")
            code.pages.append(
                WikiPage(
                    self.org.next_id("wikiPage"),
                    "/README",
                    0,
                    (code_repo.head() or _never()).files["/README.md"].content.decode(),
                )
            )
            self.org.wikis[code.id] = code


def _comments(item_id: int, users: list[User], created: datetime, changed: datetime) -> list[WorkItemComment]:
    """One to three comments for work item ``item_id``, spread between its creation and its last change."""
    count = 1 + item_id % 3
    comments = []
    for n in range(1, count + 1):
        author = users[(item_id + n) % len(users)]
        when = created + (changed - created) * (n / (count + 1))
        comments.append(WorkItemComment(n, _COMMENTS[(item_id + n) % len(_COMMENTS)], author, when, author, when))
    return comments


def _never() -> Commit:
    raise AssertionError("a code wiki needs a repository with commits")


def _project_names(count: int, reserved: set[str]) -> list[str]:
    taken = set(reserved)
    names = []
    for index in range(count):
        base = _PROJECT_NAMES[index % len(_PROJECT_NAMES)]
        wanted = base if index < len(_PROJECT_NAMES) else f"{base} {index // len(_PROJECT_NAMES) + 1}"
        names.append(_unique_name(wanted, taken))
    return names


def _spread(total: int, buckets: int) -> list[int]:
    """``total`` split as evenly as possible over ``buckets`` (earlier buckets get the remainder)."""
    if buckets == 0:
        return []
    base, extra = divmod(total, buckets)
    return [base + (1 if index < extra else 0) for index in range(buckets)]


def generate_org(
    name: str,
    base_url: str,
    *,
    projects: int = 3,
    repos: int = 20,
    workitems: int = 200,
    seed: int = 0,
    users: int | None = None,
    pull_requests: int = 3,
    builds: int = 3,
    now: datetime = DEFAULT_NOW,
    org_id: str | None = None,
    reserved_project_names: Iterable[str] = (),
) -> Organisation:
    """A generated organisation; the same arguments give the same organisation.

    ``reserved_project_names`` are names the caller will add itself (the emulator's configured
    projects): generated projects avoid them, case-insensitively.
    """
    settings = GenerateSettings(projects, repos, workitems, seed, users, pull_requests, builds)
    return generate_organisation(
        name, base_url, settings, now=now, org_id=org_id, reserved_project_names=reserved_project_names
    )


def generate_organisation(
    name: str,
    base_url: str,
    settings: GenerateSettings,
    *,
    now: datetime = DEFAULT_NOW,
    org_id: str | None = None,
    reserved_project_names: Iterable[str] = (),
) -> Organisation:
    """:func:`generate_org` taking a :class:`GenerateSettings` (what the config and the CLI hold).

    The cyclic garbage collector is paused meanwhile: generation allocates about a million
    containers and frees none, so every collection it would trigger is wasted work (it halves
    the time for 100,000 work items).
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _generate(
            name, base_url, settings, now=now, org_id=org_id, reserved_project_names=reserved_project_names
        )
    finally:
        if paused:
            gc.enable()


def _generate(
    name: str,
    base_url: str,
    settings: GenerateSettings,
    *,
    now: datetime,
    org_id: str | None,
    reserved_project_names: Iterable[str],
) -> Organisation:
    rng = random.Random(f"org:{settings.seed}")
    org = Organisation(name, org_id or str(uuid.UUID(int=rng.getrandbits(128), version=4)), base_url)
    gen = _Generator(org, settings, now)
    gen.make_users(settings.users or min(500, 8 + 2 * settings.projects))
    names = _project_names(settings.projects, {name_key(n) for n in reserved_project_names})
    # Every third project from the third on is empty, but never all of them.
    empties = {index for index in range(len(names)) if index % 3 == 2}
    made = [gen.make_project(project_name, empty=index in empties) for index, project_name in enumerate(names)]
    full = [project for index, project in enumerate(made) if index not in empties]
    repo_counts = _spread(settings.repos, len(full))
    item_counts = _spread(settings.workitems, len(full))
    serial = 0
    for project, repo_count, item_count in zip(full, repo_counts, item_counts, strict=True):
        taken: set[str] = set()
        repos_made: list[GitRepository] = []
        for _ in range(repo_count):
            serial += 1
            shape = _REPO_SHAPES[serial % len(_REPO_SHAPES)]
            word = _REPO_WORDS[gen.rng.randrange(len(_REPO_WORDS))]
            prefix = _ascii(project.name.split()[0]).lower()
            repo_name = _unique_name(shape.format(p=prefix, w=word, W=word.replace("-", " ").title()), taken)
            parent = repos_made[0] if serial % 20 == 0 and repos_made and repos_made[0].default_branch else None
            repos_made.append(
                gen.make_repository(
                    project, repo_name, disabled=serial % 15 == 0, empty=serial % 25 == 0, parent=parent
                )
            )
        active = [repo for repo in repos_made if repo.default_branch and not repo.is_disabled]
        for repo in active:
            gen.make_pull_requests(repo, settings.pull_requests)
        gen.make_policies(project, active)
        project_builds = gen.make_builds(project, active)
        gen.make_environments(project, project_builds)
        gen.make_releases(project, project_builds)
        gen.make_work_items(project, item_count)
        gen.make_wiki(project, active[0] if active else None)
        quality = quality_random(settings.seed, project)  # a stream of its own: nothing else moves
        make_test_runs(org, project_builds, gen.users, quality)
        make_alerts(org, active, gen.now, quality)
        # History: every 7th repository renamed, every 12th (not the first) deleted.
        for index, repo in enumerate(list(repos_made)):
            if index % 7 == 3:
                old = repo.name
                org.rename_repository(
                    repo, _unique_name(f"{old}-legacy" if old.isascii() else f"{old} alt", taken), gen.ago(30 + index)
                )
            elif index % 12 == 11 and repo not in active:  # nothing links to it
                org.delete_repository(repo, gen.ago(10 + index))
    if settings.projects >= 2:
        # A project that existed once: created and deleted, kept in the history only.
        retired = gen.make_project(
            _unique_name(
                "Legacy Migration", {name_key(n) for n in names} | {name_key(n) for n in reserved_project_names}
            ),
            empty=True,
        )
        org.delete_project(retired, gen.ago(90))
    # Deleted work items (Azure's recycle bin): one in 97.
    for item in list(org.work_items.values())[96::97]:
        item.is_deleted = True
    return org


def add_configured_project(org: Organisation, name: str, project_id: str, *, now: datetime = DEFAULT_NOW) -> Project:
    """Give a project declared in the emulator config its place in ``org`` (keeping its id).

    It gets what every project has (default team, groups, area and iteration roots, work item
    types, boards, a wiki) but no generated repositories or work items: its content is its
    pipelines. If ``org`` already has a project of that name (any case), that one is marked as
    configured and returned, its id unchanged.
    """
    existing = org.project(name)
    if existing is not None:
        existing.configured = True
        return existing
    # Its own random stream: the org's seed would repeat the GUIDs the generated objects have.
    gen = _Generator(org, GenerateSettings(), now, random.Random(f"configured:{org.id}:{name_key(name)}"))
    gen.users = list(org.users.values())
    if not gen.users:
        gen.make_users(3)
    project = gen.make_project(name, empty=True, configured=True, project_id=project_id)
    gen.make_wiki(project, None)
    return project
