"""kiosk.yaml's ``receivers`` and ``watches``: loaded with file/line errors, secrets resolved at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.config_files import config_error, write_config

from kiosk.config import load_config
from kiosk.config.resolved import resolve_config_secrets
from kiosk.errors import ConfigError

BASE = """
receivers:
  - name: acr
    type: azure
    secret: {env: ACR_SECRET}
  - name: acr
    type: azure
    project: payments
    secret: {file: acr.secret}
    auth:
      basic: {username: kiosk, password: {env: HOOK_PASSWORD}}
      header: {name: X-Kiosk-Token, value: {env: HOOK_TOKEN}}
  - name: builds
    type: generic
    secret: {env: ACR_SECRET}
    mapping: {kind: image, repository: .image, tag: .tag, id: .id}
watches:
  - name: checkout
    project: payments
    subscriptions:
      - image: contoso.azurecr.io/checkout
        tags: ["1.*", "^2.1"]
      - git: git@ssh.dev.azure.com:v3/contoso/payments/checkout
        branches: [main, "release/*"]
        events: [push, delete]
      - chart: oci://contoso.azurecr.io/helm/checkout
        versions: [">=1.0 <2"]
    reactions:
      - runAction:
          action: deploy_service
          entity: checkout
          properties: {environment: staging, version: "{{ .tag }}"}
      - upsertEntity:
          blueprint: '"image"'
          identifier: .repository + ":" + .tag
          properties: {digest: .digest}
"""


def test_sections_load(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, BASE))
    assert [(r.key, r.type) for r in config.receivers] == [
        ("acr", "azure"),
        ("payments/acr", "azure"),
        ("builds", "generic"),
    ]
    [watch] = config.watches
    assert [s.kind for s in watch.subscriptions] == ["image", "git", "chart"]
    assert watch.subscriptions[1].key() == "dev.azure.com/contoso/payments/_git/checkout"
    assert watch.subscriptions[1].changes() == ("push", "delete")
    assert [r.kind for r in watch.reactions] == ["runAction", "upsertEntity"]
    empty = load_config(write_config(tmp_path, "receivers:\nwatches:\n"))
    assert empty.receivers == [] and empty.watches == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "receivers:\n  - {name: a, type: azure, secret: hunter2-literal}\n",
            "kiosk.yaml:2: receivers[0].secret: secrets must be references",
        ),
        ("receivers:\n  - {name: a, type: gitlab, secret: {env: X}}\n", "receivers[0].type"),
        ("receivers:\n  - {name: 'a b', type: azure, secret: {env: X}}\n", "receivers[0].name: string should match"),
        (
            "receivers:\n  - {name: a, type: azure, secret: {env: X}}\n  - {name: a, type: generic, secret: {env: X}, "
            "mapping: {kind: git, repository: .r, refs: .refs}}\n",
            "kiosk.yaml:3: receivers[1].name: duplicate receiver 'a' without a project (also receivers[0])",
        ),
        ("receivers:\n  - {name: g, type: generic, secret: {env: X}}\n", "a generic receiver needs a mapping"),
        (
            "receivers:\n  - {name: g, type: generic, secret: {env: X},\n"
            "     mapping: {kind: image, repository: '.[', tag: .t}}\n",
            "is not a valid jq expression",
        ),
        (
            "receivers:\n  - {name: a, type: azure, secret: {env: X},\n"
            "     auth: {header: {name: Content-Type, value: {env: Y}}}}\n",
            "receivers[0].auth.header.name",
        ),
        (
            "watches:\n  - name: w\n    subscriptions:\n      - image: r.io/app\n        tags: []\n",
            "kiosk.yaml:5: watches[0].subscriptions[0].tags: an empty filter list matches nothing; write ['*']",
        ),
        (
            "watches:\n  - name: w\n    subscriptions:\n      - image: r.io/app\n",
            "kiosk.yaml:4: watches[0].subscriptions[0]: an image subscription needs tags (write tags: ['*'] for all)",
        ),
        (
            "watches:\n  - name: w\n    subscriptions:\n      - git: https://github.com/a/b\n",
            "a git subscription needs branches or tags",
        ),
        (
            "watches:\n  - name: w\n    subscriptions:\n      - {image: r.io/app, git: x, tags: ['*']}\n",
            "a subscription names exactly one of git, image or chart",
        ),
        (
            "watches:\n  - name: w\n    subscriptions:\n      - {image: r.io/app, tags: ['*'], branches: [main]}\n",
            "branches does not apply to a image subscription",
        ),
        (
            "watches:\n  - name: w\n    subscriptions:\n      - {image: r.io/app, tags: ['>=1.0 <']}\n",
            "watches[0].subscriptions[0].tags: '>=1.0 <' is not a version range",
        ),
        (
            "watches:\n  - name: w\n    subscriptions:\n      - {git: x, branches: ['*'], events: [merged]}\n",
            "watches[0].subscriptions[0].events[0]",
        ),
        ("watches:\n  - name: w\n    subscriptions: []\n", "watches[0].subscriptions"),
        (
            "watches:\n  - {name: w, subscriptions: [{image: a, tags: ['*']}]}\n"
            "  - {name: w, subscriptions: [{image: b, tags: ['*']}]}\n",
            "kiosk.yaml:3: watches[1].name: duplicate watch 'w' (also watches[0])",
        ),
        (
            "watches:\n  - name: w\n    subscriptions: [{image: a, tags: ['*']}]\n    reactions:\n"
            "      - upsertEntity: {blueprint: '\"image\"', identifier: '.tag +'}\n",
            "watches[0].reactions[0].upsertEntity.identifier: '.tag +' is not a valid jq expression",
        ),
        (
            "watches:\n  - name: w\n    subscriptions: [{image: a, tags: ['*']}]\n    reactions:\n"
            "      - runAction: {action: deploy, properties: {version: '{{ .tag | }}'}}\n",
            "watches[0].reactions[0].runAction",
        ),
        (
            "watches:\n  - name: w\n    subscriptions: [{image: a, tags: ['*']}]\n    reactions:\n      - {}\n",
            "a reaction is exactly one of runAction or upsertEntity",
        ),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, fragment: str) -> None:
    error = config_error(tmp_path, text)
    assert fragment in error.message, error.message
    assert "hunter2-literal" not in error.message


def test_same_receiver_name_in_two_projects_is_fine(tmp_path: Path) -> None:
    text = (
        "receivers:\n  - {name: a, type: azure, secret: {env: X}, project: p1}\n"
        "  - {name: a, type: azure, secret: {env: X}, project: p2}\n"
    )
    assert [r.key for r in load_config(write_config(tmp_path, text)).receivers] == ["p1/a", "p2/a"]


def test_receiver_secrets_are_resolved_at_start(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, BASE))
    (tmp_path / "acr.secret").write_text("from-file\n")
    env = {"ACR_SECRET": "from-env", "HOOK_PASSWORD": "pw", "HOOK_TOKEN": "tok"}
    resolved = resolve_config_secrets(config, base_dir=tmp_path, env=env)
    assert resolved.receivers["acr"].reveal() == "from-env"
    assert resolved.receivers["payments/acr"].reveal() == "from-file"
    assert resolved.base_dir == tmp_path
    with pytest.raises(ConfigError, match="HOOK_TOKEN is not set"):
        resolve_config_secrets(config, base_dir=tmp_path, env={"ACR_SECRET": "x", "HOOK_PASSWORD": "pw"})
