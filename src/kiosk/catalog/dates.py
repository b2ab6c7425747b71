"""ISO 8601 date-times in the one form kiosk stores and compares: ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

Date-time properties are normalised to this form on write, so that range rules in search can
compare instants as strings on every engine (and it is what Port and JavaScript write).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

#: A date-time already in UTC with at most microseconds: the form nearly every sender writes
#: (``toISOString``, ``isoformat()`` of an aware UTC value). Canonicalised by slicing the text.
_UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(\d{1,6}))?(?:Z|\+00:00)\Z")


def floor_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def parse_datetime(value: str) -> datetime | None:
    """An ISO 8601 date-time (or date) as an aware UTC ``datetime``; naive means UTC; None if not one."""
    if len(value) > 64 or len(value) < 8:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def format_canonical(value: datetime) -> str:
    # By hand, not strftime: glibc's %Y does not pad years below 1000, which would break ordering.
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}Z"
    )


def canonical_datetime(value: str) -> str:
    """Normalise an ISO 8601 date-time to ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, milliseconds, truncated).

    The form date-time properties must be stored in for range rules to compare instants; it is
    also what Port and JavaScript's ``toISOString`` write. Raises ``ValueError`` if not a date-time.
    Runs once per date property per entity in bulk writes, hence the C parser first and no
    time-zone arithmetic when the value is already in UTC; the commonest forms are only sliced (the
    calendar is still checked by the C parser), which is several times cheaper than formatting.
    """
    utc = _UTC_TEXT.match(value)
    if utc is not None:
        try:
            datetime.fromisoformat(value[:19])  # month 13, February 30th, hour 25 ... refused
        except ValueError:
            raise ValueError(f"not an ISO 8601 date-time: {value!r}") from None
        fraction = utc.group(1)
        return f"{value[:19]}.{(fraction + '00')[:3] if fraction else '000'}Z"
    if 8 <= len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value)
        except (ValueError, OverflowError):
            parsed = None
        if parsed is not None:
            offset = parsed.utcoffset()
            if offset is None or not offset:
                return format_canonical_utc(parsed)
            try:
                return format_canonical_utc(parsed.astimezone(UTC))
            except OverflowError:
                pass
    raise ValueError(f"not an ISO 8601 date-time: {value!r}")


def format_canonical_utc(v: datetime) -> str:
    """Like :func:`format_canonical` for a value already in UTC (or naive, meaning UTC)."""
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}Z"
    )


def iso_timestamp(value: datetime | None) -> str | None:
    """A stored timestamp as the API shows it, ``YYYY-MM-DDTHH:MM:SS.mmmZ``; None stays None.

    SQLite hands back naive values; kiosk stores UTC, so naive means UTC.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_canonical(value)
