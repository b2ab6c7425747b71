"""The work-item fetcher against a live emulator over real HTTP: every project's matching items, read
by WIQL id ranges past Azure's 20,000 cap and 200 ids at a time, enriched as the reference's mappings
read them; selector options, a user's ORDER BY, a quote in a project name, faults."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import httpx
import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator
from tests.ingest.fetch.conftest import FAST_RETRY, read_kind, resource
from tests.support.azure_sdk import with_generated_org

from kiosk.azure.errors import MalformedResponse, RequestTimeout, ServerError
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.emulator.wiql import MAX_RESULTS
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.fetch.work_items import (
    SKIPPED_GONE,
    WIQL_PAGE,
    fetch_work_items,
    project_fingerprint,
    read_work_items,
    strip_order_by,
    wiql_string,
    work_item_mark,
    work_item_query,
    work_item_version,
)

ORG = "fabrikam"


def live_items(live: LiveEmulator) -> dict[int, Any]:
    """The emulator's own work items that exist (not in the recycle bin), by id."""
    return {item.id: item for item in live.organisation().work_items.values() if not item.is_deleted}


def read_paged(
    live: LiveEmulator,
    selector: dict[str, Any] | None = None,
    *,
    wiql_page: int,
    ids_per_read: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[list[Item], FetchContext, list[httpx.Request]]:
    """Every item read with small pages; the context (skips) and every request sent."""
    sent: list[httpx.Request] = []
    inner = transport or httpx.AsyncHTTPTransport()

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return await inner.handle_async_request(request)

    async def main() -> tuple[list[Item], FetchContext]:
        url = f"{live.base_url}/{ORG}"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY, transport=Recording()) as rest:
            ctx = FetchContext(rest, url)
            items: list[Item] = []
            async for batch in read_work_items(
                ctx, resource("work-item", selector), wiql_page=wiql_page, ids_per_read=ids_per_read
            ):
                assert len(batch) <= ids_per_read
                items.extend(batch)
            return items, ctx

    items, ctx = asyncio.run(main())
    return items, ctx, sent


# ------------------------------------------------------------------------------------------- pure parts


def test_a_quote_in_a_wiql_string_is_doubled() -> None:
    assert wiql_string("web") == "'web'"
    assert wiql_string("O'Brien's") == "'O''Brien''s'"


@pytest.mark.parametrize(
    ("fragment", "kept"),
    [
        (None, None),
        ("   ", None),
        ("[System.State] = 'Active'", "[System.State] = 'Active'"),
        ("[System.State] = 'Active' ORDER BY [System.ChangedDate] DESC", "[System.State] = 'Active'"),
        ("[System.State] = 'Active' order\n  by [System.Title]", "[System.State] = 'Active'"),
        ("ORDER BY [System.Id]", None),
        (
            "[System.Title] = 'order by me' AND [System.State] <> 'x'",
            "[System.Title] = 'order by me' AND [System.State] <> 'x'",
        ),
        ('[System.Title] = "it\'s ORDER BY" ORDER BY [System.Id]', '[System.Title] = "it\'s ORDER BY"'),
        ("[System.Title] = 'a''ORDER BY' ORDER BY [System.Id]", "[System.Title] = 'a''ORDER BY'"),
        ("[Custom.Order By] = 1", "[Custom.Order By] = 1"),
        ("[System.Tags] CONTAINS 'x' AND [Custom.Reorder] = 1", "[System.Tags] CONTAINS 'x' AND [Custom.Reorder] = 1"),
        ("[System.Title] = 'x' ORDERBY", "[System.Title] = 'x' ORDERBY"),
    ],
)
def test_a_users_order_by_is_stripped_outside_literals_and_field_names(fragment: str | None, kept: str | None) -> None:
    assert strip_order_by(fragment) == kept


def test_the_page_query_filters_the_project_the_fragment_and_the_id_range() -> None:
    assert work_item_query("O'Neil", "[System.State] = 'New' OR [System.State] = 'Active'", 41) == (
        "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = 'O''Neil'"
        " AND ([System.State] = 'New' OR [System.State] = 'Active') AND [System.Id] > 41 ORDER BY [System.Id] ASC"
    )
    assert work_item_query("web", None, 0) == (
        "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = 'web' AND [System.Id] > 0"
        " ORDER BY [System.Id] ASC"
    )


# ------------------------------------------------------------------------------------------- over HTTP


def test_every_work_item_of_every_project_with_its_enrichment(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "work-item")
    model = live_items(generated_org)
    assert len(model) >= 30
    assert sorted(item["id"] for item in items) == sorted(model)
    projects = {p["id"]: p for p in generated_org.client.get(f"/{ORG}/_apis/projects").json()["value"]}
    for item in items:
        own = model[item["id"]]
        assert item["__projectId"] == own.project_id
        assert item["__project"] == projects[own.project_id]
        assert item["fields"]["System.TeamProject"] == projects[own.project_id]["name"]
        assert item["fields"]["System.Title"] == own.fields["System.Title"]
        assert item["rev"] == own.rev
        assert "_links" in item  # expand All by default
        assert item["__organizationUrl"] == f"{generated_org.base_url}/{ORG}"
        assert item["__organizationName"] == f"{generated_org.base_url}/{ORG}"
    assert any("relations" in item for item in items)  # Azure leaves out an empty list


def test_the_item_equals_what_azure_answers_for_it_alone(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "work-item", {"expand": "Relations"})
    item = items[0]
    alone = generated_org.client.get(
        f"/{ORG}/{item['__projectId']}/_apis/wit/workitems/{item['id']}", params={"$expand": "Relations"}
    ).json()
    alone.pop("_links", None)  # a single item carries links the list leaves out, as Azure's does
    stripped = {k: v for k, v in item.items() if not k.startswith("__")}
    assert stripped == alone


def test_expand_and_wiql_change_the_result(generated_org: LiveEmulator) -> None:
    model = live_items(generated_org)
    bare = read_kind(generated_org, "work-item", {"expand": "None"})
    assert bare and all("relations" not in item and "_links" not in item for item in bare)
    assert all("System.Title" in item["fields"] for item in bare)

    states = Counter(str(item.fields["System.State"]) for item in model.values())
    state, count = states.most_common(1)[0]
    assert count < len(model)
    chosen = read_kind(generated_org, "work-item", {"wiql": f"[System.State] = '{state}'"})
    assert sorted(item["id"] for item in chosen) == sorted(
        i for i, w in model.items() if w.fields["System.State"] == state
    )

    either = read_kind(
        generated_org,
        "work-item",
        {"wiql": f"[System.State] = '{state}' OR [System.WorkItemType] = 'Bug'"},
    )
    # The fragment is bracketed: its OR never widens the project filter.
    wanted = {
        i for i, w in model.items() if w.fields["System.State"] == state or w.fields["System.WorkItemType"] == "Bug"
    }
    assert sorted(item["id"] for item in either) == sorted(wanted)


def test_a_users_order_by_keeps_id_range_paging_to_the_end(
    generated_org: LiveEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kiosk.ingest.fetch.work_items")
    model = live_items(generated_org)
    items, _, sent = read_paged(
        generated_org, {"wiql": "[System.Id] > 0 ORDER BY [System.ChangedDate] DESC"}, wiql_page=4, ids_per_read=3
    )
    assert sorted(item["id"] for item in items) == sorted(model)
    assert len(items) == len({item["id"] for item in items})  # no item read twice across pages
    queries = [r.content.decode() for r in sent if r.url.path.endswith("/_apis/wit/wiql")]
    assert all("ChangedDate" not in query for query in queries)
    assert [r.getMessage() for r in caplog.records if "ORDER BY" in r.getMessage()]
    per_project = Counter(w.project_id for w in model.values())
    # Every project walked until a short page: full pages (4 ids) then one short one each.
    assert len(queries) == sum(n // 4 + 1 for n in per_project.values()) + (
        len(generated_org.client.get(f"/{ORG}/_apis/projects").json()["value"]) - len(per_project)
    )
    reads = [r for r in sent if r.url.path.endswith("/_apis/wit/workitems")]
    assert all(len(r.url.params["ids"].split(",")) <= 3 for r in reads)
    assert {r.url.params["api-version"] for r in reads} == {"7.1-preview.3"}
    assert {r.url.params["api-version"] for r in sent if r.method == "POST"} == {"7.1-preview.2"}
    assert {r.url.params["$top"] for r in sent if r.method == "POST"} == {"4"}


def test_a_project_named_with_a_quote_is_queried(generated_org: LiveEmulator) -> None:
    model = live_items(generated_org)
    project = next(
        p for p in generated_org.organisation().projects.values() if any(w.project_id == p.id for w in model.values())
    )
    # Azure forbids the quote in project names; the WIQL quoting must hold anyway.
    project.name = "O'Brien's"
    for item in model.values():
        if item.project_id == project.id:
            item.fields["System.TeamProject"] = project.name
    items = read_kind(generated_org, "work-item", {"expand": "None"})
    assert sorted(item["id"] for item in items) == sorted(model)
    mine = [item for item in items if item["__projectId"] == project.id]
    assert mine and all(item["__project"]["name"] == "O'Brien's" for item in mine)


def test_more_than_azures_cap_in_one_project_is_read_whole(start_emulator: EmulatorFactory) -> None:
    total = MAX_RESULTS + 1_000
    live = start_emulator(config=with_generated_org(CONFIG, projects=1, repos=1, workitems=total), execute=False)
    model = live_items(live)
    per_project = Counter(w.project_id for w in model.values())
    assert max(per_project.values()) > MAX_RESULTS
    # Azure refuses that project's query without $top: paging is required, not a nicety.
    project = max(per_project, key=lambda p: per_project[p])
    refused = live.client.post(
        f"/{ORG}/{project}/_apis/wit/wiql",
        params={"api-version": "7.1"},
        json={"query": "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @Project"},
    )
    assert refused.status_code == 400 and "VS402337" in refused.text

    async def main() -> tuple[int, list[Item], int]:
        url = f"{live.base_url}/{ORG}"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY) as rest:
            ctx = FetchContext(rest, url)
            stream = fetch_work_items(ctx, resource("work-item", {"expand": "None"}))
            items = list(await anext(stream))
            # Left unread, the readers run only until the bounded queues are full, whatever the wait.
            await asyncio.sleep(0.5)
            held_back = rest.stats.requests
            async for batch in stream:
                items.extend(batch)
            return held_back, items, rest.stats.requests

    held_back, items, requests = asyncio.run(main())
    assert len(items) == len(model)
    assert {item["id"] for item in items} == set(model)
    assert WIQL_PAGE < MAX_RESULTS
    reads = -(-max(per_project.values()) // 200)
    assert requests >= reads + 2  # two WIQL pages for the big project, every 200-id read
    assert held_back < 60 < reads  # streamed: a resync's consumer sets the pace, nothing is buffered whole


def test_an_item_deleted_between_query_and_read_is_skipped_and_counted(generated_org: LiveEmulator) -> None:
    model = live_items(generated_org)
    victim = min(model)
    project = model[victim].project_id
    deleted = False

    class DeleteOnFirstRead(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal deleted
            if request.url.path.endswith("/_apis/wit/workitems") and not deleted:
                ids = request.url.params["ids"].split(",")
                if str(victim) in ids:
                    deleted = True
                    answer = await asyncio.to_thread(
                        generated_org.client.delete, f"/_emulator/orgs/{ORG}/projects/{project}/workitems/{victim}"
                    )
                    assert answer.status_code == 200, answer.text
            return await super().handle_async_request(request)

    items, ctx, _ = read_paged(generated_org, wiql_page=WIQL_PAGE, ids_per_read=200, transport=DeleteOnFirstRead())
    assert deleted
    assert sorted(item["id"] for item in items) == sorted(set(model) - {victim})
    assert ctx.skipped == {SKIPPED_GONE: 1}


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("{path: '*/_apis/wit/wiql', method: POST, errorRate: 1, errorStatus: 500}", ServerError),
        ("{path: '*/_apis/wit/workitems', errorRate: 1, errorStatus: 503}", ServerError),
        ("{path: '*/_apis/wit/workitems', holdSeconds: 2}", RequestTimeout),
    ],
)
def test_a_failed_query_or_read_raises(start_emulator: EmulatorFactory, rule: str, error: type[Exception]) -> None:
    config = with_generated_org(CONFIG, projects=3, repos=2, workitems=30).replace(
        "orgs:", f"settings:\n  faults:\n    - {rule}\norgs:", 1
    )
    live = start_emulator(config=config, execute=False)

    async def main() -> list[Item]:
        url = f"{live.base_url}/{ORG}"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY, timeout=0.5) as rest:
            ctx = FetchContext(rest, url)
            got: list[Item] = []
            async for batch in read_work_items(ctx, resource("work-item")):
                got.extend(batch)
            return got

    with pytest.raises(error):
        asyncio.run(main())


def test_a_wiql_error_in_the_selector_raises(generated_org: LiveEmulator) -> None:
    from kiosk.azure.errors import StatusError

    with pytest.raises(StatusError) as caught:
        read_kind(generated_org, "work-item", {"wiql": "[System.State] = = 'x'"})
    assert caught.value.status == 400


def test_a_wiql_answer_that_breaks_the_id_order_raises(generated_org: LiveEmulator) -> None:
    class Reversed(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if request.url.path.endswith("/_apis/wit/wiql"):
                await response.aread()
                body = response.json()
                body["workItems"].reverse()
                return httpx.Response(200, json=body)
            return response

    with pytest.raises(MalformedResponse):
        read_paged(generated_org, wiql_page=WIQL_PAGE, ids_per_read=200, transport=Reversed())


def test_items_the_resync_holds_unchanged_are_not_read_in_full(generated_org: LiveEmulator) -> None:
    """With ``ctx.unchanged`` set, each batch's revisions are read cheaply and only the items the
    resync does not hold at that version are read in full; the versions carry the revision."""
    model = live_items(generated_org)
    held_ids = sorted(model)[::2]  # every other item is held at its current revision
    stale = sorted(model)[1]  # held at an older revision: read again
    asked: dict[str, str] = {}
    sent: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        sent.append(request)

    async def main() -> list[Item]:
        url = f"{generated_org.base_url}/{ORG}"
        async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY) as rest:
            rest._http.event_hooks["request"].append(hook)
            ctx = FetchContext(rest, url)
            projects = {str(p["id"]): p for p in await ctx.projects()}

            def version(item_id: int, rev: int) -> str:
                return work_item_version(rev, project_fingerprint(projects[model[item_id].project_id]))

            # What the resync holds: every other item at its revision, one more at an older one.
            recorded = {str(i): version(i, model[i].rev) for i in held_ids}
            recorded[str(stale)] = version(stale, model[stale].rev - 1)

            async def unchanged(versions: dict[str, str]) -> set[str]:
                asked.update(versions)
                return {key for key, found in versions.items() if recorded.get(key) == found}

            ctx.unchanged = unchanged
            items: list[Item] = []
            async for batch in read_work_items(ctx, resource("work-item", None)):
                items.extend(batch)
            return items

    items = asyncio.run(main())
    assert set(asked) == {str(i) for i in model}
    assert sorted(item["id"] for item in items) == sorted(set(model) - set(held_ids))
    assert all(work_item_mark(item) == (str(item["id"]), asked[str(item["id"])]) for item in items)
    cheap = [r for r in sent if r.method == "POST" and r.url.path.endswith("/_apis/wit/workitemsbatch")]
    full = [r for r in sent if r.method == "GET" and r.url.path.endswith("/_apis/wit/workitems")]
    assert cheap and full
    assert all(b'"fields":["System.Id","System.Rev"]' in r.content for r in cheap)
    read_in_full = {int(i) for r in full for i in r.url.params["ids"].split(",")}
    assert read_in_full == set(model) - set(held_ids)
