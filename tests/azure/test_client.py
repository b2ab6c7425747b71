"""The Azure DevOps client against the emulator over real HTTP: PAT auth, subscriptions, Azure's errors."""

from __future__ import annotations

import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory

from kiosk.azure.client import AzureDevOpsClient, AzureDevOpsError
from kiosk.azure.run_events import run_state_subscription


def test_subscriptions_round_trip_with_a_pat(start_emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_EMULATOR_PAT", "the-pat")
    emulator = start_emulator(config=CONFIG)  # fabrikam's PAT is $TEST_EMULATOR_PAT
    client = AzureDevOpsClient(emulator.base_url, "fabrikam", "the-pat")
    try:
        created = client.create_subscription(run_state_subscription("http://127.0.0.1:9/hook", "kiosk", "pw"))
        assert [s["id"] for s in client.subscriptions()] == [created["id"]]
        client.delete_subscription(created["id"])
        assert client.subscriptions() == []
    finally:
        client.close()


def test_errors_carry_azures_message_and_never_the_pat(
    start_emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_EMULATOR_PAT", "the-pat")
    emulator = start_emulator(config=CONFIG)  # fabrikam's PAT is $TEST_EMULATOR_PAT
    wrong = AzureDevOpsClient(emulator.base_url, "fabrikam", "wrong-pat")
    with pytest.raises(AzureDevOpsError) as caught:
        wrong.subscriptions()
    assert caught.value.status == 401 and "TF400813" in caught.value.message
    assert "wrong-pat" not in str(caught.value)
    wrong.close()
    unknown = AzureDevOpsClient(emulator.base_url, "nope", "the-pat")
    with pytest.raises(AzureDevOpsError) as caught:
        unknown.subscriptions()
    assert caught.value.status == 404
    unknown.close()
    down = AzureDevOpsClient("http://127.0.0.1:9", "x", "the-pat")
    with pytest.raises(AzureDevOpsError, match="cannot reach"):
        down.subscriptions()
    down.close()
