"""FetchMarketData validates the provider's bars as columns: the same bars leave as before, and a bar it refuses is
named as before."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ffe.contracts import AssetTask, BarModel, MarketData, digest_bars, parse
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Bar, Timeframe
from ffe.steps.fetch import fetch_market_data
from tests.fakes.market_data import FixedProvider, hourly

AS_OF = datetime(2019, 6, 15, 12, 0, tzinfo=UTC)
TASK = AssetTask(cycle_id="c-1", as_of=AS_OF, timeframe=Timeframe.H1, asset="BTCUSD")


def bars(n: int = 60) -> list[Bar]:
    return hourly([100 + (i % 7) * 0.3 for i in range(n)], AS_OF - timedelta(minutes=10))  # the last one forming


def fetch(series: list[Any]) -> MarketData:
    return fetch_market_data(TASK, FixedProvider(series), 200)


def test_the_bars_leave_as_their_models_and_are_sealed() -> None:
    data = fetch(bars())
    models = [BarModel.from_domain(b) for b in bars()[:-1]]  # the forming bar dropped
    assert data.bars.models() == models and data.bars_sha256 == digest_bars(models)
    assert data.source.forming_bars_dropped == 1 and data.bars_seal is not None
    assert parse(MarketData, data.model_dump(mode="json")) == data  # the next boundary reads it by the seal


def test_times_at_any_offset_and_whole_number_prices_are_read_as_the_bar_models_read_them() -> None:
    plain = bars()
    odd = [
        replace(b, time=b.time.astimezone(timezone(timedelta(hours=2))), volume=10) if i % 2 else b
        for i, b in enumerate(plain)
    ]
    assert fetch(odd) == fetch(plain)
    assert all(type(v) is float for v in fetch(odd).bars.volume)


@dataclass(frozen=True)
class OtherBar:  # a provider's own bar type: read bar by bar, as before
    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


def test_a_bar_of_another_type_is_read_bar_by_bar_to_the_same_bars() -> None:
    other = [OtherBar(b.time, b.open, b.high, b.low, b.close, b.volume) for b in bars()]
    assert fetch(other) == fetch(bars())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"close": math.nan}, r"bar 7 \(2019-06-13T07:50:00\+00:00\): close is not a finite number"),
        ({"low": -1.0}, r"bar 7 \(.*\): low must be positive"),
        ({"time": datetime(2019, 6, 15, 20, tzinfo=UTC)}, r"bar 7 \(2019-06-15T20:00:00\+00:00\): .*in the future"),
        ({"time": datetime(2019, 6, 14, 1, 50)}, r"bar 7 from fixed"),  # naive: the model refuses it, by name
        ({"close": "abc"}, r"bar 7 from fixed"),
    ],
    ids=["nan", "negative", "future", "naive", "not-a-number"],
)
def test_a_bar_the_fetch_refuses_is_named(change: dict, message: str) -> None:
    series = bars()
    series[7] = replace(series[7], **change)
    with pytest.raises(InvalidInputError, match=message):
        fetch(series)
