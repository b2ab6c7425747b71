"""The catalog page of a blueprint: keyset paging that visits every entity once in each sort
order, free-text search on title and identifier, state in the URL, the htmx fragment."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.support.ui import browser, sign_in, ui_app

from kiosk.auth.users import create_user
from kiosk.ui.catalog import CatalogQuery, catalog_page

CONFIG = """
blueprints:
  - identifier: service
    title: Service
    schema: {properties: {}}
  - identifier: empty
    title: Nothing here
    schema: {properties: {}}
"""
PASSWORD = "correct horse battery staple"
# 130 services: titles repeat (ties broken by row id), some have none (the identifier stands in),
# and two hold LIKE's wildcards literally.
ENTITIES: list[dict[str, Any]] = [
    {"identifier": f"svc-{i:03d}", **({"title": f"Team {chr(65 + i % 5)} service"} if i % 4 else {})}
    for i in range(128)
] + [{"identifier": "pct", "title": "100% uptime"}, {"identifier": "under_score", "title": "a_b"}]


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[FastAPI]:
    app = ui_app(tmp_path, database_url, CONFIG)
    outcome = app.state.catalog.bulk_upsert("service", ENTITIES, upsert=True)
    assert all(r["created"] for r in outcome.entities)
    create_user(app.state.db, "max@example.com", "member", PASSWORD)
    yield app
    app.state.db.dispose()


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    client = browser(app)
    assert sign_in(client, "max@example.com").status_code == 303
    return client


def _identifiers(html: str) -> list[str]:
    return re.findall(r"<tr><td>[^<]*</td><td>([^<]+)</td>", html)


def _next(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)"[^>]*rel="next"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def _title_key(entity: dict[str, Any]) -> str:
    return str(entity.get("title") or entity["identifier"])


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        ("title", _title_key, False),
        ("-title", _title_key, True),
        ("identifier", lambda e: e["identifier"], False),
        ("-identifier", lambda e: e["identifier"], True),
    ],
)
def test_paging_visits_every_entity_once_in_order(client: TestClient, sort: str, key: Any, reverse: bool) -> None:
    seen: list[str] = []
    url: str | None = f"/ui/catalog/service?sort={sort}&size=25"
    pages = 0
    while url:
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        rows = _identifiers(answer.text)
        assert len(rows) <= 25
        seen += rows
        url = _next(answer.text)
        pages += 1
    assert pages == 6 and len(seen) == len(ENTITIES) == len(set(seen))
    titles = {e["identifier"]: _title_key(e) for e in ENTITIES}
    keys = [key({"identifier": i, "title": titles[i]}) for i in seen]
    assert keys == sorted(keys, reverse=reverse)  # ties (repeated titles) never split or repeat a row


def test_dates_sort_and_page_too(app: FastAPI) -> None:
    for sort in ("createdAt", "updatedAt"):
        for descending in (False, True):
            seen: list[str] = []
            after = None
            while True:
                page = catalog_page(
                    app.state.db, CatalogQuery("service", sort=sort, descending=descending, after=after, size=25)
                )
                assert page is not None
                seen += [r["identifier"] for r in page.rows]
                if page.next_after is None:
                    break
                after = page.next_after
            assert sorted(seen) == sorted(e["identifier"] for e in ENTITIES)


def test_search_matches_title_or_identifier_and_escapes_wildcards(client: TestClient) -> None:
    by_title = client.get("/ui/catalog/service", params={"q": "team c"})
    expected = sum(1 for e in ENTITIES if "team c" in str(e.get("title", "")).lower())
    assert expected == 20 and f"{expected} entities matching" in by_title.text
    assert all(i.startswith("svc-") for i in _identifiers(by_title.text))
    by_identifier = client.get("/ui/catalog/service", params={"q": "SVC-12"})
    assert sorted(_identifiers(by_identifier.text)) == [f"svc-{i}" for i in range(120, 128)]
    percent = client.get("/ui/catalog/service", params={"q": "%"})
    assert _identifiers(percent.text) == ["pct"]
    underscore = client.get("/ui/catalog/service", params={"q": "_"})
    assert _identifiers(underscore.text) == ["under_score"]
    nothing = client.get("/ui/catalog/service", params={"q": "<script>"})
    assert "0 entities matching “&lt;script&gt;”" in nothing.text and "<script>" not in nothing.text


def test_state_lives_in_the_url(client: TestClient) -> None:
    page = client.get("/ui/catalog/service", params={"q": "team", "sort": "-identifier", "size": 25})
    assert 'aria-sort="descending"' in page.text
    next_url = _next(page.text)
    assert next_url is not None and "q=team" in next_url and "sort=-identifier" in next_url and "size=25" in next_url
    # The sorted column's link reverses it; the others sort ascending; the search is kept.
    assert 'href="/ui/catalog/service?q=team&amp;sort=identifier&amp;size=25"' in page.text
    assert 'href="/ui/catalog/service?q=team&amp;size=25"' in page.text  # title ascending is the default
    second = client.get(next_url)
    assert "First page" in second.text and set(_identifiers(second.text)).isdisjoint(_identifiers(page.text))


def test_htmx_request_gets_the_results_only(client: TestClient) -> None:
    fragment = client.get("/ui/catalog/service", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<p id="catalog-count"') and "<html" not in fragment.text
    assert len(_identifiers(fragment.text)) == 50
    assert fragment.headers["vary"] == "HX-Request"


def test_odd_urls_fall_back_and_unknown_blueprints_are_404(client: TestClient) -> None:
    odd = client.get("/ui/catalog/service", params={"sort": "nonsense", "size": 7, "after": "!!not-a-cursor"})
    assert odd.status_code == 200 and len(_identifiers(odd.text)) == 50
    assert "sorted by title (ascending)" in odd.text
    empty = client.get("/ui/catalog/empty")
    assert empty.status_code == 200 and "0 entities" in empty.text and "<table>" not in empty.text
    missing = client.get("/ui/catalog/nope")
    assert missing.status_code == 404 and "There is no blueprint" in missing.text


def test_signed_out_goes_to_sign_in_and_comes_back(app: FastAPI) -> None:
    anon = browser(app)
    answer = anon.get("/ui/catalog/service", params={"sort": "-title"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?next=%2Fui%2Fcatalog%2Fservice%3Fsort%3D-title"
    back = sign_in(anon, "max@example.com", next_path="/ui/catalog/service?sort=-title")
    assert back.headers["location"] == "/ui/catalog/service?sort=-title"


def test_home_links_each_blueprint(client: TestClient) -> None:
    home = client.get("/")
    assert '<a href="/ui/catalog/service">Service</a>' in home.text
    assert '<span class="count">130</span>' in home.text


def test_admins_see_the_same_page(app: FastAPI) -> None:
    create_user(app.state.db, "ada@example.com", "admin", PASSWORD, name="Ada")
    admin = browser(app)
    assert sign_in(admin, "ada@example.com").status_code == 303
    page = admin.get("/ui/catalog/service")
    assert page.status_code == 200 and 'Ada <span class="role">(admin)</span>' in page.text
    assert len(_identifiers(page.text)) == 50
