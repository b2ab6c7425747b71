"""The receiver endpoint over real HTTP on loopback, on SQLite and PostgreSQL.

Kargo's own test list end to end, plus: wrong method, unknown paths, oversize bodies (announced and
chunked), a missing User-Agent, duplicate delivery, a rotated secret, and one receiver name in two
projects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.support.events import (
    ACR_UA,
    ADO_UA,
    HELM_CONFIG,
    ZEROS,
    acr_ping,
    acr_push,
    git_push,
    pull_request,
)
from tests.support.live_kiosk import LiveServer, hook_path, start_configured_server
from tests.support.polling import wait_for

CONFIG = """\
receivers:
  - {name: azure, type: azure, secret: {env: RCV_AZURE_SECRET}}
  - {name: acr, type: azure, project: payments, secret: {file: payments.secret}}
  - {name: acr, type: azure, project: platform, secret: {file: platform.secret}}
watches:
  - name: images
    subscriptions: [{image: contoso.azurecr.io/checkout, tags: ["1.*"]}]
  - name: charts
    subscriptions: [{chart: "oci://contoso.azurecr.io/helm/checkout", versions: ["^1.2"]}]
  - name: main
    subscriptions:
      - git: git@ssh.dev.azure.com:v3/contoso/payments/checkout
        branches: [main]
        events: [push, pullRequestMerged, pullRequestAbandoned]
  - name: pay-images
    project: payments
    subscriptions: [{image: contoso.azurecr.io/ledger, tags: ["*"]}]
  - name: plat-images
    project: platform
    subscriptions: [{image: contoso.azurecr.io/ledger, tags: ["*"]}]
"""

AZURE = hook_path("azure", "azure-secret")


@pytest.fixture
def live(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("RCV_AZURE_SECRET", "azure-secret")
    (tmp_path / "payments.secret").write_text("pay-secret\n")
    (tmp_path / "platform.secret").write_text("plat-secret\n")
    yield from start_configured_server(tmp_path, database_url, CONFIG)


def post(live: LiveServer, path: str, body: Any, user_agent: str | None) -> httpx.Response:
    with httpx.Client(base_url=live.base_url, timeout=30) as c:
        if user_agent is None:
            del c.headers["user-agent"]
        else:
            c.headers["user-agent"] = user_agent
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return c.post(path, content=content, headers={"Content-Type": "application/json"})


def events(live: LiveServer, name: str = "azure", project: str | None = None, **params: Any) -> dict[str, Any]:
    query = {**params, **({"project": project} if project else {})}
    r = live.admin.get(f"/v1/receivers/{name}/events", params=query)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def watch_state(live: LiveServer, name: str) -> dict[str, Any]:
    [found] = [w for w in live.admin.get("/v1/watches").json()["watches"] if w["name"] == name]
    return dict(found)


KARGO_CASES = [
    ("malformed body", b"{oops", ACR_UA, 400, {"error": "invalid request body"}),
    (
        "unsupported user agent",
        acr_push(),
        "Go-http-client/1.1",
        400,
        {"error": "request does not appear to have originated from a supported service"},
    ),
    ("ping", acr_ping(), ACR_UA, 200, {"msg": "ping event received, webhook is configured correctly"}),
    ("no tag match (image)", acr_push(tag="2.0.0"), ACR_UA, 200, {"msg": "refreshed 0 watch(es)"}),
    ("refreshed (image)", acr_push(tag="1.2.3"), ACR_UA, 200, {"msg": "refreshed 1 watch(es)"}),
    (
        "no version match (chart)",
        acr_push("helm/checkout", "1.1.0", media_type=HELM_CONFIG),
        ACR_UA,
        200,
        {"msg": "refreshed 0 watch(es)"},
    ),
    (
        "refreshed (chart)",
        acr_push("helm/checkout", "1.2.5", media_type=HELM_CONFIG),
        ACR_UA,
        200,
        {"msg": "refreshed 1 watch(es)"},
    ),
    (
        "PR merged refreshes matching watch",
        pull_request("git.pullrequest.merged", "completed"),
        ADO_UA,
        200,
        {"msg": "refreshed 1 watch(es)"},
    ),
    (
        "PR updated but not abandoned is a no-op",
        pull_request("git.pullrequest.updated", "active"),
        ADO_UA,
        200,
        {"msg": "refreshed 0 watch(es)"},
    ),
    (
        "abandoned PR",
        pull_request("git.pullrequest.updated", "abandoned"),
        ADO_UA,
        200,
        {"msg": "refreshed 1 watch(es)"},
    ),
    ("no ref match (git)", git_push([("refs/heads/dev", "a" * 40)]), ADO_UA, 200, {"msg": "refreshed 0 watch(es)"}),
    ("refreshed (git)", git_push([("refs/heads/main", "b" * 40)]), ADO_UA, 200, {"msg": "refreshed 1 watch(es)"}),
]


def test_kargos_own_cases_over_http(live: LiveServer) -> None:
    for name, body, user_agent, status, reply in KARGO_CASES:
        r = post(live, AZURE, body, user_agent)
        assert (r.status_code, r.json()) == (status, reply), name
        assert r.headers["content-type"] == "application/json"
    listed = events(live)["events"]
    assert len(listed) == len(KARGO_CASES)
    outcomes = [e["outcome"] for e in reversed(listed)]
    assert outcomes == [
        "rejected",
        "rejected",
        "ping",
        "no_match",
        "refreshed",
        "no_match",
        "refreshed",
        "refreshed",
        "no_match",
        "refreshed",
        "no_match",
        "refreshed",
    ]
    # The processor records every refresh: images once, charts once, main three times.
    wait_for(lambda: watch_state(live, "main")["refreshes"] == 3)
    assert watch_state(live, "images")["refreshes"] == 1 and watch_state(live, "images")["lastRefreshedAt"]
    assert watch_state(live, "charts")["refreshes"] == 1
    assert wait_for(lambda: all(e["processing"] in (None, "done") for e in events(live)["events"]))


def test_wrong_method_unknown_paths_and_oversize_bodies(live: LiveServer) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as c:
        r = c.get(AZURE)
        assert (r.status_code, r.json(), r.headers["allow"]) == (405, {"error": "method not allowed"}, "POST")
        assert c.put(AZURE, content=b"{}").status_code == 405
        for method in ("GET", "POST", "DELETE"):
            unknown = c.request(method, "/webhooks/azure/" + "0" * 64, content=b"{}")
            assert (unknown.status_code, unknown.json()) == (404, {"error": "not found"})
        assert c.post("/webhooks/generic/" + AZURE.rsplit("/", 1)[1], content=b"{}").status_code == 404
        big = b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        r = c.post(AZURE, content=big, headers={"User-Agent": ACR_UA})
        assert (r.status_code, r.json()) == (413, {"error": "content exceeds limit of 2097152 bytes"})

        def chunks(total: int) -> Iterator[bytes]:
            yield b'{"pad": "'
            for _ in range(total // 65536):
                yield b"y" * 65536
            yield b'"}'

        r = c.post(AZURE, content=chunks(3 * 1024 * 1024), headers={"User-Agent": ACR_UA})
        assert r.request.headers.get("transfer-encoding") == "chunked"
        assert (r.status_code, r.json()) == (413, {"error": "content exceeds limit of 2097152 bytes"})
    # A chunked body under the limit is read whole.
    with httpx.Client(base_url=live.base_url, timeout=30) as c:
        body = orjson.dumps(acr_push(tag="1.0.0"))
        r = c.post(AZURE, content=iter([body[:10], body[10:]]), headers={"User-Agent": ACR_UA})
        assert (r.status_code, r.json()) == (200, {"msg": "refreshed 1 watch(es)"})
    rejected = [e for e in events(live)["events"] if e["outcome"] == "rejected"]
    assert sorted(e["statusCode"] for e in rejected) == [405, 405, 413, 413]
    assert all(e["summary"] is None for e in rejected)


def test_missing_user_agent_is_told_by_the_payload_shape(live: LiveServer) -> None:
    r = post(live, AZURE, acr_push(tag="1.5.0"), None)
    assert (r.status_code, r.json()) == (200, {"msg": "refreshed 1 watch(es)"})
    r = post(live, AZURE, git_push([("refs/heads/main", ZEROS)]), None)
    assert (r.status_code, r.json()) == (200, {"msg": "refreshed 0 watch(es)"})
    latest = events(live)["events"][0]
    assert latest["sender"] == "azure-devops"
    assert latest["summary"]["refs"] == [{"ref": "refs/heads/main", "change": "delete"}]
    r = post(live, AZURE, {"unknown": "shape"}, None)
    assert r.status_code == 400


def test_a_redelivered_event_is_recognised_and_not_processed_twice(live: LiveServer) -> None:
    body = acr_push(tag="1.2.3", event_id="acr-evt-1")
    first = post(live, AZURE, body, ACR_UA)
    again = post(live, AZURE, body, ACR_UA)
    assert first.json() == {"msg": "refreshed 1 watch(es)"}
    assert (again.status_code, again.json()) == (
        200,
        {"msg": "event acr-evt-1 was already received; not processed again"},
    )
    ado = git_push(event_id="ado-evt-1")
    assert post(live, AZURE, ado, ADO_UA).json() == {"msg": "refreshed 1 watch(es)"}
    assert "already received" in post(live, AZURE, ado, ADO_UA).json()["msg"]
    listed = events(live)["events"]
    assert [e["outcome"] for e in listed] == ["duplicate", "refreshed", "duplicate", "refreshed"]
    assert listed[0]["refreshed"] == 0 and listed[0]["watches"] == [] and listed[0]["processing"] is None
    wait_for(lambda: watch_state(live, "images")["refreshes"] == 1 and watch_state(live, "main")["refreshes"] == 1)
    # Still once each, after the processor had every chance to see the duplicates.
    assert wait_for(lambda: all(e["processing"] in (None, "done") for e in events(live)["events"]))
    assert watch_state(live, "images")["refreshes"] == 1 and watch_state(live, "main")["refreshes"] == 1


def test_rotating_a_secret_retires_the_old_url_at_once(live: LiveServer, tmp_path: Path) -> None:
    old = hook_path("acr", "pay-secret", project="payments")
    assert post(live, old, acr_ping(), ACR_UA).status_code == 200
    (tmp_path / "payments.secret").write_text("rotated-secret\n")
    assert post(live, old, acr_ping(), ACR_UA).status_code == 404
    new = hook_path("acr", "rotated-secret", project="payments")
    assert post(live, new, acr_ping(), ACR_UA).status_code == 200
    [listed] = [r for r in live.admin.get("/v1/receivers").json()["receivers"] if r["project"] == "payments"]
    assert listed["path"] == new and listed["url"] == live.base_url + new


def test_one_name_in_two_projects_two_urls_each_its_own(live: LiveServer) -> None:
    pay = hook_path("acr", "pay-secret", project="payments")
    plat = hook_path("acr", "plat-secret", project="platform")
    assert pay != plat
    push = acr_push("ledger", "3.0.0")
    assert post(live, pay, push, ACR_UA).json() == {"msg": "refreshed 1 watch(es)"}
    assert post(live, plat, acr_push("ledger", "3.0.1"), ACR_UA).json() == {"msg": "refreshed 1 watch(es)"}
    assert post(live, pay, acr_push("checkout", "1.0.0"), ACR_UA).json() == {"msg": "refreshed 0 watch(es)"}
    pay_events = events(live, "acr", "payments")["events"]
    plat_events = events(live, "acr", "platform")["events"]
    assert [e["watches"] for e in pay_events] == [[], ["pay-images"]]
    assert [e["watches"] for e in plat_events] == [["plat-images"]]
    assert pay_events[0]["reason"] == "no watch in project payments subscribes to image contoso.azurecr.io/checkout"
    missing = live.admin.get("/v1/receivers/acr/events")
    assert missing.status_code == 404 and "payments, platform" in missing.json()["message"]
