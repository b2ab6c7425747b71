"""Every kind, end to end: one resync of a generated organisation with a custom mapping naming all
29 kinds, over real HTTP against the emulator, into SQLite and PostgreSQL.

Each kind goes to its own blueprint, keyed by the kind's natural key (unique within the
organisation), with a title, a few properties and a relation to the kind's natural parent. What
the catalog must hold is computed independently of the resync: the same items are read with each
kind's fetcher and the mapping's jq programs are run on them by libjq (the ``jq`` package, not
kiosk's compiled path). So an item lost, duplicated or mis-keyed anywhere between fetch, mapping
and write shows as a difference; so does a relation pointing at an entity that is not there.
Then a second resync must write nothing, and one deleted repository must take exactly its own
entity and its children's (branches, pull requests, policies, files, folders, alerts) with it.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jq
import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.integrations import azure_devops_integration, create_blueprints, mapping_resource

from kiosk.azure.ratelimit import RetryPolicy
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.catalog.service import Catalog
from kiosk.ingest.config import Integration
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.fetch.registry import fetcher_for
from kiosk.ingest.kinds import KINDS
from kiosk.ingest.mapping import PortAppConfig, parse_port_app_config
from kiosk.ingest.resync import Resyncer
from kiosk.ingest.state import ResyncState
from kiosk.ingest.store import IngestStore
from kiosk.store.engine import Database

__all__ = ["start_emulator"]

RETRY = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)
FAST: dict[str, Any] = {"retry": RETRY, "timeout": 10.0}


@dataclass(frozen=True)
class KindCase:
    """How the test maps one kind.

    ``identifier``: jq giving the kind's natural key. ``properties``: name → (jq, JSON type).
    ``relation``: (relation name, parent kind, jq giving the parent's identifier). ``repository``:
    jq giving the id of the repository the item lives in, for the kinds a deleted repository takes
    with it. ``selector``: the kind's own selector options.
    """

    kind: str
    identifier: str
    title: str
    properties: Mapping[str, tuple[str, str]]
    relation: tuple[str, str, str] | None = None
    repository: str | None = None
    selector: Mapping[str, Any] = field(default_factory=dict)

    @property
    def blueprint(self) -> str:
        return blueprint_of(self.kind)


def blueprint_of(kind: str) -> str:
    """The test's blueprint for ``kind``: one per kind."""
    return f"e2e-{kind}"


#: Parents before children, so each blueprint's relation target exists when it is created, and
#: the mapping lists resources in the same order. A key part that is free text (a branch name with
#: accents, a work-item type with a space) goes through ``@base64``: injective, and made of
#: characters an entity identifier allows.
CASES: tuple[KindCase, ...] = (
    KindCase(
        "project",
        ".id",
        ".name",
        {
            "state": (".state", "string"),
            "visibility": (".visibility", "string"),
            "team": (".defaultTeam.name", "string"),
        },
        selector={"defaultTeam": True},
    ),
    KindCase(
        "repository",
        ".id",
        ".name",
        {
            "disabled": (".isDisabled", "boolean"),
            "size": (".size", "number"),
            "readme": ('.__includedFiles["README.md"] // ""', "string"),
        },
        relation=("project", "project", ".project.id"),
        repository=".id",
        selector={"includedFiles": ["README.md"]},
    ),
    KindCase(
        "repository-policy",
        '.__repository.id + "/" + (.id | tostring)',
        ".type.displayName",
        {"enabled": (".isEnabled", "boolean"), "blocking": (".isBlocking", "boolean")},
        relation=("repository", "repository", ".__repository.id"),
        repository=".__repository.id",
    ),
    KindCase(
        "branch",
        '.__repository.id + "/" + (.name | @base64)',
        ".name",
        {"ref": (".refName", "string"), "commit": (".objectId", "string")},
        relation=("repository", "repository", ".__repository.id"),
        repository=".__repository.id",
    ),
    KindCase(
        "pull-request",
        '.repository.id + "/" + (.pullRequestId | tostring)',
        ".title",
        {"status": (".status", "string"), "target": (".targetRefName", "string"), "draft": (".isDraft", "boolean")},
        relation=("repository", "repository", ".repository.id"),
        repository=".repository.id",
        selector={"minTimeInDays": 3650, "maxResults": 1000},
    ),
    KindCase(
        "pipeline",
        '.__projectId + "/" + (.id | tostring)',
        ".name",
        {"revision": (".revision", "number"), "repository": (".__repository.name", "string")},
        relation=("project", "project", ".__projectId"),
        selector={"includeRepo": True},
    ),
    KindCase(
        "pipeline-run",
        '.__project.id + "/" + (.__pipeline.id | tostring) + "/" + (.id | tostring)',
        ".name",
        {"state": (".state", "string"), "result": (".result", "string")},
        relation=("pipeline", "pipeline", '.__project.id + "/" + (.__pipeline.id | tostring)'),
    ),
    KindCase(
        "build",
        '.__projectId + "/" + (.id | tostring)',
        ".buildNumber",
        {
            "status": (".status", "string"),
            "repository": (".repository.id", "string"),
            "first": (".__firstCommit.__sha", "string"),
        },
        relation=("project", "project", ".__projectId"),
        selector={"enrichWithFirstCommit": True},
    ),
    KindCase(
        "pipeline-stage",
        '.__project.id + "/" + (.__build.id | tostring) + "/" + .id',
        ".name",
        {"state": (".state", "string"), "order": (".order", "number")},
        relation=("build", "build", '.__project.id + "/" + (.__build.id | tostring)'),
    ),
    KindCase(
        "environment",
        '.project.id + "/" + (.id | tostring)',
        ".name",
        {"description": (".description", "string"), "created": (".createdOn", "string")},
        relation=("project", "project", ".project.id"),
    ),
    KindCase(
        "pipeline-deployment",
        '.__project.id + "/" + (.environmentId | tostring) + "/" + (.id | tostring)',
        ".stageName",
        {"result": (".result", "string"), "job": (".jobName", "string")},
        relation=("environment", "environment", '.__project.id + "/" + (.environmentId | tostring)'),
    ),
    KindCase(
        "release-definition",
        '.__project.id + "/" + (.id | tostring)',
        ".name",
        {"revision": (".revision", "number"), "stages": (".environments | length", "number")},
        relation=("project", "project", ".__project.id"),
    ),
    KindCase(
        "release",
        '.projectReference.id + "/" + (.id | tostring)',
        ".name",
        {"status": (".status", "string"), "reason": (".reason", "string")},
        relation=(
            "definition",
            "release-definition",
            '.projectReference.id + "/" + (.releaseDefinition.id | tostring)',
        ),
    ),
    KindCase(
        "release-deployment",
        '.projectReference.id + "/" + (.id | tostring)',
        '.release.name + " " + (.attempt | tostring)',
        {"status": (".deploymentStatus", "string"), "operation": (".operationStatus", "string")},
        relation=("release", "release", '.projectReference.id + "/" + (.release.id | tostring)'),
    ),
    KindCase(
        "work-item",
        '.__projectId + "/" + (.id | tostring)',
        '.fields["System.Title"]',
        {"type": ('.fields["System.WorkItemType"]', "string"), "state": ('.fields["System.State"]', "string")},
        relation=("project", "project", ".__projectId"),
    ),
    KindCase(
        "board",
        '.__project.id + "/" + .id',
        ".name",
        {"columns": (".columns | length", "number"), "valid": (".isValid", "boolean")},
        relation=("project", "project", ".__project.id"),
    ),
    KindCase(
        "column",
        '.__board.id + "/" + .id + "/" + (.__stateType | @base64)',
        ".name",
        {"state": (".__stateName", "string"), "type": (".columnType", "string")},
        relation=("board", "board", '.__board.__project.id + "/" + .__board.id'),
    ),
    KindCase(
        "team",
        ".id",
        ".name",
        {"description": (".description", "string"), "members": (".__members | length", "number")},
        relation=("project", "project", ".projectId"),
        selector={"includeMembers": True},
    ),
    KindCase(
        "iteration",
        '.__team.id + "/" + .id',
        ".name",
        {"path": (".path", "string"), "timeFrame": (".attributes.timeFrame", "string")},
        relation=("team", "team", ".__team.id"),
    ),
    KindCase(
        "area-path",
        ".identifier",
        ".name",
        {"path": (".__normalizedPath", "string"), "children": (".hasChildren", "boolean")},
        relation=("project", "project", ".__project.id"),
    ),
    KindCase(
        "member",
        '.__teamId + "/" + .identity.id',
        ".identity.displayName",
        {"admin": (".isTeamAdmin", "boolean"), "email": (".identity.uniqueName", "string")},
        relation=("team", "team", ".__teamId"),
    ),
    KindCase(
        "user",
        ".id",
        ".user.displayName",
        {"email": (".user.mailAddress", "string"), "license": (".accessLevel.licenseDisplayName", "string")},
    ),
    KindCase(
        "group",
        ".descriptor",
        ".displayName",
        {"origin": (".origin", "string"), "principal": (".principalName", "string")},
    ),
    KindCase(
        "group-member",
        '.__group.descriptor + "/" + .descriptor',
        ".displayName",
        {"kind": (".subjectKind", "string"), "principal": (".principalName", "string")},
        relation=("group", "group", ".__group.descriptor"),
    ),
    KindCase(
        "test-run",
        '.project.id + "/" + (.id | tostring)',
        ".name",
        {
            "state": (".state", "string"),
            "total": (".totalTests", "number"),
            "results": (".__testResults | length", "number"),
        },
        relation=("project", "project", ".project.id"),
    ),
    KindCase(
        "advanced-security-alert",
        '.__repositoryId + "/" + (.alertId | tostring)',
        ".title",
        {"severity": (".severity", "string"), "state": (".state", "string"), "type": (".alertType", "string")},
        relation=("repository", "repository", ".__repositoryId"),
        repository=".__repositoryId",
    ),
    KindCase(
        "file",
        '.repo.id + "/" + .file.path',
        ".file.path",
        {"size": (".file.size", "number"), "parsed": (".file.content.parsed | type", "string")},
        relation=("repository", "repository", ".repo.id"),
        repository=".repo.id",
        selector={"files": {"path": ["port.yml", "**/main.*"]}},
    ),
    KindCase(
        "folder",
        '.__repository.id + "/" + .__branch + .path',
        ".path",
        {"branch": (".__branch", "string"), "pattern": (".__pattern", "string")},
        relation=("repository", "repository", ".__repository.id"),
        repository=".__repository.id",
        selector={"folders": [{"path": "src/*"}, {"path": "cmd/*"}]},
    ),
    KindCase(
        "wiki",
        '.__wiki.id + "/" + (.id | tostring)',
        ".path",
        {"wiki": (".__wiki.name", "string"), "type": (".__wiki.type", "string")},
        relation=("project", "project", ".__project.id"),
    ),
)

CASE_OF: dict[str, KindCase] = {case.kind: case for case in CASES}


def blueprints() -> list[dict[str, Any]]:
    """One blueprint per kind: its properties typed, its relation to the parent kind's blueprint."""
    out: list[dict[str, Any]] = []
    for case in CASES:
        blueprint: dict[str, Any] = {
            "identifier": case.blueprint,
            "title": case.kind,
            "schema": {"properties": {name: {"type": kind} for name, (_, kind) in case.properties.items()}},
        }
        if case.relation is not None:
            name, parent, _ = case.relation
            blueprint["relations"] = {name: {"target": blueprint_of(parent), "required": False, "many": False}}
        out.append(blueprint)
    return out


def mapping() -> PortAppConfig:
    """Ocean's mapping format: one resource per kind, in :data:`CASES`' order."""
    resources = [
        mapping_resource(
            case.kind,
            case.blueprint,
            identifier=case.identifier,
            title=case.title,
            properties={name: program for name, (program, _) in case.properties.items()},
            relations={case.relation[0]: case.relation[2]} if case.relation else None,
            **case.selector,
        )
        for case in CASES
    ]
    return parse_port_app_config(
        {
            "deleteDependentEntities": True,
            "createMissingRelatedEntities": False,
            "enableMergeEntity": True,
            "entityDeletionThreshold": 1,
            "resources": resources,
        }
    )


# ---------------------------------------------------------------------------------------------- what Azure holds


@dataclass(frozen=True)
class Expected:
    """What one kind's items map to, computed by libjq: entity by identifier (title, properties,
    relations), and the identifiers of the items living in each repository."""

    entities: dict[str, dict[str, Any]]
    by_repository: dict[str, set[str]]


@functools.cache
def libjq(program: str) -> Any:
    """``program`` compiled by libjq, once."""
    return jq.compile(program)


def jq_first(program: str, item: Item) -> Any:
    """``program``'s first output on ``item``, by libjq."""
    return libjq(program).input_value(item).first()


def expected_of(case: KindCase, items: list[Item]) -> Expected:
    """The entities ``items`` must become; asserts every identifier is produced once."""
    keys = [jq_first(case.identifier, item) for item in items]
    assert all(isinstance(key, str) and key for key in keys), (case.kind, keys)
    assert len(set(keys)) == len(keys), f"{case.kind}: the natural key is not unique: {sorted(keys)}"
    entities: dict[str, dict[str, Any]] = {}
    by_repository: dict[str, set[str]] = {}
    for key, item in zip(keys, items, strict=True):
        # A property whose program gives null is left out, as Port leaves it out.
        properties = {name: jq_first(program, item) for name, (program, _) in case.properties.items()}
        properties = {name: value for name, value in properties.items() if value is not None}
        relations = {case.relation[0]: jq_first(case.relation[2], item)} if case.relation else {}
        entities[key] = {"title": jq_first(case.title, item), "properties": properties, "relations": relations}
        if case.repository is not None:
            by_repository.setdefault(str(jq_first(case.repository, item)), set()).add(key)
    return Expected(entities, by_repository)


def read_everything(live: LiveEmulator, config: PortAppConfig) -> dict[str, Expected]:
    """Every kind of ``config`` read by its fetcher, on one client and one fetch context for the
    organisation (as the resync shares them between resources), and mapped by libjq."""

    async def main() -> dict[str, list[Item]]:
        url = f"{live.base_url}/fabrikam"
        out: dict[str, list[Item]] = {}
        async with AzureDevOpsRest(url, PAT, retry=RETRY, timeout=10.0) as rest:
            ctx = FetchContext(rest, url)
            for resource in config.resources:
                items: list[Item] = []
                async for batch in fetcher_for(resource.kind)(ctx, resource):
                    items.extend(batch)
                out[resource.kind] = items
        return out

    return {kind: expected_of(CASE_OF[kind], items) for kind, items in asyncio.run(main()).items()}


# ---------------------------------------------------------------------------------------------- the catalog


def catalog_entities(catalog: Catalog, blueprint: str) -> dict[str, dict[str, Any]]:
    """The blueprint's entities by identifier: title, properties, relations."""
    out: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        page, cursor = catalog.list_entities(blueprint, limit=1000, cursor=cursor)
        for entity in page:
            out[entity["identifier"]] = {
                "title": entity.get("title"),
                "properties": entity.get("properties", {}),
                "relations": entity.get("relations", {}),
            }
        if cursor is None:
            return out


def held(catalog: Catalog) -> dict[str, dict[str, dict[str, Any]]]:
    return {case.kind: catalog_entities(catalog, case.blueprint) for case in CASES}


def resync(store: IngestStore, target: Integration) -> ResyncState:
    return asyncio.run(Resyncer(store, rest_options=FAST).run(target))


def assert_catalog_is(catalog: Catalog, expected: dict[str, Expected]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each blueprint holds exactly the expected entities, and every relation names an entity of
    its target blueprint; returns what the catalog holds."""
    holding = held(catalog)
    for case in CASES:
        got = holding[case.kind]
        want = expected[case.kind].entities
        assert set(got) == set(want), (case.kind, sorted(set(got) ^ set(want))[:10])
        assert got == want, case.kind
        if case.relation is not None:
            name, parent, _ = case.relation
            targets = {entity["relations"][name] for entity in got.values()}
            missing = targets - set(holding[parent])
            assert not missing, f"{case.kind}.{name} points at no {parent}: {sorted(missing)[:5]}"
    return holding


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def live(start_emulator: EmulatorFactory) -> LiveEmulator:
    """A small generated organisation (3 generated projects besides the configured ``web``)."""
    return start_emulator(config=with_generated_org(CONFIG, projects=3, repos=6, workitems=20, users=6), execute=False)


@pytest.fixture
def catalog(db: Database) -> Catalog:
    catalog = Catalog(db)
    create_blueprints(catalog, blueprints(), actor="test")
    return catalog


@pytest.fixture
def target(live: LiveEmulator) -> Integration:
    """The integration reading fabrikam with :func:`mapping`."""
    return azure_devops_integration(f"{live.base_url}/fabrikam", mapping(), pat=PAT)


# ---------------------------------------------------------------------------------------------- tests


def test_the_mapping_names_every_kind_once() -> None:
    assert [case.kind for case in CASES] == list(dict.fromkeys(case.kind for case in CASES))
    assert set(CASE_OF) == set(KINDS)
    assert [resource.kind for resource in mapping().resources] == [case.kind for case in CASES]


def test_every_kind_is_resynced_exactly_and_a_second_resync_writes_nothing(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, target: Integration
) -> None:
    state = resync(store, target)

    assert state.status == "completed", json.dumps(state.to_json(), default=str)[:4000]
    [org] = state.organizations
    assert [resource.kind for resource in org.resources] == [case.kind for case in CASES]
    for resource in org.resources:
        assert resource.status == "completed", resource
        assert resource.fetched > 0, f"{resource.kind}: nothing read"
        assert resource.mapped == resource.fetched and resource.failed == 0 and resource.filtered == 0, resource
        assert resource.created == resource.mapped, resource
    expected = read_everything(live, target.mapping)
    for resource in org.resources:
        assert resource.fetched == len(expected[resource.kind].entities), resource.kind
    before = assert_catalog_is(catalog, expected)

    again = resync(store, target)

    assert again.status == "completed", json.dumps(again.to_json(), default=str)[:4000]
    totals = again.totals()
    assert (totals["created"], totals["updated"], totals["deleted"], totals["failed"]) == (0, 0, 0, 0), totals
    assert totals["unchanged"] == totals["mapped"] == sum(len(e.entities) for e in expected.values())
    assert held(catalog) == before


def test_a_deleted_repository_takes_exactly_its_own_entities_with_it(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, target: Integration
) -> None:
    assert resync(store, target).status == "completed"
    expected = read_everything(live, target.mapping)
    before = assert_catalog_is(catalog, expected)
    children = {case.kind for case in CASES if case.repository is not None}

    def owned(repository: str) -> dict[str, set[str]]:
        return {kind: expected[kind].by_repository.get(repository, set()) for kind in children}

    # The repository with children in the most kinds (and the most children among those).
    repositories = expected["repository"].by_repository
    chosen = max(
        repositories, key=lambda r: (sum(1 for ids in owned(r).values() if ids), sum(map(len, owned(r).values())))
    )
    gone = owned(chosen)
    assert {kind for kind, ids in gone.items() if ids} == children, gone
    # Builds outlive their repository: they stay, their first commit no longer readable.
    builds = {key for key, build in before["build"].items() if build["properties"]["repository"] == chosen}
    assert builds
    project = next(
        p["name"]
        for p in live.client.get("/fabrikam/_apis/projects").json()["value"]
        if p["id"] == before["repository"][chosen]["relations"]["project"]
    )
    answer = live.client.delete(f"/_emulator/orgs/fabrikam/projects/{project}/repositories/{chosen}")
    assert answer.status_code in (200, 204), answer.text

    state = resync(store, target)

    assert state.status == "completed", json.dumps(state.to_json(), default=str)[:4000]
    [org] = state.organizations
    assert org.deletion.ran and org.deletion.deleted == sum(map(len, gone.values())), org.deletion
    for resource in org.resources:
        assert resource.status == "completed" and resource.failed == 0 and resource.mapped == resource.fetched, resource
    [build_state] = [resource for resource in org.resources if resource.kind == "build"]
    assert build_state.skipped == {"build: first commit in a repository that is gone or disabled": len(builds)}
    after = read_everything(live, target.mapping)
    holding = assert_catalog_is(catalog, after)
    for case in CASES:
        assert set(holding[case.kind]) == set(before[case.kind]) - gone.get(case.kind, set()), case.kind
    assert builds <= set(holding["build"])
    assert all("first" not in holding["build"][key]["properties"] for key in builds)
