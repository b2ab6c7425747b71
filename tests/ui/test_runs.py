"""Run pages in process: a run's page (status, label, summary, links, masked inputs, who, entity,
logs), its live part for htmx while in progress, who may see which run, and the runs lists
("my runs" newest first, paged)."""

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
from kiosk.ui.runs import PAGE_SIZE, can_see, safe_link, shown_value

CONFIG = """
blueprints:
  - {identifier: service, title: Service, schema: {properties: {}}}
entities:
  - {blueprint: service, identifier: checkout, title: Checkout}
actions:
  - identifier: deploy
    title: Deploy
    trigger: {type: self-service, operation: DAY-2, blueprintIdentifier: service, userInputs: {properties: {}}}
    invocationMethod: {type: WEBHOOK, url: "https://example.com/hook"}
"""
START = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[FastAPI]:
    app = ui_app(tmp_path, database_url, CONFIG)
    create_user(app.state.db, "ada@example.com", "admin", PASSWORD, name="Ada Admin")
    create_user(app.state.db, "max@example.com", "member", PASSWORD, name="Max Member")
    create_user(app.state.db, "eve@example.com", "member", PASSWORD, name="Eve Member")
    yield app
    app.state.db.dispose()


def signed_in(app: FastAPI, email: str) -> TestClient:
    client = browser(app)
    assert sign_in(client, email).status_code == 303
    return client


def add_run(app: FastAPI, run_id: str, who: str, *, entity: str | None = None, minutes: int = 0, **values: Any) -> None:
    at = START + timedelta(minutes=minutes)
    row = {
        "id": run_id,
        "action": "deploy",
        "status": "IN_PROGRESS",
        "properties": {},
        "links": [],
        "origin": "UI",
        "created_by": who,
        "blueprint": "service" if entity else None,
        "entity": entity,
        "created_at": at,
        "updated_at": at,
        **values,
    }
    with app.state.db.begin() as conn:
        conn.execute(sa.insert(action_runs).values(**row))


def rid(label: str) -> str:
    """A run id of the usual shape (``r_`` + hex) that reads back as ``label``."""
    return "r_" + label.encode().hex()


def run_ids(html: str) -> list[str]:
    """The runs listed, as their labels."""
    return [bytes.fromhex(h).decode() for h in re.findall(r'<td><a href="/ui/runs/r_([0-9a-f]+)">', html)]


def test_the_run_page_shows_the_run_and_its_logs(app: FastAPI) -> None:
    add_run(
        app,
        rid("page"),
        "max@example.com",
        entity="checkout",
        status_label="Deploying <b>v2</b>",
        summary="Two of three stages done",
        links=["https://dev.azure.com/org/p/_build/results?buildId=7", "javascript:alert(1)"],
        properties={"version": "2.0", "token": "****", "replicas": 3},
    )
    app.state.runs.add_log(rid("page"), {"message": "stage 1 <done>"})
    app.state.runs.add_log(rid("page"), {"message": "stage 2 done"})
    page = signed_in(app, "max@example.com").get(f"/ui/runs/{rid('page')}")
    assert page.status_code == 200, page.text
    html = page.text
    assert f'<h1>Deploy <span class="muted">· run {rid("page")}</span></h1>' in html
    assert '<span class="status status-in_progress">IN_PROGRESS</span> — Deploying &lt;b&gt;v2&lt;/b&gt;' in html
    assert '<p class="run-summary">Two of three stages done</p>' in html
    assert '<a href="https://dev.azure.com/org/p/_build/results?buildId=7" rel="noopener noreferrer">' in html
    assert "<li>javascript:alert(1)</li>" in html and 'href="javascript:' not in html
    assert "<dt>token</dt><dd><code>****</code></dd>" in html and "<dt>replicas</dt><dd><code>3</code></dd>" in html
    assert 'max@example.com <span class="muted">(from UI)</span>' in html
    assert '<a href="/ui/catalog/service?q=checkout">service / checkout</a>' in html
    assert html.index("stage 1 &lt;done&gt;") < html.index("stage 2 done")
    # In progress: the live part asks for itself every 2 seconds.
    assert f'hx-get="/ui/runs/{rid("page")}?part=live" hx-trigger="every 2s"' in html


def test_the_live_part_is_a_fragment_and_stops_polling_when_the_run_ends(app: FastAPI) -> None:
    add_run(app, rid("live"), "max@example.com")
    client = signed_in(app, "max@example.com")
    part = client.get(f"/ui/runs/{rid('live')}?part=live", headers={"HX-Request": "true"})
    assert part.text.startswith('<div id="run-live" hx-get=') and "<html" not in part.text
    assert "No log lines yet." in part.text
    app.state.runs.add_log(rid("live"), {"message": "all done", "terminationStatus": "SUCCESS"})
    ended = client.get(f"/ui/runs/{rid('live')}?part=live", headers={"HX-Request": "true"})
    assert ended.text.startswith('<div id="run-live">') and "hx-trigger" not in ended.text
    assert '<span class="status status-success">SUCCESS</span>' in ended.text and "all done" in ended.text
    # Without htmx the same URL is the whole page.
    assert "<html" in client.get(f"/ui/runs/{rid('live')}?part=live").text


def test_who_sees_which_run(app: FastAPI) -> None:
    add_run(app, rid("max_plain"), "max@example.com")
    add_run(app, rid("eve_plain"), "eve@example.com", minutes=1)
    add_run(app, rid("eve_entity"), "eve@example.com", entity="checkout", minutes=2)
    max_client, admin = signed_in(app, "max@example.com"), signed_in(app, "ada@example.com")
    assert max_client.get(f"/ui/runs/{rid('max_plain')}").status_code == 200
    assert max_client.get(f"/ui/runs/{rid('eve_entity')}").status_code == 200  # on an entity Max can see
    hidden = max_client.get(f"/ui/runs/{rid('eve_plain')}")
    assert hidden.status_code == 404 and "not yours to see" in hidden.text
    assert max_client.get(f"/ui/runs/{rid('nonexistent')}").status_code == 404
    for label in ("max_plain", "eve_plain", "eve_entity"):
        assert admin.get(f"/ui/runs/{rid(label)}").status_code == 200
    signed_out = browser(app).get(f"/ui/runs/{rid('max_plain')}")
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/ui/sign-in?next=")
    assert run_ids(max_client.get("/ui/runs").text) == ["eve_entity", "max_plain"]
    assert run_ids(admin.get("/ui/runs").text) == ["eve_entity", "eve_plain", "max_plain"]


def test_my_runs_newest_first_a_page_at_a_time(app: FastAPI) -> None:
    for i in range(PAGE_SIZE + 2):
        add_run(app, rid(f"mine_{i:03d}"), "max@example.com", minutes=i)
    add_run(app, rid("eve_entity"), "eve@example.com", entity="checkout", minutes=500)
    client = signed_in(app, "max@example.com")
    first = client.get("/ui/runs?mine=1")
    assert first.status_code == 200
    assert '<a href="/ui/runs?mine=1" aria-current="page">My runs</a>' in first.text
    ids = run_ids(first.text)
    assert ids == [f"mine_{i:03d}" for i in range(PAGE_SIZE + 1, 1, -1)]
    found = re.search(r'<a href="(/ui/runs\?mine=1&amp;after=[^"]+)" rel="next">', first.text)
    assert found
    second = client.get(found.group(1).replace("&amp;", "&"))
    assert run_ids(second.text) == ["mine_001", "mine_000"] and 'rel="next"' not in second.text
    assert '<a href="/ui/runs?mine=1">First page</a>' in second.text
    assert run_ids(client.get("/ui/runs?mine=1&after=garbage").text) == ids  # a bad cursor: the first page
    assert run_ids(signed_in(app, "eve@example.com").get("/ui/runs?mine=1").text) == ["eve_entity"]


def test_the_rules_behind_the_pages() -> None:
    from kiosk.auth.users import User

    member = User(id="u1", email="max@example.com", name=None, role="member", local=True)
    admin = User(id="u2", email="ada@example.com", name=None, role="admin", local=True)
    assert can_see(member, "max@example.com", None) and can_see(member, "eve@example.com", "checkout")
    assert not can_see(member, "eve@example.com", None) and can_see(admin, "eve@example.com", None)
    assert not can_see(member, None, None)
    assert safe_link("https://x.example/a") == "https://x.example/a" and safe_link("HTTP://x") == "HTTP://x"
    assert safe_link("javascript:alert(1)") is None and safe_link("data:text/html,x") is None and safe_link(3) is None
    assert shown_value("text") == "text" and shown_value({"a": [1, True]}) == '{"a":[1,true]}'
