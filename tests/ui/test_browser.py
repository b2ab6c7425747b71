"""The portal in a real browser (Debian's chromium through Playwright): sign in as a local user,
see the home page, sign out — by keyboard where a person would — with axe-core on every page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import oidc_provider_mock
import pytest
from playwright.sync_api import Page
from tests.support.browser import chromium, serious_violations
from tests.support.live_kiosk import LiveServer, start_configured_server, start_server
from tests.support.oidc import SIGN_IN_CONFIG, oidc_provider
from tests.support.ui import PASSWORD

from kiosk.auth.users import create_user
from kiosk.settings import Settings

pytestmark = pytest.mark.browser


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings.from_env(
        {"KIOSK_HOME": str(tmp_path / "home"), "KIOSK_DATABASE_URL": f"sqlite:///{tmp_path}/k.db"}
    )
    yield from start_server(settings)


def test_sign_in_home_sign_out(live: LiveServer) -> None:
    create_user(live.app.state.db, "max@example.com", "member", PASSWORD, name="Max Member")
    with chromium() as browser:
        # bypass_csp: axe is injected as a script the page's policy would (rightly) refuse.
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        page.goto(live.base_url + "/")
        assert page.url == live.base_url + "/ui/sign-in?next=%2F"
        assert serious_violations(page) == []

        page.keyboard.press("Tab")  # the skip link comes first
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.get_by_label("Email").fill("max@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Password").press("Enter")
        page.wait_for_url(live.base_url + "/")
        assert page.get_by_role("heading", level=1).inner_text() == "Welcome, Max Member"
        assert page.get_by_role("main").is_visible() and page.get_by_role("navigation", name="Main").is_visible()
        assert serious_violations(page) == []
        cookie = next(c for c in context.cookies() if c["name"] == "kiosk_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(live.base_url + "/ui/sign-in")
        assert page.get_by_role("heading", level=1).inner_text() == "Sign in to kiosk"
        page.goto(live.base_url + "/")
        assert page.url.startswith(live.base_url + "/ui/sign-in")
        context.close()


def test_a_wrong_password_is_announced(live: LiveServer) -> None:
    create_user(live.app.state.db, "max@example.com", "member", PASSWORD)
    with chromium() as browser:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        page.goto(live.base_url + "/ui/sign-in")
        page.get_by_label("Email").fill("max@example.com")
        page.get_by_label("Password").fill("a wrong password!")
        page.get_by_role("button", name="Sign in").click()
        alert = page.get_by_role("alert")
        assert alert.inner_text() == "The email or the password is not right."
        assert serious_violations(page) == []
        context.close()


def test_axe_reports_what_it_should() -> None:
    """The check above can fail: a page with an unlabelled image and input is reported."""
    with chromium() as browser:
        page = browser.new_page()
        page.set_content('<html lang="en"><title>t</title><main><img src="x.png"><input type="text"></main></html>')
        found = {v["id"] for v in serious_violations(page)}
        assert {"image-alt", "label"} <= found


def _sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(base_url + "/ui/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base_url + "/")


def test_catalog_page_sorts_searches_and_pages_with_htmx(live: LiveServer) -> None:
    live.admin.post("/v1/blueprints", json={"identifier": "service", "title": "Service", "schema": {"properties": {}}})
    bulk = [{"identifier": f"svc-{i:03d}", "title": f"Service {i:03d}"} for i in range(60)]
    assert live.admin.post("/v1/blueprints/service/entities/bulk", json={"entities": bulk}).status_code == 200
    create_user(live.app.state.db, "max@example.com", "member", PASSWORD)
    with chromium() as browser:
        # The page's own Content-Security-Policy in force: htmx must work under it.
        context = browser.new_context()
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        _sign_in(page, live.base_url, "max@example.com")
        page.get_by_role("link", name="Service", exact=True).click()
        page.wait_for_url(live.base_url + "/ui/catalog/service")
        assert page.locator("tbody tr").count() == 50
        assert page.locator("tbody tr").first.locator("td").nth(1).inner_text() == "svc-000"

        page.get_by_role("link", name="Title").click()  # htmx swaps the table and pushes the URL
        page.wait_for_url(live.base_url + "/ui/catalog/service?sort=-title")
        page.wait_for_selector("th[aria-sort=descending]")
        assert page.locator("tbody tr").first.locator("td").nth(1).inner_text() == "svc-059"
        assert page.get_by_role("heading", level=1).inner_text() == "Service"  # the page around it stayed

        page.get_by_label("Search by title or identifier").fill("svc-05")
        page.get_by_label("Search by title or identifier").press("Enter")
        page.wait_for_url("**/ui/catalog/service?q=svc-05*")
        page.wait_for_selector("text=10 entities matching")

        page.goto(live.base_url + "/ui/catalog/service")
        page.get_by_role("link", name="Next page").click()
        page.wait_for_url("**after=*")
        assert page.locator("tbody tr").count() == 10
        assert page.evaluate("typeof htmx") == "object"
        assert not [m for m in console if "Content Security Policy" in m], console
        context.close()

        checked = browser.new_context(bypass_csp=True)  # axe is injected as a script the policy refuses
        page = checked.new_page()
        _sign_in(page, live.base_url, "max@example.com")
        for url in ("/ui/catalog/service", "/ui/catalog/service?q=svc-05&sort=-identifier"):
            page.goto(live.base_url + url)
            assert serious_violations(page) == [], url
        checked.close()


def test_sign_in_through_an_oidc_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OIDC_TEST_SECRET", "s3cret-of-the-client")
    users = [
        oidc_provider_mock.User(
            sub="ann", claims={"email": "ann@example.com", "name": "Ann", "groups": ["kiosk-admins"]}
        )
    ]
    with oidc_provider(users) as issuer:
        config = SIGN_IN_CONFIG.format(issuer=issuer)
        server = start_configured_server(tmp_path, f"sqlite:///{tmp_path}/k.db", config)
        live = next(server)
        try:
            with chromium() as browser:
                page = browser.new_context(bypass_csp=True).new_page()
                page.goto(live.base_url + "/")
                assert serious_violations(page) == []  # the form and the provider's button together
                page.get_by_role("link", name="Sign in with Test IdP").click()
                page.wait_for_url(issuer + "/**")
                page.get_by_role("button", name="ann").click()  # the provider's one-click user
                page.wait_for_url(live.base_url + "/")
                assert page.get_by_role("heading", level=1).inner_text() == "Welcome, Ann"
                assert "(admin)" in page.locator(".who").inner_text()
        finally:
            server.close()
