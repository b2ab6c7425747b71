"""One key per repository, however its URL is written."""

from __future__ import annotations

import pytest

from kiosk.watches.normalise import chart_key, git_key, image_key, ref_parts

AZURE_KEY = "dev.azure.com/contoso/payments/_git/checkout"


@pytest.mark.parametrize(
    "url",
    [
        "https://dev.azure.com/contoso/payments/_git/checkout",
        "https://contoso@dev.azure.com/contoso/payments/_git/checkout",  # remoteUrl carries org@
        "https://dev.azure.com/contoso/payments/_git/checkout/",
        "https://dev.azure.com/contoso/payments/_git/checkout.git",
        "HTTPS://Dev.Azure.com/Contoso/Payments/_git/Checkout",
        "git@ssh.dev.azure.com:v3/contoso/payments/checkout",
        "ssh://git@ssh.dev.azure.com/v3/contoso/payments/checkout",
        "ssh://git@ssh.dev.azure.com:22/v3/contoso/payments/checkout",
        "https://contoso.visualstudio.com/payments/_git/checkout",
        "https://contoso.visualstudio.com/DefaultCollection/payments/_git/checkout",
        "contoso@vs-ssh.visualstudio.com:v3/contoso/payments/checkout",
        "dev.azure.com/contoso/payments/_git/checkout",
    ],
)
def test_every_azure_devops_spelling_is_one_repository(url: str) -> None:
    assert git_key(url) == AZURE_KEY


def test_ssh_and_https_of_the_same_repository_match() -> None:
    ssh = git_key("git@ssh.dev.azure.com:v3/contoso/payments/checkout")
    https = git_key("https://dev.azure.com/contoso/payments/_git/checkout")
    assert ssh == https
    assert git_key("git@github.com:acme/app.git") == git_key("https://github.com/acme/app") == "github.com/acme/app"


def test_org_user_info_is_stripped() -> None:
    assert git_key("https://contoso@dev.azure.com/contoso/p/_git/r") == "dev.azure.com/contoso/p/_git/r"
    assert git_key("https://user:token@github.com/a/b.git") == "github.com/a/b"


def test_project_spaces_and_the_short_project_form() -> None:
    assert git_key("https://dev.azure.com/c/My%20Project/_git/r") == "dev.azure.com/c/my project/_git/r"
    assert git_key("git@ssh.dev.azure.com:v3/c/My%20Project/r") == "dev.azure.com/c/my project/_git/r"
    # Azure drops the project from the URL when the repository is named like it.
    assert git_key("https://dev.azure.com/contoso/payments/_git/payments") == git_key(
        "https://dev.azure.com/contoso/_git/payments"
    )


def test_different_repositories_stay_different() -> None:
    assert git_key("https://dev.azure.com/c/p/_git/a") != git_key("https://dev.azure.com/c/p/_git/b")
    assert git_key("https://dev.azure.com/c/p1/_git/a") != git_key("https://dev.azure.com/c/p2/_git/a")


@pytest.mark.parametrize(
    ("reference", "key"),
    [
        ("nginx", "nginx"),
        ("library/nginx", "nginx"),
        ("docker.io/library/nginx", "nginx"),
        ("index.docker.io/library/nginx:1.25", "nginx"),
        ("docker.io/bitnami/redis", "bitnami/redis"),
        ("contoso.azurecr.io/checkout", "contoso.azurecr.io/checkout"),
        ("Contoso.azurecr.io/Team/Checkout:1.2.3", "contoso.azurecr.io/team/checkout"),
        ("contoso.azurecr.io/checkout@sha256:abc", "contoso.azurecr.io/checkout"),
        ("localhost:5000/app:dev", "localhost:5000/app"),
        ("https://contoso.azurecr.io/checkout/", "contoso.azurecr.io/checkout"),
    ],
)
def test_image_keys(reference: str, key: str) -> None:
    assert image_key(reference) == key


def test_chart_keys_drop_oci() -> None:
    assert chart_key("oci://contoso.azurecr.io/helm/checkout") == "contoso.azurecr.io/helm/checkout"
    assert chart_key("contoso.azurecr.io/helm/checkout/") == "contoso.azurecr.io/helm/checkout"


def test_ref_parts() -> None:
    assert ref_parts("refs/heads/release/1.2") == ("branch", "release/1.2")
    assert ref_parts("refs/tags/v1.0") == ("tag", "v1.0")
    assert ref_parts("refs/pull/4/merge") == ("other", "refs/pull/4/merge")
