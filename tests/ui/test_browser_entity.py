"""The catalog's filters, property sort and the entity page in a real browser (Debian's chromium
through Playwright), under the pages' own Content-Security-Policy, with axe-core on each page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page
from tests.support.browser import chromium, serious_violations
from tests.support.live_kiosk import LiveServer, start_server
from tests.support.ui import PASSWORD

from kiosk.auth.users import create_user
from kiosk.settings import Settings

pytestmark = pytest.mark.browser

SERVICE = {
    "identifier": "service",
    "title": "Service",
    "schema": {
        "properties": {
            "language": {"type": "string", "title": "Language"},
            "tier": {"type": "number", "title": "Tier"},
            "readme": {"type": "string", "format": "markdown", "title": "Readme"},
        }
    },
    "relations": {"libraries": {"target": "library", "many": True, "required": False, "title": "Uses"}},
}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings.from_env(
        {"KIOSK_HOME": str(tmp_path / "home"), "KIOSK_DATABASE_URL": f"sqlite:///{tmp_path}/k.db"}
    )
    yield from start_server(settings)


def _sign_in(page: Page, base_url: str) -> None:
    page.goto(base_url + "/ui/sign-in")
    page.get_by_label("Email").fill("max@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base_url + "/")


def test_filter_sort_open_an_entity_and_switch_tabs(live: LiveServer) -> None:
    admin = live.admin
    library = {"identifier": "library", "title": "Library", "schema": {"properties": {}}}
    assert admin.post("/v1/blueprints", json=library).status_code == 201
    assert admin.post("/v1/blueprints", json=SERVICE).status_code == 201
    libraries = [{"identifier": "requests", "title": "Requests"}, {"identifier": "httpx", "title": "HTTPX"}]
    assert admin.post("/v1/blueprints/library/entities/bulk", json={"entities": libraries}).status_code == 200
    services = [
        {
            "identifier": f"svc-{i:02d}",
            "title": f"Service {i:02d}",
            "properties": {"language": ("go", "python")[i % 2], "tier": i % 3, "readme": "**Owned** by team"},
            "relations": {"libraries": ["requests", "httpx"] if i == 4 else []},
        }
        for i in range(12)
    ]
    assert admin.post("/v1/blueprints/service/entities/bulk", json={"entities": services}).status_code == 200
    create_user(live.app.state.db, "max@example.com", "member", PASSWORD)
    base = live.base_url
    with chromium() as browser:
        context = browser.new_context()  # the page's own policy in force
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        _sign_in(page, base)
        page.get_by_role("link", name="Service", exact=True).click()
        page.wait_for_url(base + "/ui/catalog/service")
        assert page.locator("tbody tr").count() == 12

        # Add a filter with the form (no script involved): Language is go.
        page.get_by_label("Property").select_option("language")
        page.get_by_label("Condition").select_option("=")
        page.get_by_label("Value").fill("go")
        page.get_by_role("button", name="Add filter").click()
        page.wait_for_url("**/ui/catalog/service?f=language%3A%3D%3Ago")
        assert page.locator("tbody tr").count() == 6
        assert page.get_by_text("Language is go").is_visible()

        # Sort on a property from its column header (htmx swaps the results, the URL follows).
        page.get_by_role("link", name="Tier", exact=True).click()
        page.wait_for_url("**sort=prop%3Atier")
        page.wait_for_selector("th[aria-sort=ascending] >> text=Tier")
        tiers = page.locator("tbody tr td:nth-child(5)").all_inner_texts()
        assert tiers == sorted(tiers) and len(tiers) == 6
        filtered_sorted = page.url

        # Open an entity from its row, then its upstream tab.
        page.get_by_role("link", name="Service 04", exact=True).click()
        page.wait_for_url(base + "/ui/catalog/service/svc-04")
        assert page.get_by_role("heading", level=1).inner_text() == "Service 04"
        assert page.locator(".markdown strong").inner_text() == "Owned"
        page.get_by_role("link", name="Library (this entity points to)", exact=True).click()
        page.wait_for_url(base + "/ui/catalog/service/svc-04?tab=upstream%3Alibrary")
        assert page.get_by_role("heading", level=2).inner_text() == "Library (this entity points to)"
        assert sorted(page.locator(".related a").all_inner_texts()) == ["HTTPX", "Requests"]
        page.get_by_role("link", name="Requests", exact=True).click()
        page.wait_for_url(base + "/ui/catalog/library/requests")
        page.get_by_role("link", name="Service (pointing here)", exact=True).click()
        assert page.locator(".related a").all_inner_texts() == ["Service 04"]
        assert not [m for m in console if "Content Security Policy" in m], console
        context.close()

        checked = browser.new_context(bypass_csp=True)  # axe is injected as a script the policy refuses
        page = checked.new_page()
        _sign_in(page, base)
        for url in (
            filtered_sorted,
            base + "/ui/catalog/service?me=1&f=nope:=:x",
            base + "/ui/catalog/service/svc-04",
            base + "/ui/catalog/service/svc-04?tab=upstream%3Alibrary",
            base + "/ui/catalog/service/svc-04?tab=runs",
            base + "/ui/catalog/service/nope",
        ):
            page.goto(url)
            assert serious_violations(page) == [], url
        # The tabs are reachable by keyboard: focus moves through their links in order.
        page.goto(base + "/ui/catalog/service/svc-04")
        page.locator(".tabs a").first.focus()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Action runs"
        checked.close()
