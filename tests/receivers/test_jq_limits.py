"""A generic receiver's jq mapping is bounded, over HTTP on a live server (both engines).

The receiver endpoint runs in the event loop; its mapping used to run there too, in-process, so
one costly mapping froze every request. Now a mapping stopped by a limit rejects the event (422,
recorded with the field, the program and the limit: the sender is not invited to retry), while
the server keeps answering.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.receivers.test_endpoint import events, post
from tests.support.live_kiosk import LiveServer, hook_path, start_configured_server

from kiosk.core import jq_engine

SLOW = "[range(1e8)] | length | tostring"

CONFIG = f"""\
jq: {{timeoutSeconds: 2, memoryMiB: 4096}}
receivers:
  - name: gen
    type: generic
    secret: {{env: RCV_GEN_SECRET}}
    mapping:
      kind: image
      repository: 'if .slow then ({SLOW}) else .image end'
      tag: .tag
watches:
  - name: images
    subscriptions: [{{image: contoso.azurecr.io/checkout, tags: ["*"]}}]
"""
GENERIC = hook_path("gen", "gen-secret", kind="generic")


@pytest.fixture
def live(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("RCV_GEN_SECRET", "gen-secret")
    yield from start_configured_server(tmp_path, database_url, CONFIG)


def test_a_mapping_over_the_time_limit_rejects_the_event_while_the_server_answers(live: LiveServer) -> None:
    answer: list[httpx.Response] = []
    slow = {"slow": True, "tag": "1.0.0"}
    sender = threading.Thread(target=lambda: answer.append(post(live, GENERIC, slow, user_agent="curl/8")))
    sender.start()
    pool = jq_engine.engine()
    deadline = time.monotonic() + 30
    while pool.idle() == pool.limits.workers:
        assert time.monotonic() < deadline, "the mapping never started"
        time.sleep(0.005)
    with httpx.Client(base_url=live.base_url, timeout=30) as other:
        health = [other.get("/healthz").status_code for _ in range(5)]
    mapping_still_running = sender.is_alive()
    sender.join()

    assert health == [200] * 5
    assert mapping_still_running  # answered while the mapping ran: the event loop was free
    message = (
        "mapping.repository: jq program 'if .slow then ([range(1e8)] | length | tostring) else .image end' "
        "exceeded the time limit of 2 s (jq.timeoutSeconds)"
    )
    assert answer[0].status_code == 422  # not a 5xx: the sender must not retry it
    assert answer[0].json() == {"error": message}
    (event,) = events(live, "gen")["events"]
    assert event["outcome"] == "rejected" and event["statusCode"] == 422
    assert event["reason"] == message

    # The next event is read by a fresh worker.
    ok = post(live, GENERIC, {"image": "contoso.azurecr.io/checkout", "tag": "1.0.1"}, user_agent="curl/8")
    assert ok.status_code == 200 and ok.json() == {"msg": "refreshed 1 watch(es)"}
