"""How a validation error is put into words (contracts.describe_errors), and the UTC helpers (ffe.utc)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from ffe import utc
from ffe.contracts import describe_errors


class Row(BaseModel):
    assets: list[str]
    close: float

    @field_validator("close")
    @classmethod
    def _positive(cls, close: float) -> float:
        if close <= 0:
            raise ValueError("must be positive")
        return close


def errors_of(value: object) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        Row.model_validate(value)
    return raised.value


def test_fields_are_dotted_locations_and_messages_are_pydantic_s() -> None:
    described = describe_errors(errors_of({"assets": [1], "close": -1}), whole="<event>")
    assert described == [
        ("assets.0", "Input should be a valid string"),
        ("close", "Value error, must be positive"),
    ]


def test_plain_drops_the_value_error_prefix_and_brackets_write_list_indexes() -> None:
    described = describe_errors(errors_of({"assets": [1], "close": -1}), whole="", plain=True, brackets=True)
    assert described == [("assets[0]", "Input should be a valid string"), ("close", "must be positive")]


def test_an_error_about_the_whole_value_is_named_whole_and_parts_are_written_by_part() -> None:
    assert describe_errors(errors_of([]), whole="request") == [
        ("request", "Input should be a valid dictionary or instance of Row")
    ]
    long_key = {"loc": ("query", "x" * 10), "msg": "unknown"}
    assert describe_errors([long_key], whole="request", part=lambda p: p[:3]) == [("que.xxx", "unknown")]


def test_the_offending_input_is_never_repeated() -> None:
    described = describe_errors(errors_of({"assets": ["'; DROP TABLE x; --"], "close": "abc"}), whole="<event>")
    assert all("DROP" not in field + message and "abc" not in message for field, message in described)


def test_utc_now_is_aware_utc() -> None:
    assert utc.now().tzinfo is UTC


def test_normalise_brings_an_aware_time_to_utc_and_refuses_one_out_of_range() -> None:
    plus_two = datetime(2019, 6, 15, 14, 1, tzinfo=timezone(timedelta(hours=2)))
    assert utc.normalise(plus_two) == datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
    assert utc.normalise(plus_two).tzinfo is UTC
    with pytest.raises(ValueError, match="out of range"):
        utc.normalise(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))))


@pytest.mark.parametrize("text", ["2019-06-15T12:01:00Z", "2019-06-15T12:01:00", "2019-06-15T14:01:00+02:00"])
def test_parse_reads_iso_text_as_utc_taking_no_offset_as_utc(text: str) -> None:
    parsed = utc.parse(text)
    assert parsed == datetime(2019, 6, 15, 12, 1, tzinfo=UTC) and parsed.tzinfo is UTC


def test_parse_refuses_what_is_not_an_iso_time() -> None:
    with pytest.raises(ValueError):
        utc.parse("yesterday")
