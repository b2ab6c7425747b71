"""kiosk and the Azure DevOps emulator, each serving on loopback, wired to each other: the setup the
end-to-end tests of actions and automations share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.servers import free_port, serving

from kiosk.auth.clients import create_client
from kiosk.emulator.bootstrap import build_emulator
from kiosk.emulator.config import load_emulator_config
from kiosk.settings import Settings
from kiosk.web.app import create_app


@contextmanager
def kiosk_and_emulator(
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    env: Mapping[str, str],
    kiosk_yaml: Callable[[str, str], str],
    emulator_yaml: Callable[[str], str],
    pipeline: str,
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """An admin client of kiosk and a PAT client (``pat-1``) of the emulator.

    ``kiosk_yaml(kiosk_url, emulator_url)`` and ``emulator_yaml(kiosk_url)`` give the two configs
    (the emulator's pipeline reports back with the run's report token from its payload, no API
    client); ``pipeline`` is the repository's ``azure-pipelines.yml``; ``env`` is set for both
    (secret references).
    """
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    kiosk_port, emulator_port = free_port(), free_port()
    kiosk_url, emulator_url = f"http://127.0.0.1:{kiosk_port}", f"http://127.0.0.1:{emulator_port}"
    (tmp_path / "kiosk.yaml").write_text(kiosk_yaml(kiosk_url, emulator_url))
    settings = Settings.from_env(
        {
            "KIOSK_HOME": str(tmp_path / "home"),
            "KIOSK_DATABASE_URL": database_url,
            "KIOSK_CONFIG": str(tmp_path / "kiosk.yaml"),
        }
    )
    app = create_app(settings)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "azure-pipelines.yml").write_text(pipeline)
    (tmp_path / "emulator.yaml").write_text(emulator_yaml(kiosk_url))
    emulator = build_emulator(
        load_emulator_config(tmp_path / "emulator.yaml"), config_dir=tmp_path, base_url=emulator_url
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
