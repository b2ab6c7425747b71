"""The Emulator service without HTTP: registry rules, run naming and retention, state changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kiosk.emulator.errors import AzureError
from kiosk.emulator.models import Run
from kiosk.emulator.service import Emulator, EmulatorOptions, check_api_version

HOOKED = "name: r-$(Rev:r)\nresources:\n  webhooks:\n  - webhook: W\n    connection: C\nsteps:\n- script: echo hi\n"


@pytest.fixture
def emulator(tmp_path: Path) -> Emulator:
    (tmp_path / "azure-pipelines.yml").write_text(HOOKED)
    emu = Emulator(EmulatorOptions(retain_runs=10))
    emu.add_connection("acme", "web", name="C", webhook_name="hook", secret=None, header=None)
    emu.add_pipeline("acme", "web", name="p", repository=tmp_path)
    return emu


def trigger(emu: Emulator, body: bytes = b"{}") -> list[int]:
    record = emu.trigger("acme", "hook", {"content-type": "application/json"}, body)
    return [o.run_id for o in record.outcomes if o.run_id is not None]


def test_runs_are_named_with_revisions_and_listeners_hear_of_them(emulator: Emulator) -> None:
    seen: list[tuple[int, str]] = []
    emulator.subscribe(lambda run: seen.append((run.id, run.state)))
    first, second = trigger(emulator)[0], trigger(emulator)[0]
    names = [emulator.run("acme", i).name for i in (first, second)]
    assert names == ["r-1", "r-2"]
    emulator.complete_run(emulator.run("acme", first), "succeeded")
    assert seen == [(first, "inProgress"), (second, "inProgress"), (first, "completed")]


def test_a_failing_listener_does_not_break_the_trigger(emulator: Emulator) -> None:
    def broken(_: Run) -> None:
        raise RuntimeError("listener bug")

    emulator.subscribe(broken)
    assert trigger(emulator)


def test_finished_runs_past_the_retention_limit_are_dropped(emulator: Emulator) -> None:
    ids = [trigger(emulator)[0] for _ in range(12)]
    for run_id in ids[:5]:
        emulator.complete_run(emulator.run("acme", run_id), "succeeded")
    ids.append(trigger(emulator)[0])
    kept = [r.id for r in emulator.runs("acme", "web")]
    assert len(kept) == 10
    assert ids[0] not in kept and ids[-1] in kept
    assert all(emulator.run("acme", i).state == "inProgress" for i in ids[5:])  # unfinished runs are kept


def test_without_an_executor_a_cancel_finishes_the_run(emulator: Emulator) -> None:
    run = emulator.run("acme", trigger(emulator)[0])
    emulator.cancel_run(run)
    assert (run.state, run.result) == ("completed", "canceled")
    with pytest.raises(AzureError) as caught:
        emulator.complete_run(run, "succeeded")
    assert caught.value.status == 409


def test_webhook_names_are_unique_per_org_across_projects(emulator: Emulator) -> None:
    with pytest.raises(AzureError) as caught:
        emulator.add_connection("acme", "other", name="D", webhook_name="HOOK", secret=None, header=None)
    assert caught.value.status == 409
    emulator.add_connection("globex", "other", name="D", webhook_name="hook", secret=None, header=None)


def test_an_edited_file_gets_a_new_revision(emulator: Emulator, tmp_path: Path) -> None:
    pipeline = emulator.pipeline("acme", "web", 1)
    path = tmp_path / "azure-pipelines.yml"
    path.write_text(HOOKED.replace("echo hi", "echo edited"))
    os.utime(path, ns=(1, 1))
    run = emulator.run("acme", trigger(emulator)[0])
    assert pipeline.revision == 2
    assert run.document["steps"][0]["script"] == "echo edited"


def test_unknown_stages_to_skip_are_refused(emulator: Emulator) -> None:
    with pytest.raises(AzureError) as caught:
        emulator.queue_manual_run(
            emulator.pipeline("acme", "web", 1), template_parameters={}, variables={}, stages_to_skip=["x"]
        )
    assert caught.value.status == 400 and "stagesToSkip" in caught.value.message


@pytest.mark.parametrize("version", ["6.0-preview", "6.0-preview.1", "7.1", "7.2-preview.2"])
def test_api_versions_6_and_7_are_served(version: str) -> None:
    check_api_version(version)


@pytest.mark.parametrize("version", [None, "", "5.1", "8.0", "x", "6", "7.1 ", "07.1", "7.1-preview.", "7.1\n"])
def test_other_api_versions_are_refused(version: str | None) -> None:
    with pytest.raises(AzureError) as caught:
        check_api_version(version)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("version", "type_key"), [("x", "VssInvalidApiVersionException"), ("99.0", "VssVersionOutOfRangeException")]
)
def test_a_refused_api_version_says_why(version: str, type_key: str) -> None:
    with pytest.raises(AzureError) as caught:
        check_api_version(version)
    assert caught.value.type_key == type_key
