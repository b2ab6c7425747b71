"""The wiki fetcher over real HTTP against a generated organisation: every page of every wiki with
``__wiki``/``__project``, the selector's ``wikiType``, ``includeContent`` and ``apiVersion``, pagesbatch
paged to the end, failures raised."""

from __future__ import annotations

from typing import Any

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.ingest.fetch.conftest import read_kind, read_paged

from kiosk.azure.errors import NotFound, ServerError, StatusError
from kiosk.emulator.org.model import WikiPage
from kiosk.ingest.fetch import wiki


def projects_by_id(live: LiveEmulator) -> dict[str, dict[str, Any]]:
    answer = live.client.get("/fabrikam/_apis/projects", params={"$top": 1000})
    assert answer.status_code == 200
    return {p["id"]: p for p in answer.json()["value"]}


def wikis_by_id(live: LiveEmulator, project_id: str) -> dict[str, dict[str, Any]]:
    answer = live.client.get(f"/fabrikam/{project_id}/_apis/wiki/wikis")
    assert answer.status_code == 200
    return {w["id"]: w for w in answer.json()["value"]}


def set_faults(live: LiveEmulator, *rules: dict[str, Any]) -> None:
    assert live.client.put("/_emulator/switches", json={"faults": list(rules)}).status_code == 200


def expected_pages(live: LiveEmulator, wiki_type: str | None = None) -> set[tuple[str, int, str]]:
    org = live.organisation()
    return {
        (w.id, page.id, page.path)
        for w in org.wikis.values()
        if wiki_type is None or w.type == wiki_type
        for page in w.pages
    }


def test_every_page_of_every_wiki_with_its_wiki_and_project(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "wiki")

    expected = expected_pages(generated_org)
    assert {(i["__wiki"]["id"], i["id"], i["path"]) for i in items} == expected and len(items) == len(expected)
    assert {i["__wiki"]["type"] for i in items} == {"projectWiki", "codeWiki"}
    projects = projects_by_id(generated_org)
    for item in items:
        project = projects[item["__wiki"]["projectId"]]
        assert item["__project"] == project
        listed = wikis_by_id(generated_org, project["id"])[item["__wiki"]["id"]]
        assert item["__wiki"] == {**listed, "__project": project}  # the wiki as listed, as the reference keeps it
        assert "content" not in item  # the batch's page: id, path
        assert item["__organizationUrl"] == f"{generated_org.base_url}/fabrikam"


def test_wiki_type_keeps_one_kind_of_wiki(generated_org: LiveEmulator) -> None:
    for wiki_type in ("projectWiki", "codeWiki"):
        items = read_kind(generated_org, "wiki", {"wikiType": wiki_type})
        assert {(i["__wiki"]["id"], i["id"], i["path"]) for i in items} == expected_pages(generated_org, wiki_type)
        assert items and {i["__wiki"]["type"] for i in items} == {wiki_type}


def test_include_content_reads_each_page_by_id(generated_org: LiveEmulator) -> None:
    org = generated_org.organisation()
    items = read_kind(generated_org, "wiki", {"includeContent": True})

    pages: dict[int, WikiPage] = {p.id: p for w in org.wikis.values() for p in w.pages}
    assert sorted(i["id"] for i in items) == sorted(pages)
    for item in items:
        page = pages[item["id"]]
        assert item["content"] == page.content and item["path"] == page.path
        assert item["gitItemPath"] == page.git_item_path and item["url"].endswith(f"/pages/{page.id}")
        assert item["__wiki"]["id"] in org.wikis and "__project" in item


def test_api_version_is_sent_on_every_wiki_call(generated_org: LiveEmulator) -> None:
    # A version the emulator refuses shows it reached every call: the list, then pagesbatch, then the page.
    with pytest.raises(StatusError) as caught:
        read_kind(generated_org, "wiki", {"apiVersion": "5.0"})
    assert caught.value.status == 400 and "api-version=5.0" in caught.value.url
    assert "/_apis/wiki/wikis?" in caught.value.url

    for path in ("*/_apis/wiki/wikis/*/pagesbatch", "*/_apis/wiki/wikis/*/pages/*"):
        set_faults(generated_org, {"path": path, "notFound": True})
        with pytest.raises(NotFound) as missing:
            read_kind(generated_org, "wiki", {"apiVersion": "7.1-preview.1", "includeContent": True})
        assert "api-version=7.1-preview.1" in missing.value.url, path
    set_faults(generated_org)
    items = read_kind(generated_org, "wiki", {"apiVersion": "7.1-preview.1", "includeContent": True})
    assert len(items) == len(expected_pages(generated_org)) and all("content" in i for i in items)


def test_pages_batch_is_walked_to_the_end(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    items = read_paged(generated_org, monkeypatch, wiki, 1, "wiki")
    assert {(i["__wiki"]["id"], i["id"], i["path"]) for i in items} == expected_pages(generated_org)

    # The batches follow the token in the body: a wiki of six pages takes six calls and ends without a token.
    org = generated_org.organisation()
    largest = max(org.wikis.values(), key=lambda w: len(w.pages))
    assert sum(1 for i in items if i["__wiki"]["id"] == largest.id) == len(largest.pages) >= 6

    set_faults(generated_org, {"path": "*/_apis/wiki/wikis/*/pagesbatch", "errorRate": 1.0, "errorStatus": 500})
    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "wiki", {"wikiType": "projectWiki"}, context={"concurrency": 1})
    assert caught.value.status == 500 and "pagesbatch" in caught.value.url


def test_a_failed_wiki_list_or_page_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/_apis/wiki/wikis", "errorRate": 1.0, "errorStatus": 500})
    with pytest.raises(ServerError):
        read_kind(generated_org, "wiki")
    # A page gone between the batch and its read is an error, not a page without content.
    set_faults(generated_org, {"path": "*/_apis/wiki/wikis/*/pages/*", "notFound": True})
    with pytest.raises(NotFound):
        read_kind(generated_org, "wiki", {"includeContent": True})
    assert read_kind(generated_org, "wiki")  # without content the pages are not read one by one
