"""Microsoft's client, unmodified, over Wiki (reference 3.10): wikis, pages by path and id, pagesbatch paging."""

from __future__ import annotations

from typing import Any

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.org.model import Organisation, Wiki, blob_sha1


def batch_request(top: int, **options: Any) -> Any:
    """Microsoft's ``WikiPagesBatchRequest``, imported late: the client's first import reads where its disk cache of
    route discovery lives, and tests.support.azure_sdk must point it at a private directory first."""
    from azure.devops.v7_1.wiki.models import WikiPagesBatchRequest

    return WikiPagesBatchRequest(top=top, **options)


def project_wiki(org: Organisation) -> Wiki:
    return next(w for w in org.wikis.values() if w.type == "projectWiki" and len(w.pages) > 3)


def test_wikis_of_the_org_and_of_a_project(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.wiki.WikiClient")
    everything = client.get_all_wikis()
    assert sorted(w.id for w in everything) == sorted(org.wikis)
    wiki = project_wiki(org)
    project = org.projects[wiki.project_id]
    mine = client.get_all_wikis(project.name)
    assert {w.id for w in mine} == {w.id for w in org.wikis.values() if w.project_id == project.id}
    shown = client.get_wiki(wiki.name, project.id)
    assert (shown.id, shown.name, shown.type, shown.project_id, shown.repository_id, shown.mapped_path) == (
        wiki.id,
        wiki.name,
        "projectWiki",
        project.id,
        wiki.repository_id,
        "/",
    )
    assert [v.version for v in shown.versions] == ["wikiMaster"]
    assert shown.url.endswith(f"/{project.id}/_apis/wiki/wikis/{wiki.id}") and "/_wiki/wikis/" in shown.remote_url
    assert client.get_wiki(wiki.id).name == wiki.name  # org-scoped, by id
    code = next(w for w in org.wikis.values() if w.type == "codeWiki")
    shown_code = client.get_wiki(code.name, code.project_id)
    repo = org.repositories[code.repository_id]
    assert (shown_code.type, shown_code.repository_id) == ("codeWiki", repo.id)
    assert [v.version for v in shown_code.versions] == [(repo.default_branch or "").removeprefix("refs/heads/")]
    with pytest.raises(AzureDevOpsServiceError) as missing:
        client.get_wiki("No such wiki", project.name)
    assert missing.value.type_key == "WikiNotFoundException"


def test_pages_batch_pages_through_continuation_tokens(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.wiki.WikiClient")
    wiki = project_wiki(org)
    project = org.projects[wiki.project_id]
    url = f"/fabrikam/{project.id}/_apis/wiki/wikis/{wiki.id}/pagesbatch?api-version=7.1"
    tokens: list[str | None] = [None]
    while True:
        answer = generated.client.post(url, json={"top": 2, "continuationToken": tokens[-1]})
        assert answer.status_code == 200
        token = answer.headers.get("x-ms-continuationtoken")
        if token is None:
            break
        tokens.append(token)
    paths: list[str] = []
    for token in tokens:  # the same pages through Microsoft's client, token by token
        batch = client.get_pages_batch(batch_request(2, continuation_token=token), project.name, wiki.name)
        assert 1 <= len(batch) <= 2
        paths.extend(p.path for p in batch)
    assert paths == ["/Home", "/Guides", "/Guides/Setup", "/Runbooks", "/Runbooks/On call", "/Architektur Überblick"]
    assert len(tokens) == 3
    everything = client.get_pages_batch(batch_request(100, page_views_for_days=7), project.id, wiki.id)
    assert [(p.id, p.path) for p in everything] == [
        (p.id, p.path) for p in sorted(wiki.pages, key=lambda p: paths.index(p.path))
    ]
    assert all(p.view_stats == [] for p in everything)
    last = generated.client.post(url, json={"top": 100})
    assert "x-ms-continuationtoken" not in last.headers
    for bad in ({"top": 0}, {"top": 101}, {}, {"top": 2, "continuationToken": "abc"}):
        refused = generated.client.post(url, json=bad)
        assert refused.status_code == 400, bad
    unversioned = generated.client.post(url.removesuffix("?api-version=7.1"), json={"top": 2})
    assert unversioned.status_code == 400 and unversioned.json()["typeKey"] == "VssVersionNotSpecifiedException"


def test_pages_by_path_and_by_id_with_content_and_etag(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.wiki.WikiClient")
    wiki = project_wiki(org)
    project = org.projects[wiki.project_id]
    setup = next(p for p in wiki.pages if p.path == "/Guides/Setup")
    guides = next(p for p in wiki.pages if p.path == "/Guides")

    by_path = client.get_page(project.name, wiki.name, path="/Guides/Setup", include_content=True)
    assert (by_path.page.id, by_path.page.path, by_path.page.git_item_path) == (
        setup.id,
        setup.path,
        "/Guides/Setup.md",
    )
    assert by_path.page.content == setup.content
    assert by_path.eTag == f'"{blob_sha1(setup.content.encode())}"'
    assert by_path.page.url.endswith(f"/_apis/wiki/wikis/{wiki.id}/pages/{setup.id}")

    parent = client.get_page(project.id, wiki.id, path="/guides", recursion_level="oneLevel")
    assert parent.page.is_parent_page is True and parent.page.content is None
    assert [p.path for p in parent.page.sub_pages] == ["/Guides/Setup"]

    root = client.get_page(project.name, wiki.name, path="/", recursion_level="full")
    assert root.page.path == "/" and root.page.is_parent_page
    assert [p.path for p in root.page.sub_pages] == ["/Home", "/Guides", "/Runbooks", "/Architektur Überblick"]
    assert [p.path for p in root.page.sub_pages[2].sub_pages] == ["/Runbooks/On call"]
    assert [p.order for p in root.page.sub_pages] == [0, 1, 2, 3]

    by_id = client.get_page_by_id(project.name, wiki.name, guides.id, recursion_level="full", include_content=True)
    assert (by_id.page.path, by_id.page.content) == ("/Guides", guides.content)
    assert [p.id for p in by_id.page.sub_pages] == [setup.id]
    assert by_id.eTag == f'"{blob_sha1(guides.content.encode())}"'
    without = client.get_page_by_id(project.name, wiki.name, guides.id)
    assert without.page.content is None and without.page.sub_pages == []

    text = b"".join(client.get_page_text(project.name, wiki.name, path="/Guides/Setup")).decode()
    assert text == setup.content
    text_by_id = b"".join(client.get_page_by_id_text(project.name, wiki.name, setup.id)).decode()
    assert text_by_id == setup.content
    unicode = next(p for p in wiki.pages if p.path == "/Architektur Überblick")
    assert client.get_page(project.name, wiki.name, path=unicode.path).page.id == unicode.id

    with pytest.raises(AzureDevOpsServiceError) as missing_path:
        client.get_page(project.name, wiki.name, path="/Nowhere")
    assert missing_path.value.type_key == "WikiPageNotFoundException"
    with pytest.raises(AzureDevOpsServiceError) as missing_id:
        client.get_page_by_id(project.name, wiki.name, 999_999)
    assert missing_id.value.type_key == "WikiPageNotFoundException"
    bad_level = generated.client.get(
        f"/fabrikam/{project.id}/_apis/wiki/wikis/{wiki.id}/pages", params={"path": "/", "recursionLevel": "deep"}
    )
    assert bad_level.status_code == 400
