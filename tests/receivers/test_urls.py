"""The receiver URL is Kargo's: /webhooks/<type>/<hex sha256(project + name + secret)>."""

from __future__ import annotations

from kiosk.receivers.urls import receiver_digest, receiver_path


def test_the_reference_test_vectors_hold() -> None:
    assert (
        receiver_digest("kargo-demo", "azure-wh-receiver", "mysecret")
        == "745146127fcc648612afc12a906adf7d5414fac3a2fee947b931243f7d8368cd"
    )
    # A receiver without a project hashes an empty project.
    expected = "3c01cdff03c51e5c2ba7276c5aee51abb805d51086e6bbf3fa5f7899d45bbee0"
    assert receiver_digest(None, "azure-wh-receiver", "mysecret") == expected
    assert receiver_digest("", "azure-wh-receiver", "mysecret") == expected


def test_the_path_carries_type_and_digest() -> None:
    digest = receiver_digest(None, "acr", "s")
    assert receiver_path("azure", digest) == f"/webhooks/azure/{digest}"
    assert len(digest) == 64 and digest == digest.lower()


def test_same_name_in_two_projects_or_another_secret_is_another_url() -> None:
    a = receiver_digest("payments", "acr", "s")
    b = receiver_digest("platform", "acr", "s")
    c = receiver_digest("payments", "acr", "rotated")
    assert len({a, b, c}) == 3
