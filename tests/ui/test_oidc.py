"""Sign-in through a real OpenID Connect provider (oidc-provider-mock on loopback): the code flow
with PKCE and nonce, groups mapped to roles, and the answers that must be refused."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import oidc_provider_mock
import pytest
from fastapi import FastAPI
from tests.support.oidc import SIGN_IN_CONFIG, authorize_as, oidc_provider
from tests.support.ui import browser, ui_app

from kiosk.auth.oidc import OidcClient, OidcError, OidcProvider, begin_sign_in, pkce_challenge
from kiosk.ui.guard import OIDC_COOKIE, SESSION_COOKIE

USERS = [
    oidc_provider_mock.User(
        sub="ann", claims={"email": "Ann@Example.com", "name": "Ann Admin", "groups": ["kiosk-admins"]}
    ),
    oidc_provider_mock.User(sub="bob", claims={"email": "bob@example.com", "name": "Bob", "groups": ["kiosk-users"]}),
    oidc_provider_mock.User(sub="eve", claims={"email": "eve@example.com", "groups": ["other"]}),
]


@pytest.fixture
def issuer() -> Iterator[str]:
    with oidc_provider(USERS) as url:
        yield url


@pytest.fixture
def app(tmp_path: Path, issuer: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    monkeypatch.setenv("OIDC_TEST_SECRET", "s3cret-of-the-client")
    app = ui_app(tmp_path, f"sqlite:///{tmp_path}/kiosk.db", SIGN_IN_CONFIG.format(issuer=issuer))
    yield app
    app.state.db.dispose()


def _attempt_of(cookie: str) -> dict[str, object]:
    body = cookie.split(".")[0]
    loaded: dict[str, object] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return loaded


def test_code_flow_with_pkce_signs_in_and_maps_groups(app: FastAPI, issuer: str) -> None:
    client = browser(app)
    page = client.get("/ui/sign-in", params={"next": "/"})
    assert "Sign in with Test IdP" in page.text
    start = client.get("/ui/sign-in/oidc", params={"next": "/"})
    assert start.status_code == 303
    url = start.headers["location"]
    assert url.startswith(issuer)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["response_type"] == "code" and query["client_id"] == "kiosk-portal"
    assert query["code_challenge_method"] == "S256"
    attempt = _attempt_of(client.cookies[OIDC_COOKIE])
    assert query["code_challenge"] == pkce_challenge(str(attempt["v"]))  # the verifier never leaves kiosk's cookie
    assert query["state"] == attempt["s"] and query["nonce"] == attempt["n"]
    assert query["redirect_uri"] == "http://127.0.0.1:8000/ui/sign-in/oidc/callback"

    back = urlsplit(authorize_as(url, "ann"))
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/"
    assert SESSION_COOKIE in done.cookies
    home = client.get("/")
    assert "Welcome, Ann Admin" in home.text and "(admin)" in home.text
    assert app.state.catalog.get_entity("_user", "ann@example.com")["properties"]["port_role"] == "Admin"


def test_member_group_and_no_group(app: FastAPI) -> None:
    member = browser(app)
    back = urlsplit(authorize_as(member.get("/ui/sign-in/oidc").headers["location"], "bob"))
    assert member.get(f"{back.path}?{back.query}").status_code == 303
    assert "(member)" in member.get("/").text

    outsider = browser(app)  # in none of the configured groups, and defaultRole is null
    back = urlsplit(authorize_as(outsider.get("/ui/sign-in/oidc").headers["location"], "eve"))
    refused = outsider.get(f"{back.path}?{back.query}")
    assert refused.status_code == 403 and "none of the groups" in refused.text
    assert outsider.get("/").status_code == 303


def test_tampered_state_is_refused(app: FastAPI) -> None:
    client = browser(app)
    back = urlsplit(authorize_as(client.get("/ui/sign-in/oidc").headers["location"], "ann"))
    query = {k: v[0] for k, v in parse_qs(back.query).items()}
    refused = client.get(back.path, params={"code": query["code"], "state": query["state"] + "0"})
    assert refused.status_code == 403 and "state" in refused.text
    assert SESSION_COOKIE not in refused.cookies and client.get("/").status_code == 303


def test_callback_without_the_attempt_cookie_is_refused(app: FastAPI) -> None:
    client = browser(app)
    back = urlsplit(authorize_as(client.get("/ui/sign-in/oidc").headers["location"], "ann"))
    other = browser(app)  # another browser replays the answer (login CSRF): it has no attempt
    refused = other.get(f"{back.path}?{back.query}")
    assert refused.status_code == 403 and "not found" in refused.text


def _token_for(issuer: str, client_id: str, nonce: str) -> str:
    """An ID token the real provider issues to ``client_id`` for a sign-in of ``ann``."""
    client = OidcClient(OidcProvider(issuer=issuer, client_id=client_id, client_secret="x"))
    attempt = begin_sign_in("/")
    attempt = type(attempt)(attempt.state, nonce, attempt.verifier, "/", attempt.expires)
    redirect_uri = "http://127.0.0.1:9/callback"
    url = asyncio.run(client.authorization_url(attempt, redirect_uri))
    code = parse_qs(urlsplit(authorize_as(url, "ann")).query)["code"][0]
    return asyncio.run(client.exchange(code, attempt.verifier, redirect_uri))


def test_wrong_audience_bad_signature_and_nonce_are_refused(issuer: str) -> None:
    kiosk = OidcClient(OidcProvider(issuer=issuer, client_id="kiosk-portal", client_secret="x"))
    own = _token_for(issuer, "kiosk-portal", "nonce-1")
    assert asyncio.run(kiosk.verify_id_token(own, "nonce-1"))["sub"] == "ann"

    foreign = _token_for(issuer, "another-app", "nonce-2")
    with pytest.raises(OidcError, match="another client"):
        asyncio.run(kiosk.verify_id_token(foreign, "nonce-2"))
    with pytest.raises(OidcError, match="nonce"):
        asyncio.run(kiosk.verify_id_token(own, "some-other-attempt"))
    head, payload, signature = own.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(
            json.dumps({**json.loads(base64.urlsafe_b64decode(payload + "==")), "groups": ["kiosk-admins"]}).encode()
        )
        .decode()
        .rstrip("=")
    )
    with pytest.raises(OidcError, match="signature"):
        asyncio.run(kiosk.verify_id_token(f"{head}.{forged_payload}.{signature}", "nonce-1"))
    wrong_issuer = OidcClient(OidcProvider(issuer=issuer + "/", client_id="kiosk-portal", client_secret="x"))
    with pytest.raises(OidcError, match="calls itself"):
        asyncio.run(wrong_issuer.metadata())
