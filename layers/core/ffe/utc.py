"""UTC time, three jobs: the current time, an aware datetime brought to UTC, ISO-8601 text read as UTC.

Everything the system stores or compares is an aware UTC datetime; these are the one place each job is done.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time, aware, in UTC (the default clock of whatever takes one)."""
    return datetime.now(UTC)


def normalise(value: datetime) -> datetime:
    """An aware ``value`` as the same instant in UTC.

    Raises:
        ValueError: the instant has no UTC equivalent (e.g. 9999-12-31T23:00:00-05:00 is after year 9999 in UTC).
    """
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("datetime is out of range") from None


def parse(text: str) -> datetime:
    """ISO-8601 text (``Z`` or an offset; none means UTC) as an aware UTC datetime.

    Raises:
        ValueError: the text is not an ISO-8601 time, or its instant has no UTC equivalent.
    """
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else normalise(value)
