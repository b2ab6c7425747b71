"""The live-event processor end to end: changes made in the emulator, its own service hooks
delivering the envelopes, stored as the endpoint stores them, processed into a real catalog
(SQLite and PostgreSQL) over real HTTP — asserting the entities after each event."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator, start_emulator
from tests.emulator.hooks.conftest import PROJECT_ID, subscribe
from tests.support.azure_sdk import with_generated_org
from tests.support.integrations import azure_devops_integration, create_blueprints, mapping_resource
from tests.support.live_events import BLUEPRINTS, EVENT_TYPES, FAST, HOOKS_SETTINGS, Hooks
from tests.support.receiver import Receiver
from tests.support.servers import serving

from kiosk.azure.rest import AzureDevOpsRest
from kiosk.catalog.service import Catalog
from kiosk.ingest.config import Integration
from kiosk.ingest.events import event_job_kind
from kiosk.ingest.events_queue import recent_events
from kiosk.ingest.live.handlers_work import work_item_id
from kiosk.ingest.live.processor import EventProcessor
from kiosk.ingest.resync import Resyncer
from kiosk.ingest.state import ResyncState
from kiosk.ingest.store import IngestStore
from kiosk.store.engine import Database
from kiosk.store.queue import JobQueue
from kiosk.store.tables import ingest_item_marks

__all__ = ["BLUEPRINTS", "start_emulator"]  # BLUEPRINTS: the catalog fixture (tests/ingest/conftest.py) reads it


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=HOOKS_SETTINGS + CONFIG, execute=False)


@contextmanager
def project_hooks(azure: LiveEmulator, db: Database, *event_types: str) -> Iterator[Hooks]:
    """A receiver subscribed to the project's events of these types: what each hooks fixture serves."""
    receiver = Receiver()
    with serving(receiver) as base:
        for event_type in event_types:
            subscribe(azure, base + "/hook", event_type, publisher_inputs={"projectId": PROJECT_ID})
        yield Hooks(azure, receiver, db)


@pytest.fixture
def hooks(azure: LiveEmulator, db: Database) -> Iterator[Hooks]:
    with project_hooks(azure, db, *EVENT_TYPES) as subscribed:
        yield subscribed


@pytest.fixture
def subscribed(azure: LiveEmulator, db: Database) -> Iterator[Callable[[str], Hooks]]:
    """Subscribes a receiver of its own to the project's events of one type, for the test's length."""
    with ExitStack() as stack:
        yield lambda event_type: stack.enter_context(project_hooks(azure, db, event_type))


#: Identifiers that are NOT the item's id: a deleted item must be found by its mark.
WORK_ITEM_IDENTIFIER = '"wi-" + (.id | tostring) + "-" + .fields["System.WorkItemType"]'


def work_items(**selector: Any) -> dict[str, Any]:
    return mapping_resource(
        "work-item",
        "adoWorkItem",
        identifier=WORK_ITEM_IDENTIFIER,
        title='.fields["System.Title"]',
        properties={"state": '.fields["System.State"]', "rev": ".rev"},
        **selector,
    )


PULL_REQUESTS = mapping_resource(
    "pull-request",
    "adoPullRequest",
    identifier='"pr-" + (.pullRequestId | tostring)',
    title=".title",
    properties={"status": ".status"},
    minTimeInDays=3650,
    maxResults=1000,
)
BUILDS = mapping_resource(
    "build",
    "adoBuild",
    identifier='"build-" + (.id | tostring)',
    title=".buildNumber",
    properties={"result": ".result"},
)


def integration(azure: LiveEmulator, *resources: dict[str, Any]) -> Integration:
    mapping = {"enableMergeEntity": True, "resources": list(resources) or [work_items()]}
    return azure_devops_integration(f"{azure.base_url}/fabrikam", mapping, pat="fabrikam-test-pat")


def integration_into(
    catalog: Catalog, azure: LiveEmulator, blueprints: list[dict[str, Any]], *resources: dict[str, Any]
) -> Integration:
    """:func:`integration` of ``resources``, with the ``blueprints`` they write into created first."""
    create_blueprints(catalog, blueprints, actor="test")
    return integration(azure, *resources)


def processor(db: Database, store: IngestStore, target: Integration, **options: Any) -> EventProcessor:
    settings: dict[str, Any] = {"rest_options": FAST, "backoff_seconds": 0.01, "order_wait_seconds": 0.01}
    return EventProcessor(db, store, target, **{**settings, **options})


def drain(events: EventProcessor) -> int:
    return asyncio.run(events.drain())


def resync(store: IngestStore, target: Integration) -> ResyncState:
    """A full resync of the integration, as the scheduler runs one, finished."""
    return asyncio.run(Resyncer(store, rest_options=FAST).run(target))


def entity(catalog: Catalog, blueprint: str, identifier: str) -> dict[str, Any] | None:
    page, _ = catalog.list_entities(blueprint, limit=1000)
    return next((e for e in page if e["identifier"] == identifier), None)


def identifiers(catalog: Catalog, blueprint: str) -> set[str]:
    page, _ = catalog.list_entities(blueprint, limit=1000)
    return {e["identifier"] for e in page}


def states(db: Database) -> list[tuple[str | None, str, str | None]]:
    with db.connect() as conn:
        events, _ = recent_events(conn, "ado", limit=100)
    return [(e.event_type, e.state, e.error) for e in reversed(events)]


def create_item(hooks: Hooks, title: str, **fields: Any) -> dict[str, Any]:
    answer = hooks.change("POST", "workitems", {"type": "Task", "fields": {"System.Title": title, **fields}})
    return dict(answer["value"])


def test_a_work_item_created_updated_and_deleted_follows_in_the_catalog(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    events = processor(db, store, integration(azure))
    item = create_item(hooks, "Live one")
    hooks.deliver(1)
    assert drain(events) == 1
    name = f"wi-{item['id']}-Task"
    created = entity(catalog, "adoWorkItem", name)
    assert created is not None and created["title"] == "Live one" and created["properties"]["rev"] == 1

    hooks.change("PATCH", f"workitems/{item['id']}", {"fields": {"System.Title": "Renamed", "System.State": "Active"}})
    hooks.deliver(1)
    drain(events)
    updated = entity(catalog, "adoWorkItem", name)
    assert updated is not None and updated["title"] == "Renamed" and updated["properties"]["state"] == "Active"

    hooks.change("DELETE", f"workitems/{item['id']}")
    hooks.deliver(1)
    drain(events)
    # Deleted under the identifier the mapping gave it (not ``.id``): found by the item's mark.
    assert entity(catalog, "adoWorkItem", name) is None
    assert [state for _, state, _ in states(db)] == ["processed"] * 3
    assert events.stats.processed == 3 and events.stats.failed == 0


def test_an_item_the_resync_wrote_is_deleted_by_its_event(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    kept = create_item(hooks, "Stays")
    doomed = create_item(hooks, "Goes")
    hooks.envelopes(2)  # raised before the resync: not events to process
    target = integration(azure)
    state = resync(store, target)
    assert state.status == "completed"
    assert {f"wi-{kept['id']}-Task", f"wi-{doomed['id']}-Task"} <= identifiers(catalog, "adoWorkItem")
    hooks.change("DELETE", f"workitems/{doomed['id']}")
    hooks.deliver(1)
    drain(processor(db, store, target))
    left = identifiers(catalog, "adoWorkItem")
    assert f"wi-{doomed['id']}-Task" not in left and f"wi-{kept['id']}-Task" in left
    # The next resync finds the catalog as Azure is: nothing to create or delete.
    again = resync(store, target)
    resource = again.organizations[0].resources[0]
    assert again.status == "completed" and resource.created == 0 and again.organizations[0].deletion.deleted == 0


def test_an_item_that_stops_matching_the_wiql_or_the_query_is_removed(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    by_wiql = work_items(wiql="[System.State] <> 'Closed'")
    by_query = mapping_resource(
        "work-item",
        "adoRun",  # a second blueprint: the same items, selected by the jq query
        identifier='"q-" + (.id | tostring)',
        title='.fields["System.Title"]',
        properties={"state": '.fields["System.State"]'},
    )
    by_query["selector"]["query"] = '.fields["System.State"] != "Removed"'
    events = processor(db, store, integration(azure, by_wiql, by_query))
    item = create_item(hooks, "Selected")
    hooks.deliver(1)
    drain(events)
    assert f"wi-{item['id']}-Task" in identifiers(catalog, "adoWorkItem")
    assert f"q-{item['id']}" in identifiers(catalog, "adoRun")

    hooks.change("PATCH", f"workitems/{item['id']}", {"fields": {"System.State": "Closed"}})
    hooks.deliver(1)
    drain(events)
    assert f"wi-{item['id']}-Task" not in identifiers(catalog, "adoWorkItem")  # out of the wiql
    assert f"q-{item['id']}" in identifiers(catalog, "adoRun")  # the query still passes

    hooks.change("PATCH", f"workitems/{item['id']}", {"fields": {"System.State": "Removed"}})
    hooks.deliver(1)
    drain(events)
    assert f"q-{item['id']}" not in identifiers(catalog, "adoRun")  # the query fails now
    assert [state for _, state, _ in states(db)] == ["processed"] * 3


def test_a_pull_request_created_then_updated_follows_in_the_catalog(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    repository = hooks.change("POST", "repositories", {"name": "live"})["value"]
    for branch, base in (("main", None), ("feature", "main")):
        push = {"branch": branch, "changes": [{"path": f"{branch}.txt", "content": branch}]}
        hooks.change("POST", f"repositories/{repository['id']}/pushes", push | ({"baseBranch": base} if base else {}))
    pull_request = hooks.change(
        "POST",
        f"repositories/{repository['id']}/pullrequests",
        {"sourceRefName": "refs/heads/feature", "title": "Add x"},
    )["value"]
    events = processor(db, store, integration(azure, PULL_REQUESTS, BUILDS))
    hooks.deliver(1)
    drain(events)
    name = f"pr-{pull_request['pullRequestId']}"
    opened = entity(catalog, "adoPullRequest", name)
    assert opened is not None and opened["properties"]["status"] == "active"
    hooks.change(
        "PATCH", f"pullrequests/{pull_request['pullRequestId']}", {"title": "Add x, done", "status": "completed"}
    )
    hooks.deliver(1)
    drain(events)
    closed = entity(catalog, "adoPullRequest", name)
    assert closed is not None and closed["title"] == "Add x, done" and closed["properties"]["status"] == "completed"

    assert [state for _, state, _ in states(db)] == ["processed"] * 2


def test_a_build_completion_writes_its_build_read_again(
    start_emulator: EmulatorFactory, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    azure = start_emulator(config=HOOKS_SETTINGS + with_generated_org(CONFIG, projects=1, repos=2), execute=False)
    (project,) = [p for p in azure.client.get("/fabrikam/_apis/projects").json()["value"] if p["name"] != "web"]
    definitions = azure.client.get(f"/fabrikam/{project['id']}/_apis/build/definitions").json()["value"]
    receiver = Receiver()
    with serving(receiver) as base:
        subscribe(azure, base + "/hook", "build.complete")  # org-wide: the minimal resource (id, url)
        hooks = Hooks(azure, receiver, db)
        answer = azure.client.post(
            f"/_emulator/orgs/fabrikam/projects/{project['id']}/builds",
            json={"definitionId": definitions[0]["id"], "result": "partiallySucceeded"},
        )
        assert answer.status_code == 201, answer.text
        build = answer.json()["value"]
        (envelope,) = hooks.deliver(1)
    assert set(envelope["resource"]) < set(build)  # the payload is not the build: it is read again
    events = processor(db, store, integration(azure, BUILDS))
    assert drain(events) == 1
    written = entity(catalog, "adoBuild", f"build-{build['id']}")
    assert written is not None and written["properties"]["result"] == "partiallySucceeded"
    assert written["title"] == build["buildNumber"]
    assert [state for _, state, _ in states(db)] == ["processed"]


RUNS = mapping_resource(
    "pipeline-run",
    "adoRun",
    identifier='"run-" + (.id | tostring)',
    title='.__pipeline.name + " " + .name',
    properties={"state": ".state"},
)
STAGES = mapping_resource(
    "pipeline-stage",
    "adoBuild",
    identifier='"stage-" + (.__build.id | tostring) + "-" + .identifier',
    title=".name",
    properties={"result": ".result"},
)


def test_a_pipeline_runs_state_changes_write_the_run_and_its_stages(
    start_emulator: EmulatorFactory, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    azure = start_emulator(config=HOOKS_SETTINGS + CONFIG, execute=True)
    receiver = Receiver()
    with serving(receiver) as base:
        subscribe(
            azure,
            base + "/hook",
            "ms.vss-pipelines.run-state-changed-event",
            "pipelines",
            publisher_inputs={"projectId": PROJECT_ID},
        )
        queued = azure.client.post("/fabrikam/web/_apis/pipelines/1/runs?api-version=7.1", json={})
        assert queued.status_code == 200, queued.text
        run = queued.json()
        assert azure.wait_for_run(run["id"])["status"] == "completed"
        hooks = Hooks(azure, receiver, db)
        # in progress, then completed: the emulator raises one event per state
        envelopes = hooks.deliver(2)
    assert {e["resource"]["run"]["state"] for e in envelopes} == {"inProgress", "completed"}
    events = processor(db, store, integration(azure, RUNS, STAGES))
    assert drain(events) == 2
    written = entity(catalog, "adoRun", f"run-{run['id']}")
    assert written is not None and written["properties"]["state"] == "completed"
    stages = [e for e in catalog.list_entities("adoBuild", limit=100)[0] if e["identifier"].startswith("stage-")]
    assert stages and all(stage["properties"]["result"] == "succeeded" for stage in stages)
    assert [state for _, state, _ in states(db)] == ["processed"] * 2


def test_events_of_one_object_wait_for_the_older_one(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    item = create_item(hooks, "Ordered")
    hooks.change("PATCH", f"workitems/{item['id']}", {"fields": {"System.Title": "Second"}})
    other = create_item(hooks, "Another object")
    # Stored in the order they were raised (two subscriptions may deliver in either order).
    order = [("workitem.created", item["id"]), ("workitem.updated", item["id"]), ("workitem.created", other["id"])]
    hooks.store(sorted(hooks.envelopes(3), key=lambda e: order.index((e["eventType"], work_item_id(e)))))
    target = integration(azure)
    # Another process holds the item's first event: its second must not run before it.
    elsewhere = JobQueue(db, "another-process", lease_seconds=60)
    (held,) = elsewhere.claim([event_job_kind("ado")], 1)
    assert held.payload["eventType"] == "workitem.created"
    events = processor(db, store, target)
    drain(events)
    assert [state for _, state, _ in states(db)] == ["processing", "pending", "processed"]
    assert f"wi-{other['id']}-Task" in identifiers(catalog, "adoWorkItem")  # another object ran
    assert f"wi-{item['id']}-Task" not in identifiers(catalog, "adoWorkItem")
    assert elsewhere.complete(held.id)
    deadline = time.monotonic() + 10
    while states(db)[1][1] != "processed" and time.monotonic() < deadline:
        drain(events)
        time.sleep(0.02)
    assert [state for _, state, _ in states(db)] == ["processed"] * 3
    written = entity(catalog, "adoWorkItem", f"wi-{item['id']}-Task")
    assert written is not None and written["title"] == "Second"


def test_a_redelivered_event_is_processed_once(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    create_item(hooks, "Once")
    (envelope,) = hooks.envelopes(1)
    assert hooks.store([envelope])[0] is not None
    assert hooks.store([envelope]) == [None]
    events = processor(db, store, integration(azure))
    assert drain(events) == 1
    assert events.stats.processed == 1 and [state for _, state, _ in states(db)] == ["processed"]


def test_a_read_again_failing_is_retried_then_failed_with_its_reason(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    item = create_item(hooks, "Unreadable")
    hooks.deliver(1)
    answer = azure.client.put(
        "/_emulator/switches",
        json={
            "faults": [{"path": f"/fabrikam/*/_apis/wit/workitems/{item['id']}", "errorRate": 1, "errorStatus": 500}]
        },
    )
    assert answer.status_code == 200, answer.text
    events = processor(db, store, integration(azure), max_attempts=3)
    deadline = time.monotonic() + 20
    while states(db)[0][1] != "failed" and time.monotonic() < deadline:
        drain(events)
        time.sleep(0.02)
    ((_, state, error),) = states(db)
    assert state == "failed" and error is not None and "ServerError" in error and "after 3 attempts" in error
    assert events.stats.retried == 2 and events.stats.failed == 1
    assert entity(catalog, "adoWorkItem", f"wi-{item['id']}-Task") is None


def test_unknown_event_types_and_kinds_nobody_maps_are_skipped(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    unknown = {"id": "e-1", "eventType": "ms.vss-unknown.thing", "publisherId": "tfs", "resource": {"id": 1}}
    create_item(hooks, "Nobody maps work items here")
    hooks.store([unknown, *hooks.envelopes(1)])
    events = processor(db, store, integration(azure, BUILDS))
    assert drain(events) == 2
    (first, second) = states(db)
    assert first[1] == "processed" and first[2] is not None and "does not process" in first[2]
    assert second[1] == "processed" and second[2] is not None and "no resource of the mapping" in second[2]
    assert events.stats.skipped == 2 and identifiers(catalog, "adoWorkItem") == set()


def test_the_processors_thread_processes_what_it_is_told_of_and_stops_cleanly(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    events = processor(db, store, integration(azure), poll_seconds=30).start()
    item = create_item(hooks, "In the background")
    hooks.deliver(1)
    events.notify()  # what the endpoint does after storing: no 30 s poll to wait for
    deadline = time.monotonic() + 10
    while entity(catalog, "adoWorkItem", f"wi-{item['id']}-Task") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert entity(catalog, "adoWorkItem", f"wi-{item['id']}-Task") is not None
    assert events.stop(5.0)
    assert events.stats.processed == 1 and [state for _, state, _ in states(db)] == ["processed"]


REPOSITORY_BLUEPRINTS: list[dict[str, Any]] = [
    {"identifier": "adoRepo", "title": "Repository"},
    {
        "identifier": "adoBranch",
        "title": "Branch",
        "relations": {"repository": {"target": "adoRepo", "required": False, "many": False}},
    },
    {"identifier": "adoLooseBranch", "title": "Branch, no relation"},
]
BRANCH_IDENTIFIER = '.__repository.id + "/" + .name'
REPOSITORY_RESOURCES = (
    mapping_resource("repository", "adoRepo"),
    mapping_resource("branch", "adoBranch", identifier=BRANCH_IDENTIFIER, relations={"repository": ".__repository.id"}),
    mapping_resource("branch", "adoLooseBranch", identifier=BRANCH_IDENTIFIER),
)


def test_a_deleted_repository_takes_the_entities_related_to_it_and_leaves_the_rest_to_the_resync(
    subscribed: Callable[[str], Hooks], azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    repository_hooks = subscribed("git.repo.deleted")
    target = integration_into(catalog, azure, REPOSITORY_BLUEPRINTS, *REPOSITORY_RESOURCES)
    ledger = repository_hooks.change("POST", "repositories", {"name": "ledger"})
    repository_hooks.change("POST", "repositories", {"name": "journal"})
    for repository, branch in (("ledger", "main"), ("ledger", "feature"), ("journal", "main")):
        push = {"branch": branch, "changes": [{"path": f"/{branch}.txt", "content": branch}]}
        repository_hooks.change("POST", f"repositories/{repository}/pushes", push)
    state = resync(store, target)
    assert state.status == "completed", state.to_json()
    ledger_id = ledger["value"]["id"]
    ours = {f"{ledger_id}/main", f"{ledger_id}/feature"}
    branches, loose = identifiers(catalog, "adoBranch"), identifiers(catalog, "adoLooseBranch")
    assert ours < branches and branches == loose  # journal's too

    repository_hooks.change("DELETE", "repositories/ledger")
    repository_hooks.deliver(1)
    assert drain(processor(db, store, target)) == 1
    assert states(db) == [("git.repo.deleted", "processed", None)]
    assert ledger_id not in identifiers(catalog, "adoRepo")
    assert identifiers(catalog, "adoBranch") == branches - ours  # found by their relation to it
    # Without a relation the event cannot tell which they are: none is guessed, the resync deletes them.
    assert identifiers(catalog, "adoLooseBranch") == loose
    resync(store, target)
    assert identifiers(catalog, "adoLooseBranch") == loose - ours


def test_events_during_a_full_resync_are_neither_undone_nor_deleted(
    hooks: Hooks,
    azure: LiveEmulator,
    db: Database,
    catalog: Catalog,
    store: IngestStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = integration(azure)
    before = create_item(hooks, "Before")
    hooks.deliver(1)
    assert drain(processor(db, store, target)) == 1
    with db.begin() as conn:  # no marks: the resync reads the item in full, and writes what it read
        conn.execute(sa.delete(ingest_item_marks))
    # The resync reads the work items, then waits before its first write while events come.
    read, go = threading.Event(), threading.Event()
    write = store.write

    def write_after_the_events(*args: Any, **options: Any) -> Any:
        if not read.is_set():
            read.set()
            assert go.wait(60)
        return write(*args, **options)

    monkeypatch.setattr(store, "write", write_after_the_events)
    outcome: list[Any] = []
    resyncing = threading.Thread(target=lambda: outcome.append(resync(store, target)))
    resyncing.start()
    try:
        assert read.wait(60)
        hooks.change("PATCH", f"workitems/{before['id']}", {"fields": {"System.Title": "Renamed live"}})
        born = create_item(hooks, "Born live")
        hooks.deliver(2)
        assert drain(processor(db, store, target)) == 2
    finally:
        go.set()
        resyncing.join(60)
    (state,) = outcome
    assert state.status == "completed", state.to_json()
    # What the resync read was older than what the events wrote: it undid nothing of theirs …
    renamed = entity(catalog, "adoWorkItem", f"wi-{before['id']}-Task")
    assert renamed is not None and renamed["title"] == "Renamed live"
    # … and the item born after it read the list is no stale entity of its delete phase.
    assert entity(catalog, "adoWorkItem", f"wi-{born['id']}-Task") is not None
    assert state.organizations[0].deletion.ran
    # The next resync, reading after the events, agrees.
    again = resync(store, target)
    assert again.totals()["created"] == again.totals()["deleted"] == again.totals()["updated"] == 0


PUSH_BLUEPRINTS: list[dict[str, Any]] = [
    {"identifier": "adoPushedBranch", "title": "Branch"},
    {"identifier": "adoFile", "title": "File"},
]
PUSH_RESOURCES = (
    mapping_resource("branch", "adoPushedBranch", identifier='.__repository.name + "/" + .name'),
    mapping_resource(
        "file",
        "adoFile",
        identifier='.repo.name + ":" + .file.path',
        title=".file.path",
        files={"path": ["README.md", "src/*.py"]},
    ),
)


def test_a_push_deleting_a_branch_and_a_file_deletes_their_entities(
    subscribed: Callable[[str], Hooks], azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    push_hooks = subscribed("git.push")
    target = integration_into(catalog, azure, PUSH_BLUEPRINTS, *PUSH_RESOURCES)
    push_hooks.change("POST", "repositories", {"name": "ledger"})
    first = {
        "branch": "main",
        "changes": [{"path": "/README.md", "content": "# L\n"}, {"path": "/src/a.py", "content": "a"}],
    }
    push_hooks.change("POST", "repositories/ledger/pushes", first)
    refs = azure.client.get(f"/fabrikam/{PROJECT_ID}/_apis/git/repositories/ledger/refs", params={"filter": "heads/"})
    main = next(str(r["objectId"]) for r in refs.json()["value"] if r["name"] == "refs/heads/main")
    push_hooks.change("POST", "repositories/ledger/pushes", {"refUpdates": [{"name": "feature", "newObjectId": main}]})
    push_hooks.envelopes(2)  # the two pushes before kiosk read the org: the resync below has them
    state = resync(store, target)
    assert state.status == "completed", state.to_json()
    assert {"ledger/main", "ledger/feature"} <= identifiers(catalog, "adoPushedBranch")
    assert identifiers(catalog, "adoFile") == {"ledger:README.md", "ledger:src/a.py"}

    gone = {"refUpdates": [{"name": "feature", "oldObjectId": main, "newObjectId": "0" * 40}]}
    push_hooks.change("POST", "repositories/ledger/pushes", gone)
    removed = {"branch": "main", "changes": [{"path": "/README.md", "changeType": "delete"}]}
    push_hooks.change("POST", "repositories/ledger/pushes", removed)
    push_hooks.deliver(2)
    assert drain(processor(db, store, target)) == 2
    assert states(db) == [("git.push", "processed", None)] * 2
    assert "ledger/feature" not in identifiers(catalog, "adoPushedBranch")
    assert "ledger/main" in identifiers(catalog, "adoPushedBranch")
    assert identifiers(catalog, "adoFile") == {"ledger:src/a.py"}
    # What the events did is what a resync finds: it changes nothing.
    again = resync(store, target)
    assert (again.totals()["created"], again.totals()["deleted"]) == (0, 0)


class CountingRest(AzureDevOpsRest):
    """The client, counting the requests made per path."""

    paths: list[str]

    async def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        self.paths.append(f"{method} {path}")
        return await super().request(method, path, *args, **kwargs)


def counting_factory(made: list[str]) -> Any:
    def factory(organization_url: str, pat: str) -> AzureDevOpsRest:
        client = CountingRest(organization_url, pat, **FAST)
        client.paths = made
        return client

    return factory


def test_events_of_one_work_item_claimed_together_read_it_once(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    item = create_item(hooks, "First")
    for title in ("Second", "Third"):
        hooks.change("PATCH", f"workitems/{item['id']}", {"fields": {"System.Title": title}})
    other = create_item(hooks, "Someone else")
    hooks.deliver(4)
    requests: list[str] = []
    events = processor(db, store, integration(azure), rest_factory=counting_factory(requests))
    assert drain(events) == 4
    written = entity(catalog, "adoWorkItem", f"wi-{item['id']}-Task")
    assert written is not None and written["title"] == "Third"
    assert entity(catalog, "adoWorkItem", f"wi-{other['id']}-Task") is not None
    reads = [path for path in requests if path.startswith("GET") and f"workitems/{item['id']}" in path]
    assert len(reads) == 1, requests
    notes = [(event_type, state, note) for event_type, state, note in states(db)]
    assert [state for _, state, _ in notes] == ["processed"] * 4
    superseded = [note for _, _, note in notes if note and note.startswith("superseded by event")]
    assert len(superseded) == 2  # the item's created and first update: its last update read it
    assert events.stats.processed == 4


def test_a_slow_object_does_not_hold_back_the_others(
    hooks: Hooks, azure: LiveEmulator, db: Database, catalog: Catalog, store: IngestStore
) -> None:
    slow = create_item(hooks, "Slow to read")
    (slow_envelope,) = hooks.envelopes(1)
    fast = create_item(hooks, "Quick to read")
    (fast_envelope,) = hooks.envelopes(1)
    answer = azure.client.put(
        "/_emulator/switches",
        json={"faults": [{"path": f"/fabrikam/*/_apis/wit/workitems/{slow['id']}", "latencyMs": 4000}]},
    )
    assert answer.status_code == 200, answer.text
    events = processor(db, store, integration(azure), poll_seconds=30).start()
    try:
        hooks.store([slow_envelope])
        events.notify()
        time.sleep(0.3)  # the slow item's read is under way
        hooks.store([fast_envelope])  # stored later, by another request
        events.notify()
        deadline = time.monotonic() + 10
        while entity(catalog, "adoWorkItem", f"wi-{fast['id']}-Task") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # The fast item is written while the slow one's read still waits: no batch holds it back.
        assert entity(catalog, "adoWorkItem", f"wi-{fast['id']}-Task") is not None
        assert entity(catalog, "adoWorkItem", f"wi-{slow['id']}-Task") is None
        assert states(db)[0][1] == "processing"
        deadline = time.monotonic() + 15
        while entity(catalog, "adoWorkItem", f"wi-{slow['id']}-Task") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert entity(catalog, "adoWorkItem", f"wi-{slow['id']}-Task") is not None
    finally:
        assert events.stop(10.0)
    assert [state for _, state, _ in states(db)] == ["processed"] * 2
