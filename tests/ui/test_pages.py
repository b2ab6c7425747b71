"""The UI in process: pages for admin, member and signed-out, local sign-in, sessions, sign-out,
CSRF and Origin checks, cookies, HTML errors, static files, and API tokens left as they were."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from tests.support.ui import BASE, PASSWORD, browser, hidden_field, sign_in, ui_app

from kiosk.auth.clients import create_client
from kiosk.auth.users import create_user
from kiosk.store.tables import action_runs, user_sessions
from kiosk.ui.guard import SESSION_COOKIE
from kiosk.ui.pages import safe_next

CONFIG = """
blueprints:
  - identifier: service
    title: Service
    schema: {properties: {}}
entities:
  - {blueprint: service, identifier: checkout, title: Checkout}
  - {blueprint: service, identifier: cart, title: Cart}
actions:
  - identifier: deploy
    title: Deploy
    trigger: {type: self-service, operation: DAY-2, blueprintIdentifier: service, userInputs: {properties: {}}}
    invocationMethod: {type: WEBHOOK, url: "https://example.com/hook"}
"""


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[FastAPI]:
    app = ui_app(tmp_path, database_url, CONFIG)
    create_user(app.state.db, "ada@example.com", "admin", PASSWORD, name="Ada Admin")
    create_user(app.state.db, "max@example.com", "member", PASSWORD, name="Max Member")
    yield app
    app.state.db.dispose()


def _signed_in(app: FastAPI, email: str) -> object:
    client = browser(app)
    answer = sign_in(client, email)
    assert answer.status_code == 303, answer.text
    return client


def test_signed_out_pages_redirect_to_sign_in(app: FastAPI) -> None:
    client = browser(app)
    home = client.get("/")
    assert home.status_code == 303
    assert home.headers["location"] == "/ui/sign-in?next=%2F"
    form = client.get(home.headers["location"])
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
    assert 'type="password"' in form.text and 'name="csrf_token"' in form.text
    assert "Sign in with" not in form.text  # no OIDC provider configured


@pytest.mark.parametrize(
    ("email", "role", "name"), [("ada@example.com", "admin", "Ada Admin"), ("max@example.com", "member", "Max Member")]
)
def test_home_page_for_each_role(app: FastAPI, email: str, role: str, name: str) -> None:
    client = browser(app)
    answer = sign_in(client, email)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    home = client.get("/")
    assert home.status_code == 200, home.text
    assert f"Welcome, {name}" in home.text and f"({role})" in home.text
    # The catalog's blueprints with their counts: 2 services; the people blueprints made at sign-in.
    assert '<span class="count">2</span>\n      <a href="/ui/catalog/service">Service</a>' in home.text
    assert "(_user)" in home.text and "(_team)" in home.text
    assert '<span class="count">1</span> self-service action available' in home.text
    assert "You have not started any action yet." in home.text
    # Landmarks and the skip link for keyboard users; a sign-out form carrying the session's token.
    assert '<a class="skip-link" href="#main">' in home.text and '<main id="main"' in home.text
    assert 'action="/ui/sign-out"' in home.text and hidden_field(home.text, "csrf_token")
    assert "script-src 'self'" in home.headers["content-security-policy"]
    assert home.headers["cache-control"] == "no-store"


def test_home_lists_my_runs_only(app: FastAPI) -> None:
    now = datetime.now(UTC)
    with app.state.db.begin() as conn:
        for run_id, who in (("r_mine", "max@example.com"), ("r_theirs", "ada@example.com")):
            conn.execute(
                sa.insert(action_runs).values(
                    id=run_id,
                    action="deploy",
                    status="SUCCESS",
                    status_label="Deployed <b>v2</b>",
                    properties={},
                    links=[],
                    origin="UI",
                    created_by=who,
                    created_at=now,
                    updated_at=now,
                )
            )
    client = _signed_in(app, "max@example.com")
    home = client.get("/")  # type: ignore[attr-defined]
    assert "r_mine" in home.text and "r_theirs" not in home.text
    assert "Deployed &lt;b&gt;v2&lt;/b&gt;" in home.text  # escaped, never markup


def test_sign_in_upserts_the_user_entity(app: FastAPI) -> None:
    _signed_in(app, "max@example.com")
    entity = app.state.catalog.get_entity("_user", "max@example.com")
    assert entity["title"] == "Max Member"
    assert entity["properties"] == {"port_role": "Member", "port_type": "Standard", "status": "Active"}


def test_wrong_password_and_unknown_email_get_the_same_answer(app: FastAPI) -> None:
    client = browser(app)
    wrong = sign_in(client, "max@example.com", "not the password at all")
    unknown = sign_in(client, "nobody@example.com", PASSWORD)
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert "The email or the password is not right." in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert client.get("/").status_code == 303


def test_session_cookie_attributes_on_loopback(app: FastAPI) -> None:
    answer = sign_in(browser(app), "max@example.com")
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attributes  # plain http on loopback: a developer's machine


def test_session_cookie_is_secure_behind_a_public_https_url(tmp_path: Path, database_url: str) -> None:
    app = ui_app(tmp_path, database_url, "signIn: {publicUrl: 'https://kiosk.example.com'}\n")
    create_user(app.state.db, "max@example.com", "member", PASSWORD)
    client = browser(app, "https://kiosk.example.com")
    answer = sign_in(client, "max@example.com")
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    assert "secure" in cookie.lower() and "httponly" in cookie.lower()
    app.state.db.dispose()


def test_the_database_holds_only_the_session_ids_digest(app: FastAPI) -> None:
    client = browser(app)
    sign_in(client, "max@example.com")
    session_id = client.cookies[SESSION_COOKIE]
    with app.state.db.connect() as conn:
        stored = conn.execute(sa.select(user_sessions.c.id_hash)).scalars().all()
    assert len(stored) == 1 and session_id not in stored[0] and stored[0] != session_id


def test_sign_in_rotates_the_session_id(app: FastAPI) -> None:
    first_browser = browser(app)
    sign_in(first_browser, "max@example.com")
    first = first_browser.cookies[SESSION_COOKIE]
    client = browser(app)
    form = client.get("/ui/sign-in")
    client.cookies.set(SESSION_COOKIE, first)  # the browser holds a session id when it signs in
    again = client.post(
        "/ui/sign-in",
        data={"csrf_token": hidden_field(form.text, "csrf_token"), "email": "ada@example.com", "password": PASSWORD},
        headers={"Origin": BASE},
    )
    assert again.status_code == 303
    second = again.cookies[SESSION_COOKIE]
    assert second != first
    fresh = browser(app)
    fresh.cookies.set(SESSION_COOKIE, second)
    assert "Ada Admin" in fresh.get("/").text
    assert first_browser.get("/").status_code == 303  # the old id ended with the new sign-in


def test_sign_out_ends_the_session_server_side(app: FastAPI) -> None:
    client = browser(app)
    sign_in(client, "max@example.com")
    session_id = client.cookies[SESSION_COOKIE]
    home = client.get("/")
    out = client.post(
        "/ui/sign-out", data={"csrf_token": hidden_field(home.text, "csrf_token")}, headers={"Origin": BASE}
    )
    assert out.status_code == 303 and out.headers["location"] == "/ui/sign-in"
    replay = browser(app)
    replay.cookies.set(SESSION_COOKIE, session_id)  # a copy of the cookie kept from before
    assert replay.get("/").status_code == 303
    with app.state.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(user_sessions)).scalar_one() == 0


def test_idle_and_absolute_expiry(app: FastAPI) -> None:
    client = browser(app)
    sign_in(client, "max@example.com")
    assert client.get("/").status_code == 200
    with app.state.db.begin() as conn:  # nine hours without a request (idle limit: eight)
        conn.execute(sa.update(user_sessions).values(last_seen_at=datetime.now(UTC) - timedelta(hours=9)))
    assert client.get("/").status_code == 303
    sign_in(client, "max@example.com")
    with app.state.db.begin() as conn:  # active a minute ago, but past its absolute end
        conn.execute(sa.update(user_sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert client.get("/").status_code == 303


@pytest.mark.parametrize("case", ["missing token", "wrong token", "foreign origin", "no origin"])
def test_sign_in_form_csrf_refused(app: FastAPI, case: str) -> None:
    client = browser(app)
    form = client.get("/ui/sign-in")
    data = {"csrf_token": hidden_field(form.text, "csrf_token"), "email": "max@example.com", "password": PASSWORD}
    headers = {"Origin": BASE}
    if case == "missing token":
        del data["csrf_token"]
    elif case == "wrong token":
        data["csrf_token"] = "0" * 64
    elif case == "foreign origin":
        headers = {"Origin": "https://evil.example"}
    else:
        headers = {}
    answer = client.post("/ui/sign-in", data=data, headers=headers)
    assert answer.status_code == 403 and answer.headers["content-type"].startswith("text/html")
    assert "Request refused" in answer.text
    assert SESSION_COOKIE not in client.cookies


@pytest.mark.parametrize("case", ["missing token", "wrong token", "foreign origin", "other session's token"])
def test_sign_out_csrf_refused(app: FastAPI, case: str) -> None:
    client = browser(app)
    sign_in(client, "max@example.com")
    token = hidden_field(client.get("/").text, "csrf_token")
    data, headers = {"csrf_token": token}, {"Origin": BASE}
    if case == "missing token":
        data = {}
    elif case == "wrong token":
        data = {"csrf_token": token[:-2] + "xx"}
    elif case == "foreign origin":
        headers = {"Origin": "https://evil.example"}
    else:
        other = browser(app)
        sign_in(other, "ada@example.com")
        data = {"csrf_token": hidden_field(other.get("/").text, "csrf_token")}
    answer = client.post("/ui/sign-out", data=data, headers=headers)
    assert answer.status_code == 403 and "Request refused" in answer.text
    assert client.get("/").status_code == 200  # still signed in


def test_next_never_leaves_the_site(app: FastAPI) -> None:
    assert safe_next("//evil.example/x") == "/"
    assert safe_next("https://evil.example") == "/"
    assert safe_next("/\\evil.example") == "/"
    assert safe_next("/ui/catalog?x=1") == "/ui/catalog?x=1"
    answer = sign_in(browser(app), "max@example.com", next_path="//evil.example")
    assert answer.headers["location"] == "/"


def test_ui_errors_are_html_and_api_errors_stay_json(app: FastAPI) -> None:
    client = browser(app)
    page = client.get("/ui/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "There is no such page." in page.text
    wrong_method = client.get("/ui/sign-out")
    assert wrong_method.status_code == 405 and wrong_method.headers["content-type"].startswith("text/html")
    assert wrong_method.headers["allow"] == "POST"
    api = client.get("/v1/no-such-route")
    assert api.status_code == 404 and api.json() == {"ok": False, "error": "not_found", "message": "no such route"}


def test_static_files_are_versioned_and_cached(app: FastAPI) -> None:
    client = browser(app)
    page = client.get("/ui/sign-in")
    for name in ("kiosk.css", "htmx-2.0.11.min.js"):
        url = next(
            part.split('"')[0] for part in page.text.split('="') if part.startswith("/ui/static/") and name in part
        )
        answer = client.get(url)
        assert answer.status_code == 200 and len(answer.content) > 500
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        stale = client.get(url.replace("/ui/static/", "/ui/static/0000"))
        assert stale.status_code == 404


def test_api_bearer_tokens_work_as_before_and_cookies_do_not_count(app: FastAPI) -> None:
    client = browser(app)
    sign_in(client, "ada@example.com")  # an admin's browser session: no use on the API
    assert client.get("/v1/blueprints").status_code == 401
    client_id, secret = create_client(app.state.db, "member", "ci")
    token = client.post("/v1/auth/access_token", json={"clientId": client_id, "clientSecret": secret}).json()
    api = browser(app)
    answer = api.get("/v1/blueprints/service", headers={"Authorization": f"Bearer {token['accessToken']}"})
    assert answer.status_code == 200 and answer.json()["blueprint"]["identifier"] == "service"


def test_each_sign_in_sweeps_sessions_that_ended_unseen(app: FastAPI) -> None:
    abandoned = browser(app)
    sign_in(abandoned, "max@example.com")
    with app.state.db.begin() as conn:
        conn.execute(sa.update(user_sessions).values(last_seen_at=datetime.now(UTC) - timedelta(days=2)))
    sign_in(browser(app), "ada@example.com")
    with app.state.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(user_sessions)).scalar_one() == 1


def test_local_sign_in_turned_off(tmp_path: Path, database_url: str) -> None:
    app = ui_app(tmp_path, database_url, "signIn: {localUsers: false}\n")
    create_user(app.state.db, "max@example.com", "member", PASSWORD)
    client = browser(app)
    form = client.get("/ui/sign-in")
    assert 'type="password"' not in form.text and "No way to sign in is configured" in form.text
    # A well-formed post (the token the form would carry) is still refused: the form is off.
    token = app.state.portal.guard.sign_in_form_token(client.cookies["kiosk_sign_in"])
    posted = client.post(
        "/ui/sign-in",
        data={"csrf_token": token, "email": "max@example.com", "password": PASSWORD},
        headers={"Origin": BASE},
    )
    assert posted.status_code == 404 and "Local sign-in is turned off" in posted.text
    assert SESSION_COOKIE not in posted.cookies
    assert client.get("/ui/sign-in/oidc").status_code == 404
    app.state.db.dispose()
