"""``kiosk emulator``'s verbs against a live emulator (repo, push, pr, workitem, build, release), and the
server command's ``--activity`` option."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.cli.conftest import emulator_answers
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.polling import wait_for
from tests.support.servers import free_port
from typer.testing import CliRunner

from kiosk.cli.app import app
from kiosk.emulator.org.events import OrgEvent
from kiosk.emulator.org.model import Project

__all__ = ["start_emulator"]  # the emulator fixture


@pytest.fixture
def live(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG, repos=8, workitems=30), execute=False)


def _project(emulator: LiveEmulator) -> Project:
    org = emulator.organisation()
    return next(p for p in org.projects.values() if any(d.project_id == p.id for d in org.build_definitions.values()))


def kiosk(emulator: LiveEmulator, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a verb against ``emulator`` (org, PAT, project and URL from the environment, as a script would)."""
    environment = {
        "KIOSK_EMULATOR_URL": emulator.base_url,
        "KIOSK_EMULATOR_ORG": "fabrikam",
        "KIOSK_EMULATOR_PAT": PAT,
        "KIOSK_EMULATOR_PROJECT": _project(emulator).name,
        **(env or {}),
    }
    result = CliRunner().invoke(app, ["emulator", *args], env=environment)
    assert result.exit_code == 0, result.output
    return result.output


def test_repo_push_and_pull_request_verbs(live: LiveEmulator, tmp_path: Path) -> None:
    seen: list[OrgEvent] = []
    live.server.emulator.on_event(lambda org, event: seen.append(event))
    out = kiosk(live, "repo", "create", "Ledger API")
    assert "repository Ledger API" in out and "event git.repo.created" in out
    readme = tmp_path / "README.md"
    readme.write_text("# Ledger\n")
    out = kiosk(
        live, "push", "Ledger API", "--branch", "main", "--file", "README.md=@" + str(readme), "--comment", "Docs"
    )
    assert re.search(r"push 1 to Ledger API: refs/heads/main 0000000\.\.[0-9a-f]{7}", out) and "event git.push" in out
    kiosk(live, "push", "Ledger API", "--branch", "feature/x", "--file", "x.txt=hello")
    repo = live.organisation().repository("Ledger API", _project(live).id)
    assert repo is not None and repo.head("refs/heads/feature/x") is not None
    reviewer = list(live.organisation().users.values())[2]
    out = kiosk(
        live,
        "pr",
        "create",
        "Ledger API",
        "--source",
        "feature/x",
        "--title",
        "Add x",
        "--reviewer",
        reviewer.principal_name,
    )
    pr_id = re.search(r"pull request (\d+) \(refs/heads/feature/x into refs/heads/main\)", out)
    assert pr_id is not None, out
    out = kiosk(live, "pr", "vote", pr_id.group(1), "--vote", "10", "--by", reviewer.display_name)
    assert "event git.pullrequest.updated" in out
    out = kiosk(live, "pr", "complete", pr_id.group(1))
    assert f"pull request {pr_id.group(1)}: completed" in out and "event git.pullrequest.merged" in out
    head = repo.head()
    assert head is not None and head.files["/x.txt"].content == b"hello"
    out = kiosk(live, "repo", "rename", "Ledger API", "ledger")
    assert "renamed to ledger" in out
    assert "disabled" in kiosk(live, "repo", "disable", "ledger")
    assert "enabled" in kiosk(live, "repo", "enable", "ledger")
    assert "event git.repo.deleted" in kiosk(live, "repo", "delete", "ledger")
    assert [e.event_type for e in seen if e.event_type.startswith("git.repo")] == [
        "git.repo.created",
        "git.repo.renamed",
        "git.repo.statuschanged",
        "git.repo.statuschanged",
        "git.repo.deleted",
    ]


def test_work_item_verbs(live: LiveEmulator) -> None:
    out = kiosk(
        live, "workitem", "create", "--type", "Bug", "--title", "Crash", "--field", "Microsoft.VSTS.Common.Priority=1"
    )
    found = re.search(r"Bug (\d+) created \(rev 1, New\): Crash", out)
    assert found is not None, out
    item_id = found.group(1)
    out = kiosk(live, "workitem", "update", item_id, "--state", "Active")
    assert f"Bug {item_id} updated (rev 2, Active)" in out and "event workitem.updated" in out
    out = kiosk(live, "workitem", "comment", item_id, "Seen again")
    assert "event workitem.commented" in out
    item = live.organisation().work_items[int(item_id)]
    assert item.fields["Microsoft.VSTS.Common.Priority"] == 1 and item.comments[0].text == "Seen again"
    assert "event workitem.deleted" in kiosk(live, "workitem", "delete", item_id)
    assert item.is_deleted
    assert "event workitem.restored" in kiosk(live, "workitem", "restore", item_id)
    assert not item.is_deleted


def test_build_and_release_verbs(live: LiveEmulator) -> None:
    org, project = live.organisation(), _project(live)
    definition = next(d for d in org.build_definitions.values() if d.project_id == project.id)
    out = kiosk(live, "build", str(definition.id), "--result", "partiallySucceeded")
    assert "partiallySucceeded" in out and "event build.complete" in out
    release_definition = next(d for d in org.release_definitions.values() if d.project_id == project.id)
    out = kiosk(live, "release", "create", str(release_definition.id))
    created = re.search(r"release (\d+) \(Release-\d+\); stages: (\w+)", out)
    assert created is not None, out
    out = kiosk(live, "release", "deploy", created.group(1), created.group(2), "--status", "rejected")
    assert "event ms.vss-release.deployment-completed-event" in out


def test_verb_errors_are_one_line(live: LiveEmulator) -> None:
    environment = {"KIOSK_EMULATOR_URL": live.base_url, "KIOSK_EMULATOR_ORG": "fabrikam", "KIOSK_EMULATOR_PAT": PAT}
    missing = CliRunner().invoke(
        app, ["emulator", "workitem", "update", "999999", "--state", "Active", "-p", "web"], env=environment
    )
    assert missing.exit_code == 1 and "HTTP 404" in missing.output and "TF401232" in missing.output
    wrong = CliRunner().invoke(
        app, ["emulator", "repo", "create", "x", "-p", "web"], env={**environment, "KIOSK_EMULATOR_PAT": "nope"}
    )
    assert wrong.exit_code == 1 and "HTTP 401" in wrong.output and "Traceback" not in wrong.output
    nothing = CliRunner().invoke(app, ["emulator", "push", "r", "-p", "web"], env=environment)
    assert nothing.exit_code == 1 and "error: nothing to push" in nothing.output
    away = CliRunner().invoke(
        app,
        ["emulator", "repo", "create", "x", "-p", "web"],
        env={**environment, "KIOSK_EMULATOR_URL": "http://127.0.0.1:9"},
    )
    assert away.exit_code == 1 and "cannot reach the emulator" in away.output


def test_a_bad_activity_rate_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text("orgs:\n- name: acme\n  personalAccessTokens: [{env: PAT}]\n")
    result = CliRunner().invoke(
        app, ["emulator", "--config", str(config), "--activity", "fast", "--port", "0"], env={"PAT": "p"}
    )
    assert result.exit_code == 2 and "--activity" in result.output and "N/s" in result.output


def test_the_server_command_with_generate_and_activity_and_a_verb_against_it(tmp_path: Path) -> None:
    """``kiosk emulator --config … --generate … --activity 100/s`` (a process, as a user starts it): the org is
    generated, changes keep coming (``GET /_emulator/activity``), and a verb changes the same org."""
    config = tmp_path / "emulator.yaml"
    config.write_text("orgs:\n- name: acme\n  personalAccessTokens: [{env: ACME_PAT}]\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "kiosk", "emulator", "--config", str(config), "--port", str(port)]
    command += ["--no-execute", "--generate", "projects=2,repos=4,workitems=20,seed=3", "--activity", "100/s"]
    env = {**os.environ, "KIOSK_HOME": str(tmp_path / "home"), "ACME_PAT": "acme-pat"}
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        auth = ("", "acme-pat")
        report = wait_for(
            lambda: (
                emulator_answers(base, process)
                and (r := httpx.get(f"{base}/_emulator/activity", auth=auth).json())["total"] >= 20
                and r
            ),
            timeout=60,
        )
        assert report["running"] is True and report["rate"] == "100/s" and report["eventsTotal"] >= 20
        project = httpx.get(f"{base}/acme/_apis/projects", auth=auth).json()["value"][0]["name"]
        verb = CliRunner().invoke(
            app,
            [
                "emulator",
                "workitem",
                "create",
                "--title",
                "From the shell",
                "--url",
                base,
                "--org",
                "acme",
                "-p",
                project,
            ],
            env={"KIOSK_EMULATOR_PAT": "acme-pat"},
        )
        assert verb.exit_code == 0 and "created (rev 1, New): From the shell" in verb.output, verb.output
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert "activity: 100/s (seed 0)" in output and "org acme: 2 projects" in output
