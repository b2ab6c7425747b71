"""kiosk and the Azure DevOps emulator, each serving on loopback, wired to each other: the setup the
end-to-end tests of actions and automations share.

The emulator side is fixed (:data:`EMULATOR`): org ``fabrikam`` with the PAT ``E2E_PAT``, project
``web`` whose service connection ``kiosk-actions`` takes webhook ``kiosk`` signed with
``E2E_SIGNING_SECRET`` (in ``X-Port-Signature``), and one pipeline; kiosk's kiosk.yaml, which the
test gives, reads the same two variables."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.support.live_kiosk import configured_settings
from tests.support.servers import free_port, serving

from kiosk.auth.clients import create_client
from kiosk.emulator.bootstrap import build_emulator
from kiosk.emulator.config import load_emulator_config
from kiosk.web.app import create_app

#: The secrets both configs read from the environment.
STACK_ENV = {"E2E_PAT": "pat-1", "E2E_SIGNING_SECRET": "shared-signing-secret"}

EMULATOR = """\
orgs:
  - name: fabrikam
    personalAccessTokens: [{{env: E2E_PAT}}]
    projects:
      - name: web
        connections:
          - name: kiosk-actions
            webhookName: kiosk
            secret: {{env: E2E_SIGNING_SECRET}}
            header: X-Port-Signature
        pipelines:
          - name: {pipeline}
            repository: repo
            path: azure-pipelines.yml
            variables: {{kioskUrl: "{kiosk_url}"}}
"""

#: The start of a pipeline the stack's service connection triggers: its webhook resource ``port``
#: (Port's name for the run's payload, as kiosk's demo pipelines use it); the test adds the steps.
PIPELINE_HEAD = """\
name: kiosk-${{ parameters.port.context.runId }}
resources:
  webhooks:
    - webhook: port
      connection: kiosk-actions
steps:
- checkout: none
"""


@contextmanager
def kiosk_and_emulator(
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    kiosk_yaml: Callable[[str, str], str],
    pipeline_name: str,
    pipeline: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """An admin client of kiosk and a PAT client (``pat-1``) of the emulator.

    ``kiosk_yaml(kiosk_url, emulator_url)`` gives kiosk's config; the emulator's pipeline
    ``pipeline_name`` runs ``pipeline`` (the repository's ``azure-pipelines.yml``) with the variable
    ``kioskUrl`` (it reports back with the run's report token from its payload, no API client).
    ``env`` is set besides :data:`STACK_ENV` (more secret references).
    """
    for name, value in {**STACK_ENV, **(env or {})}.items():
        monkeypatch.setenv(name, value)
    kiosk_port, emulator_port = free_port(), free_port()
    kiosk_url, emulator_url = f"http://127.0.0.1:{kiosk_port}", f"http://127.0.0.1:{emulator_port}"
    app = create_app(configured_settings(tmp_path, database_url, kiosk_yaml(kiosk_url, emulator_url)))
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "azure-pipelines.yml").write_text(pipeline)
    (tmp_path / "emulator.yaml").write_text(EMULATOR.format(pipeline=pipeline_name, kiosk_url=kiosk_url))
    emulator = build_emulator(
        load_emulator_config(tmp_path / "emulator.yaml"),
        config_dir=tmp_path,
        base_url=emulator_url,
        work_dir=tmp_path / "emulator-work",
    )
    with serving(emulator.app, emulator_port), serving(app, kiosk_port):
        admin = create_client(app.state.db, "admin", "test")
        token = httpx.post(
            f"{kiosk_url}/v1/auth/access_token", json={"clientId": admin[0], "clientSecret": admin[1]}
        ).json()["accessToken"]
        with (
            httpx.Client(base_url=kiosk_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as kiosk,
            httpx.Client(base_url=emulator_url, headers={"Authorization": "Bearer pat-1"}, timeout=30) as azure,
        ):
            yield kiosk, azure
