"""The emulator's config file: validation with file and line, secrets by reference only."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.emulator.config import load_emulator_config
from kiosk.errors import ConfigError

ORG_A = "orgs:\n- name: a\n  personalAccessTokens: [{env: P}]\n"


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
            "orgs:\n- name: acme\n  personalAccessTokens: [{env: ACME_PAT}, {file: pat.txt}]\n"
            "  projects:\n  - name: web\n    connections:\n"
            "    - {name: IncomingWH, webhookName: hook, secret: {env: X}, header: X-WH-Checksum}\n"
            "    pipelines:\n"
            "    - {name: build, repository: repo, variables: {a: b}, secretVariables: {t: {env: T}}}\n",
        )
    )
    assert config.settings.execute_runs is False and config.settings.case_insensitive_filters is True
    (org,) = config.orgs
    assert org.projects[0].connections[0].webhook_name == "hook"
    assert org.projects[0].pipelines[0].path == "azure-pipelines.yml"
    assert [ref.model_dump(exclude_none=True) for ref in org.personal_access_tokens] == [
        {"env": "ACME_PAT"},
        {"file": "pat.txt"},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            ORG_A + "  projects:\n  - name: p\n    connections:\n    - {name: c, webhookName: h, secret: plain}\n",
            "emulator.yaml:7: orgs[0].projects[0].connections[0].secret: secrets must be references",
        ),
        (
            ORG_A + "  projects:\n  - name: p\n    connections:\n    - {name: c, webhookName: h, secret: {env: S}}\n",
            "needs the header that carries the checksum",
        ),
        (
            ORG_A + "  projects:\n  - name: p\n    connections:\n    - {name: c, webhookName: 'bad name'}\n",
            "webhookName",
        ),
        (
            ORG_A + "  projects:\n  - name: p\n    connections: [{name: c, webhookName: h}]\n"
            "  - name: q\n    connections: [{name: d, webhookName: H}]\n",
            "two connections with webhookName 'H' in org 'a'",
        ),
        (
            ORG_A + "  projects:\n  - name: p\n    pipelines: [{name: x, repository: nowhere}]\n",
            "is not a file",
        ),
        ("setings: {}\n", "unknown top-level key 'setings' (known keys: settings, orgs, activity)"),
        (
            "orgs:\n- name: a\n  projects: []\n",
            "emulator.yaml:1: orgs: value error, org 'a' has no personalAccessTokens: its REST API would be open",
        ),
        ("orgs:\n- name: a\n  personalAccessTokens: [plain]\n", "secrets must be references"),
        ("settings: {accessToken: {env: X}}\n", "settings.accessToken was replaced by a PAT per org"),
    ],
)
def test_errors_name_the_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_emulator_config(write(tmp_path, text))
    assert message in str(caught.value)
    assert "plain" not in str(caught.value)  # a literal secret is never echoed back


def test_allow_anonymous_is_the_explicit_way_to_serve_orgs_without_a_pat(tmp_path: Path) -> None:
    config = load_emulator_config(write(tmp_path, "settings: {allowAnonymous: true}\norgs:\n- name: a\n"))
    assert config.settings.allow_anonymous is True and config.orgs[0].personal_access_tokens == []
