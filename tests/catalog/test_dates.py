"""Date-time normalisation: the UTC fast path agrees with the general parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.catalog.dates import canonical_datetime, floor_ms, format_canonical, parse_datetime

instants = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC))


@given(instant=instants, zulu=st.booleans())
def test_fast_path_matches_general_path(instant: datetime, zulu: bool) -> None:
    text = instant.isoformat()
    if zulu:
        text = text.replace("+00:00", "Z")
    parsed = parse_datetime(text)
    assert parsed is not None
    assert canonical_datetime(text) == format_canonical(floor_ms(parsed))


@given(instant=instants, offset_minutes=st.integers(-14 * 60, 14 * 60))
def test_offsets_become_the_same_instant_in_utc(instant: datetime, offset_minutes: int) -> None:
    local = instant.astimezone(timezone(timedelta(minutes=offset_minutes)))
    assert canonical_datetime(local.isoformat()) == canonical_datetime(instant.isoformat())


@pytest.mark.parametrize("text", ["2026-02-30T00:00:00Z", "yesterday", "2026-13-01T00:00:00+00:00", ""])
def test_invalid_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        canonical_datetime(text)


@given(instant=instants, digits=st.integers(1, 6), zulu=st.booleans())
def test_sliced_utc_forms_match_the_general_path(instant: datetime, digits: int, zulu: bool) -> None:
    """Every fraction length the slicing fast path takes gives what the C parser's path gives."""
    fraction = f"{instant.microsecond:06d}"[:digits]
    text = f"{instant:%Y-%m-%dT%H:%M:%S}.{fraction}{'Z' if zulu else '+00:00'}"
    parsed = parse_datetime(text)
    assert parsed is not None
    assert canonical_datetime(text) == format_canonical(floor_ms(parsed))


@pytest.mark.parametrize("text", ["2026-02-29T00:00:00Z", "2026-04-31T10:00:00.5Z", "2026-01-01T24:00:00+00:00"])
def test_the_fast_path_still_checks_the_calendar(text: str) -> None:
    with pytest.raises(ValueError):
        canonical_datetime(text)
