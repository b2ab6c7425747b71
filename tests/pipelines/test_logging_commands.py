"""Parsing of ``##vso[area.action key=value;...]message`` logging commands."""

from __future__ import annotations

import pytest

from kiosk.pipelines.logging_commands import LoggingCommand, parse_bool, parse_logging_command


def test_setvariable() -> None:
    command = parse_logging_command("##vso[task.setvariable variable=token;isSecret=true;isOutput=false]abc")
    assert command == LoggingCommand(
        "task", "setvariable", {"variable": "token", "issecret": "true", "isoutput": "false"}, "abc"
    )
    assert command.name == "task.setvariable"


def test_command_may_follow_other_text_like_on_the_agent() -> None:
    command = parse_logging_command("2024-01-01T00:00:00Z ##vso[task.complete result=Failed;]done")
    assert command is not None
    assert (command.name, command.properties, command.data) == ("task.complete", {"result": "Failed"}, "done")


def test_escapes() -> None:
    command = parse_logging_command("##vso[task.logissue type=error;note=a%3Bb%5Dc%0Dd%0Ae%253B]x%0Ay%25z%3B")
    assert command is not None
    assert command.properties["note"] == "a;b]c\rd\ne%3B"
    assert command.data == "x\ny%z%3B"  # ';' needs no escaping in the message


def test_names_are_lower_cased_and_properties_without_value_ignored() -> None:
    command = parse_logging_command("##vso[Task.SetProgress value=50;bogus;]")
    assert command == LoggingCommand("task", "setprogress", {"value": "50"}, "")


@pytest.mark.parametrize(
    "line",
    ["plain output", "##vso[task.setvariable variable=x", "##vso[nodot]x", "##vso[]x", "##[error]not a command"],
)
def test_not_a_command(line: str) -> None:
    assert parse_logging_command(line) is None


def test_parse_bool() -> None:
    assert parse_bool("True") and parse_bool(" true ")
    assert not parse_bool("yes") and not parse_bool(None) and not parse_bool("")
