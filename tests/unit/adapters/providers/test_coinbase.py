"""CoinbaseProvider against recorded Coinbase Exchange bodies and the fake server (httpx.MockTransport only): what
is particular to Coinbase. What every LiveProvider must do is in tests/unit/adapters/contracts/test_provider_contract.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ffe.adapters.providers.coinbase import CoinbaseProvider
from ffe.domain.errors import InvalidInputError, TransientError
from ffe.domain.models import AssetClass, Bar, Timeframe
from tests.fakes.coinbase_server import FakeCoinbaseMarketData, recorded

MARCH_1 = datetime(2024, 3, 1, tzinfo=UTC)
Handler = Callable[[httpx.Request], httpx.Response]


def provider_for(handler: Handler) -> CoinbaseProvider:
    return CoinbaseProvider(httpx.Client(transport=httpx.MockTransport(handler)))


class Venue:
    """A handler that records each request and answers the same JSON body."""

    def __init__(self, status: int, body: bytes, **headers: str) -> None:
        self.status, self.body, self.headers = status, body, {"content-type": "application/json", **headers}
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return httpx.Response(self.status, content=self.body, headers=self.headers)


def history(timeframe: Timeframe, count: int, first: datetime = MARCH_1) -> list[Bar]:
    """``count`` consecutive bars from ``first``, each a little higher than the last."""
    bars = []
    for i in range(count):
        price = 60_000.0 + i
        bars.append(Bar(first + i * timeframe.duration, price, price + 5.5, price - 4.25, price + 1.0, 1.0 + i % 7))
    return bars


def fake_with(bars_by_timeframe: dict[Timeframe, list[Bar]]) -> FakeCoinbaseMarketData:
    def bars(asset: str, timeframe: Timeframe) -> list[Bar]:
        if asset not in ("BTCUSD", "ETHUSD"):
            raise KeyError(asset)
        return bars_by_timeframe.get(timeframe, [])

    return FakeCoinbaseMarketData(bars)


# --- success path against the recorded body ---------------------------------------------------------------------


def test_candles_recorded_page_maps_rows_oldest_first_in_utc() -> None:
    # Given the recorded hourly BTC-USD page (newest first, [time, low, high, open, close, volume])
    handler = Venue(200, recorded("candles_btc_usd_3600.json"))
    # When five hours are asked for
    bars = provider_for(handler).candles("BTCUSD", Timeframe.H1, MARCH_1, MARCH_1 + timedelta(hours=5))
    # Then the rows come back oldest first, in UTC, with each column in its place
    assert [b.time for b in bars] == [MARCH_1 + timedelta(hours=h) for h in range(5)]
    assert all(b.time.tzinfo is UTC for b in bars)
    assert bars[0] == Bar(MARCH_1, open=61130.8, high=61450.99, low=61005.5, close=61390.01, volume=623.4515)
    assert bars[-1] == Bar(MARCH_1 + timedelta(hours=4), 62011.37, 62480.5, 61950.01, 62390.12, 412.88411254)
    assert all(isinstance(v, float) for b in bars for v in (b.open, b.high, b.low, b.close, b.volume))


def test_candles_request_uses_the_documented_endpoint_and_parameters() -> None:
    # Given a venue answering the recorded page
    handler = Venue(200, recorded("candles_btc_usd_3600.json"))
    # When five hours are asked for
    provider_for(handler).candles("BTCUSD", Timeframe.H1, MARCH_1, MARCH_1 + timedelta(hours=5))
    # Then one GET went to /products/BTC-USD/candles with granularity in seconds and an inclusive ISO range
    (request,) = handler.seen
    assert request.method == "GET"
    assert str(request.url.copy_with(query=None)) == "https://api.exchange.coinbase.com/products/BTC-USD/candles"
    assert dict(request.url.params) == {
        "granularity": "3600",
        "start": "2024-03-01T00:00:00Z",
        "end": "2024-03-01T04:00:00Z",
    }
    assert "authorization" not in request.headers  # public endpoint: no key


def test_candles_unaligned_start_asks_from_the_next_bucket() -> None:
    # Given a start in the middle of an hour
    handler = Venue(200, recorded("candles_btc_usd_3600.json"))
    # When asked for
    bars = provider_for(handler).candles(
        "BTCUSD", Timeframe.H1, MARCH_1 + timedelta(minutes=30), MARCH_1 + timedelta(hours=5)
    )
    # Then the request starts at the first bucket opening at or after start, and the 00:00 row is dropped
    assert handler.seen[0].url.params["start"] == "2024-03-01T01:00:00Z"
    assert bars[0].time == MARCH_1 + timedelta(hours=1)


def test_candles_without_start_asks_for_the_last_300_candles_up_to_end() -> None:
    # Given a venue answering the recorded page
    handler = Venue(200, recorded("candles_btc_usd_3600.json"))
    end = MARCH_1 + timedelta(hours=4, minutes=20)
    # When no start is given
    bars = provider_for(handler).candles("BTCUSD", Timeframe.H1, None, end)
    # Then one request covers the 300 buckets up to the one still forming at end, which is kept for the router
    (request,) = handler.seen
    assert request.url.params["end"] == "2024-03-01T04:00:00Z"
    assert request.url.params["start"] == (MARCH_1 + timedelta(hours=4) - 299 * timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert len(bars) == 5 and bars[-1].time == MARCH_1 + timedelta(hours=4)


def test_candles_empty_array_gives_no_bars() -> None:
    # Given a venue with no trades in the range (the docs: no data is published for such intervals)
    handler = Venue(200, recorded("candles_empty.json"))
    # When asked
    bars = provider_for(handler).candles("BTCUSD", Timeframe.H1, MARCH_1, MARCH_1 + timedelta(hours=5))
    # Then there are no bars, and no error: staleness is the caller's question
    assert bars == []


# --- asset and input checks -------------------------------------------------------------------------------------


def test_supports_crypto_only() -> None:
    provider = provider_for(Venue(200, b"[]"))
    assert provider.supports(AssetClass.CRYPTO)
    assert not provider.supports(AssetClass.FX) and not provider.supports(AssetClass.EQUITY)


def test_candles_naive_datetimes_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        provider_for(Venue(200, b"[]")).candles("BTCUSD", Timeframe.H1, None, datetime(2024, 3, 1))


# --- errors ---------------------------------------------------------------------------------------------------


def test_candles_unknown_product_is_invalid_input_quoting_the_venue() -> None:
    # Given the documented 404 for a product Coinbase does not list
    handler = Venue(404, recorded("error_not_found.json"))
    # When a symbol outside the universe is asked for
    with pytest.raises(InvalidInputError, match="NotFound") as caught:
        provider_for(handler).candles("DOGEUSD", Timeframe.H1, MARCH_1, MARCH_1 + timedelta(hours=5))
    # Then it went to the venue as DOGE-USD and the 404 is a permanent, contextual error
    assert handler.seen[0].url.path == "/products/DOGE-USD/candles"
    assert caught.value.context["http_status"] == 404


@pytest.mark.parametrize(
    "bad_row",
    [
        [1709251200, 61005.5, 61450.99, 61130.8, 61390.01],  # five columns
        [1709251200, 61005.5, 61450.99, 61130.8, 61390.01, 623.45, 7],  # seven columns
        [1709251200, "sixty-one thousand", 61450.99, 61130.8, 61390.01, 623.45],  # non-numeric low
        [None, 61005.5, 61450.99, 61130.8, 61390.01, 623.45],  # no time
        [1709251200, 61005.5, 61450.99, "NaN", 61390.01, 623.45],  # not a finite price
        {"time": 1709251200, "low": 61005.5},  # an object, not an array
        "1709251200,61005.5",
    ],
)
def test_candles_malformed_row_is_invalid_input_with_context(bad_row: object) -> None:
    # Given a page whose oldest row is malformed
    rows = json.loads(recorded("candles_btc_usd_3600.json"))
    rows[-1] = bad_row
    handler = Venue(200, json.dumps(rows).encode(), **{"x-request-id": "req-bad"})
    # When asked
    with pytest.raises(InvalidInputError, match="malformed candle at index 4") as caught:
        provider_for(handler).candles("BTCUSD", Timeframe.H1, MARCH_1, MARCH_1 + timedelta(hours=5))
    # Then the error names provider, asset, timeframe, status and request id
    assert {"provider", "asset", "timeframe", "http_status", "request_id"} <= set(caught.value.context)


@pytest.mark.parametrize("body", [b'{"message": "NotFound"}', b"null", b'"ok"'])
def test_candles_body_that_is_not_an_array_is_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInputError, match="array of candles"):
        provider_for(Venue(200, body)).candles("BTCUSD", Timeframe.H1, MARCH_1, MARCH_1 + timedelta(hours=5))


# --- pagination and merged timeframes, through the fake server ---------------------------------------------------


def test_candles_beyond_300_are_paged_in_ranges_the_venue_accepts() -> None:
    # Given 700 one-minute bars on the fake venue (which rejects ranges of more than 300 buckets)
    bars = history(Timeframe.M1, 700)
    fake = fake_with({Timeframe.M1: bars})
    # When all 700 minutes are asked for
    got = provider_for(fake).candles("BTCUSD", Timeframe.M1, MARCH_1, MARCH_1 + timedelta(minutes=700))
    # Then three contiguous requests of at most 300 buckets bring every bar back once, oldest first
    assert got == bars
    assert len(fake.requests) == 3
    spans = [(r.url.params["start"], r.url.params["end"]) for r in fake.requests]
    assert spans[0] == ("2024-03-01T00:00:00Z", "2024-03-01T04:59:00Z")
    assert spans[1] == ("2024-03-01T05:00:00Z", "2024-03-01T09:59:00Z")
    assert spans[2] == ("2024-03-01T10:00:00Z", "2024-03-01T11:39:00Z")


def test_candles_exactly_300_fit_in_one_request() -> None:
    fake = fake_with({Timeframe.M5: history(Timeframe.M5, 300)})
    got = provider_for(fake).candles("BTCUSD", Timeframe.M5, MARCH_1, MARCH_1 + 300 * timedelta(minutes=5))
    assert len(got) == 300 and len(fake.requests) == 1


def test_candles_4h_are_merged_from_hourly_whole_buckets_only() -> None:
    # Given hourly bars from 00:00 to 10:00 (11 hours) on the fake venue
    hourly = history(Timeframe.H1, 11)
    fake = fake_with({Timeframe.H1: hourly})
    # When 4h bars are asked for up to 10:30 (the 08:00 bucket has not closed)
    got = provider_for(fake).candles("BTCUSD", Timeframe.H4, MARCH_1, MARCH_1 + timedelta(hours=10, minutes=30))
    # Then hourly candles were fetched and merged into the two whole 4h buckets
    assert {r.url.params["granularity"] for r in fake.requests} == {"3600"}
    assert [b.time for b in got] == [MARCH_1, MARCH_1 + timedelta(hours=4)]
    first = hourly[:4]
    assert got[0] == Bar(
        MARCH_1,
        first[0].open,
        max(b.high for b in first),
        min(b.low for b in first),
        first[-1].close,
        sum(b.volume for b in first),
    )


def test_candles_4h_without_start_give_300_bars() -> None:
    # Given 1300 hourly bars on the fake venue
    fake = fake_with({Timeframe.H1: history(Timeframe.H1, 1300)})
    end = MARCH_1 + timedelta(hours=1300)
    # When the most recent 4h page is asked for
    got = provider_for(fake).candles("BTCUSD", Timeframe.H4, None, end)
    # Then it is 300 whole 4h bars ending at end, fetched as four pages of hourly candles
    assert len(got) == 300 and len(fake.requests) == 4
    assert got[-1].time + Timeframe.H4.duration == end


def test_candles_30m_are_merged_from_15m() -> None:
    fake = fake_with({Timeframe.M15: history(Timeframe.M15, 8)})
    got = provider_for(fake).candles("BTCUSD", Timeframe.M30, MARCH_1, MARCH_1 + timedelta(hours=2))
    assert {r.url.params["granularity"] for r in fake.requests} == {"900"}
    assert [b.time for b in got] == [MARCH_1 + timedelta(minutes=30 * i) for i in range(4)]


def test_candles_daily_use_86400_granularity() -> None:
    fake = fake_with({Timeframe.D1: history(Timeframe.D1, 10)})
    got = provider_for(fake).candles("BTCUSD", Timeframe.D1, MARCH_1, MARCH_1 + timedelta(days=10))
    assert len(got) == 10 and fake.requests[0].url.params["granularity"] == "86400"


# --- the fake server itself -------------------------------------------------------------------------------------


def test_fake_serves_newest_first_capped_at_300() -> None:
    fake = fake_with({Timeframe.M1: history(Timeframe.M1, 400)})
    response = fake(httpx.Request("GET", "https://api.exchange.coinbase.com/products/BTC-USD/candles?granularity=60"))
    rows = response.json()
    assert len(rows) == 300 and rows[0][0] > rows[-1][0] and len(rows[0]) == 6


def test_fake_rejects_more_than_300_buckets_with_the_upstream_message() -> None:
    fake = fake_with({Timeframe.M1: history(Timeframe.M1, 400)})
    url = "https://api.exchange.coinbase.com/products/BTC-USD/candles"
    response = fake(httpx.Request("GET", url, params={"granularity": 60, "start": 0, "end": 300 * 60}))
    assert response.status_code == 400 and "exceeds 300" in response.json()["message"]


def test_fake_unknown_product_is_invalid_input() -> None:
    fake = fake_with({})
    with pytest.raises(InvalidInputError, match="NotFound"):
        provider_for(fake).candles("DOGEUSD", Timeframe.H1, MARCH_1, MARCH_1 + timedelta(hours=1))


def test_fake_unsupported_granularity_is_refused() -> None:
    fake = fake_with({})
    url = "https://api.exchange.coinbase.com/products/BTC-USD/candles?granularity=120"
    assert fake(httpx.Request("GET", url)).json() == {"message": "Unsupported granularity"}


# --- probe ------------------------------------------------------------------------------------------------------


def test_probe_asks_for_one_btc_usd_minute() -> None:
    # Given a reachable venue
    fake = fake_with({Timeframe.M1: history(Timeframe.M1, 5)})
    # When probed
    provider_for(fake).probe()
    # Then one public request for a single one-minute candle of BTC-USD was made
    (request,) = fake.requests
    assert request.url.path == "/products/BTC-USD/candles"
    assert request.url.params["granularity"] == "60"
    assert request.url.params["start"] == request.url.params["end"]


def test_probe_outage_is_transient() -> None:
    fake = fake_with({})
    fake.down = True
    with pytest.raises(TransientError):
        provider_for(fake).probe()
