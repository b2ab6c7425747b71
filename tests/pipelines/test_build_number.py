"""Run names from ``name:`` (Azure's build number format)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kiosk.pipelines.build_number import BuildNumberError, format_build_number

NOW = datetime(2026, 11, 4, 7, 5, 9, 123456, tzinfo=UTC)


class Revisions:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


def name(fmt: str | None, revisions: Revisions | None = None, **variables: str) -> str:
    return format_build_number(fmt, variables=variables, now=NOW, next_revision=revisions or Revisions())


def test_default_format_is_date_and_revision() -> None:
    revisions = Revisions()
    assert name(None, revisions) == "20261104.1"
    assert name(None, revisions) == "20261104.2"


def test_revision_counts_per_distinct_rest_of_the_name() -> None:
    revisions = Revisions()
    assert name("a-$(Rev:rr)", revisions) == "a-01"
    assert name("a-$(Rev:rr)", revisions) == "a-02"
    assert name("b-$(Rev:rr)", revisions) == "b-01"


def test_kiosk_convention_keeps_the_run_id() -> None:
    assert name("kiosk-r_3f9a1c") == "kiosk-r_3f9a1c"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("$(Date:yyyy-MM-dd)", "2026-11-04"),
        ("$(Date:yyMMdd)$(Hours)$(Minutes)$(Seconds)", "261104070509"),
        ("$(Year:yy).$(Month).$(DayOfMonth)", "26.11.04"),
        ("$(DayOfYear)", "308"),
        ("$(Build.Reason)-$(BuildID)-$(TeamProject)", "ResourceTrigger-42-demo"),
        ("$(SourceBranchName)_$(undefined)", "main_$(undefined)"),
    ],
)
def test_tokens(fmt: str, expected: str) -> None:
    variables = {"Build.Reason": "ResourceTrigger", "Build.BuildId": "42", "System.TeamProject": "demo"}
    variables["Build.SourceBranchName"] = "main"
    assert format_build_number(fmt, variables=variables, now=NOW, next_revision=Revisions()) == expected


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("a/b", "characters Azure does not allow"),
        ("$(Date:HH:mm)", "characters Azure does not allow"),
        ("v1.", "must not end with '.'"),
        ("x" * 300, "255"),
    ],
)
def test_names_azure_refuses_are_errors(fmt: str, message: str) -> None:
    with pytest.raises(BuildNumberError, match=message):
        name(fmt)
