"""kiosk.yaml's ``retention``: defaults, partial sections, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.config_files import write_config

from kiosk.config import load_config
from kiosk.config.model import RetentionConfig
from kiosk.errors import ConfigError


def test_defaults_without_the_section(tmp_path: Path) -> None:
    retention = load_config(write_config(tmp_path, "receivers: []\n")).retention
    assert retention == RetentionConfig()
    assert retention.receiverEvents.maxAgeDays == 7 and retention.receiverEvents.maxPerReceiver == 10_000
    assert retention.jobs.doneMaxAgeDays == 1 and retention.jobs.deadMaxAgeDays == 30
    assert retention.intervalMinutes == 10


def test_given_keys_override_the_defaults(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            """
            retention:
              receiverEvents: {maxAgeDays: 2.5, maxPerReceiver: 500}
              jobs:
                deadMaxAgeDays: 90
              intervalMinutes: 1
            """,
        )
    )
    retention = config.retention
    assert (retention.receiverEvents.maxAgeDays, retention.receiverEvents.maxPerReceiver) == (2.5, 500)
    assert (retention.jobs.doneMaxAgeDays, retention.jobs.deadMaxAgeDays) == (1, 90)
    assert retention.intervalMinutes == 1
    empty = load_config(write_config(tmp_path, "retention:\n  receiverEvents:\n  jobs:\n")).retention
    assert empty == RetentionConfig()
    assert load_config(write_config(tmp_path, "retention:\n")).retention == RetentionConfig()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "retention:\n  receiverEvents:\n    maxAgeDays: 0\n",
            "kiosk.yaml:3: retention.receiverEvents.maxAgeDays: input should be greater than 0",
        ),
        (
            "retention:\n  receiverEvents: {maxPerReceiver: 0}\n",
            "kiosk.yaml:2: retention.receiverEvents.maxPerReceiver: input should be greater than or equal to 1",
        ),
        ("retention:\n  receiverEvents: {maxPerReceiver: 2.5}\n", "retention.receiverEvents.maxPerReceiver"),
        ("retention:\n  jobs:\n    deadMaxAgeDays: -1\n", "kiosk.yaml:3: retention.jobs.deadMaxAgeDays"),
        ("retention:\n  jobs: {doneMaxAgeDays: forever}\n", "retention.jobs.doneMaxAgeDays"),
        ("retention:\n  intervalMinutes: 0.5\n", "kiosk.yaml:2: retention.intervalMinutes"),
        ("retention:\n  events: {maxAgeDays: 1}\n", "retention.events"),
        ("retention:\n  jobs: {doneDays: 1}\n", "retention.jobs.doneDays"),
        ("retention: 7\n", "kiosk.yaml:1: retention"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, text))
    assert fragment in info.value.message, info.value.message
