"""``/v1/receivers`` and ``/v1/watches`` (both engines) and ``kiosk receivers list|events`` (SQLite),
also after the retention pruner has deleted events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.support.events import ACR_UA, acr_push
from tests.support.live_kiosk import LiveServer, hook_path, start_configured_server
from tests.support.polling import wait_for
from typer.testing import CliRunner

from kiosk.cli.receivers import receivers_app
from kiosk.receivers.pruner import EventPruner
from kiosk.receivers.retention import Policy

CONFIG = """\
receivers:
  - name: acr
    type: azure
    secret: {env: API_ACR_SECRET}
    auth: {header: {name: X-Token, value: {env: API_TOKEN}}}
  - {name: acr, type: azure, project: payments, secret: {env: API_ACR_SECRET}}
watches:
  - name: checkout
    title: Checkout images
    subscriptions: [{image: contoso.azurecr.io/checkout, tags: ["1.*"]}]
  - name: idle
    subscriptions: [{git: "https://github.com/acme/idle.git", branches: [main]}]
"""
PATH = hook_path("acr", "s3cret")


@pytest.fixture
def live(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("API_ACR_SECRET", "s3cret")
    monkeypatch.setenv("API_TOKEN", "tok")
    yield from start_configured_server(tmp_path, database_url, CONFIG)


def push(live: LiveServer, tag: str, token: str = "tok") -> httpx.Response:  # noqa: S107 - the test's header
    headers = {"User-Agent": ACR_UA, "X-Token": token, "Content-Type": "application/json"}
    return httpx.post(live.base_url + PATH, content=orjson.dumps(acr_push(tag=tag)), headers=headers, timeout=30)


def test_receivers_are_listed_for_admins_with_their_urls(live: LiveServer) -> None:
    listed = live.admin.get("/v1/receivers").json()["receivers"]
    assert [(r["name"], r["project"], r["type"], r["enabled"]) for r in listed] == [
        ("acr", None, "azure", True),
        ("acr", "payments", "azure", True),
    ]
    assert listed[0]["path"] == PATH and listed[0]["url"] == live.base_url + PATH
    assert listed[0]["auth"] == {"basic": False, "header": "X-Token"}
    assert listed[1]["path"] == hook_path("acr", "s3cret", project="payments")
    with live.member() as member:
        assert member.get("/v1/receivers").status_code == 403
        assert member.get("/v1/receivers/acr/events").status_code == 403
        assert member.get("/v1/watches").status_code == 200
    with live.client() as anonymous:
        assert anonymous.get("/v1/receivers").status_code == 401


def test_events_newest_first_in_cursor_pages(live: LiveServer) -> None:
    for tag in ("1.0", "1.1", "2.0", "1.2"):
        assert push(live, tag).status_code == 200
    assert push(live, "1.3", token="wrong").status_code == 401
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"from": cursor} if cursor else {})}
        page = live.admin.get("/v1/receivers/acr/events", params=params).json()
        seen += page["events"]
        cursor = page["next"]
        if cursor is None:
            break
    assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)
    assert [e["outcome"] for e in seen] == ["rejected", "refreshed", "no_match", "refreshed", "refreshed"]
    assert seen[0]["statusCode"] == 401 and seen[0]["reason"] == "header x-token does not match"
    assert [e["summary"]["tag"] for e in seen[1:]] == ["1.2", "2.0", "1.1", "1.0"]
    bad = live.admin.get("/v1/receivers/acr/events", params={"from": "nonsense"})
    assert bad.status_code == 400
    assert live.admin.get("/v1/receivers/acr/events", params={"project": "payments"}).json()["events"] == []
    assert live.admin.get("/v1/receivers/nope/events").status_code == 404


def test_watches_show_last_refreshed_at(live: LiveServer) -> None:
    before = {w["name"]: w for w in live.admin.get("/v1/watches").json()["watches"]}
    assert before["checkout"]["lastRefreshedAt"] is None and before["checkout"]["refreshes"] == 0
    assert before["checkout"]["subscriptions"] == [
        {
            "kind": "image",
            "url": "contoso.azurecr.io/checkout",
            "key": "contoso.azurecr.io/checkout",
            "branches": None,
            "tags": ["1.*"],
            "versions": None,
            "events": None,
        }
    ]
    assert before["idle"]["subscriptions"][0]["key"] == "github.com/acme/idle"
    push(live, "1.4")

    def refreshed() -> dict[str, Any] | None:
        watches = {w["name"]: w for w in live.admin.get("/v1/watches").json()["watches"]}
        return watches["checkout"] if watches["checkout"]["refreshes"] == 1 else None

    checkout = wait_for(refreshed)
    assert checkout["lastRefreshedAt"].endswith("Z") and checkout["lastEventId"] is not None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_lists_receivers_and_their_events(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_HOME", str(live.settings.home))
    monkeypatch.setenv("KIOSK_URL", live.base_url)
    monkeypatch.delenv("KIOSK_CLIENT_ID", raising=False)
    runner = CliRunner()
    listed = runner.invoke(receivers_app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert f"acr (azure, no project, checks: X-Token): {live.base_url}{PATH}" in listed.output
    assert "acr (azure, project payments)" in listed.output
    push(live, "1.0")
    push(live, "3.0")
    shown = runner.invoke(receivers_app, ["events", "acr", "--limit", "1"])
    assert shown.exit_code == 0, shown.output
    assert "no_match" in shown.output and "refreshed 1" not in shown.output
    assert "more: kiosk receivers events acr --from " in shown.output
    cursor = shown.output.rsplit("--from ", 1)[1].strip()
    older = runner.invoke(receivers_app, ["events", "acr", "--from", cursor])
    assert "refreshed 1: checkout" in older.output
    missing = runner.invoke(receivers_app, ["events", "nope"])
    assert missing.exit_code == 1 and "no receiver 'nope'" in missing.output


def test_api_and_cli_after_pruning(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for tag in ("1.0", "1.1", "1.2", "1.3"):
        assert push(live, tag).status_code == 200
    before = live.admin.get("/v1/receivers/acr/events", params={"limit": 1}).json()
    report = EventPruner(live.app.state.db, Policy(events_per_receiver=2), rest=0).run()
    assert report.events_by_cap == 2
    events = live.admin.get("/v1/receivers/acr/events").json()
    assert [e["summary"]["tag"] for e in events["events"]] == ["1.3", "1.2"] and events["next"] is None
    # A cursor handed out before the pruning still pages on (into what is left).
    rest = live.admin.get("/v1/receivers/acr/events", params={"from": before["next"]}).json()
    assert [e["summary"]["tag"] for e in rest["events"]] == ["1.2"]
    # The watch's last refresh outlives the events that made it.
    [checkout] = [w for w in live.admin.get("/v1/watches").json()["watches"] if w["name"] == "checkout"]
    assert checkout["refreshes"] == 4 and checkout["lastRefreshedAt"] is not None
    monkeypatch.setenv("KIOSK_HOME", str(live.settings.home))
    monkeypatch.setenv("KIOSK_URL", live.base_url)
    monkeypatch.delenv("KIOSK_CLIENT_ID", raising=False)
    shown = CliRunner().invoke(receivers_app, ["events", "acr"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("refreshed 1: checkout") == 2 and "more:" not in shown.output
    # Accepting events goes on as before.
    assert push(live, "1.4").status_code == 200
    assert len(live.admin.get("/v1/receivers/acr/events").json()["events"]) == 3
