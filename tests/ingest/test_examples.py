"""Raw examples for test-mapping: the first items, copied, with every kind of secret replaced."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kiosk.ingest.examples import REDACTED, is_secret_key, redact, redact_text, sample_examples

REPOSITORY = {
    "id": "r-1",
    "name": "payments-api",
    "remoteUrl": "https://contoso@dev.azure.com/contoso/Fabrikam/_git/payments-api",
    "sshUrl": "git@ssh.dev.azure.com:v3/contoso/Fabrikam/payments-api",
    "project": {"id": "p-1", "name": "Fabrikam"},
    "isDisabled": False,
    "size": 10,
    "__includedFiles": {"README.md": "# Payments\n", "CODEOWNERS": None},
}


def test_the_first_items_are_kept_as_copies() -> None:
    items = [{**REPOSITORY, "id": f"r-{n}"} for n in range(8)]
    before = copy.deepcopy(items)
    examples = sample_examples(items)
    assert [e["id"] for e in examples] == ["r-0", "r-1", "r-2", "r-3", "r-4"]
    assert examples[0] == items[0] and examples[0] is not items[0]
    assert sample_examples(items, limit=2) == items[:2]
    assert sample_examples(items, limit=0) == []
    assert items == before


def test_an_ordinary_azure_item_is_unchanged() -> None:
    assert redact(REPOSITORY) == REPOSITORY


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "basicAuthPassword",
        "PASSWORD",
        "accessToken",
        "token",
        "clientSecret",
        "Authorization",
        "privateKey",
        "private_key",
        "connectionString",
        "pat",
        "PAT",
        "pwd",
        "apiKey",
        "x-api-key",
        "credentials",
        "webhookSecret",
        "sasToken",
        "Cookie",
    ],
)
def test_values_under_secret_keys_are_replaced(key: str) -> None:
    assert is_secret_key(key)
    item = {"id": 1, "nested": [{key: "s3cr3t-value", "name": "kept"}]}
    assert redact(item) == {"id": 1, "nested": [{key: REDACTED, "name": "kept"}]}


@pytest.mark.parametrize("key", ["name", "id", "url", "patch", "path", "keyboard", "isSecret", "description"])
def test_ordinary_keys_are_not_secret(key: str) -> None:
    assert not is_secret_key(key) or key == "isSecret"


def test_whole_structures_under_a_secret_key_go_and_flags_stay() -> None:
    endpoint = {
        "name": "azure-rm",
        "authorization": {"scheme": "ServicePrincipal", "parameters": {"serviceprincipalkey": "x", "tenantid": "t"}},
        "isSecret": True,
        "hasPassword": False,
        "password": None,
    }
    assert redact(endpoint) == {
        "name": "azure-rm",
        "authorization": REDACTED,
        "isSecret": True,
        "hasPassword": False,
        "password": None,
    }


def test_secret_variables_lose_their_value() -> None:
    definition = {
        "variables": {
            "region": {"value": "westeurope"},
            "signingCert": {"value": "hunter2", "isSecret": True},
            "deployKey": {"value": "abc", "isSecret": True, "allowOverride": True},
        }
    }
    assert redact(definition) == {
        "variables": {
            "region": {"value": "westeurope"},
            "signingCert": {"value": REDACTED, "isSecret": True},
            "deployKey": {"value": REDACTED, "isSecret": True, "allowOverride": True},
        }
    }


def test_service_hook_consumer_inputs() -> None:
    subscription = {
        "consumerInputs": {"url": "https://kiosk.example/hooks", "basicAuthUsername": "port", "basicAuthPassword": "pw"}
    }
    assert redact(subscription)["consumerInputs"] == {
        "url": "https://kiosk.example/hooks",
        "basicAuthUsername": "port",
        "basicAuthPassword": REDACTED,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pass@host/x", f"https://{REDACTED}@host/x"),
        ("clone https://ann:p%40ss@dev.azure.com/c/_git/r now", f"clone https://{REDACTED}@dev.azure.com/c/_git/r now"),
        (
            "https://abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst@dev.azure.com/c/_git/r",
            f"https://{REDACTED}@dev.azure.com/c/_git/r",
        ),
        ("https://contoso@dev.azure.com/contoso/_git/r", "https://contoso@dev.azure.com/contoso/_git/r"),
        (
            "https://blob.example/a.zip?sv=2020&sig=AbC%2Bd&se=1",
            f"https://blob.example/a.zip?sv=2020&sig={REDACTED}&se=1",
        ),
        ("https://x.example/cb?access_token=t0k&page=2", f"https://x.example/cb?access_token={REDACTED}&page=2"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", f"Authorization: Bearer {REDACTED}"),
        ("curl -H 'Authorization: Basic OnBhdHRva2Vu'", f"curl -H 'Authorization: Basic {REDACTED}'"),
        (
            "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\nend",
            f"key:\n{REDACTED}\nend",
        ),
        ("a basic sentence about bearers", "a basic sentence about bearers"),
        ("Basic settings and Bearer tokenless", "Basic settings and Bearer tokenless"),
    ],
)
def test_credentials_inside_strings(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_credentials_in_included_files_and_urls_of_an_item() -> None:
    item: dict[str, Any] = {
        **REPOSITORY,
        "remoteUrl": "https://ann:secret@dev.azure.com/contoso/_git/payments-api",
        "__includedFiles": {"deploy.yaml": "registry: https://bot:pw123@registry.example\nreplicas: 2\n"},
    }
    redacted = redact(item)
    assert redacted["remoteUrl"] == f"https://{REDACTED}@dev.azure.com/contoso/_git/payments-api"
    assert redacted["__includedFiles"]["deploy.yaml"] == f"registry: https://{REDACTED}@registry.example\nreplicas: 2\n"
    assert "secret" not in str(redacted) and "pw123" not in str(redacted)
