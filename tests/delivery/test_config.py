"""The delivery and egress sections of kiosk.yaml."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kiosk.config.secrets import SecretRef
from kiosk.delivery.config import STANDARD_WEBHOOKS_SCHEDULE, DeliveryConfig, EgressConfig


def test_defaults_follow_standard_webhooks() -> None:
    config = DeliveryConfig()
    assert config.timeout_seconds == 15
    assert config.retry_schedule == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    assert list(STANDARD_WEBHOOKS_SCHEDULE) == config.retry_schedule
    assert (config.jitter, config.max_response_bytes, config.workers, config.signing_secret) == (0.2, 20_000, 4, None)
    assert EgressConfig() == EgressConfig(allowLoopback=False, allow=[])


def test_camel_case_keys_as_in_the_yaml() -> None:
    config = DeliveryConfig.model_validate(
        {
            "timeoutSeconds": 30,
            "retrySchedule": [1, 2],
            "jitter": 0,
            "maxResponseBytes": 100,
            "workers": 8,
            "signingSecret": {"env": "KIOSK_WEBHOOK_SECRET"},
        }
    )
    assert config.timeout_seconds == 30
    assert config.retry_schedule == [1, 2]
    assert config.signing_secret == SecretRef(env="KIOSK_WEBHOOK_SECRET")
    egress = EgressConfig.model_validate({"allowLoopback": True, "allow": ["10.0.0.0/8", "hooks.internal"]})
    assert egress.allow_loopback
    assert egress.allow == ["10.0.0.0/8", "hooks.internal"]


@pytest.mark.parametrize(
    "data",
    [
        {"timeout": 5},  # unknown key
        {"timeoutSeconds": 0},
        {"retrySchedule": [5, -1]},
        {"jitter": 1.5},
        {"workers": 0},
        {"maxResponseBytes": -1},
    ],
)
def test_invalid_delivery_config_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DeliveryConfig.model_validate(data)


@pytest.mark.parametrize("entry", ["not a host!", "10.0.0.0/33", "-bad.example", "a..b"])
def test_allow_entries_must_be_a_network_or_a_host_name(entry: str) -> None:
    with pytest.raises(ValidationError, match="neither a CIDR"):
        EgressConfig(allow=[entry])


@pytest.mark.parametrize("entry", ["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1", "hooks.internal", "localhost"])
def test_allow_entries_accepted(entry: str) -> None:
    assert EgressConfig(allow=[entry]).allow == [entry]


def test_a_literal_signing_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as info:
        DeliveryConfig.model_validate({"signingSecret": "hunter2-literal-secret"})
    assert "hunter2-literal-secret" not in str(info.value)
    assert "references" in str(info.value)
