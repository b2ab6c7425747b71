"""An emulator on loopback per test, built from a config file in tmp_path as ``kiosk emulator`` does."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.azure_sdk import connect, with_generated_org
from tests.support.pipelines import webhook_resources
from tests.support.servers import free_port, serving

from kiosk.emulator.bootstrap import EmulatorServer, build_emulator
from kiosk.emulator.config import load_emulator_config
from kiosk.emulator.errors import server_error_body
from kiosk.emulator.org.model import Organisation, Project

#: The pipeline the emulator runs unless a test gives another: it echoes the webhook's message title.
HELLO = webhook_resources() + "steps:\n- script: echo ${{ parameters.WebHook.resource.message.title }}\n"

CONFIG = """\
orgs:
  - name: fabrikam
    personalAccessTokens: [{env: TEST_EMULATOR_PAT}]
    projects:
      - name: web
        connections:
          - name: IncomingWH
            webhookName: IncomingWH
            secret: {env: TEST_WEBHOOK_SECRET}
            header: X-WH-Checksum
          - name: Open
            webhookName: open-hook
        pipelines:
          - name: hello
            repository: repo
            path: azure-pipelines.yml
"""

PAT = "fabrikam-test-pat"  # TEST_EMULATOR_PAT unless a test sets another value first


def basic(pat: str) -> dict[str, str]:
    """The ``Authorization`` header Azure DevOps takes a PAT in: Basic, empty user name."""
    return {"Authorization": "Basic " + base64.b64encode(f":{pat}".encode()).decode()}


@dataclass
class LiveEmulator:
    base_url: str
    server: EmulatorServer
    client: httpx.Client
    repo: Path

    def trigger(
        self, hook: str, body: bytes, headers: dict[str, str] | None = None, org: str = "fabrikam"
    ) -> httpx.Response:
        url = f"/{org}/_apis/public/distributedtask/webhooks/{hook}?api-version=6.0-preview"
        return self.client.post(url, content=body, headers={"Content-Type": "application/json", **(headers or {})})

    def wait_for_run(
        self, run_id: int, org: str = "fabrikam", project: str = "web", timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            build = self.client.get(f"/{org}/{project}/_apis/build/builds/{run_id}?api-version=7.1").json()
            if build["status"] == "completed" or time.monotonic() > deadline:
                return dict(build)
            time.sleep(0.05)

    def run_log(self, run_id: int, org: str = "fabrikam") -> str:
        return self.client.get(f"/_emulator/runs/{org}/{run_id}/log", params={"follow": "true"}).text

    def organisation(self, name: str = "fabrikam") -> Organisation:
        """The org's data in memory, as the routes serve it: what a test checks the answers against."""
        return self.server.emulator.organisation(name)

    def sdk_client(self, client_type: str, org: str = "fabrikam") -> Any:
        """Microsoft's client ``client_type`` (``azure.devops.v7_1.git.GitClient``…) for ``org`` with ``PAT``."""
        return connect(self.base_url, org, PAT).get_client(client_type)

    def page_tokens(self, path: str, size: int, size_parameter: str = "$top") -> list[str | None]:
        """Every page's continuation token of a list paged by ``x-ms-continuationtoken`` (None: the first page),
        following it to the end with ``size_parameter=size``; each page holds at most ``size`` items."""
        tokens: list[str | None] = [None]
        while True:
            params: dict[str, str | int] = {size_parameter: size}
            if tokens[-1] is not None:
                params["continuationToken"] = str(tokens[-1])
            answer = self.client.get(path, params=params)
            assert answer.status_code == 200 and answer.json()["count"] <= size
            token = answer.headers.get("x-ms-continuationtoken")
            if token is None:
                return tokens
            tokens.append(token)


EmulatorFactory = Callable[..., LiveEmulator]


@pytest.fixture
def start_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorFactory]:
    """Start an emulator: ``start_emulator(config=…, pipeline=…, execute=…)``.

    Its client sends the PAT in ``TEST_EMULATOR_PAT`` (fabrikam's in ``CONFIG``) as Azure's Basic auth.
    """
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "secret")
    monkeypatch.setenv("TEST_EMULATOR_PAT", PAT)
    stack: list[Any] = []

    def start(
        config: str = CONFIG, pipeline: str = HELLO, execute: bool = True, files: dict[str, str] | None = None
    ) -> LiveEmulator:
        repo = tmp_path / "repo"
        repo.mkdir(exist_ok=True)
        (repo / "azure-pipelines.yml").write_text(pipeline)
        for name, text in (files or {}).items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
        path = tmp_path / "emulator.yaml"
        path.write_text(config)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = build_emulator(
            load_emulator_config(path),
            config_dir=tmp_path,
            base_url=base,
            work_dir=tmp_path / "work",
            execute_runs=execute,
        )
        context = serving(server.app, port, error_body=server_error_body)
        context.__enter__()
        stack.append(context)
        client = httpx.Client(base_url=base, timeout=30, headers=basic(os.environ["TEST_EMULATOR_PAT"]))
        stack.append(client)
        return LiveEmulator(base, server, client, repo)

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.Client):
            item.close()
        else:
            item.__exit__(None, None, None)


@pytest.fixture
def emulator(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "generated_org(**sizes): the org the `generated` fixture serves (with_generated_org's sizes)"
    )


@pytest.fixture
def generated(request: pytest.FixtureRequest, start_emulator: EmulatorFactory) -> LiveEmulator:
    """An emulator serving a generated org under fabrikam (runs not executed), sized by the closest
    ``generated_org`` marker: ``pytestmark = pytest.mark.generated_org(repos=12)``; none: the default sizes."""
    marker = request.node.get_closest_marker("generated_org")
    sizes = marker.kwargs if marker is not None else {}
    return start_emulator(config=with_generated_org(CONFIG, **sizes), execute=False)


def project_with_most(org: Organisation, items: Iterable[Any]) -> Project:
    """The project holding the most of ``items`` (anything with a ``project_id``): the one a test reads."""
    return max(org.projects.values(), key=lambda p: sum(item.project_id == p.id for item in items))
