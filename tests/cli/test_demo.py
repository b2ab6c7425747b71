"""``kiosk demo`` (what ``make demo`` runs): both servers start, and the printed ``kiosk send`` runs the pipeline."""

from __future__ import annotations

import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
from tests.support.processes import wait_until_answering
from tests.support.servers import free_port

from kiosk.cli.demo import demo_secret

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_secret_is_created_once_and_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = demo_secret(home, "webhook-secret")
    assert len(first) == 40
    assert stat.S_IMODE((home / "demo-webhook-secret").stat().st_mode) == 0o600
    assert demo_secret(home, "webhook-secret") == first
    assert demo_secret(home, "pat") != first


def test_the_demo_runs_the_webhook_pipeline_end_to_end(tmp_path: Path) -> None:
    port, emulator_port = free_port(), free_port()
    kiosk = str(Path(sys.executable).parent / "kiosk")
    env = {**os.environ, "KIOSK_HOME": str(tmp_path / "home")}
    env.pop("KIOSK_CONFIG", None)
    command = [kiosk, "demo", "--port", str(port), "--emulator-port", str(emulator_port)]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner: list[str] = []
        assert server.stdout is not None
        while not any("acr-push.json" in line for line in banner):
            line = server.stdout.readline()
            assert line, "kiosk demo exited:\n" + "".join(banner)
            banner.append(line)
        text = "".join(banner)
        health = f"http://127.0.0.1:{emulator_port}/_emulator/healthz"
        wait_until_answering(health, server, timeout=30, log=lambda: text)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200

        # The banner's command, exactly as printed (the user pastes it into a shell).
        start = text.index("KIOSK_WEBHOOK_SECRET=")
        pasted = text[start : text.index("\n", text.index("--header", start))].replace("\\\n", " ")
        pasted = pasted.replace(".venv/bin/kiosk", shlex.quote(kiosk)).replace(".kiosk/", str(tmp_path / "home") + "/")
        sent = subprocess.run(["bash", "-c", pasted], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "HTTP 200" in sent.stdout and "1 run(s) queued" in sent.stdout
        log_url = re.search(r"run 1 log: (\S+)", sent.stdout)
        assert log_url is not None, sent.stdout
        pat = (tmp_path / "home" / "demo-pat").read_text().strip()
        assert f"Personal access token of org demo: {pat}" in text  # printed, and saved under KIOSK_HOME
        assert stat.S_IMODE((tmp_path / "home" / "demo-pat").stat().st_mode) == 0o600
        assert httpx.get(log_url.group(1), timeout=60).status_code == 401  # the emulator's API needs the PAT
        log = httpx.get(log_url.group(1), timeout=60, auth=("", pat)).text
        assert any(line.endswith(" Hello, world!") for line in log.splitlines()), log
        assert "subtitle: I'm using WebHooks!" in log

        # "Why no run?", as printed: the curl carries the PAT and reads the trigger records.
        start = text.index("Why no run?")
        why = text[text.index("curl", start) : text.index("\n", start)].replace(".kiosk/", str(tmp_path / "home") + "/")
        records = subprocess.run(["bash", "-c", why], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert records.returncode == 0 and orjson.loads(records.stdout)["value"][0]["queuedRuns"] == [1], records

        # The Deploy service action, as printed: delivered to the emulator, the pipeline reports back.
        start = text.index("actions run deploy_service")
        command = text[text.rindex("\n", 0, start) + 1 : text.index("\n", start)].strip()
        command = command.replace(".venv/bin/kiosk", shlex.quote(kiosk))
        deployed = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=90, env=env
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "SUCCESS (deployed)" in deployed.stdout
        assert "deployed by pipeline run kiosk-r_" in deployed.stdout

        # The ACR push, as printed: the watch runs the deploy action with the pushed tag.
        start = text.index("curl -sS -X POST")
        curl = text[start : text.index("acr-push.json", start) + len("acr-push.json")].replace("\\\n", " ")
        pushed = subprocess.run(["bash", "-c", curl], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert pushed.returncode == 0 and "refreshed 1 watch(es)" in pushed.stdout, pushed.stdout + pushed.stderr
        admin = orjson.loads((tmp_path / "home" / "credentials").read_bytes())
        token = httpx.post(f"http://127.0.0.1:{port}/v1/auth/access_token", json=admin).json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 60
        while True:
            runs = httpx.get(f"http://127.0.0.1:{port}/v1/actions/runs", headers=headers).json()["runs"]
            by_watch = [r for r in runs if r["properties"].get("version") == "1.2.3"]
            if by_watch and by_watch[0]["status"] == "SUCCESS":
                break
            assert time.monotonic() < deadline, runs
            time.sleep(0.2)

        # The catalog follows the emulator's activity: its service hooks, subscribed by kiosk at
        # start, deliver each change, and the integration processes it.
        deadline = time.monotonic() + 90
        while True:
            live = httpx.get(f"http://127.0.0.1:{port}/v1/integration/azure-devops/events", headers=headers).json()
            if live["counts"].get("processed", 0) >= 3:
                break
            assert time.monotonic() < deadline, live
            time.sleep(0.5)
        assert live["counts"].get("failed", 0) == 0, live
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    assert server.returncode == 0
