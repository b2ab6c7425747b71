"""The unchanged resync: work items proven unchanged by their revision are not read in full, and
whatever changed — in Azure, in the catalog, in the mapping — is read and written again.

A generated organisation served by the emulator over real HTTP; every request the resync makes is
counted by method and path through the client's transport."""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.blueprints import blueprint
from tests.support.integrations import azure_devops_integration, mapping_resource, merged_mapping, work_item_resource
from tests.support.rest import FAST

from kiosk.azure.rest import AzureDevOpsRest
from kiosk.catalog.service import Catalog
from kiosk.ingest.config import Integration
from kiosk.ingest.resync import CHANGED_SINCE_MARGIN, Resyncer
from kiosk.ingest.state import ResyncState
from kiosk.ingest.store import IngestStore
from kiosk.ingest.transform import CompiledResource
from kiosk.store.engine import Database
from kiosk.store.tables import ingest_item_marks, ingest_resource_reads

__all__ = ["start_emulator"]

WORK_ITEMS = 40

BLUEPRINTS: list[dict[str, Any]] = [
    blueprint("adoProject", "Project", {"state": "string"}),
    blueprint("adoWorkItem", "Work item", {"state": "string", "type": "string"}, {"project": "adoProject"}),
]

MAPPING: dict[str, Any] = merged_mapping(
    mapping_resource("project", "adoProject", properties={"state": ".state"}),
    work_item_resource("adoWorkItem", relations={"project": ".__projectId"}),
)

FULL_READ = ("GET", "_apis/wit/workitems")
CHEAP_READ = ("POST", "_apis/wit/workitemsbatch")
WIQL = ("POST", "_apis/wit/wiql")


class Requests:
    """Every request of the resyncs' clients: (method, last two path segments) and the ids each
    full read asked for."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.full_ids: list[int] = []
        self.cheap_ids: list[int] = []
        self.org_queries: list[tuple[str, dict[str, str]]] = []  # organisation-level WIQL: (query, params)

    def clear(self) -> None:
        self.counts.clear()
        self.full_ids.clear()
        self.cheap_ids.clear()
        self.org_queries.clear()

    async def hook(self, request: httpx.Request) -> None:
        segments = request.url.path.rstrip("/").split("/")
        key = (request.method, "/".join(segments[-3:]))
        self.counts[key] += 1
        if key == FULL_READ:
            self.full_ids.extend(int(i) for i in request.url.params["ids"].split(","))
        elif key == CHEAP_READ:
            self.cheap_ids.extend(json.loads(request.content)["ids"])
        elif key == WIQL and request.url.path == "/fabrikam/_apis/wit/wiql":
            self.org_queries.append((json.loads(request.content)["query"], dict(request.url.params)))

    def client(self, organization_url: str, pat: str) -> AzureDevOpsRest:
        rest = AzureDevOpsRest(organization_url, pat, **FAST)
        rest._http.event_hooks["request"].append(self.hook)
        return rest


def integration(base_url: str, mapping: dict[str, Any] | None = None) -> Integration:
    return azure_devops_integration([f"{base_url}/fabrikam"], mapping or MAPPING, pat=PAT)


def entities(catalog: Catalog, blueprint: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        page, cursor = catalog.list_entities(blueprint, limit=1000, cursor=cursor)
        out.update((entity["identifier"], entity) for entity in page)
        if cursor is None:
            return out


def azure_work_items(live: LiveEmulator) -> dict[int, dict[str, Any]]:
    """Every live work item of the organisation (id → item), read straight from the emulator."""
    out: dict[int, dict[str, Any]] = {}
    for project in live.client.get("/fabrikam/_apis/projects", params={"api-version": "7.1"}).json()["value"]:
        answer = live.client.post(
            f"/fabrikam/{project['id']}/_apis/wit/wiql",
            params={"api-version": "7.1"},
            json={"query": f"SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = '{project['name']}'"},
        )
        assert answer.status_code == 200, answer.text
        ids = [ref["id"] for ref in answer.json()["workItems"]]
        for start in range(0, len(ids), 200):
            listed = live.client.get(
                f"/fabrikam/{project['id']}/_apis/wit/workitems",
                params={"api-version": "7.1", "ids": ",".join(map(str, ids[start : start + 200]))},
            ).json()["value"]
            out.update((item["id"], {**item, "projectId": project["id"]}) for item in listed)
    return out


@pytest.fixture
def live(start_emulator: EmulatorFactory) -> LiveEmulator:
    config = with_generated_org(CONFIG, projects=3, repos=4, workitems=WORK_ITEMS, users=12)
    return start_emulator(config=config, execute=False)


@pytest.fixture
def requests() -> Iterator[Requests]:
    yield Requests()


def resync(store: IngestStore, requests: Requests, target: Integration) -> ResyncState:
    requests.clear()
    state = asyncio.run(Resyncer(store, rest_factory=requests.client).run(target))
    assert state.status == "completed", state.to_json()
    return state


def resynced_work_items(live: LiveEmulator, store: IngestStore, requests: Requests) -> dict[int, dict[str, Any]]:
    """The org's work items as Azure lists them, once a first complete resync wrote them: where most
    tests here start."""
    azure = azure_work_items(live)
    resync(store, requests, integration(live.base_url))
    return azure


def change_in_azure(
    live: LiveEmulator,
    method: str,
    project: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    title: str | None = None,
) -> None:
    """Change ``path`` of ``project`` in the emulator, as someone working in Azure would (``title``:
    a work item's new ``System.Title``)."""
    if title is not None:
        body = {"fields": {"System.Title": title}}
    answer = live.client.request(method, f"/_emulator/orgs/fabrikam/projects/{project}/{path}", json=body)
    assert answer.status_code == 200, answer.text


def written(state: ResyncState) -> tuple[int, int, int]:
    totals = state.totals()
    return totals["created"], totals["updated"], totals["deleted"]


def read_began(db: Database) -> datetime | None:
    """When the last complete read of the work-item resource began (the only resource kept so)."""
    with db.connect() as conn:
        found = conn.execute(sa.select(ingest_resource_reads.c.began_at)).scalars().all()
    assert len(found) <= 1
    if not found:
        return None
    return found[0].replace(tzinfo=UTC) if found[0].tzinfo is None else found[0]


def marks(db: Database) -> int:
    """The work items marked (keyed by id; items of listed kinds are keyed by a content hash)."""
    with db.connect() as conn:
        return sum(item.isdigit() for item in conn.execute(sa.select(ingest_item_marks.c.item)).scalars())


def test_a_second_resync_of_an_unchanged_org_reads_no_work_item_in_full(
    live: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore, requests: Requests
) -> None:
    azure = azure_work_items(live)
    first = resync(store, requests, integration(live.base_url))
    assert sorted(requests.full_ids) == sorted(azure)
    assert requests.counts[CHEAP_READ] == 0  # nothing held yet: no cheap read is worth making
    stored = entities(catalog, "adoWorkItem")
    assert set(stored) == {str(i) for i in azure}
    assert all(stored[str(i)]["title"] == item["fields"]["System.Title"] for i, item in azure.items())
    assert all(stored[str(i)]["relations"]["project"] == item["projectId"] for i, item in azure.items())
    projects = live.client.get("/fabrikam/_apis/projects", params={"api-version": "7.1"}).json()["count"]
    assert first.totals()["created"] == len(azure) + projects
    assert marks(db) == len(azure)

    began = read_began(db)
    assert began is not None and began <= datetime.now(UTC)
    second = resync(store, requests, integration(live.base_url))
    assert requests.counts[FULL_READ] == 0 and requests.full_ids == []
    # Not even their revisions: one query of the organisation says none changed since the first
    # read began (less the margin), and the marks vouch for the rest.
    assert requests.counts[CHEAP_READ] == 0
    since = (began - CHANGED_SINCE_MARGIN).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert requests.org_queries == [
        (
            f"SELECT [System.Id] FROM WorkItems WHERE ([System.ChangedDate] >= '{since}') AND [System.Id] > 0 "
            "ORDER BY [System.Id] ASC",
            {"api-version": "7.1-preview.2", "$top": "19999", "timePrecision": "true"},
        )
    ]
    assert read_began(db) > began  # the second read was complete too
    assert written(second) == (0, 0, 0)
    work_items = second.organizations[0].resources[1]
    assert work_items.fetched == work_items.mapped == work_items.unchanged == len(azure)
    assert second.organizations[0].deletion.ran
    assert entities(catalog, "adoWorkItem") == stored  # same documents, same updatedAt


def test_a_changed_work_item_is_read_again_and_updated(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, requests: Requests
) -> None:
    azure = resynced_work_items(live, store, requests)
    changed = sorted(azure)[5]
    change_in_azure(live, "PATCH", azure[changed]["projectId"], f"workitems/{changed}", title="Renamed in Azure")
    before = entities(catalog, "adoWorkItem")

    state = resync(store, requests, integration(live.base_url))
    assert requests.cheap_ids == [changed]  # the only one changed since: its revision is read
    assert requests.full_ids == [changed]
    assert written(state) == (0, 1, 0)
    after = entities(catalog, "adoWorkItem")
    assert after[str(changed)]["title"] == "Renamed in Azure"
    assert {k: v for k, v in after.items() if k != str(changed)} == {
        k: v for k, v in before.items() if k != str(changed)
    }
    resync(store, requests, integration(live.base_url))
    assert requests.full_ids == []  # its new revision is held now


def test_a_deleted_work_item_is_deleted_and_forgotten(
    live: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore, requests: Requests
) -> None:
    azure = resynced_work_items(live, store, requests)
    gone = sorted(azure)[0]
    change_in_azure(live, "DELETE", azure[gone]["projectId"], f"workitems/{gone}")

    state = resync(store, requests, integration(live.base_url))
    assert requests.full_ids == []
    assert written(state) == (0, 0, 1)
    assert set(entities(catalog, "adoWorkItem")) == {str(i) for i in azure if i != gone}
    assert marks(db) == len(azure) - 1


def test_an_entity_someone_else_edited_is_restored_from_azure(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, requests: Requests
) -> None:
    azure = resynced_work_items(live, store, requests)
    edited = sorted(azure)[3]
    catalog.patch_entity("adoWorkItem", str(edited), {"title": "edited by hand"}, actor="someone")
    assert catalog.get_entity("adoWorkItem", str(edited))["title"] == "edited by hand"

    state = resync(store, requests, integration(live.base_url))
    assert requests.full_ids == [edited]
    assert written(state) == (0, 1, 0)
    assert catalog.get_entity("adoWorkItem", str(edited))["title"] == azure[edited]["fields"]["System.Title"]


def test_a_relation_lost_with_its_deleted_target_is_written_again(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, requests: Requests
) -> None:
    azure = resynced_work_items(live, store, requests)
    project = azure[sorted(azure)[0]]["projectId"]
    of_project = sorted(i for i, item in azure.items() if item["projectId"] == project)
    # Deleting the project entity drops its work items' edges without touching the work items.
    catalog.delete_entity("adoProject", project)
    assert all(catalog.get_entity("adoWorkItem", str(i))["relations"].get("project") is None for i in of_project)

    resync(store, requests, integration(live.base_url))
    assert sorted(requests.full_ids) == of_project
    assert all(catalog.get_entity("adoWorkItem", str(i))["relations"]["project"] == project for i in of_project)


def test_a_changed_mapping_reads_every_work_item_again(
    live: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore, requests: Requests
) -> None:
    azure = resynced_work_items(live, store, requests)
    changed = copy.deepcopy(MAPPING)
    changed["resources"][1]["port"]["entity"]["mappings"]["properties"]["type"] = '.fields."System.WorkItemType"'

    state = resync(store, requests, integration(live.base_url, changed))
    assert sorted(requests.full_ids) == sorted(azure)
    assert written(state) == (0, len(azure), 0)
    stored = entities(catalog, "adoWorkItem")
    assert all(
        stored[str(i)]["properties"]["type"] == item["fields"]["System.WorkItemType"] for i, item in azure.items()
    )
    assert marks(db) == len(azure)  # the old mapping's marks are gone, the new one's made

    resync(store, requests, integration(live.base_url, changed))
    assert requests.full_ids == []


def test_a_filtered_work_item_stays_unread_and_unwritten(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, requests: Requests
) -> None:
    azure = azure_work_items(live)
    kept = sorted(azure)[: WORK_ITEMS // 2]
    filtered = copy.deepcopy(MAPPING)
    filtered["resources"][1]["selector"]["query"] = f".id <= {kept[-1]}"
    resync(store, requests, integration(live.base_url, filtered))
    assert set(entities(catalog, "adoWorkItem")) == {str(i) for i in kept}

    state = resync(store, requests, integration(live.base_url, filtered))
    assert requests.full_ids == []
    assert written(state) == (0, 0, 0)
    assert set(entities(catalog, "adoWorkItem")) == {str(i) for i in kept}


REPOSITORIES: dict[str, Any] = {
    "kind": "repository",
    "selector": {"query": "true"},
    "port": {
        "entity": {
            "mappings": {
                "identifier": ".id",
                "title": ".name",
                "blueprint": '"adoRepo"',
                "properties": {"url": ".remoteUrl"},
                "relations": {"project": ".project.id"},
            }
        }
    },
}


def test_listed_items_with_the_same_content_are_not_mapped_again(
    live: LiveEmulator, catalog: Catalog, store: IngestStore, requests: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.create_blueprint(
        blueprint("adoRepo", "Repository", {"url": "string"}, {"project": "adoProject"}), actor="test"
    )
    mapping = copy.deepcopy(MAPPING)
    mapping["resources"].insert(1, REPOSITORIES)
    mapped: Counter[str] = Counter()
    original = CompiledResource.map

    def counting(self: CompiledResource, items: Any) -> Any:
        mapped[self.resource.kind] += len(items)
        return original(self, items)

    monkeypatch.setattr(CompiledResource, "map", counting)
    resync(store, requests, integration(live.base_url, mapping))
    repositories = entities(catalog, "adoRepo")
    assert mapped["repository"] == len(repositories) > 1

    mapped.clear()
    state = resync(store, requests, integration(live.base_url, mapping))
    assert mapped == Counter()  # nothing listed changed: nothing mapped, nothing compared
    assert written(state) == (0, 0, 0)
    assert state.organizations[0].resources[1].unchanged == len(repositories)

    renamed = sorted(repositories)[0]
    project = repositories[renamed]["relations"]["project"]
    change_in_azure(live, "PATCH", project, f"repositories/{renamed}", {"name": "renamed-repo"})
    mapped.clear()
    state = resync(store, requests, integration(live.base_url, mapping))
    assert mapped == Counter({"repository": 1})
    assert written(state) == (0, 1, 0)
    assert catalog.get_entity("adoRepo", renamed)["title"] == "renamed-repo"
    assert entities(catalog, "adoRepo").keys() == repositories.keys()


def test_only_a_complete_read_moves_the_time_changes_are_asked_from(
    live: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore, requests: Requests
) -> None:
    azure = resynced_work_items(live, store, requests)
    began = read_began(db)
    assert began is not None
    changed = sorted(azure)[7]
    change_in_azure(
        live, "PATCH", azure[changed]["projectId"], f"workitems/{changed}", title="Changed while kiosk could not read"
    )
    # Full reads fail: the changed item cannot be read, so this read is not complete.
    faults = {"faults": [{"pathRegex": ".*/_apis/wit/workitems$", "errorRate": 1, "errorStatus": 500}]}
    assert live.client.put("/_emulator/switches", json=faults).status_code == 200
    requests.clear()
    failed = asyncio.run(Resyncer(store, rest_factory=requests.client).run(integration(live.base_url)))
    assert failed.status != "completed"
    assert requests.cheap_ids == [changed]
    assert read_began(db) == began  # not moved past the change it missed
    assert live.client.put("/_emulator/switches", json={"faults": []}).status_code == 200

    state = resync(store, requests, integration(live.base_url))
    assert requests.full_ids == [changed]
    assert written(state) == (0, 1, 0)
    assert catalog.get_entity("adoWorkItem", str(changed))["title"] == "Changed while kiosk could not read"


def test_without_a_complete_read_every_revision_is_read(
    live: LiveEmulator, db: Database, store: IngestStore, requests: Requests
) -> None:
    azure = resynced_work_items(live, store, requests)
    with db.begin() as conn:  # as after a resync that wrote marks but never finished a read
        conn.execute(sa.delete(ingest_resource_reads))

    resync(store, requests, integration(live.base_url))
    assert requests.org_queries == []  # no time to ask changes from
    assert sorted(requests.cheap_ids) == sorted(azure)
    assert requests.full_ids == []
    assert read_began(db) is not None  # this read was complete: the next one asks for changes
