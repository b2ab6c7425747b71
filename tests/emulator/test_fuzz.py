"""Hostile input to every emulator route: Azure's documented answers or a 4xx, never an unexpected 5xx.

Two kinds: hypothesis-driven requests at the trigger and the JSON routes (bodies, checksums and
paths no schema describes), and schemathesis with **all** its checks over the emulator's own
OpenAPI description — every status code a route answers is declared, 405s carry a complete
``Allow``, schema-valid data is accepted and schema-violating data refused, and requests without
the PAT are refused (issue 10, item 7).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.emulator.conftest import CONFIG, HELLO, PAT, basic
from tests.support.servers import free_port, serving

from kiosk.emulator.bootstrap import build_emulator
from kiosk.emulator.config import load_emulator_config
from kiosk.emulator.errors import server_error_body

# The trigger's 500s are Azure's own answers (reference file); anything else at 5xx is a bug.
AZURE_500 = {"WebHookNotFoundException", "RequiredHeaderSignatureNotFoundException", "WebHookChecksumMismatchException"}


OPEN = """\
resources:
  webhooks:
    - webhook: hook
      connection: Open
steps:
- script: echo ${{ parameters.hook.title }}
"""

# Path parameters pinned to what exists, so the operations reach their logic instead of 404ing
# (and ``follow=false``: a followed log of a run nothing executes streams until the client leaves);
# and the Runs API's own rule: a schema-valid body can still name stages or parameters the
# pipeline does not have, which Azure answers with 400 PipelineValidationException.
SCHEMATHESIS_CONFIG = r"""
# The generated org's repositories, pull requests and hooks are not known to the fuzzer, so their
# routes mostly answer 404 here: shown, not fatal. Their happy paths are tested through Microsoft's
# client (test_client_*.py) and every url they return is followed (test_org_urls.py).
warnings = { fail-on = false }

[[operations]]
include-path-regex = "^/\\{org\\}/"
parameters = { org = "fabrikam", project = "web", pipeline_id = 1, webhook_name = "open-hook" }

# The mutation API: a schema-valid change can still name what the org lacks (a repository, a work item
# type, a user) or clash with what it holds (a taken name, a closed pull request), answered 400/404/409.
[[operations]]
include-path-regex = "^/_emulator/orgs/[^/]+/projects/[^/]+/(repositories|pullrequests|workitems|builds|releases)"
parameters = { org = "fabrikam", project = "web" }
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "409"]

[[operations]]
include-path-regex = "^/_emulator/(orgs|runs)/"
parameters = { org = "fabrikam", project = "web", follow = false }

# Switching faults on degrades the server on purpose (held connections, latency, 5xx) and would
# fuzz the fuzzer: tests/emulator/test_faults.py and test_throttling.py test this route instead.
[[operations]]
include-path = "/_emulator/switches"
include-method = "PUT"
enabled = false

[[operations]]
include-path-regex = "/_apis/pipelines/\\{pipeline_id\\}/runs$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "409"]

# A service-hook subscription's schema-valid body can still break Azure's cross-field rules (the
# filters its event type takes, https with a password, `Name: value` header lines): Azure's 400.
[[operations]]
include-path-regex = "/_apis/hooks/subscriptions$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]

[[operations]]
include-path-regex = "/_apis/hooks/subscriptions/\\{subscription_id\\}$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404"]

# Work items: `fields` with `$expand` is Azure's 400 (a rule across two valid parameters), and a
# schema-valid WIQL text can still be a query that does not parse or names no field: Azure's 400.
[[operations]]
include-path-regex = "/_apis/wit/(workitems(/\\{item_id\\})?|workitemsbatch|wiql)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404"]

# User entitlements: a schema-valid `$filter` (or legacy `filter`) can still be an expression that does
# not parse or names no field: Azure's 400.
[[operations]]
include-path-regex = "/_apis/userentitlements$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]

# A repository with Advanced Security off answers a schema-valid alerts request 400, as Azure does.
[[operations]]
include-path-regex = "/_apis/alert/repositories/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]
"""


@dataclass
class Served:
    base_url: str
    client: httpx.Client
    directory: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "repo").mkdir()
    (tmp / "repo" / "azure-pipelines.yml").write_text(HELLO)
    (tmp / "repo" / "open.yml").write_text(OPEN)
    config = CONFIG.replace("{env: TEST_WEBHOOK_SECRET}", "{file: secret.txt}")
    config = config.replace("{env: TEST_EMULATOR_PAT}", "{file: pat.txt}")
    config += "          - name: open\n            repository: repo\n            path: open.yml\n"
    (tmp / "emulator.yaml").write_text(config)
    (tmp / "secret.txt").write_text("secret\n")
    (tmp / "pat.txt").write_text(PAT + "\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = build_emulator(
        load_emulator_config(tmp / "emulator.yaml"),
        config_dir=tmp,
        base_url=base,
        work_dir=tmp / "work",
        execute_runs=False,
    )
    with (
        serving(server.app, port, error_body=server_error_body),
        httpx.Client(base_url=base, timeout=30, headers=basic(PAT)) as c,
    ):
        yield Served(base, c, tmp)


@pytest.fixture
def client(served: Served) -> httpx.Client:
    return served.client


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


def test_schemathesis_with_all_checks_passes_clean(served: Served) -> None:
    """``schemathesis run --checks all`` over ``/openapi.json``, with the org's PAT, every phase."""
    config = served.directory / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    schemathesis = Path(sys.executable).parent / "schemathesis"
    command = [str(schemathesis), "--config-file", str(config), "--no-color", "run", f"{served.base_url}/openapi.json"]
    command += ["--checks", "all", "--header", f"Authorization: {basic(PAT)['Authorization']}"]
    command += ["--max-examples", "15", "--workers", "1", "--request-timeout", "20", "--generation-database", "none"]
    command += ["--seed", os.environ["FUZZ_SEED"]] if os.environ.get("FUZZ_SEED") else []  # replay a failed run
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=served.directory)
    output = result.stdout + result.stderr
    failures = output.find("FAILURES")  # the failures first: the warnings that follow them can be long
    assert result.returncode == 0, output[failures:][:12000] if failures >= 0 else output[-12000:]
    described = served.client.get("/openapi.json").json()["paths"]
    operations = sum(1 for item in described.values() for method in item if method != "parameters")
    # every operation of the description was exercised, but the one disabled above (and HEAD twins)
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    assert selected is not None and int(selected.group(2)) >= operations - 1, output[-3000:]
    assert f"Tested: {selected.group(1)}" in output, output[-3000:]
