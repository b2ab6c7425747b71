"""The emulator's config file: validation with file and line, secrets by reference only."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.emulator.config import load_emulator_config
from kiosk.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "repo").mkdir(exist_ok=True)
    (tmp_path / "repo" / "azure-pipelines.yml").write_text("steps: []\n")
    path = tmp_path / "emulator.yaml"
    path.write_text(text)
    return path


def test_a_full_config_loads(tmp_path: Path) -> None:
    config = load_emulator_config(
        write(
            tmp_path,
            "settings: {executeRuns: false, caseInsensitiveFilters: true}\n"
            "orgs:\n- name: acme\n  projects:\n  - name: web\n    connections:\n"
            "    - {name: IncomingWH, webhookName: hook, secret: {env: X}, header: X-WH-Checksum}\n"
            "    pipelines:\n"
            "    - {name: build, repository: repo, variables: {a: b}, secretVariables: {t: {env: T}}}\n",
        )
    )
    assert config.settings.execute_runs is False and config.settings.case_insensitive_filters is True
    (org,) = config.orgs
    assert org.projects[0].connections[0].webhook_name == "hook"
    assert org.projects[0].pipelines[0].path == "azure-pipelines.yml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "orgs:\n- name: a\n  projects:\n  - name: p\n    connections:\n"
            "    - {name: c, webhookName: h, secret: plain}\n",
            "emulator.yaml:6: orgs[0].projects[0].connections[0].secret: secrets must be references",
        ),
        (
            "orgs:\n- name: a\n  projects:\n  - name: p\n    connections:\n"
            "    - {name: c, webhookName: h, secret: {env: S}}\n",
            "needs the header that carries the checksum",
        ),
        (
            "orgs:\n- name: a\n  projects:\n  - name: p\n    connections:\n    - {name: c, webhookName: 'bad name'}\n",
            "webhookName",
        ),
        (
            "orgs:\n- name: a\n  projects:\n  - name: p\n    connections: [{name: c, webhookName: h}]\n"
            "  - name: q\n    connections: [{name: d, webhookName: H}]\n",
            "two connections with webhookName 'H' in org 'a'",
        ),
        (
            "orgs:\n- name: a\n  projects:\n  - name: p\n    pipelines: [{name: x, repository: nowhere}]\n",
            "is not a file",
        ),
        ("setings: {}\n", "unknown top-level key 'setings' (known keys: settings, orgs)"),
    ],
)
def test_errors_name_the_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_emulator_config(write(tmp_path, text))
    assert message in str(caught.value)
    assert "plain" not in str(caught.value)  # a literal secret is never echoed back
