"""Hostile input to every emulator route: Azure's documented answers or a 4xx, never an unexpected 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.emulator.conftest import CONFIG, HELLO
from tests.servers import free_port, serving

from kiosk.emulator.bootstrap import build_emulator
from kiosk.emulator.config import load_emulator_config

# The trigger's 500s are Azure's own answers (reference file); anything else at 5xx is a bug.
AZURE_500 = {"WebHookNotFoundException", "RequiredHeaderSignatureNotFoundException", "WebHookChecksumMismatchException"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "repo").mkdir()
    (tmp / "repo" / "azure-pipelines.yml").write_text(HELLO)
    (tmp / "emulator.yaml").write_text(CONFIG.replace("{env: TEST_WEBHOOK_SECRET}", "{file: secret.txt}"))
    (tmp / "secret.txt").write_text("secret\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = build_emulator(
        load_emulator_config(tmp / "emulator.yaml"), config_dir=tmp, base_url=base, execute_runs=False
    )
    with serving(server.app, port), httpx.Client(base_url=base, timeout=30) as c:
        yield c


def check(response: httpx.Response) -> None:
    assert response.status_code < 500 or response.json().get("typeKey") in AZURE_500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["message"] and body["typeKey"], body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
segments = st.text(
    st.characters(codec="ascii", min_codepoint=33, max_codepoint=126, exclude_characters="/?#%"),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hook=st.sampled_from(["IncomingWH", "open-hook", "nope"]) | segments,
    org=st.sampled_from(["fabrikam", "FABRIKAM"]) | segments,
    body=st.binary(max_size=200) | json_values.map(lambda v: httpx.Request("POST", "/", json=v).content),
    checksum=st.none() | st.text(st.characters(codec="ascii", min_codepoint=33, max_codepoint=126), max_size=50),
    version=st.sampled_from(["6.0-preview", "7.1", "", "5.0", "x"]),
)
def test_the_trigger(
    client: httpx.Client, hook: str, org: str, body: bytes, checksum: str | None, version: str
) -> None:
    headers = {"X-WH-Checksum": checksum} if checksum is not None else {}
    url = f"/{org}/_apis/public/distributedtask/webhooks/{hook}"
    check(client.post(url, params={"api-version": version}, content=body, headers=headers))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(
        [
            ("POST", "/fabrikam/web/_apis/pipelines/1/runs"),
            ("PATCH", "/fabrikam/web/_apis/build/builds/1"),
            ("POST", "/_emulator/orgs/o/projects/p/connections"),
            ("POST", "/_emulator/orgs/o/projects/p/pipelines"),
            ("POST", "/_emulator/runs/fabrikam/1/complete"),
        ]
    ),
    body=json_values,
)
def test_the_json_apis(client: httpx.Client, route: tuple[str, str], body: object) -> None:
    method, path = route
    check(client.request(method, path, params={"api-version": "7.1"}, json=body))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(segments, min_size=1, max_size=7).map("/".join), method=st.sampled_from(["GET", "POST", "DELETE"]))
def test_any_path(client: httpx.Client, path: str, method: str) -> None:
    check(client.request(method, "/" + path, params={"api-version": "7.1"}))
