"""The entity page in process: fields shown by type and format, markdown through the sanitiser,
property values escaped, relations as links, a tab per related blueprint (upstream and downstream,
listed by kiosk's search and paged), the runs on the entity, 404s, and who may see it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.support.ui import PASSWORD, browser, sign_in, ui_app

from kiosk.auth.users import create_user
from kiosk.store.tables import action_runs
from kiosk.ui.entity import RELATED_PAGE, property_view, render_markdown

CONFIG = """
blueprints:
  - identifier: system
    title: System
    schema: {properties: {}}
  - identifier: library
    title: Library
    schema: {properties: {}}
  - identifier: service
    title: Service
    schema:
      properties:
        homepage: {type: string, format: url, title: Home page}
        contact: {type: string, format: email, title: Contact}
        deployed: {type: string, format: date-time, title: Deployed}
        readme: {type: string, format: markdown, title: Readme}
        on_call: {type: boolean, title: On call}
        replicas: {type: number, title: Replicas}
        languages: {type: array, title: Languages}
        settings: {type: object, title: Settings}
        motto: {type: string, title: Motto}
        unset: {type: string, title: Not filled}
    relations:
      system: {target: system, many: false, required: false, title: Part of}
      libraries: {target: library, many: true, required: false, title: Uses}
  - identifier: deployment
    title: Deployment
    schema: {properties: {}}
    relations:
      service: {target: service, many: false, required: false}
entities:
  - {blueprint: system, identifier: shop, title: Shop}
  - {blueprint: library, identifier: requests, title: Requests}
  - {blueprint: library, identifier: numpy}
"""
README = """# Checkout

Some **bold** text and [a link](https://example.com/docs).

<script>alert('md')</script>
<img src=x onerror="alert('img')">
[click](javascript:alert('js'))
[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
"""
CHECKOUT: dict[str, Any] = {
    "identifier": "checkout",
    "title": "Checkout",
    "team": ["payments"],
    "properties": {
        "homepage": "https://checkout.example.com/",
        "contact": "team@example.com",
        "deployed": "2026-12-01T10:30:00.000Z",
        "readme": README,
        "on_call": True,
        "replicas": 3,
        "languages": ["python", "go"],
        "settings": {"region": "westeurope", "zones": [1, 2]},
        "motto": '<img src=x onerror="alert(1)"> "quoted"',
    },
    "relations": {"system": "shop", "libraries": ["requests", "numpy"]},
}
DEPLOYMENTS = RELATED_PAGE + 5  # two pages in the downstream tab


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[FastAPI]:
    app = ui_app(tmp_path, database_url, CONFIG)
    catalog = app.state.catalog
    catalog.upsert_entity("service", CHECKOUT, actor="ada@example.com")
    catalog.upsert_entity("service", {"identifier": "a/b:c+d=e", "title": "Odd one"})
    catalog.bulk_upsert(
        "deployment",
        [{"identifier": f"dep-{i:02d}", "relations": {"service": "checkout"}} for i in range(DEPLOYMENTS)]
        + [{"identifier": "dep-other", "relations": {"service": "a/b:c+d=e"}}],
        upsert=True,
    )
    create_user(app.state.db, "ada@example.com", "admin", PASSWORD, name="Ada")
    create_user(app.state.db, "max@example.com", "member", PASSWORD, name="Max")
    yield app
    app.state.db.dispose()


def _client(app: FastAPI, email: str = "max@example.com") -> TestClient:
    client = browser(app)
    assert sign_in(client, email).status_code == 303
    return client


def _section(html: str) -> str:
    found = re.search(r'<section class="tab-panel".*?</section>', html, re.S)
    assert found
    return found.group(0)


def test_fields_and_properties_by_type_and_format(app: FastAPI) -> None:
    page = _client(app).get("/ui/catalog/service/checkout")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Checkout</h1>" in html and "<code>checkout</code>" in html
    assert '<a href="/ui/catalog/service">Service</a>' in html and "payments" in html
    assert "by ada@example.com" in html  # who created it, as stored, and when (UTC, to the minute)
    created = r'<dt>Created</dt><dd><time datetime="20[\d-]+T[\d:]+\+00:00">20[\d-]+ [\d:]+ UTC</time> by ada@'
    assert re.search(created, html)
    assert '<a href="https://checkout.example.com/" rel="noopener noreferrer" target="_blank">' in html
    assert '<a href="mailto:team@example.com">team@example.com</a>' in html
    assert '<time datetime="2026-12-01T10:30:00+00:00">2026-12-01 10:30 UTC</time>' in html
    assert '<dd class="kind-boolean">\nYes\n' in html and '<dd class="kind-number">\n3 ' in html
    assert "<li>python</li><li>go</li>" in html
    assert "&#34;region&#34;: &#34;westeurope&#34;" in html and "<pre>" in html
    assert '<dd class="kind-empty">\n<span class="muted">Not set</span>' in html


def test_markdown_is_rendered_and_sanitised(app: FastAPI) -> None:
    html = _client(app).get("/ui/catalog/service/checkout").text
    assert "<h1>Checkout</h1>" in html and "<strong>bold</strong>" in html
    assert '<a href="https://example.com/docs">a link</a>' in html
    assert "<script>alert" not in html and "&lt;script&gt;alert('md')&lt;/script&gt;" in html
    assert "<img" not in html and "&lt;img src=x onerror=&quot;alert('img')&quot;&gt;" in html
    # Links with a script or data scheme stay text: no href is made of them.
    assert "[click](javascript:alert('js'))" in html and 'href="javascript:' not in html
    assert 'href="data:' not in html
    # The same guarantees of the renderer alone.
    out = str(render_markdown("<b onclick=x>hi</b> [x](JAVASCRIPT:alert(1)) [y](vbscript:z)"))
    assert "<b" not in out and "href" not in out and "&lt;b onclick=x&gt;" in out


def test_property_values_are_escaped(app: FastAPI) -> None:
    app.state.catalog.upsert_entity("system", {"identifier": "xss", "title": "<script>t()</script>", "team": ["<b>"]})
    other = _client(app).get("/ui/catalog/system/xss").text
    assert "<script>t()" not in other and "<h1>&lt;script&gt;t()&lt;/script&gt;</h1>" in other
    assert "&lt;b&gt;" in other and "<b>" not in other
    html = _client(app).get("/ui/catalog/service/checkout").text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &#34;quoted&#34;" in html
    assert '<img src=x onerror="alert(1)">' not in html


def test_property_view_kinds() -> None:
    # A url that is not a web address is shown as text, never as a link.
    assert property_view("u", {"format": "url"}, "javascript://x%0aalert(1)").kind == "text"
    assert property_view("u", {"format": "url"}, "ftp://x").kind == "text"
    assert property_view("e", {"format": "email"}, "a@b.c?subject=x").kind == "text"
    assert property_view("d", {"format": "date-time"}, "yesterday").kind == "text"
    assert property_view("n", {}, 2.5).kind == "number" and property_view("b", {}, False).kind == "boolean"
    assert property_view("l", {}, [{"a": 1}]).kind == "json" and property_view("z", {}, []).kind == "empty"
    assert property_view("t", {"title": "Nice"}, "x").title == "Nice"


def test_relations_link_to_their_entities(app: FastAPI) -> None:
    html = _client(app).get("/ui/catalog/service/checkout").text
    assert (
        'Part of <span class="muted">(system)</span></dt>\n    <dd>\n<a href="/ui/catalog/system/shop">shop</a>' in html
    )
    assert (
        '<ul><li><a href="/ui/catalog/library/requests">requests</a></li>'
        '<li><a href="/ui/catalog/library/numpy">numpy</a></li></ul>' in html
    )
    target = _client(app).get("/ui/catalog/system/shop")
    assert target.status_code == 200 and "<h1>Shop</h1>" in target.text


def test_tabs_list_related_entities_up_and_downstream(app: FastAPI) -> None:
    client = _client(app)
    html = client.get("/ui/catalog/service/checkout").text
    for key in ("runs", "upstream%3Alibrary", "upstream%3Asystem", "downstream%3Adeployment"):
        assert f'href="/ui/catalog/service/checkout?tab={key}"' in html
    assert 'href="/ui/catalog/service/checkout" aria-current="page">Overview' in html
    up = client.get("/ui/catalog/service/checkout", params={"tab": "upstream:library"})
    section = _section(up.text)
    assert '<h2 id="tab-heading">Library (this entity points to)</h2>' in section
    assert sorted(re.findall(r'<a href="/ui/catalog/library/([^"]+)">', section)) == ["numpy", "requests"]
    assert "<h3>Properties</h3>" not in section
    # Downstream: the deployments pointing here, two pages, each deployment once; not dep-other.
    seen: list[str] = []
    url: str | None = "/ui/catalog/service/checkout?tab=downstream%3Adeployment"
    pages = 0
    while url:
        section = _section(client.get(url).text)
        assert "(pointing here)</h2>" in section
        seen += re.findall(r'<a href="/ui/catalog/deployment/([^"]+)">', section)
        found = re.search(r'<a href="([^"]+)" rel="next">', section)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    assert pages == 2 and sorted(seen) == [f"dep-{i:02d}" for i in range(DEPLOYMENTS)]
    # A cursor the server never gave starts the list again; an unknown tab is the overview.
    again = client.get("/ui/catalog/service/checkout", params={"tab": "downstream:deployment", "cursor": "zz"})
    assert (
        again.status_code == 200 and len(re.findall(r"/ui/catalog/deployment/", _section(again.text))) == RELATED_PAGE
    )
    odd = client.get("/ui/catalog/service/checkout", params={"tab": "nope"})
    assert "<h3>Properties</h3>" in odd.text


def test_identifiers_with_url_characters(app: FastAPI) -> None:
    client = _client(app)
    page = client.get("/ui/catalog/service/a%2Fb%3Ac%2Bd%3De")
    assert page.status_code == 200 and "<h1>Odd one</h1>" in page.text
    catalog = client.get("/ui/catalog/service")
    assert '<a href="/ui/catalog/service/a%2Fb%3Ac%2Bd%3De">Odd one</a>' in catalog.text
    down = _section(client.get("/ui/catalog/service/a%2Fb%3Ac%2Bd%3De?tab=downstream%3Adeployment").text)
    assert re.findall(r'<a href="/ui/catalog/deployment/([^"]+)">', down) == ["dep-other"]


def test_runs_on_the_entity_newest_first(app: FastAPI) -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    with app.state.db.begin() as conn:
        for i, (entity, status) in enumerate(
            [("checkout", "SUCCESS"), ("checkout", "FAILURE"), ("a/b:c+d=e", "SUCCESS"), ("checkout", "IN_PROGRESS")]
        ):
            conn.execute(
                sa.insert(action_runs).values(
                    id=f"r_{i}",
                    action="deploy",
                    status=status,
                    status_label="<b>label</b>" if i == 1 else None,
                    blueprint="service",
                    entity=entity,
                    properties={},
                    links=[],
                    origin="UI",
                    created_by="max@example.com",
                    created_at=start + timedelta(minutes=i),
                    updated_at=start + timedelta(minutes=i),
                )
            )
    client = _client(app)
    section = _section(client.get("/ui/catalog/service/checkout?tab=runs").text)
    assert re.findall(r'<a href="/ui/runs/(r_\d)">', section) == ["r_3", "r_1", "r_0"]
    assert "IN_PROGRESS" in section and "&lt;b&gt;label&lt;/b&gt;" in section
    none = _section(client.get("/ui/catalog/system/shop?tab=runs").text)
    assert "No action has run on this entity." in none


def test_unknown_entity_or_blueprint_is_a_404_page(app: FastAPI) -> None:
    client = _client(app)
    for url in ("/ui/catalog/service/nope", "/ui/catalog/nope/checkout"):
        answer = client.get(url)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
        assert "There is no entity" in answer.text


def test_members_and_admins_see_it_signed_out_do_not(app: FastAPI) -> None:
    for email in ("max@example.com", "ada@example.com"):
        page = _client(app, email).get("/ui/catalog/service/checkout")
        assert page.status_code == 200 and "<h1>Checkout</h1>" in page.text
    anon = browser(app).get("/ui/catalog/service/checkout?tab=runs")
    assert anon.status_code == 303
    assert anon.headers["location"] == "/ui/sign-in?next=%2Fui%2Fcatalog%2Fservice%2Fcheckout%3Ftab%3Druns"
    assert "Checkout" not in anon.text
