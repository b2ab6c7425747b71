"""What a body may be, over real HTTP: JSON only (415), at most 64 levels deep (400), and a client
that hangs up mid-body costs one log line, never a traceback (issue 10, items 1, 6 and 7)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.emulator.conftest import CONFIG, HELLO, PAT, EmulatorFactory, LiveEmulator, basic
from tests.support.servers import free_port

from kiosk.core.signing import sign_azure_checksum
from kiosk.emulator.bodies import MAX_JSON_DEPTH, too_deep

SIMPLE = "steps:\n- script: echo hi\n"
RUNS = "/fabrikam/web/_apis/pipelines/1/runs?api-version=7.1"
TRIGGER = "/fabrikam/_apis/public/distributedtask/webhooks/IncomingWH?api-version=6.0-preview"


def nested(levels: int) -> Any:
    """``levels`` arrays inside each other (``nested(2) == [[]]``)."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def deep(levels: int) -> bytes:
    """``nested(levels)`` as JSON text (the json module cannot encode thousands of levels)."""
    return b"[" * levels + b"]" * levels


def signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-WH-Checksum": sign_azure_checksum("secret", body)}


# ---------------------------------------------------------------------------- 415


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"{}"),
        ("application/x-www-form-urlencoded", b"previewRun=true"),
        ("multipart/form-data; boundary=x", b"--x--"),
        (None, b"{}"),  # fetch() with a typeless Blob: no Content-Type, no preflight
        ("application/json; charset=utf-16", b"{}"),
        ("text/plain", b""),
    ],
)
def test_json_routes_refuse_other_media_types(
    start_emulator: EmulatorFactory, content_type: str | None, body: bytes
) -> None:
    emulator = start_emulator(pipeline=SIMPLE, execute=False)
    headers = {"Content-Type": content_type} if content_type is not None else {}
    response = emulator.client.post(RUNS, content=body, headers=headers)  # bytes: httpx adds no type
    assert response.status_code == 415, response.text
    assert response.json()["typeKey"] == "UnsupportedMediaTypeException"
    assert "application/json" in response.json()["message"]
    assert emulator.client.get(RUNS).json()["count"] == 0


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_in_any_spelling_is_accepted(start_emulator: EmulatorFactory, content_type: str) -> None:
    emulator = start_emulator(pipeline=SIMPLE, execute=False)
    response = emulator.client.post(RUNS, content=b"{}", headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def test_a_body_less_post_needs_no_media_type(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(pipeline=SIMPLE, execute=False)
    assert emulator.client.post(RUNS).status_code == 200


def test_the_trigger_refuses_a_text_body_and_records_why(emulator: LiveEmulator) -> None:
    body = b'{"resource":{"message":{"title":"t"}}}'
    response = emulator.client.post(TRIGGER, content=body, headers={**signed(body), "Content-Type": "text/plain"})
    assert response.status_code == 415 and response.json()["typeKey"] == "UnsupportedMediaTypeException"
    record = emulator.client.get("/_emulator/triggers").json()["value"][0]
    assert record["status"] == 415 and record["queuedRuns"] == []
    assert "text/plain" in record["summary"]


# ---------------------------------------------------------------------------- depth


def test_the_depth_check_counts_objects_and_arrays() -> None:
    assert not too_deep({"a": [1, {"b": "[[[[" * 100}]}, 3)
    assert too_deep({"a": [1, {"b": []}]}, 3)
    assert not too_deep(nested(MAX_JSON_DEPTH)) and too_deep(nested(MAX_JSON_DEPTH + 1))
    assert not too_deep("[[[[") and not too_deep(5)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 5_000])
def test_an_api_body_deeper_than_64_is_a_400_naming_the_limit(start_emulator: EmulatorFactory, depth: int) -> None:
    emulator = start_emulator(pipeline=SIMPLE, execute=False)
    body = b'{"previewRun":true,"x":' + deep(depth - 1) + b"}"
    response = emulator.client.post(RUNS, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["typeKey"] == "InvalidPayloadException"
    assert f"deeper than {MAX_JSON_DEPTH} levels" in response.json()["message"]


def test_an_api_body_of_exactly_64_levels_is_accepted(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(pipeline=SIMPLE, execute=False)
    response = emulator.client.post(RUNS, json={"previewRun": True, "x": nested(MAX_JSON_DEPTH - 1)})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_100])
def test_a_trigger_body_deeper_than_64_queues_nothing_and_says_why(emulator: LiveEmulator, depth: int) -> None:
    body = b'{"resource":{"message":{"title":"t"},"deep":' + deep(depth - 2) + b"}}"
    response = emulator.client.post(TRIGGER, content=body, headers=signed(body))
    assert response.status_code == 400 and response.json()["typeKey"] == "InvalidPayloadException"
    record = emulator.client.get("/_emulator/triggers").json()["value"][0]
    assert record["status"] == 400 and record["queuedRuns"] == []
    assert f"deeper than {MAX_JSON_DEPTH} levels" in record["error"]["message"]


def test_a_trigger_body_of_64_levels_queues_its_run(emulator: LiveEmulator) -> None:
    body = b'{"resource":{"message":{"title":"t"},"deep":' + deep(MAX_JSON_DEPTH - 2) + b"}}"
    response = emulator.client.post(TRIGGER, content=body, headers=signed(body))
    assert response.status_code == 200 and response.headers["X-Kiosk-Queued-Runs"], response.text


# ---------------------------------------------------------------------------- clients that hang up


def test_clients_that_disconnect_mid_body_cost_a_line_each_and_no_traceback(tmp_path: Path) -> None:
    """The reproduction: requests that send half their body and hang up (5,000 wrote 20 MB of stderr)."""
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "azure-pipelines.yml").write_text(HELLO)
    (tmp_path / "emulator.yaml").write_text(CONFIG)
    port = free_port()
    kiosk = str(Path(sys.executable).parent / "kiosk")
    env = {**os.environ, "TEST_WEBHOOK_SECRET": "secret", "TEST_EMULATOR_PAT": PAT}
    command = [kiosk, "emulator", "--config", str(tmp_path / "emulator.yaml"), "--port", str(port), "--no-execute"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aborted = 40
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/_emulator/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "the emulator did not start"
                time.sleep(0.1)
        auth = basic(PAT)["Authorization"]
        for i in range(aborted):
            path = TRIGGER if i % 2 else RUNS
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            )
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(head.encode() + b'{"resource": {"message": ')
        # Still serving, and every aborted request has been dealt with before this one's answer.
        assert httpx.get(f"{base}/_emulator/triggers", headers=basic(PAT)).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    # Each line's timestamp left out: its milliseconds can read "500" by chance.
    messages = "\n".join(line.split(" ", 1)[-1] for line in stderr.splitlines())
    assert "Traceback" not in messages and "500" not in messages, stderr[:3000]
    assert len(stderr.splitlines()) <= aborted + 5, stderr[:3000]
