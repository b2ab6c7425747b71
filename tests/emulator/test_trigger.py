"""The incoming-webhook trigger over real HTTP: the seed's example and every status code of the reference."""

from __future__ import annotations

import json

import pytest
from tests.emulator.conftest import EmulatorFactory, LiveEmulator
from tests.support.pipelines import SEED_BODY, SEED_CHECKSUM, webhook_resources

from kiosk.core.signing import sign_azure_checksum

AZURE_ERROR_KEYS = ["$id", "innerException", "message", "typeName", "typeKey", "errorCode", "eventId"]


def azure_error(response: object, status: int, type_key: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert list(body) == AZURE_ERROR_KEYS
    assert (body["$id"], body["innerException"], body["errorCode"], body["eventId"]) == ("1", None, 0, 3000)
    assert body["typeKey"] == type_key
    return dict(body)


def last_trigger(emulator: LiveEmulator) -> dict[str, object]:
    items = emulator.client.get("/_emulator/triggers").json()["value"]
    return dict(items[0])


def test_the_seed_example_runs_end_to_end(emulator: LiveEmulator) -> None:
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    assert response.status_code == 200
    assert response.content == b""
    (run_id,) = [int(x) for x in response.headers["X-Kiosk-Queued-Runs"].split(",")]
    build = emulator.wait_for_run(run_id)
    assert (build["status"], build["result"], build["reason"]) == ("completed", "succeeded", "resourceTrigger")
    log = emulator.run_log(run_id)
    assert any(line.split(" ", 1)[1] == "Hello, world!" for line in log.splitlines())


def test_lowercase_hex_is_accepted(emulator: LiveEmulator) -> None:
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM.lower()})
    assert response.status_code == 200
    assert response.headers["X-Kiosk-Queued-Runs"]


def test_the_pretty_printed_body_fails_the_checksum(emulator: LiveEmulator) -> None:
    pretty = json.dumps(json.loads(SEED_BODY), indent=4).encode()
    response = emulator.trigger("IncomingWH", pretty, {"X-WH-Checksum": SEED_CHECKSUM})
    body = azure_error(response, 500, "WebHookChecksumMismatchException")
    assert "X-WH-Checksum" in str(body["message"])
    record = last_trigger(emulator)
    assert record["status"] == 500 and record["queuedRuns"] == []


def test_inserting_an_object_into_a_script_queues_nothing_and_names_the_expression(
    start_emulator: EmulatorFactory,
) -> None:
    pipeline = """\
resources:
  webhooks:
    - webhook: WebHook
      connection: IncomingWH
steps:
- script: echo ${{ parameters.WebHook.resource.message }}
"""
    emulator = start_emulator(pipeline=pipeline)
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    assert response.status_code == 200  # Azure answers 200 and queues nothing
    assert response.headers["X-Kiosk-Queued-Runs"] == ""
    record = last_trigger(emulator)
    (outcome,) = record["pipelines"]  # type: ignore[misc]
    assert outcome["queued"] is False
    reason = outcome["reason"]
    assert reason["kind"] == "expansion_failed"
    assert reason["expression"] == "parameters.WebHook.resource.message"
    assert (reason["file"], reason["line"]) == ("azure-pipelines.yml", 6)
    assert "object" in reason["message"]
    assert "no run queued" in str(record["summary"])


def test_filters_that_do_not_match_queue_nothing_and_say_why(start_emulator: EmulatorFactory) -> None:
    pipeline = (
        webhook_resources(("resource.message.title", "Hello, world!"), ("resource.message.subtitle", "something else"))
        + "steps:\n- script: echo hi\n"
    )
    emulator = start_emulator(pipeline=pipeline)
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    assert response.status_code == 200
    (outcome,) = last_trigger(emulator)["pipelines"]  # type: ignore[misc]
    assert outcome["reason"]["kind"] == "filter_mismatch"
    assert "resource.message.subtitle" in outcome["reason"]["message"]
    assert "I'm using WebHooks!" in outcome["reason"]["message"]


def test_matching_filters_queue_a_run_with_the_webhook_variables(start_emulator: EmulatorFactory) -> None:
    pipeline = (
        webhook_resources(("$.resource.message.title", "Hello, world!"))
        + """\
steps:
- script: |
    echo "reason=$BUILD_REASON alias=$RESOURCES_TRIGGERINGALIAS id=$BUILD_BUILDID project=$SYSTEM_TEAMPROJECT"
    echo "repo=$(Build.Repository.Name)"
"""
    )
    emulator = start_emulator(pipeline=pipeline)
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    run_id = int(response.headers["X-Kiosk-Queued-Runs"])
    assert emulator.wait_for_run(run_id)["result"] == "succeeded"
    log = emulator.run_log(run_id)
    assert f"reason=ResourceTrigger alias=WebHook id={run_id} project=web" in log
    assert "repo=web" in log


def test_no_secret_means_no_checksum(start_emulator: EmulatorFactory) -> None:
    pipeline = webhook_resources(webhook="Hook", connection="Open") + "steps:\n- script: echo open\n"
    emulator = start_emulator(pipeline=pipeline)
    response = emulator.trigger("open-hook", b'{"a":1}')
    assert response.status_code == 200 and response.headers["X-Kiosk-Queued-Runs"]


def test_unknown_webhook_name_is_azures_500(emulator: LiveEmulator) -> None:
    body = azure_error(emulator.trigger("nope", SEED_BODY), 500, "WebHookNotFoundException")
    assert body["message"] == (
        "Cannot find webhook for the given webHookId nope. Try enabling CD trigger for this artifact."
    )


def test_a_connection_no_pipeline_listens_on_is_the_same_500(emulator: LiveEmulator) -> None:
    # "open-hook" exists, but the only pipeline listens on IncomingWH.
    azure_error(emulator.trigger("open-hook", b"{}"), 500, "WebHookNotFoundException")


@pytest.mark.parametrize("headers", [{}, {"X-WH-Checksum": ""}])
def test_missing_or_empty_checksum_header(emulator: LiveEmulator, headers: dict[str, str]) -> None:
    body = azure_error(
        emulator.trigger("IncomingWH", SEED_BODY, headers), 500, "RequiredHeaderSignatureNotFoundException"
    )
    assert "RequiredHeaderSignatureNotFound" in str(body["message"])


def test_sha1_prefix_is_refused_by_default(emulator: LiveEmulator) -> None:
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": "sha1=" + SEED_CHECKSUM})
    azure_error(response, 500, "WebHookChecksumMismatchException")


def test_sha1_prefix_when_allowed(start_emulator: EmulatorFactory) -> None:
    from tests.emulator.conftest import CONFIG

    emulator = start_emulator(config="settings: {acceptSha1Prefix: true}\n" + CONFIG)
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": "sha1=" + SEED_CHECKSUM})
    assert response.status_code == 200


def test_unknown_org_is_404(emulator: LiveEmulator) -> None:
    azure_error(emulator.trigger("IncomingWH", SEED_BODY, org="contoso"), 404, "OrganizationNotFoundException")


def test_not_json_is_400_after_the_checksum(emulator: LiveEmulator) -> None:
    body = b"this is not json"
    response = emulator.trigger("IncomingWH", body, {"X-WH-Checksum": sign_azure_checksum("secret", body)})
    azure_error(response, 400, "InvalidPayloadException")
    array = b"[1,2]"
    response = emulator.trigger("IncomingWH", array, {"X-WH-Checksum": sign_azure_checksum("secret", array)})
    azure_error(response, 400, "InvalidPayloadException")


def test_twenty_megabytes_is_413_with_or_without_content_length(emulator: LiveEmulator) -> None:
    big = b'{"a":"' + b"x" * (20 * 1024 * 1024) + b'"}'
    azure_error(emulator.trigger("IncomingWH", big, {"X-WH-Checksum": "00"}), 413, "RequestTooLargeException")

    def chunks():  # type: ignore[no-untyped-def]
        for start in range(0, len(big), 1024 * 1024):
            yield big[start : start + 1024 * 1024]

    url = "/fabrikam/_apis/public/distributedtask/webhooks/IncomingWH?api-version=6.0-preview"
    response = emulator.client.post(url, content=chunks(), headers={"X-WH-Checksum": "00"})
    assert "content-length" not in response.request.headers
    azure_error(response, 413, "RequestTooLargeException")


def test_wrong_method_is_405(emulator: LiveEmulator) -> None:
    response = emulator.client.get("/fabrikam/_apis/public/distributedtask/webhooks/IncomingWH?api-version=6.0-preview")
    azure_error(response, 405, "MethodNotAllowedException")


@pytest.mark.parametrize(
    ("query", "type_key"),
    [("", "VssApiVersionMissingException"), ("?api-version=5.1", "VssVersionOutOfRangeException")],
)
def test_api_version_is_required(emulator: LiveEmulator, query: str, type_key: str) -> None:
    url = f"/fabrikam/_apis/public/distributedtask/webhooks/IncomingWH{query}"
    azure_error(emulator.client.post(url, content=SEED_BODY), 400, type_key)


def test_api_version_7_is_served(emulator: LiveEmulator) -> None:
    url = "/fabrikam/_apis/public/distributedtask/webhooks/IncomingWH?api-version=7.2-preview.2"
    headers = {"Content-Type": "application/json", "X-WH-Checksum": SEED_CHECKSUM}
    response = emulator.client.post(url, content=SEED_BODY, headers=headers)
    assert response.status_code == 200


def test_a_broken_pipeline_file_is_reported_not_ignored(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator()
    other = emulator.server.emulator
    broken = emulator.repo / "broken"
    broken.mkdir()
    (broken / "azure-pipelines.yml").write_text("steps: [unclosed\n")
    other.add_pipeline("fabrikam", "web", name="broken", repository=broken)
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    assert response.status_code == 200
    outcomes = {o["pipeline"]["name"]: o for o in last_trigger(emulator)["pipelines"]}  # type: ignore[attr-defined]
    assert outcomes["hello"]["queued"] is True
    assert outcomes["broken"]["reason"]["kind"] == "pipeline_unreadable"


def test_edits_to_the_yaml_apply_to_the_next_trigger(emulator: LiveEmulator) -> None:
    (emulator.repo / "azure-pipelines.yml").write_text(
        "resources:\n  webhooks:\n    - webhook: WebHook\n      connection: IncomingWH\n"
        "steps:\n- script: echo edited ${{ parameters.WebHook.resource.message.subtitle }}\n"
    )
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    run_id = int(response.headers["X-Kiosk-Queued-Runs"])
    emulator.wait_for_run(run_id)
    assert "edited I'm using WebHooks!" in emulator.run_log(run_id)


def test_every_call_is_recorded_newest_first(emulator: LiveEmulator) -> None:
    emulator.trigger("nope", b"{}")
    emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    records = emulator.client.get("/_emulator/triggers", params={"org": "fabrikam"}).json()["value"]
    assert [r["webhookName"] for r in records[:2]] == ["IncomingWH", "nope"]
    assert records[1]["status"] == 500 and "Cannot find webhook" in records[1]["summary"]
    only = emulator.client.get("/_emulator/triggers", params={"webhook": "nope"}).json()["value"]
    assert [r["webhookName"] for r in only] == ["nope"]
