"""The receiver's decisions, without a server: Kargo's own test list and kiosk's additions.

Kargo's list: malformed body · unsupported user agent · ping · no tag match (image) · refreshed
(image) · no version match (chart) · refreshed (chart) · PR merged refreshes · PR updated but not
abandoned is a no-op · abandoned PR · no ref match (git) · refreshed (git).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.events import (
    ACR_UA,
    ADO_UA,
    DOCKER_MANIFEST,
    HELM_CONFIG,
    OCI_MANIFEST,
    ZEROS,
    acr_ping,
    acr_push,
    git_push,
    pull_request,
)

from kiosk.receivers.config import ReceiverSpec
from kiosk.receivers.intake import IncomingRequest, Verdict, judge
from kiosk.receivers.registry import Receiver, ReceiverRegistry
from kiosk.store.queue import utcnow
from kiosk.watches.config import WatchSpec
from kiosk.watches.matching import WatchIndex

WATCHES = [
    {"name": "images", "subscriptions": [{"image": "contoso.azurecr.io/checkout", "tags": ["1.*"]}]},
    {"name": "charts", "subscriptions": [{"chart": "oci://contoso.azurecr.io/helm/checkout", "versions": ["^1.2"]}]},
    {
        "name": "main",
        "subscriptions": [
            {
                "git": "git@ssh.dev.azure.com:v3/contoso/payments/checkout",
                "branches": ["main"],
                "events": ["push", "pullRequestMerged", "pullRequestAbandoned"],
            }
        ],
    },
]
INDEX = WatchIndex([WatchSpec.model_validate(w) for w in WATCHES])


def receiver(**spec: Any) -> Receiver:
    fields = {"name": "acr", "type": "azure", "secret": {"env": "S"}, **spec}
    env = {"S": "secret", "PW": "pw", "TOKEN": "tok"}
    registry = ReceiverRegistry([ReceiverSpec.model_validate(fields)], base_dir=Path("."), env=env)
    return registry.current()[0]


def post(
    body: Any, user_agent: str | None, *, method: str = "POST", r: Receiver | None = None, **headers: str
) -> Verdict:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    all_headers = {k.lower().replace("_", "-"): v for k, v in headers.items()}
    if user_agent is not None:
        all_headers["user-agent"] = user_agent
    request = IncomingRequest(method, all_headers, raw, utcnow())
    return judge(r or receiver(), request, INDEX)


# ----------------------------------------------------------------------------- Kargo's own list


def test_malformed_body() -> None:
    v = post(b"{not json", ACR_UA)
    assert (v.status, v.reply) == (400, {"error": "invalid request body"})
    assert v.record.outcome == "rejected" and v.record.payload is None


def test_unsupported_user_agent() -> None:
    v = post(acr_push(), "curl/8.5.0")
    assert (v.status, v.reply) == (
        400,
        {"error": "request does not appear to have originated from a supported service"},
    )


def test_ping() -> None:
    v = post(acr_ping(), ACR_UA)
    assert (v.status, v.reply) == (200, {"msg": "ping event received, webhook is configured correctly"})
    assert v.record.outcome == "ping" and not v.record.accepted


def test_no_tag_match_image() -> None:
    v = post(acr_push(tag="2.0.0"), ACR_UA)
    assert (v.status, v.reply) == (200, {"msg": "refreshed 0 watch(es)"})
    assert v.record.outcome == "no_match" and "tag 2.0.0" in (v.record.reason or "")


def test_refreshed_image() -> None:
    v = post(acr_push(tag="1.2.3"), ACR_UA)
    assert (v.status, v.reply) == (200, {"msg": "refreshed 1 watch(es)"})
    assert v.record.outcome == "refreshed" and [m["watch"] for m in v.record.matches] == ["images"]
    assert v.record.accepted and not v.record.react and v.record.dedupe_key is not None


def test_no_version_match_chart() -> None:
    v = post(acr_push("helm/checkout", "1.1.0", media_type=HELM_CONFIG), ACR_UA)
    assert v.reply == {"msg": "refreshed 0 watch(es)"}


def test_refreshed_chart() -> None:
    v = post(acr_push("helm/checkout", "1.4.0", media_type=HELM_CONFIG), ACR_UA)
    assert v.reply == {"msg": "refreshed 1 watch(es)"} and v.record.matches[0]["watch"] == "charts"


def test_pr_merged_refreshes_matching_watch() -> None:
    v = post(pull_request("git.pullrequest.merged", "completed"), ADO_UA)
    assert v.reply == {"msg": "refreshed 1 watch(es)"}
    assert v.record.matches[0]["change"] == "pullRequestMerged" and v.record.matches[0]["commit"] == "6" * 40


def test_pr_merge_attempt_that_did_not_complete_refreshes_nothing() -> None:
    v = post(pull_request("git.pullrequest.merged", "active"), ADO_UA)
    assert v.reply == {"msg": "refreshed 0 watch(es)"} and "was not merged" in (v.record.reason or "")


def test_pr_updated_but_not_abandoned_is_a_no_op() -> None:
    v = post(pull_request("git.pullrequest.updated", "active"), ADO_UA)
    assert (v.status, v.reply) == (200, {"msg": "refreshed 0 watch(es)"})
    assert v.record.reason == "pull request 42 was updated but not abandoned (status active)"


def test_abandoned_pr() -> None:
    v = post(pull_request("git.pullrequest.updated", "abandoned"), ADO_UA)
    assert v.reply == {"msg": "refreshed 1 watch(es)"} and v.record.matches[0]["change"] == "pullRequestAbandoned"


def test_no_ref_match_git() -> None:
    v = post(git_push([("refs/heads/dev", "a" * 40)]), ADO_UA)
    assert v.reply == {"msg": "refreshed 0 watch(es)"} and "refs/heads/dev (push)" in (v.record.reason or "")


def test_refreshed_git() -> None:
    v = post(git_push([("refs/heads/dev", "a" * 40), ("refs/heads/main", "b" * 40)]), ADO_UA)
    assert v.reply == {"msg": "refreshed 1 watch(es)"}
    assert v.record.matches[0]["ref"] == "refs/heads/main" and v.record.matches[0]["commit"] == "b" * 40


# ------------------------------------------------------------------------------- kiosk's own


def test_deleted_refs_are_recognised_and_refresh_only_delete_subscribers() -> None:
    v = post(git_push([("refs/heads/main", ZEROS)]), ADO_UA)
    assert v.reply == {"msg": "refreshed 0 watch(es)"}
    assert v.record.summary is not None and v.record.summary["refs"] == [{"ref": "refs/heads/main", "change": "delete"}]


@pytest.mark.parametrize(
    ("body", "watch"),
    [(acr_push(tag="1.0.0"), "images"), (git_push(), "main")],
)
def test_missing_user_agent_falls_back_to_the_payload_shape(body: dict[str, Any], watch: str) -> None:
    v = post(body, None)
    assert v.reply == {"msg": "refreshed 1 watch(es)"} and v.record.matches[0]["watch"] == watch


def test_missing_user_agent_and_an_unknown_shape_is_unsupported() -> None:
    v = post({"hello": "world"}, None)
    assert v.status == 400 and v.reply["error"].startswith("request does not appear")


def test_unsupported_event_types() -> None:
    v = post({**acr_push(), "action": "delete"}, ACR_UA)
    assert (v.status, v.reply) == (400, {"error": "event type delete is not supported"})
    v = post({"eventType": "build.complete", "resource": {}}, ADO_UA)
    assert (v.status, v.reply) == (400, {"error": "event type build.complete is not supported"})


def test_wrong_method_and_oversize_body() -> None:
    v = post(acr_push(), ACR_UA, method="GET")
    assert (v.status, v.reply) == (405, {"error": "method not allowed"}) and v.record.outcome == "rejected"
    request = IncomingRequest("POST", {"user-agent": ACR_UA}, None, utcnow())
    v = judge(receiver(), request, INDEX)
    assert (v.status, v.reply) == (413, {"error": "content exceeds limit of 2097152 bytes"})


def test_ambiguous_media_type_matches_image_and_chart_subscribers() -> None:
    v = post(acr_push("helm/checkout", "1.3.0", media_type=OCI_MANIFEST), ACR_UA)
    assert [m["watch"] for m in v.record.matches] == ["charts"]
    v = post(acr_push("checkout", "1.3.0", media_type=OCI_MANIFEST), ACR_UA)
    assert [m["watch"] for m in v.record.matches] == ["images"]
    v = post(acr_push("checkout", "1.3.0", media_type=DOCKER_MANIFEST), ACR_UA)
    assert [m["watch"] for m in v.record.matches] == ["images"]


def test_extra_checks_basic_auth_and_header() -> None:
    r = receiver(
        auth={
            "basic": {"username": "kiosk", "password": {"env": "PW"}},
            "header": {"name": "X-Token", "value": {"env": "TOKEN"}},
        }
    )
    good = {"authorization": "Basic a2lvc2s6cHc=", "x_token": "tok"}  # kiosk:pw
    assert post(acr_push(tag="1.0"), ACR_UA, r=r, **good).status == 200
    v = post(acr_push(), ACR_UA, r=r, x_token="tok")
    assert (v.status, v.reply, v.record.reason) == (401, {"error": "unauthorized"}, "basic auth is missing")
    v = post(acr_push(), ACR_UA, r=r, authorization="Basic a2lvc2s6bm9wZQ==", x_token="tok")  # kiosk:nope
    assert v.record.reason == "basic auth does not match"
    v = post(acr_push(), ACR_UA, r=r, authorization="Basic a2lvc2s6cHc=", x_token="nope")
    assert v.record.reason == "header x-token does not match"


def test_nul_characters_are_refused() -> None:
    body = orjson.dumps(acr_push()).replace(b'"checkout"', b'"check\\u0000out"')
    assert post(body, ACR_UA).reply == {"error": "invalid request body"}


def test_the_dedupe_key_is_per_receiver_and_sender_id() -> None:
    body = acr_push(event_id="evt-1")
    a = post(body, ACR_UA).record.dedupe_key
    b = post(body, ACR_UA, r=receiver(project="payments")).record.dedupe_key
    assert a == "acr:acr:evt-1" and b == "payments/acr:acr:evt-1"
    ado = post(git_push(event_id="g-1"), ADO_UA).record
    assert ado.dedupe_key == "acr:azure-devops:g-1" and ado.delivery_id == "g-1"


def test_generic_receiver_reads_its_sender_with_a_jq_mapping() -> None:
    mapping = {"kind": "image", "repository": ".image.repo", "tag": ".image.tag", "id": ".id"}
    r = receiver(name="builds", type="generic", mapping=mapping)
    v = post({"id": 9, "image": {"repo": "contoso.azurecr.io/checkout", "tag": "1.9"}}, "curl/8", r=r)
    assert v.reply == {"msg": "refreshed 1 watch(es)"} and v.record.delivery_id == "9"
    assert v.record.sender == "generic"
    v = post({"nothing": True}, None, r=r)
    assert (
        v.reply == {"msg": "refreshed 0 watch(es)"}
        and v.record.reason == "the mapping gave no repository for this event"
    )
    v = post({"image": {"repo": 5}}, None, r=r)
    assert v.status == 400 and v.record.reason == "mapping.repository must give a string, not int"
    git = receiver(name="g", type="generic", mapping={"kind": "git", "repository": ".repo", "refs": ".refs"})
    v = post({"repo": "https://dev.azure.com/contoso/payments/_git/checkout", "refs": ["main"]}, None, r=git)
    assert v.reply == {"msg": "refreshed 1 watch(es)"}
