"""The catalog page of a blueprint: keyset paging that visits every entity once in each sort
order, free-text search on title and identifier, state in the URL, the htmx fragment."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.support.ui import browser, sign_in, ui_app

from kiosk.auth.users import create_user
from kiosk.ui.catalog import BlueprintInfo, CatalogQuery, blueprint_info, catalog_page, parse_filter

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
    return re.findall(r'<tr><td><a href="[^"]+">[^<]*</a></td><td>([^<]+)</td>', html)


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
    info = blueprint_info(app.state.db, "service")
    assert info is not None
    for sort in ("createdAt", "updatedAt"):
        for descending in (False, True):
            seen: list[str] = []
            after = None
            while True:
                page = catalog_page(
                    app.state.db, info, CatalogQuery("service", sort=sort, descending=descending, after=after, size=25)
                )
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
    assert fragment.text.lstrip().startswith('<div class="catalog-tools">') and "<html" not in fragment.text
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


# ----------------------------------------------------------------------------- filters, property sorts, "Me"

APP_CONFIG = """
blueprints:
  - identifier: app
    title: App
    schema:
      properties:
        note: {type: string, title: Note}
        tier: {type: number, title: Tier}
        language: {type: string, title: Language}
        active: {type: boolean, title: Active}
        owner_email: {type: string, format: email, title: Owner}
        tags: {type: array, title: Tags}
"""
LANGUAGES = ("python", "go", "rust")
# 60 apps: a tier on most (missing on every 7th), a language, a flag, an owner's email, tags.
APPS: list[dict[str, Any]] = [
    {
        "identifier": f"app-{i:02d}",
        "title": f"App {i:02d}",
        "properties": {
            **({} if i % 7 == 0 else {"tier": i % 4}),
            "language": LANGUAGES[i % 3],
            "active": i % 2 == 0,
            "owner_email": "max@example.com" if i % 5 == 0 else "other@example.com",
            "tags": [f"t{i % 3}", "all"],
            "note": "<script>alert(1)</script>" if i == 1 else "plain",
        },
    }
    for i in range(60)
]


@pytest.fixture
def apps(tmp_path: Path, database_url: str) -> Iterator[tuple[FastAPI, TestClient]]:
    app = ui_app(tmp_path, database_url, APP_CONFIG)
    app.state.catalog.bulk_upsert("app", APPS, upsert=True)
    create_user(app.state.db, "max@example.com", "member", PASSWORD)
    client = browser(app)
    assert sign_in(client, "max@example.com").status_code == 303
    yield app, client
    app.state.db.dispose()


def _all_identifiers(client: TestClient, url: str) -> list[str]:
    """Every row across the pages the ``Next page`` links lead through, in order."""
    seen: list[str] = []
    next_url: str | None = url
    while next_url:
        answer = client.get(next_url)
        assert answer.status_code == 200, answer.text
        seen += _identifiers(answer.text)
        next_url = _next(answer.text)
    return seen


def _headers(html: str) -> list[str]:
    """The column headers' labels (the sorted one's arrow left out)."""
    return re.findall(r'hx-push-url="true">([^<]+?) ?(?:<span aria-hidden="true">.</span>)?</a>\s*</th>', html)


def _expected(keep: Any) -> list[str]:
    return sorted(a["identifier"] for a in APPS if keep(a["properties"]))


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        (["language:=:go"], lambda p: p["language"] == "go"),
        (["language:!=:go"], lambda p: p["language"] != "go"),
        (["tags:contains:t1"], lambda p: "t1" in p["tags"]),
        (["language:in:go, rust"], lambda p: p["language"] in ("go", "rust")),
        (["language:notIn:go"], lambda p: p["language"] != "go"),
        (["tier:>=:2"], lambda p: p.get("tier", -1) >= 2),
        (["tier:<:1"], lambda p: "tier" in p and p["tier"] < 1),
        (["tier:isEmpty:"], lambda p: "tier" not in p),
        (["tier:isNotEmpty"], lambda p: "tier" in p),
        (["active:=:true"], lambda p: p["active"]),
        (["active:=:true", "language:=:go"], lambda p: p["active"] and p["language"] == "go"),
    ],
)
def test_each_operator_family_filters_like_the_search(
    apps: tuple[FastAPI, TestClient], filters: list[str], keep: Any
) -> None:
    _, client = apps
    url = "/ui/catalog/app?" + "&".join(f"f={quote(f)}" for f in filters) + "&sort=identifier&size=25"
    seen = _all_identifiers(client, url)
    assert seen == _expected(keep) and seen  # each filter keeps some apps, in identifier order
    page = client.get(url)
    assert f"{len(seen)} entit" in page.text
    for f in filters:  # each active filter is listed with a link that removes only it
        assert f.split(":")[0].capitalize() in page.text


def test_or_combinator_and_meta_properties(apps: tuple[FastAPI, TestClient]) -> None:
    _, client = apps
    url = "/ui/catalog/app?f=language:=:go&f=tier:=:3&combinator=or&sort=identifier&size=100"
    assert _all_identifiers(client, url) == _expected(lambda p: p["language"] == "go" or p.get("tier") == 3)
    assert "<strong>any</strong>" in client.get(url).text
    by_title = _all_identifiers(client, "/ui/catalog/app?f=$title:contains:App 1&sort=identifier&size=100")
    assert by_title == [f"app-{i}" for i in range(10, 20)]


def test_filters_the_search_refuses_are_reported_and_left_out(apps: tuple[FastAPI, TestClient]) -> None:
    _, client = apps
    page = client.get(
        "/ui/catalog/app",
        params=[("f", "nope:=:1"), ("f", "tier:=:high"), ("f", "tier:~:1"), ("f", "tier:=:"), ("f", "language:=:go")],
    )
    assert page.status_code == 200
    assert "App has no property &#39;nope&#39;" in page.text
    assert "Filter “tier:=:high” left out" in page.text and "&#39;~&#39; is not a filter operator" in page.text
    assert "needs a value" in page.text
    assert "20 entities" in page.text  # the one good filter applies


def test_add_filter_form_redirects_to_the_filters_url(apps: tuple[FastAPI, TestClient]) -> None:
    _, client = apps
    answer = client.get(
        "/ui/catalog/app",
        params={"q": "app", "f": "active:=:true", "sort": "-prop:tier", "fp": "language", "fo": "=", "fv": "go"},
    )
    assert answer.status_code == 303
    assert (
        answer.headers["location"]
        == "/ui/catalog/app?q=app&f=active%3A%3D%3Atrue&f=language%3A%3D%3Ago&sort=-prop%3Atier"
    )
    page = client.get(answer.headers["location"])
    assert _identifiers(page.text) and set(_identifiers(page.text)) <= set(
        _expected(lambda p: p["active"] and p["language"] == "go")
    )
    # The form offers every property (and the meta ones) and every operator, with labels.
    form = client.get("/ui/catalog/app")
    assert '<label for="filter-property">' in form.text and '<option value="owner_email">Owner</option>' in form.text
    assert '<option value="$createdAt">Created</option>' in form.text
    assert '<option value="isNotEmpty">is not empty</option>' in form.text


@pytest.mark.parametrize("descending", [False, True])
def test_sort_on_a_property_pages_each_entity_once(apps: tuple[FastAPI, TestClient], descending: bool) -> None:
    _, client = apps
    seen = _all_identifiers(client, f"/ui/catalog/app?sort={'-' if descending else ''}prop:tier&size=25")
    assert len(seen) == len(APPS) == len(set(seen))
    tiers = {a["identifier"]: a["properties"].get("tier") for a in APPS}
    present = [tiers[i] for i in seen if tiers[i] is not None]
    assert present == sorted(present, reverse=descending)
    assert all(tiers[i] is None for i in seen[len(present) :])  # apps without a tier come last
    page = client.get("/ui/catalog/app?sort=prop:tier")
    assert 'aria-sort="ascending"' in page.text and "sorted by tier (ascending)" in page.text
    # Its header link reverses it; another property's header sorts on that property.
    assert 'href="/ui/catalog/app?sort=-prop%3Atier"' in page.text
    assert 'href="/ui/catalog/app?sort=prop%3Alanguage"' in page.text


def test_sort_on_a_property_combines_with_filters(apps: tuple[FastAPI, TestClient]) -> None:
    _, client = apps
    seen = _all_identifiers(client, "/ui/catalog/app?f=language:=:rust&sort=-prop:tier&size=25")
    assert sorted(seen) == _expected(lambda p: p["language"] == "rust")
    tiers = [APPS[int(i[4:])]["properties"].get("tier", -1) for i in seen]
    assert tiers[: len([t for t in tiers if t >= 0])] == sorted([t for t in tiers if t >= 0], reverse=True)


def test_me_keeps_entities_holding_my_email_or_related_to_me(apps: tuple[FastAPI, TestClient]) -> None:
    app, client = apps
    mine = _all_identifiers(client, "/ui/catalog/app?me=1&sort=identifier&size=100")
    assert mine == _expected(lambda p: p["owner_email"] == "max@example.com")
    page = client.get("/ui/catalog/app?me=1")
    assert "Show everyone</a>" in page.text and 'href="/ui/catalog/app"' in page.text
    # A relation to _user (the people blueprint exists since the sign-in): my laptops only.
    app.state.catalog.create_blueprint(
        {
            "identifier": "laptop",
            "title": "Laptop",
            "schema": {"properties": {}},
            "relations": {"holder": {"target": "_user", "many": False, "required": False}},
        }
    )
    create_user(app.state.db, "eve@example.com", "member", PASSWORD)
    assert sign_in(browser(app), "eve@example.com").status_code == 303
    app.state.catalog.bulk_upsert(
        "laptop",
        [
            {"identifier": "lt-1", "relations": {"holder": "max@example.com"}},
            {"identifier": "lt-2", "relations": {"holder": "eve@example.com"}},
            {"identifier": "lt-3", "relations": {"holder": "max@example.com"}},
        ],
        upsert=True,
    )
    assert _all_identifiers(client, "/ui/catalog/laptop?me=1") == ["lt-1", "lt-3"]
    assert len(_all_identifiers(client, "/ui/catalog/laptop")) == 3


def test_no_me_filter_without_a_user_relation_or_email_property(client: TestClient) -> None:
    page = client.get("/ui/catalog/service", params={"me": "1"})
    assert "Only mine" not in page.text and "130 entities" in page.text


def test_property_values_are_escaped_and_rows_link_to_entities(apps: tuple[FastAPI, TestClient]) -> None:
    _, client = apps
    page = client.get("/ui/catalog/app?sort=identifier")
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert '<a href="/ui/catalog/app/app-00">App 00</a>' in page.text
    assert "<td>max@example.com</td>" in page.text and "<td>Yes</td>" in page.text and "<td>t0, all</td>" in page.text
    # Five properties have columns (by title, the same on both engines); the others sort from the
    # form, and the property sorted on gets its column.
    headers = _headers(page.text)
    assert headers == ["Title", "Identifier", "Active", "Language", "Note", "Owner", "Tags", "Last update", "Created"]
    assert '<option value="prop:tier">Tier (ascending)</option>' in page.text
    by_tier = client.get("/ui/catalog/app?sort=-prop:tier")
    assert _headers(by_tier.text)[7] == "Tier"


def test_forms_carry_the_rest_of_the_state(apps: tuple[FastAPI, TestClient]) -> None:
    _, client = apps
    page = client.get("/ui/catalog/app?q=app&f=language:=:go&combinator=or&me=1&sort=-prop:tier&size=25")
    search_form = re.search(r'<form class="search".*?</form>', page.text, re.S)
    assert search_form is not None
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', search_form.group(0))
    assert hidden == [
        ("f", "language:=:go"),
        ("combinator", "or"),
        ("me", "1"),
        ("sort", "-prop:tier"),
        ("size", "25"),
    ]
    # The sort form leaves its own field out; the plain page's forms carry nothing at all.
    sort_form = re.search(r'<form class="sort".*?</form>', page.text, re.S)
    assert sort_form is not None and 'type="hidden" name="sort"' not in sort_form.group(0)
    assert '<option value="-prop:tier" selected>Tier (descending)</option>' in sort_form.group(0)
    plain = client.get("/ui/catalog/app")
    tools = plain.text.split('<div class="catalog-tools">')[1].split('<p id="catalog-count"')[0]
    assert "<form" in tools and 'type="hidden"' not in tools
    # Removing a filter keeps the others and the rest of the state.
    two = client.get("/ui/catalog/app?f=language:=:go&f=active:=:true&sort=identifier")
    assert 'href="/ui/catalog/app?f=active%3A%3D%3Atrue&amp;sort=identifier">Remove' in two.text
    assert 'href="/ui/catalog/app?f=language%3A%3D%3Ago&amp;sort=identifier">Remove' in two.text
    # The htmx fragment (a header link) swaps the forms too, so they never hold a stale sort.
    fragment = client.get("/ui/catalog/app?f=language:=:go&sort=prop:tier", headers={"HX-Request": "true"})
    assert '<input type="hidden" name="sort" value="prop:tier">' in fragment.text and "<html" not in fragment.text


def test_unknown_property_sort_falls_back_and_values_are_typed(app: FastAPI) -> None:
    info = blueprint_info(app.state.db, "service")
    assert info is not None
    query = CatalogQuery.from_url(info, None, "-prop:nope", None, None)
    assert (query.sort, query.descending) == ("title", False)
    typed = BlueprintInfo("x", "X", {"n": {"type": "number"}, "b": {"type": "boolean"}, "s": {"type": "string"}})
    assert parse_filter(typed, "n:=:2").rule["value"] == 2 and parse_filter(typed, "n:>:2.5").rule["value"] == 2.5
    assert parse_filter(typed, "b:=:TRUE").rule["value"] is True and parse_filter(typed, "s:=:2").rule["value"] == "2"
    assert parse_filter(typed, "n:in:1,2, 3").rule["value"] == [1, 2, 3]
    assert parse_filter(typed, "s:isEmpty:ignored").rule == {"property": "s", "operator": "isEmpty"}
    for bad in ("b:=:yes", "n:=:x", "s:between:1", "s:contains:"):
        with pytest.raises(ValueError):
            parse_filter(typed, bad)
