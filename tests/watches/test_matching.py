"""Which watches an event refreshes, and why none when none does (pure, in memory)."""

from __future__ import annotations

import time
from typing import Any

from kiosk.watches.config import WatchSpec
from kiosk.watches.events import ArtifactEvent, RefChange, Subject
from kiosk.watches.matching import WatchIndex
from kiosk.watches.normalise import chart_key, git_key, image_key


def watch(name: str, *subscriptions: dict[str, Any], project: str | None = None) -> WatchSpec:
    return WatchSpec.model_validate({"name": name, "project": project, "subscriptions": list(subscriptions)})


def image_event(reference: str, tag: str | None) -> ArtifactEvent:
    return ArtifactEvent((Subject("image", image_key(reference)),), tag=tag)


def git_event(url: str, *refs: tuple[str, str]) -> ArtifactEvent:
    return ArtifactEvent((Subject("git", git_key(url)),), refs=tuple(RefChange(r, c, "c1") for r, c in refs))


def test_an_image_push_refreshes_watches_whose_tags_match() -> None:
    index = WatchIndex(
        [
            watch("one", {"image": "contoso.azurecr.io/checkout", "tags": ["1.*"]}),
            watch("two", {"image": "contoso.azurecr.io/checkout:latest", "tags": ["^2"]}),
            watch("other", {"image": "contoso.azurecr.io/ledger", "tags": ["*"]}),
        ]
    )
    result = index.match(image_event("contoso.azurecr.io/checkout", "1.2.3"), project=None)
    assert result.watches == ["one"] and result.reason is None
    assert result.matches[0].tag == "1.2.3" and result.matches[0].repository == "contoso.azurecr.io/checkout"


def test_no_tag_match_says_why() -> None:
    index = WatchIndex([watch("one", {"image": "contoso.azurecr.io/checkout", "tags": ["1.*"]})])
    result = index.match(image_event("contoso.azurecr.io/checkout", "2.0.0"), project=None)
    assert result.refreshed == 0
    assert (
        result.reason is not None and "tag 2.0.0" in result.reason and "one" in result.reason and "1.*" in result.reason
    )
    nobody = index.match(image_event("contoso.azurecr.io/ledger", "1.0"), project=None)
    assert nobody.reason == "no watch subscribes to image contoso.azurecr.io/ledger"
    untagged = index.match(image_event("contoso.azurecr.io/checkout", None), project=None)
    assert untagged.reason is not None and "no tag" in untagged.reason


def test_an_ssh_subscription_matches_an_https_push() -> None:
    index = WatchIndex(
        [watch("w", {"git": "git@ssh.dev.azure.com:v3/contoso/payments/checkout", "branches": ["main"]})]
    )
    event = git_event("https://contoso@dev.azure.com/contoso/payments/_git/checkout", ("refs/heads/main", "push"))
    result = index.match(event, project=None)
    assert result.watches == ["w"] and result.matches[0].ref == "refs/heads/main" and result.matches[0].commit == "c1"


def test_branch_and_tag_filters_and_events() -> None:
    index = WatchIndex(
        [
            watch("branches", {"git": "https://github.com/a/b", "branches": ["release/*"]}),
            watch("tags", {"git": "https://github.com/a/b", "tags": ["^1.2"]}),
            watch("deletes", {"git": "https://github.com/a/b", "branches": ["*"], "events": ["delete"]}),
        ]
    )
    assert index.match(git_event("git@github.com:a/b.git", ("refs/heads/release/1", "push")), project=None).watches == [
        "branches"
    ]
    assert index.match(git_event("https://github.com/a/b", ("refs/tags/v1.4.0", "push")), project=None).watches == [
        "tags"
    ]
    # A deleted branch refreshes only the watch that asked for deletes.
    deleted = index.match(git_event("https://github.com/a/b", ("refs/heads/release/1", "delete")), project=None)
    assert deleted.watches == ["deletes"]
    none = index.match(git_event("https://github.com/a/b", ("refs/heads/dev", "push")), project=None)
    assert none.refreshed == 0 and none.reason is not None and "refs/heads/dev (push)" in none.reason


def test_charts_and_ambiguous_media_types() -> None:
    index = WatchIndex(
        [
            watch("chart", {"chart": "oci://contoso.azurecr.io/helm/checkout", "versions": ["^1.2"]}),
            watch("image", {"image": "contoso.azurecr.io/helm/checkout", "tags": ["*"]}),
        ]
    )
    both = ArtifactEvent(
        (
            Subject("image", image_key("contoso.azurecr.io/helm/checkout")),
            Subject("chart", chart_key("contoso.azurecr.io/helm/checkout")),
        ),
        tag="1.3.0",
    )
    assert sorted(index.match(both, project=None).watches) == ["chart", "image"]
    chart_only = ArtifactEvent((Subject("chart", "contoso.azurecr.io/helm/checkout"),), tag="1.1.0")
    result = index.match(chart_only, project=None)
    assert result.refreshed == 0 and result.reason is not None and "versions ^1.2" in result.reason


def test_a_project_receiver_refreshes_only_its_projects_watches() -> None:
    index = WatchIndex(
        [
            watch("pay", {"image": "r.io/app", "tags": ["*"]}, project="payments"),
            watch("plat", {"image": "r.io/app", "tags": ["*"]}, project="platform"),
            watch("global", {"image": "r.io/app", "tags": ["*"]}),
        ]
    )
    event = image_event("r.io/app", "1")
    assert index.match(event, project="payments").watches == ["pay"]
    assert index.match(event, project=None).watches == ["pay", "plat", "global"]
    assert index.match(event, project="nobody").reason == "no watch in project nobody subscribes to image r.io/app"


def test_a_watch_is_refreshed_once_however_many_of_its_subscriptions_match() -> None:
    index = WatchIndex(
        [watch("w", {"image": "r.io/app", "tags": ["1.*"]}, {"image": "docker.io/library/r.io/app", "tags": ["*"]})]
    )
    assert index.match(image_event("r.io/app", "1.0"), project=None).refreshed == 1


def test_one_match_among_1000_watches_is_a_lookup_not_a_scan() -> None:
    watches = [watch(f"w{n}", {"image": f"contoso.azurecr.io/app-{n}", "tags": ["1.*"]}) for n in range(1000)]
    index = WatchIndex(watches)
    result = index.match(image_event("contoso.azurecr.io/app-737", "1.0.1"), project=None)
    assert result.watches == ["w737"]
    small = WatchIndex(watches[:10])
    event = image_event("contoso.azurecr.io/app-7", "1.0.1")

    def cost(i: WatchIndex) -> float:
        started = time.perf_counter()
        for _ in range(2000):
            i.match(event, project=None)
        return time.perf_counter() - started

    cost(index), cost(small)  # warm up
    assert cost(index) < 3 * cost(small)
