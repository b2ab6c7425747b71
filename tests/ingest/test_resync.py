"""The resync end to end: a generated organisation served by the emulator over real HTTP, written
into a real catalog (SQLite and PostgreSQL), then changed, broken and resynced again — asserting
exactly which entities exist after each step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.blueprints import blueprint
from tests.support.integrations import (
    all_entities,
    azure_devops_integration,
    create_blueprints,
    mapping_resource,
    pull_request_resource,
    repository_resource,
)
from tests.support.rest import FAST

from kiosk.azure.ratelimit import RetryPolicy
from kiosk.catalog.service import Catalog
from kiosk.ingest import resync as resync_module
from kiosk.ingest.config import Integration
from kiosk.ingest.defaults import default_mapping, default_mapping_document
from kiosk.ingest.fetch.base import FetchContext
from kiosk.ingest.initialize import initialize_defaults
from kiosk.ingest.mapping import PortAppConfig, parse_port_app_config
from kiosk.ingest.resync import Resyncer, literal_blueprint
from kiosk.ingest.state import ResyncState
from kiosk.ingest.store import IngestStore
from kiosk.store.engine import Database

__all__ = ["start_emulator"]


BLUEPRINTS: list[dict[str, Any]] = [
    blueprint("adoProject", "Project", {"state": "string", "visibility": "string"}),
    blueprint("adoRepo", "Repository", {"url": "string", "defaultBranch": "string"}, {"project": "adoProject"}),
    blueprint("adoPullRequest", "Pull request", {"status": "string"}, {"repository": "adoRepo"}),
]

MAPPING: dict[str, Any] = {
    "deleteDependentEntities": True,
    "createMissingRelatedEntities": False,
    "enableMergeEntity": True,
    "entityDeletionThreshold": 1,
    "resources": [
        mapping_resource("project", "adoProject", properties={"state": ".state", "visibility": ".visibility"}),
        repository_resource("adoRepo"),
        pull_request_resource("adoPullRequest", {"status": ".status"}),
    ],
}


def integration(
    base_url: str, *, mapping: PortAppConfig | None = None, orgs: list[str] | None = None, pat: str = PAT
) -> Integration:
    """The test integration: fabrikam (or ``orgs``) with :data:`MAPPING` (or ``mapping``)."""
    return azure_devops_integration(orgs or [f"{base_url}/fabrikam"], mapping or MAPPING, pat=pat)


def resync(store: IngestStore, target: Integration) -> ResyncState:
    return asyncio.run(Resyncer(store, rest_options=FAST).run(target))


def identifiers(catalog: Catalog, blueprint: str) -> set[str]:
    return {entity["identifier"] for entity in all_entities(catalog, blueprint)}


def azure(live: LiveEmulator, path: str, key: str = "value", **params: str) -> list[Any]:
    answer = live.client.get(f"/fabrikam/{path}", params={"api-version": "7.1", **params})
    assert answer.status_code == 200, answer.text
    return list(answer.json()[key])


def azure_repositories(live: LiveEmulator) -> list[dict[str, Any]]:
    return [
        repo
        for project in azure(live, "_apis/projects")
        for repo in azure(live, f"{project['id']}/_apis/git/repositories")
    ]


def switches(live: LiveEmulator, body: dict[str, Any]) -> None:
    answer = live.client.put("/_emulator/switches", json=body)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def live(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG, projects=3, repos=8, workitems=40, users=12), execute=False)


def test_literal_blueprints_are_recognised() -> None:
    assert literal_blueprint('"adoRepo"') == "adoRepo"
    assert literal_blueprint(' "a b" ') == "a b"
    assert literal_blueprint('.kind + "x"') is None
    assert literal_blueprint('"a\\"b"') is None


def test_a_resync_writes_what_azure_holds_and_a_second_one_writes_nothing(
    live: LiveEmulator, catalog: Catalog, store: IngestStore
) -> None:
    state = resync(store, integration(live.base_url))
    assert state.status == "completed", state.to_json()
    projects = azure(live, "_apis/projects")
    repos = azure_repositories(live)
    assert identifiers(catalog, "adoProject") == {p["id"] for p in projects}
    assert identifiers(catalog, "adoRepo") == {r["id"] for r in repos}
    some = catalog.get_entity("adoRepo", repos[0]["id"])
    assert some["title"] == repos[0]["name"]
    assert some["relations"]["project"] == repos[0]["project"]["id"]
    prs = identifiers(catalog, "adoPullRequest")
    assert prs and all(pr.split("/")[0] in identifiers(catalog, "adoRepo") for pr in prs)
    org = state.organizations[0]
    assert [r.kind for r in org.resources] == ["project", "repository", "pull-request"]
    assert org.resources[1].created == len(repos)
    assert org.deletion.ran

    before = {e["identifier"]: e["updatedAt"] for e in all_entities(catalog, "adoRepo")}
    again = resync(store, integration(live.base_url))
    assert again.status == "completed"
    totals = again.totals()
    assert totals["created"] == 0 and totals["updated"] == 0 and totals["deleted"] == 0
    assert totals["unchanged"] == totals["mapped"] > 0
    after = {e["identifier"]: e["updatedAt"] for e in all_entities(catalog, "adoRepo")}
    assert after == before
    assert store.load_state("ado") is not None and store.load_state("ado").status == "completed"  # type: ignore[union-attr]


def test_renamed_and_deleted_repositories_are_reconciled_and_others_entities_kept(
    live: LiveEmulator, catalog: Catalog, store: IngestStore
) -> None:
    assert resync(store, integration(live.base_url)).status == "completed"
    catalog.upsert_entity("adoRepo", {"identifier": "hand-made", "title": "Mine"}, actor="someone")
    repos = azure_repositories(live)
    renamed, deleted = repos[0], repos[1]
    project = renamed["project"]["name"]
    answer = live.client.patch(
        f"/_emulator/orgs/fabrikam/projects/{project}/repositories/{renamed['id']}", json={"name": "renamed-repo"}
    )
    assert answer.status_code == 200, answer.text
    answer = live.client.delete(
        f"/_emulator/orgs/fabrikam/projects/{deleted['project']['name']}/repositories/{deleted['id']}"
    )
    assert answer.status_code in (200, 204), answer.text

    state = resync(store, integration(live.base_url))
    assert state.status == "completed", state.to_json()
    repo_ids = identifiers(catalog, "adoRepo")
    assert repo_ids == {r["id"] for r in repos if r["id"] != deleted["id"]} | {"hand-made"}
    assert catalog.get_entity("adoRepo", renamed["id"])["title"] == "renamed-repo"
    assert not any(pr.startswith(deleted["id"] + "/") for pr in identifiers(catalog, "adoPullRequest"))


def test_a_failed_list_deletes_nothing(live: LiveEmulator, catalog: Catalog, store: IngestStore) -> None:
    assert resync(store, integration(live.base_url)).status == "completed"
    everything = {bp: identifiers(catalog, bp) for bp in ("adoProject", "adoRepo", "adoPullRequest")}
    repos = azure_repositories(live)
    gone = repos[2]
    live.client.delete(f"/_emulator/orgs/fabrikam/projects/{gone['project']['name']}/repositories/{gone['id']}")
    # Every repository list answers 500: the repositories could not be read, so none may be deleted.
    switches(live, {"faults": [{"pathRegex": ".*/_apis/git/repositories$", "errorRate": 1, "errorStatus": 500}]})
    state = resync(store, integration(live.base_url))
    assert state.status == "failed"
    org = state.organizations[0]
    assert org.status == "failed" and not org.deletion.ran
    assert "500" in (org.error or "") or "repositor" in (org.error or "")
    assert {bp: identifiers(catalog, bp) for bp in everything} == everything


def test_a_revoked_token_deletes_nothing(live: LiveEmulator, catalog: Catalog, store: IngestStore) -> None:
    assert resync(store, integration(live.base_url)).status == "completed"
    everything = {bp: identifiers(catalog, bp) for bp in ("adoProject", "adoRepo", "adoPullRequest")}
    state = resync(store, integration(live.base_url, pat="revoked-or-wrong"))
    assert state.status == "failed"
    org = state.organizations[0]
    assert not org.deletion.ran
    assert all(r.status == "failed" for r in org.resources)
    assert {bp: identifiers(catalog, bp) for bp in everything} == everything


def test_throttling_is_waited_out_and_the_resync_completes(
    live: LiveEmulator, catalog: Catalog, store: IngestStore
) -> None:
    switches(live, {"throttling": {"budget": 20, "windowSeconds": 1, "warnAt": 0.5}})
    state = resync(store, integration(live.base_url))
    assert state.status == "completed", state.to_json()
    assert identifiers(catalog, "adoRepo") == {r["id"] for r in azure_repositories(live)}


def test_one_organisation_down_neither_blocks_nor_deletes_the_other(
    live: LiveEmulator, catalog: Catalog, store: IngestStore
) -> None:
    dead = "http://127.0.0.1:9/nowhere"
    both = integration(live.base_url, orgs=[f"{live.base_url}/fabrikam", dead])
    assert resync(store, integration(live.base_url)).status == "completed"
    kept = identifiers(catalog, "adoRepo")
    state = resync(store, both)
    assert state.status == "failed"
    by_url = {org.url: org for org in state.organizations}
    assert by_url[f"{live.base_url}/fabrikam"].status == "completed"
    assert by_url[dead].status == "failed" and not by_url[dead].deletion.ran
    assert identifiers(catalog, "adoRepo") == kept


def test_ocean_default_mapping_fills_the_default_blueprints(live: LiveEmulator, db: Database) -> None:
    catalog = Catalog(db)
    initialize_defaults(catalog, actor="test")
    store = IngestStore(db, catalog)
    state = resync(store, integration(live.base_url, mapping=default_mapping()))
    assert state.status == "completed", state.to_json()
    projects = azure(live, "_apis/projects")
    assert identifiers(catalog, "azureDevopsProject") == {p["id"].replace(" ", "") for p in projects}
    assert identifiers(catalog, "azureDevopsRepository") >= {r["id"] for r in azure_repositories(live)}
    work_items = all_entities(catalog, "azureDevopsWorkItem")
    columns = identifiers(catalog, "azureDevopsColumn")
    assert work_items and columns
    # The fixed relation: a work item on a board column points at a column entity that exists.
    pointing = [w["relations"]["column"] for w in work_items if w["relations"].get("column")]
    assert pointing and set(pointing) <= columns
    assert identifiers(catalog, "azureDevopsBoard")
    for resource in state.organizations[0].resources:
        assert resource.status == "completed", resource


def test_an_unreachable_emulator_is_an_error_not_an_empty_org(catalog: Catalog, store: IngestStore) -> None:
    # Nothing listens on port 9 (discard): every call fails to connect.
    state = resync(store, integration("http://127.0.0.1:9"))
    assert state.status == "failed"
    assert state.organizations[0].error


def test_entities_whose_relation_target_comes_later_in_the_mapping_are_written_at_the_end(
    live: LiveEmulator, db: Database
) -> None:
    catalog = Catalog(db)
    initialize_defaults(catalog, actor="test")
    document = default_mapping_document()
    kinds = [resource["kind"] for resource in document["resources"]]
    # Ocean's own order: work items before the columns they point at.
    document["resources"].append(document["resources"].pop(kinds.index("column")))
    state = resync(IngestStore(db, catalog), integration(live.base_url, mapping=parse_port_app_config(document)))
    assert state.status == "completed", state.to_json()
    [work_items] = [r for r in state.organizations[0].resources if r.kind == "work-item"]
    assert work_items.failed == 0 and work_items.created == work_items.mapped > 0
    columns = identifiers(catalog, "azureDevopsColumn")
    pointing = [
        w["relations"]["column"] for w in all_entities(catalog, "azureDevopsWorkItem") if w["relations"]["column"]
    ]
    assert pointing and set(pointing) <= columns


def test_a_project_list_failing_mid_page_deletes_nothing(start_emulator: EmulatorFactory, db: Database) -> None:
    live = start_emulator(config=with_generated_org(CONFIG, projects=104, repos=6, workitems=0, users=5), execute=False)
    catalog = Catalog(db)
    create_blueprints(catalog, BLUEPRINTS, actor="test")
    store = IngestStore(db, catalog)
    assert resync(store, integration(live.base_url)).status == "completed"
    everything = {bp: identifiers(catalog, bp) for bp in ("adoProject", "adoRepo", "adoPullRequest")}
    assert len(everything["adoProject"]) == 105  # more than one page of projects ($top=100)
    gone = azure_repositories(live)[0]
    live.client.delete(f"/_emulator/orgs/fabrikam/projects/{gone['project']['name']}/repositories/{gone['id']}")
    switches(
        live,
        {"faults": [{"path": "/fabrikam/_apis/projects", "failPage": {"page": 1, "status": 500, "times": "always"}}]},
    )
    state = resync(store, integration(live.base_url))
    assert state.status == "failed"
    assert not state.organizations[0].deletion.ran
    assert {bp: identifiers(catalog, bp) for bp in everything} == everything


def test_pull_requests_not_all_read_are_kept_whole_and_their_targets_spared(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetcher that meets Azure's "no data" answer for one repository (counted as unread): the
    pull requests are kept whole this time; the other blueprints still delete."""
    assert resync(store, integration(live.base_url)).status == "completed"
    pull_requests = identifiers(catalog, "adoPullRequest")
    repos = azure_repositories(live)
    silent, gone = repos[0], repos[1]
    live.client.delete(f"/_emulator/orgs/fabrikam/projects/{gone['project']['name']}/repositories/{gone['id']}")
    real = resync_module.fetcher_for

    def one_repository_unread(kind: str) -> Any:
        fetch = real(kind)
        if kind != "pull-request":
            return fetch

        async def fetcher(ctx: FetchContext, resource: Any) -> AsyncIterator[list[dict[str, Any]]]:
            ctx.skip("pull-request: repository without data (404)", unread=True)
            async for batch in fetch(ctx, resource):
                yield [pr for pr in batch if pr["repository"]["id"] != silent["id"]]

        return fetcher

    monkeypatch.setattr(resync_module, "fetcher_for", one_repository_unread)
    state = resync(store, integration(live.base_url))
    org = state.organizations[0]
    assert state.status == "completed", state.to_json()
    [prs] = [r for r in org.resources if r.kind == "pull-request"]
    assert prs.skipped == {"pull-request: repository without data (404)": 1}
    # Pull requests are kept whole this time, so the deleted repository, which kept pull
    # requests point at, is spared too.
    assert identifiers(catalog, "adoPullRequest") == pull_requests
    assert gone["id"] in identifiers(catalog, "adoRepo")
    assert org.deletion.ran and org.deletion.spared >= 1 and "adoPullRequest" in (org.deletion.reason or "")
    # Once every list reads again, the repository and its pull requests go.
    monkeypatch.setattr(resync_module, "fetcher_for", real)
    assert resync(store, integration(live.base_url)).status == "completed"
    assert gone["id"] not in identifiers(catalog, "adoRepo")
    left = identifiers(catalog, "adoPullRequest")
    assert left == {pr for pr in pull_requests if not pr.startswith(gone["id"] + "/")}


def test_a_pull_request_list_answering_404_deletes_nothing(
    live: LiveEmulator, catalog: Catalog, store: IngestStore
) -> None:
    assert resync(store, integration(live.base_url)).status == "completed"
    everything = {bp: identifiers(catalog, bp) for bp in ("adoProject", "adoRepo", "adoPullRequest")}
    gone = azure_repositories(live)[0]
    live.client.delete(f"/_emulator/orgs/fabrikam/projects/{gone['project']['name']}/repositories/{gone['id']}")
    project = next(r for r in azure_repositories(live))["project"]["id"]
    switches(live, {"faults": [{"path": f"/fabrikam/{project}/_apis/git/pullrequests", "notFound": True}]})
    state = resync(store, integration(live.base_url))
    assert state.status == "failed"
    org = state.organizations[0]
    assert not org.deletion.ran and "404" in (org.error or "")
    assert {bp: identifiers(catalog, bp) for bp in everything} == everything


def test_a_timeout_deletes_nothing(live: LiveEmulator, catalog: Catalog, store: IngestStore) -> None:
    assert resync(store, integration(live.base_url)).status == "completed"
    everything = {bp: identifiers(catalog, bp) for bp in ("adoProject", "adoRepo", "adoPullRequest")}
    gone = azure_repositories(live)[0]
    live.client.delete(f"/_emulator/orgs/fabrikam/projects/{gone['project']['name']}/repositories/{gone['id']}")
    switches(live, {"faults": [{"pathRegex": ".*/pullrequests$", "holdSeconds": 3}]})
    quick = {"retry": RetryPolicy(max_attempts=1, base_delay=0.01, max_delay=0.02), "timeout": 1.0}
    state = asyncio.run(Resyncer(store, rest_options=quick).run(integration(live.base_url)))
    assert state.status == "failed"
    org = state.organizations[0]
    error = (org.error or "").lower()
    assert not org.deletion.ran and ("timed out" in error or "timeout" in error)
    assert {bp: identifiers(catalog, bp) for bp in everything} == everything


def test_closed_pull_requests_are_reconciled_by_closing_time(live: LiveEmulator, db: Database) -> None:
    catalog = Catalog(db)
    create_blueprints(catalog, BLUEPRINTS, actor="test")
    store = IngestStore(db, catalog)
    assert resync(store, integration(live.base_url)).status == "completed"
    repo = next(r for r in azure_repositories(live) if r.get("isDisabled") is not True)
    project = repo["project"]["name"]
    active = azure(live, f"{repo['project']['id']}/_apis/git/repositories/{repo['id']}/pullrequests")
    if not active:
        answer = live.client.post(
            f"/_emulator/orgs/fabrikam/projects/{project}/repositories/{repo['id']}/pullrequests",
            json={"sourceRefName": "refs/heads/feature/x", "targetRefName": repo["defaultBranch"], "title": "x"},
        )
        assert answer.status_code == 201, answer.text
        assert resync(store, integration(live.base_url)).status == "completed"
        active = azure(live, f"{repo['project']['id']}/_apis/git/repositories/{repo['id']}/pullrequests")
    pr = active[0]
    key = f"{repo['id']}/{pr['pullRequestId']}"
    assert catalog.get_entity("adoPullRequest", key)["properties"]["status"] == "active"
    answer = live.client.patch(
        f"/_emulator/orgs/fabrikam/projects/{project}/pullrequests/{pr['pullRequestId']}", json={"status": "abandoned"}
    )
    assert answer.status_code == 200, answer.text
    # Closed just now: within minTimeInDays, so it stays, abandoned.
    assert resync(store, integration(live.base_url)).status == "completed"
    assert catalog.get_entity("adoPullRequest", key)["properties"]["status"] == "abandoned"
    # A mapping asking for closed ones of the last day only still sees it; one that reads none of
    # the closed ones (maxResults of the other status cannot reach it) keeps only active ones.
    narrow = parse_port_app_config(
        {
            **MAPPING,
            "resources": [
                *MAPPING["resources"][:2],
                {**MAPPING["resources"][2], "selector": {"query": '.status == "active"', "minTimeInDays": 1}},
            ],
        }
    )
    assert resync(store, integration(live.base_url, mapping=narrow)).status == "completed"
    left = identifiers(catalog, "adoPullRequest")
    assert key not in left
    assert left and all(catalog.get_entity("adoPullRequest", i)["properties"]["status"] == "active" for i in left)
