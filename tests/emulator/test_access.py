"""Who may call the emulator, over real HTTP: a PAT per org as Azure DevOps has it, and no web page.

Issue 10, item 1: with ``executeRuns: true`` two "simple" cross-site requests (no CORS preflight)
registered a pipeline and ran its script. Each layer that now stops them is tested on its own:
the foreign ``Origin`` (403), the missing or wrong PAT (Azure's 401), the ``text/plain`` body (415).
"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, basic
from tests.support.pipelines import SEED_BODY, SEED_CHECKSUM

CONTOSO_PAT = "contoso-test-pat"
TWO_ORGS = CONFIG + (
    "  - name: contoso\n    personalAccessTokens: [{env: TEST_CONTOSO_PAT}]\n    projects:\n      - name: ops\n"
)
PROJECTS = "/fabrikam/_apis/projects?api-version=7.1"
TRIGGER = "/fabrikam/_apis/public/distributedtask/webhooks/IncomingWH?api-version=6.0-preview"
AZURE_ERROR_KEYS = ["$id", "innerException", "message", "typeName", "typeKey", "errorCode", "eventId"]


@pytest.fixture
def two_orgs(start_emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch) -> LiveEmulator:
    monkeypatch.setenv("TEST_CONTOSO_PAT", CONTOSO_PAT)
    return start_emulator(config=TWO_ORGS)


def raw(emulator: LiveEmulator, method: str, path: str, **kwargs: object) -> httpx.Response:
    """A request with nothing but what the caller gives (the fixture's client sends fabrikam's PAT)."""
    return httpx.request(method, emulator.base_url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


def assert_unauthorized(response: httpx.Response, *, invalid_token: bool) -> None:
    """Azure's answer to a missing or bad PAT: 401, its authentication headers, TF400813 (JSON when none was sent)."""
    assert response.status_code == 401, response.text
    challenges = response.headers.get_list("WWW-Authenticate")
    assert "TFS-Federated" in challenges
    assert any(c.startswith("Basic realm=") for c in challenges)
    assert response.headers["X-TFS-FedAuthRedirect"]
    assert (response.headers.get("X-VSS-AuthenticateError") == "InvalidToken") is invalid_token
    if invalid_token:  # not a WrappedException: Microsoft's client raises AzureDevOpsAuthenticationError
        assert response.headers["Content-Type"].startswith("text/plain") and response.text.startswith("TF400813")
        return
    body = response.json()
    assert list(body) == AZURE_ERROR_KEYS
    assert body["typeKey"] == "UnauthorizedRequestException" and body["message"].startswith("TF400813")


# ---------------------------------------------------------------------------- the issue's reproduction


def test_the_issues_cross_site_requests_register_and_run_nothing(
    start_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    emulator = start_emulator(execute=True)
    marker = tmp_path / "pwned.txt"
    evil = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
    pipeline = f'{{"name":"p","yaml":"steps:\\n- script: echo pwned > {marker}\\n"}}'.encode()
    route = "/_emulator/orgs/fabrikam/projects/web/pipelines"

    # The issue's first curl, as a browser sends it: refused for its origin, PAT or not.
    first = raw(emulator, "POST", route, content=pipeline, headers=evil)
    assert first.status_code == 403 and first.json()["typeKey"] == "CrossOriginRequestException"
    assert "https://evil.example" in first.json()["message"]
    assert raw(emulator, "POST", route, content=pipeline, headers={**evil, **basic(PAT)}).status_code == 403
    # Without the Origin (curl): no PAT → 401; with the PAT but text/plain → 415.
    assert_unauthorized(
        raw(emulator, "POST", route, content=pipeline, headers={"Content-Type": "text/plain"}), invalid_token=False
    )
    typed = raw(emulator, "POST", route, content=pipeline, headers={"Content-Type": "text/plain", **basic(PAT)})
    assert typed.status_code == 415 and typed.json()["typeKey"] == "UnsupportedMediaTypeException"
    assert "text/plain" in typed.json()["message"]

    # The issue's second curl: run the (configured) pipeline with a text/plain body.
    runs = "/fabrikam/web/_apis/pipelines/1/runs?api-version=7.1"
    assert_unauthorized(
        raw(emulator, "POST", runs, content=b"{}", headers={"Content-Type": "text/plain"}), invalid_token=False
    )
    plain = raw(emulator, "POST", runs, content=b"{}", headers={"Content-Type": "text/plain", **basic(PAT)})
    assert plain.status_code == 415
    assert raw(emulator, "POST", runs, content=b"{}", headers={**evil, **basic(PAT)}).status_code == 403

    # Nothing was registered, nothing ran, nothing was written.
    listed = emulator.client.get("/fabrikam/web/_apis/pipelines?api-version=7.1").json()
    assert [p["name"] for p in listed["value"]] == ["hello"]
    assert emulator.client.get(runs).json()["count"] == 0
    assert not marker.exists()
    assert not (tmp_path / "work" / "repos").exists()


def test_the_same_requests_from_the_emulators_own_origin_with_the_pat_work(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(execute=False)
    own = {"Origin": emulator.base_url, "Sec-Fetch-Site": "same-origin", **basic(PAT)}
    created = raw(
        emulator,
        "POST",
        "/_emulator/orgs/fabrikam/projects/web/pipelines",
        json={"name": "p", "yaml": "steps:\n- script: echo hi\n"},
        headers=own,
    )
    assert created.status_code == 201, created.text
    run = raw(
        emulator, "POST", f"/fabrikam/web/_apis/pipelines/{created.json()['id']}/runs?api-version=7.1", headers=own
    )
    assert run.status_code == 200 and run.json()["state"] == "inProgress"  # a body-less POST needs no type


# ---------------------------------------------------------------------------- the PAT


def test_a_missing_pat_gets_azures_401(emulator: LiveEmulator) -> None:
    assert_unauthorized(raw(emulator, "GET", PROJECTS), invalid_token=False)
    for path in ("/_emulator/triggers", "/_emulator/triggers/1", "/openapi.json", "/_emulator/docs", "/nope"):
        assert_unauthorized(raw(emulator, "GET", path), invalid_token=False)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b":wrong-pat").decode(),
        "Basic " + base64.b64encode(f"{PAT}:".encode()).decode(),  # the PAT as user name opens nothing
        "Basic not-base64!",
        "Bearer wrong-pat",
        f"Token {PAT}",
        "Basic " + base64.b64encode(f":{PAT}x".encode()).decode(),
    ],
)
def test_a_wrong_pat_gets_401_invalid_token(emulator: LiveEmulator, authorization: str) -> None:
    assert_unauthorized(raw(emulator, "GET", PROJECTS, headers={"Authorization": authorization}), invalid_token=True)


def test_another_orgs_pat_gets_401(two_orgs: LiveEmulator) -> None:
    assert_unauthorized(raw(two_orgs, "GET", PROJECTS, headers=basic(CONTOSO_PAT)), invalid_token=True)
    assert_unauthorized(
        raw(
            two_orgs,
            "POST",
            "/_emulator/runs/fabrikam/1/complete",
            json={"result": "failed"},
            headers=basic(CONTOSO_PAT),
        ),
        invalid_token=True,
    )
    contoso = raw(two_orgs, "GET", "/contoso/_apis/projects?api-version=7.1", headers=basic(CONTOSO_PAT))
    assert contoso.status_code == 200 and [p["name"] for p in contoso.json()["value"]] == ["ops"]


def test_the_right_pat_works_with_any_user_name_and_as_bearer(emulator: LiveEmulator) -> None:
    for authorization in (
        "Basic " + base64.b64encode(f":{PAT}".encode()).decode(),
        "Basic " + base64.b64encode(f"anyone@example.com:{PAT}".encode()).decode(),
        f"Bearer {PAT}",
    ):
        response = raw(emulator, "GET", PROJECTS, headers={"Authorization": authorization})
        assert response.status_code == 200 and response.json()["count"] == 1


def test_the_trigger_and_healthz_need_no_pat(emulator: LiveEmulator) -> None:
    assert raw(emulator, "GET", "/_emulator/healthz").json() == {"ok": True}
    headers = {"Content-Type": "application/json", "X-WH-Checksum": SEED_CHECKSUM}
    response = raw(emulator, "POST", TRIGGER, content=SEED_BODY, headers=headers)
    assert response.status_code == 200 and response.headers["X-Kiosk-Queued-Runs"] == "1"


def test_an_unknown_org_is_404_for_a_valid_pat_and_401_without(two_orgs: LiveEmulator) -> None:
    unknown = "/nope/_apis/projects?api-version=7.1"
    assert raw(two_orgs, "GET", unknown, headers=basic(CONTOSO_PAT)).status_code == 404
    assert_unauthorized(raw(two_orgs, "GET", unknown), invalid_token=False)


def test_trigger_records_are_shown_to_their_orgs_pats_only(two_orgs: LiveEmulator) -> None:
    two_orgs.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    mine = raw(two_orgs, "GET", "/_emulator/triggers", headers=basic(PAT)).json()
    assert [r["org"] for r in mine["value"]] == ["fabrikam"]
    theirs = raw(two_orgs, "GET", "/_emulator/triggers", headers=basic(CONTOSO_PAT)).json()
    assert theirs == {"count": 0, "value": []}
    record_id = mine["value"][0]["id"]
    assert raw(two_orgs, "GET", f"/_emulator/triggers/{record_id}", headers=basic(PAT)).status_code == 200
    assert raw(two_orgs, "GET", f"/_emulator/triggers/{record_id}", headers=basic(CONTOSO_PAT)).status_code == 404


def test_an_org_created_at_run_time_opens_to_the_pat_that_created_it(two_orgs: LiveEmulator) -> None:
    route = "/_emulator/orgs/northwind/projects/shop/connections"
    created = raw(two_orgs, "POST", route, json={"name": "c", "webhookName": "hook"}, headers=basic(CONTOSO_PAT))
    assert created.status_code == 201, created.text
    projects = "/northwind/_apis/projects?api-version=7.1"
    assert raw(two_orgs, "GET", projects, headers=basic(CONTOSO_PAT)).status_code == 200
    assert_unauthorized(raw(two_orgs, "GET", projects, headers=basic(PAT)), invalid_token=True)
    # An existing org cannot be extended with another org's PAT.
    other = raw(
        two_orgs,
        "POST",
        "/_emulator/orgs/fabrikam/projects/web/connections",
        json={"name": "x", "webhookName": "x"},
        headers=basic(CONTOSO_PAT),
    )
    assert_unauthorized(other, invalid_token=True)


def test_allow_anonymous_opens_the_api_but_never_to_other_origins(start_emulator: EmulatorFactory) -> None:
    without_pat = CONFIG.replace("    personalAccessTokens: [{env: TEST_EMULATOR_PAT}]\n", "")
    emulator = start_emulator(config="settings: {allowAnonymous: true}\n" + without_pat)
    assert raw(emulator, "GET", PROJECTS).status_code == 200
    refused = raw(emulator, "GET", PROJECTS, headers={"Origin": "http://127.0.0.1:1"})
    assert refused.status_code == 403


# ---------------------------------------------------------------------------- Origin and Sec-Fetch-Site


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost"},  # another name for this machine is another origin (DNS rebinding)
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_browsers_from_elsewhere_are_refused_even_on_the_public_trigger(
    emulator: LiveEmulator, headers: dict[str, str]
) -> None:
    sent = {"Content-Type": "application/json", "X-WH-Checksum": SEED_CHECKSUM, **headers}
    response = raw(emulator, "POST", TRIGGER, content=SEED_BODY, headers=sent)
    assert response.status_code == 403
    assert list(response.json()) == AZURE_ERROR_KEYS
    assert emulator.client.get("/fabrikam/web/_apis/pipelines/1/runs?api-version=7.1").json()["count"] == 0
    assert raw(emulator, "GET", PROJECTS, headers={**headers, **basic(PAT)}).status_code == 403


def test_the_own_origin_is_served(emulator: LiveEmulator) -> None:
    response = raw(emulator, "GET", PROJECTS, headers={"Origin": emulator.base_url, **basic(PAT)})
    assert response.status_code == 200
