"""Deeply nested receiver payloads over real HTTP: refused at intake with a 400 that names the limit.

Before the limit, a generic receiver answered 500 to ``[[[…]]]`` 1,000 deep (its jq mapping hit
Python's recursion limit), and an ACR push with a 1,020-deep extra field was accepted, stored,
and then failed in its reaction on every retry, so its run never started. An event kiosk accepts
must be processable, so the depth is judged before anything is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.receivers.test_endpoint import events, post
from tests.support.events import ACR_UA, acr_push
from tests.support.live_kiosk import LiveServer, hook_path, start_configured_server

from kiosk.core.json_depth import MAX_JSON_DEPTH

CONFIG = """\
receivers:
  - {name: acr, type: azure, secret: {env: RCV_ACR_SECRET}}
  - name: gen
    type: generic
    secret: {env: RCV_GEN_SECRET}
    mapping: {kind: image, repository: .image, tag: .tag, id: .id}
watches:
  - name: images
    subscriptions: [{image: contoso.azurecr.io/checkout, tags: ["*"]}]
"""

ACR = hook_path("acr", "acr-secret")
GENERIC = hook_path("gen", "gen-secret", kind="generic")
TOO_DEEP = f"invalid request body: JSON nested deeper than {MAX_JSON_DEPTH} levels"


@pytest.fixture
def live(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("RCV_ACR_SECRET", "acr-secret")
    monkeypatch.setenv("RCV_GEN_SECRET", "gen-secret")
    yield from start_configured_server(tmp_path, database_url, CONFIG)


def with_nested(payload: dict[str, Any], field: str, depth: int) -> bytes:
    """``payload`` as JSON with ``field`` set to ``depth`` arrays inside one another (``[[…]]``);
    spliced into the bytes, since orjson itself refuses to write more than 254 levels."""
    text = orjson.dumps({**payload, field: "NESTED"})
    return text.replace(b'"NESTED"', b"[" * depth + b"]" * depth)


def test_generic_receiver_refuses_a_thousand_deep_array(live: LiveServer) -> None:
    r = post(live, GENERIC, b"[" * 1000 + b"]" * 1000, user_agent="curl/8")
    assert r.status_code == 400, r.text
    assert r.json() == {"error": TOO_DEEP}
    (event,) = events(live, "gen")["events"]
    assert event["outcome"] == "rejected" and event["statusCode"] == 400
    assert f"deeper than {MAX_JSON_DEPTH} levels" in event["reason"]


def test_generic_receiver_refuses_past_orjsons_own_limit(live: LiveServer) -> None:
    # orjson stops at 1,024 levels by itself; the answer is the same one, naming kiosk's limit.
    r = post(live, GENERIC, b"[" * 5000 + b"]" * 5000, user_agent="curl/8")
    assert r.status_code == 400, r.text
    assert r.json() == {"error": TOO_DEEP}


def test_acr_push_with_a_deep_extra_field_is_refused_not_stored(live: LiveServer) -> None:
    r = post(live, ACR, with_nested(acr_push(), "extra", 1020), user_agent=ACR_UA)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": TOO_DEEP}
    (event,) = events(live, "acr")["events"]
    assert event["outcome"] == "rejected"
    assert "(at extra" in event["reason"]  # where it went too deep
    # Nothing was accepted, so nothing waits to be processed.
    assert live.admin.get("/v1/watches").json()["watches"][0]["refreshes"] == 0


def test_acr_push_at_the_limit_is_accepted(live: LiveServer) -> None:
    # The body object is the first level.
    r = post(live, ACR, with_nested(acr_push(), "extra", MAX_JSON_DEPTH - 1), user_agent=ACR_UA)
    assert r.status_code == 200, r.text
    assert r.json() == {"msg": "refreshed 1 watch(es)"}
    r = post(live, ACR, with_nested(acr_push(), "extra", MAX_JSON_DEPTH), user_agent=ACR_UA)
    assert r.status_code == 400, r.text
