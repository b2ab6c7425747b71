"""``settings.hooks`` in the emulator's config: defaults, and errors naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.emulator.config import load_emulator_config
from kiosk.emulator.hooks import HooksSettings
from kiosk.errors import ConfigError

ORG = "orgs:\n- name: a\n  personalAccessTokens: [{env: P}]\n"


def load(tmp_path: Path, text: str) -> HooksSettings:
    path = tmp_path / "emulator.yaml"
    path.write_text(text)
    return load_emulator_config(path).settings.hooks


def test_defaults_are_azures_schedule_and_a_ten_second_attempt(tmp_path: Path) -> None:
    hooks = load(tmp_path, ORG)
    assert hooks.retry_scale == 1.0 and hooks.attempt_timeout_seconds == 10.0
    assert hooks.allow_http_to_loopback is True and hooks.retain_deliveries == 10_000
    custom = load(tmp_path, "settings:\n  hooks: {retryScale: 0.001, attemptTimeoutSeconds: 0.5}\n" + ORG)
    assert (custom.retry_scale, custom.attempt_timeout_seconds) == (0.001, 0.5)


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ("{retryScale: 0}", "hooks.retryScale"),
        ("{attemptTimeoutSeconds: 1000}", "hooks.attemptTimeoutSeconds"),
        ("{retainDeliveries: 1}", "hooks.retainDeliveries"),
        ("{retryscale: 1}", "retryscale"),
    ],
)
def test_bad_values_are_refused_with_the_field(tmp_path: Path, hooks: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"settings:\n  hooks: {hooks}\n" + ORG)
    assert message in str(caught.value) and "emulator.yaml:2" in str(caught.value)
