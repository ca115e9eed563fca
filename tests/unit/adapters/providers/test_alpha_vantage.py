"""AlphaVantageProvider against recorded Alpha Vantage bodies and the fake server (httpx.MockTransport, no network)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ffe.adapters.providers.alpha_vantage import AlphaVantageProvider
from ffe.domain.errors import AuthError, FfeError, InvalidInputError, RateLimitedError, TransientError
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.ports import LiveProvider
from tests.fakes.alpha_vantage_server import FakeAlphaVantage

API_KEY = "SECRET-TEST-KEY"  # information_daily_limit.json echoes it, as Alpha Vantage does
REQUEST_ID = "req-av-123"
BODIES = Path(__file__).resolve().parents[3] / "fakes" / "bodies" / "alpha_vantage"
END = datetime(2030, 1, 1, tzinfo=UTC)


def t(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def provider_for(handler: Callable[[httpx.Request], httpx.Response], key: str = API_KEY) -> AlphaVantageProvider:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return AlphaVantageProvider(client, lambda: {"api_key": key})


def replay(
    name: str, seen: list[httpx.Request] | None = None, status: int = 200, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering every request with a recorded body (and a request id, like a proxy would add)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        head = {"content-type": "application/json", "x-request-id": REQUEST_ID, **(headers or {})}
        return httpx.Response(status, content=(BODIES / name).read_bytes(), headers=head)

    return handler


def params(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


def assert_full_context(error: FfeError, asset: str, timeframe: Timeframe, http_status: int | None) -> None:
    message = str(error)
    assert "provider=alpha_vantage" in message
    assert f"asset={asset}" in message
    assert f"timeframe={timeframe}" in message
    if http_status is not None:
        assert f"http_status={http_status}" in message
        assert f"request_id={REQUEST_ID}" in message
    assert API_KEY not in message
    assert API_KEY not in repr(error.context)


# --- success bodies ------------------------------------------------------------------------------


def test_candles_fx_intraday_body_returns_utc_bars_oldest_first_and_sends_documented_params() -> None:
    # Given a recorded FX_INTRADAY 60min body (newest first, UTC keys, no volume)
    seen: list[httpx.Request] = []
    provider = provider_for(replay("fx_intraday_60min.json", seen))

    # When asking for the latest EURUSD hourly page
    bars = provider.candles("EURUSD", Timeframe.H1, None, END)

    # Then the bars are oldest first, open-time keyed, in UTC, with volume 0.0
    assert [bar.time for bar in bars] == [t(2024, 1, 2, h) for h in range(4)]
    assert bars[0] == Bar(t(2024, 1, 2, 0), 1.1041, 1.1045, 1.1022, 1.1025, 0.0)
    assert bars[-1].close == 1.1035
    # And the request carries the documented parameters
    assert params(seen[0]) == {
        "function": "FX_INTRADAY",
        "from_symbol": "EUR",
        "to_symbol": "USD",
        "interval": "60min",
        "outputsize": "compact",
        "apikey": API_KEY,
    }
    assert seen[0].url.copy_with(query=None) == "https://www.alphavantage.co/query"


@pytest.mark.parametrize(
    ("timeframe", "interval"),
    [(Timeframe.M1, "1min"), (Timeframe.M5, "5min"), (Timeframe.M15, "15min"), (Timeframe.M30, "30min")],
)
def test_candles_intraday_timeframe_maps_to_documented_interval(timeframe: Timeframe, interval: str) -> None:
    # Given the fake server with no history
    fake = FakeAlphaVantage(lambda asset, timeframe: [], api_key=API_KEY)
    provider = provider_for(fake)

    # When asking for each native intraday timeframe
    bars = provider.candles("GBPUSD", timeframe, None, END)

    # Then the interval parameter is Alpha Vantage's name for it, and the empty series is no error
    assert bars == []
    assert params(fake.requests[0])["interval"] == interval
    assert (params(fake.requests[0])["from_symbol"], params(fake.requests[0])["to_symbol"]) == ("GBP", "USD")


def test_candles_fx_daily_body_opens_each_bar_at_midnight_utc() -> None:
    # Given a recorded FX_DAILY body
    seen: list[httpx.Request] = []
    provider = provider_for(replay("fx_daily.json", seen))

    # When asking for daily EURUSD
    bars = provider.candles("EURUSD", Timeframe.D1, None, END)

    # Then each date becomes a bar opening at 00:00 UTC, oldest first
    assert bars == [
        Bar(t(2024, 1, 2), 1.1038, 1.1045, 1.0941, 1.0942, 0.0),
        Bar(t(2024, 1, 3), 1.0942, 1.0953, 1.0892, 1.0921, 0.0),
    ]
    assert params(seen[0]) == {
        "function": "FX_DAILY",
        "from_symbol": "EUR",
        "to_symbol": "USD",
        "outputsize": "compact",
        "apikey": API_KEY,
    }


def test_candles_crypto_intraday_body_reads_volume_and_sends_symbol_and_market() -> None:
    # Given a recorded CRYPTO_INTRADAY 5min body (volume as a JSON number)
    seen: list[httpx.Request] = []
    provider = provider_for(replay("crypto_intraday_5min.json", seen))

    # When asking for BTCUSD 5m
    bars = provider.candles("BTCUSD", Timeframe.M5, None, END)

    # Then prices and volume are parsed and the request names symbol and market
    assert bars[0] == Bar(t(2024, 1, 2, 10, 0), 45100.0, 45200.0, 45090.0, 45180.0, 57.0)
    assert [bar.volume for bar in bars] == [57.0, 42.0, 31.0]
    assert params(seen[0]) == {
        "function": "CRYPTO_INTRADAY",
        "symbol": "BTC",
        "market": "USD",
        "interval": "5min",
        "outputsize": "compact",
        "apikey": API_KEY,
    }


@pytest.mark.parametrize("body", ["digital_currency_daily.json", "digital_currency_daily_legacy.json"])
def test_candles_digital_currency_daily_either_key_style_gives_the_same_bars(body: str) -> None:
    # Given DIGITAL_CURRENCY_DAILY in the current ("1. open") or the pre-2024 ("1a. open (USD)") style
    seen: list[httpx.Request] = []
    provider = provider_for(replay(body, seen))

    # When asking for daily BTCUSD
    bars = provider.candles("BTCUSD", Timeframe.D1, None, END)

    # Then both styles parse to the same bars, and the request has no outputsize (the function has none)
    assert bars == [
        Bar(t(2024, 1, 2), 44180.0, 45900.0, 44150.0, 45800.0, 1234.5),
        Bar(t(2024, 1, 3), 45800.0, 45950.1, 40800.0, 42850.5, 1890.54321),
    ]
    assert params(seen[0]) == {
        "function": "DIGITAL_CURRENCY_DAILY",
        "symbol": "BTC",
        "market": "USD",
        "apikey": API_KEY,
    }


def test_candles_equity_intraday_us_eastern_keys_convert_to_utc_across_dst() -> None:
    # Given TIME_SERIES_INTRADAY keyed in US/Eastern around the 2024-03-10 DST switch
    seen: list[httpx.Request] = []
    provider = provider_for(replay("equity_intraday_60min.json", seen))

    # When asking for SPY hourly bars
    bars = provider.candles("SPY", Timeframe.H1, None, END)

    # Then EST keys are +5h, EDT keys +4h (19:00 EST crosses into the next UTC day)
    assert [bar.time for bar in bars] == [t(2024, 3, 8, 20), t(2024, 3, 9, 0), t(2024, 3, 11, 13)]
    assert all(bar.time.tzinfo is UTC for bar in bars)
    assert bars[0] == Bar(t(2024, 3, 8, 20), 512.3, 513.01, 511.9, 512.66, 6543210.0)
    assert params(seen[0]) == {
        "function": "TIME_SERIES_INTRADAY",
        "symbol": "SPY",
        "interval": "60min",
        "outputsize": "compact",
        "apikey": API_KEY,
    }


def test_candles_equity_daily_body_uses_time_series_daily_and_volume() -> None:
    # Given a recorded TIME_SERIES_DAILY body
    seen: list[httpx.Request] = []
    provider = provider_for(replay("equity_daily.json", seen))

    # When asking for daily SPY
    bars = provider.candles("SPY", Timeframe.D1, None, END)

    # Then dates open at 00:00 UTC and volume is kept
    assert bars[-1] == Bar(t(2024, 3, 8), 515.46, 518.22, 511.13, 511.72, 86425460.0)
    assert params(seen[0])["function"] == "TIME_SERIES_DAILY"


def test_candles_empty_series_returns_empty_list() -> None:
    # Given a well-formed body whose time series is empty
    provider = provider_for(replay("fx_intraday_empty.json"))

    # When asking for bars
    bars = provider.candles("EURUSD", Timeframe.M5, None, END)

    # Then there is nothing, and no error (the staleness gate decides what that means)
    assert bars == []


def test_candles_start_and_end_keep_only_bars_opening_inside_the_window() -> None:
    # Given four hourly bars 00:00..03:00
    provider = provider_for(replay("fx_intraday_60min.json"))

    # When asking for [01:00, 03:00)
    bars = provider.candles("EURUSD", Timeframe.H1, t(2024, 1, 2, 1), t(2024, 1, 2, 3))

    # Then start is inclusive and end exclusive
    assert [bar.time for bar in bars] == [t(2024, 1, 2, 1), t(2024, 1, 2, 2)]


def test_candles_start_beyond_compact_reach_asks_for_full_output() -> None:
    # Given a start far older than the latest 100 hourly bars
    seen: list[httpx.Request] = []
    provider = provider_for(replay("fx_intraday_60min.json", seen))

    # When asking from there
    provider.candles("EURUSD", Timeframe.H1, t(2024, 1, 1), END)

    # Then the full series is requested
    assert params(seen[0])["outputsize"] == "full"


def test_candles_recent_start_asks_for_compact_output() -> None:
    # Given a start a few hours ago
    seen: list[httpx.Request] = []
    provider = provider_for(replay("fx_intraday_60min.json", seen))
    now = datetime.now(UTC)

    # When asking from there
    provider.candles("EURUSD", Timeframe.H1, now - timedelta(hours=5), now)

    # Then compact (the latest 100 points) is enough
    assert params(seen[0])["outputsize"] == "compact"


def test_candles_4h_fetches_60min_and_resamples_closed_buckets() -> None:
    # Given eleven hourly EURUSD bars 00:00..10:00 behind the fake server
    hourly = [Bar(t(2024, 1, 2, h), 100.0 + h, 102.0 + h, 99.0 + h, 101.0 + h) for h in range(11)]
    fake = FakeAlphaVantage(lambda asset, timeframe: hourly if timeframe is Timeframe.H1 else [], api_key=API_KEY)
    provider = provider_for(fake)

    # When asking for 4h bars up to 11:00
    bars = provider.candles("EURUSD", Timeframe.H4, None, t(2024, 1, 2, 11))

    # Then 60min was fetched and merged into the two closed 4h buckets (08:00 is still open at 11:00)
    assert params(fake.requests[0])["function"] == "FX_INTRADAY"
    assert params(fake.requests[0])["interval"] == "60min"
    assert bars == [
        Bar(t(2024, 1, 2, 0), 100.0, 105.0, 99.0, 104.0, 0.0),
        Bar(t(2024, 1, 2, 4), 104.0, 109.0, 103.0, 108.0, 0.0),
    ]


def test_candles_4h_start_mid_bucket_returns_only_buckets_opening_after_it() -> None:
    # Given twelve hourly ETHUSD bars with volume 1 each
    hourly = [Bar(t(2024, 1, 2, h), 1.0, 1.0, 1.0, 1.0, 1.0) for h in range(12)]
    provider = provider_for(FakeAlphaVantage(lambda asset, timeframe: hourly, api_key=API_KEY))

    # When the window starts inside the 00:00 bucket
    bars = provider.candles("ETHUSD", Timeframe.H4, t(2024, 1, 2, 2), t(2024, 1, 2, 12))

    # Then only whole buckets opening at or after start come back, each from four hours
    assert [(bar.time, bar.volume) for bar in bars] == [(t(2024, 1, 2, 4), 4.0), (t(2024, 1, 2, 8), 4.0)]


# --- 200 bodies that are errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error", "retry_after"),
    [
        ("error_invalid_call.json", InvalidInputError, None),
        ("error_invalid_key.json", AuthError, None),
        ("note_call_frequency.json", RateLimitedError, 60.0),
        ("information_daily_limit.json", RateLimitedError, None),
        ("information_burst.json", RateLimitedError, 1.0),
        ("information_premium.json", AuthError, None),
        ("information_demo_key.json", AuthError, None),
        ("empty_object.json", InvalidInputError, None),
        ("fx_intraday_non_numeric.json", InvalidInputError, None),
        ("truncated.txt", InvalidInputError, None),
    ],
)
def test_candles_error_body_raises_classified_error_with_full_context(
    body: str, error: type[FfeError], retry_after: float | None
) -> None:
    # Given Alpha Vantage answering HTTP 200 with an error, throttle, malformed or truncated body
    provider = provider_for(replay(body))

    # When asking for bars
    with pytest.raises(error) as raised:
        provider.candles("EURUSD", Timeframe.H1, None, END)

    # Then the error is classified, names provider/asset/timeframe/status/request id, and hides the key
    assert type(raised.value) is error
    assert_full_context(raised.value, "EURUSD", Timeframe.H1, 200)
    if isinstance(raised.value, RateLimitedError):
        assert raised.value.retry_after_seconds == retry_after


def test_candles_daily_limit_notice_echoing_the_key_is_scrubbed() -> None:
    # Given the daily-limit notice, which quotes the caller's API key back
    provider = provider_for(replay("information_daily_limit.json"))

    # When it is raised
    with pytest.raises(RateLimitedError) as raised:
        provider.candles("EURUSD", Timeframe.H1, None, END)

    # Then the provider's words survive but the key does not
    assert "25 requests per day" in str(raised.value)
    assert "***" in str(raised.value)
    assert API_KEY not in str(raised.value)


def test_candles_malformed_payload_says_so() -> None:
    # Given a 200 with neither a series nor a message
    provider = provider_for(replay("empty_object.json"))

    # When asking for bars
    with pytest.raises(InvalidInputError, match="malformed payload"):
        provider.candles("EURUSD", Timeframe.H1, None, END)


# --- HTTP-level failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (401, {}, AuthError),
        (403, {}, AuthError),
        (429, {"Retry-After": "30"}, RateLimitedError),
        (500, {}, TransientError),
        (503, {}, TransientError),
    ],
)
def test_candles_http_error_status_raises_classified_error_with_full_context(
    status: int, headers: dict[str, str], error: type[FfeError]
) -> None:
    # Given Alpha Vantage (or its CDN) answering with an HTTP error
    provider = provider_for(replay("error_invalid_call.json", status=status, headers=headers))

    # When asking for bars
    with pytest.raises(error) as raised:
        provider.candles("BTCUSD", Timeframe.M5, None, END)

    # Then it is classified by status, with full context and no key
    assert type(raised.value) is error
    assert_full_context(raised.value, "BTCUSD", Timeframe.M5, status)
    if status == 429:
        assert isinstance(raised.value, RateLimitedError)
        assert raised.value.retry_after_seconds == 30


def test_candles_read_timeout_raises_transient_error_without_the_key() -> None:
    # Given a transport that times out
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out reading", request=request)

    provider = provider_for(handler)

    # When asking for bars
    with pytest.raises(TransientError) as raised:
        provider.candles("SPY", Timeframe.D1, None, END)

    # Then it is retryable and names provider, asset and timeframe (there is no response to cite)
    assert type(raised.value) is TransientError
    assert_full_context(raised.value, "SPY", Timeframe.D1, None)


def test_candles_unknown_asset_raises_invalid_input_before_any_request() -> None:
    # Given a provider
    seen: list[httpx.Request] = []
    provider = provider_for(replay("fx_daily.json", seen))

    # When asking for a symbol outside the universe
    with pytest.raises(InvalidInputError, match="provider=alpha_vantage"):
        provider.candles("DOGEUSD", Timeframe.D1, None, END)

    # Then nothing was sent
    assert seen == []


# --- credentials, protocol, probe ----------------------------------------------------------------


def test_provider_credentials_read_per_call_and_never_stored() -> None:
    # Given credentials that rotate between calls
    keys = iter(["first-key", "second-key"])
    seen: list[httpx.Request] = []
    client = httpx.Client(transport=httpx.MockTransport(replay("fx_daily.json", seen)))
    provider = AlphaVantageProvider(client, lambda: {"api_key": next(keys)})

    # When making two calls
    provider.candles("EURUSD", Timeframe.D1, None, END)
    provider.candles("EURUSD", Timeframe.D1, None, END)

    # Then each used the key current at call time, and none is kept on the provider
    assert [params(request)["apikey"] for request in seen] == ["first-key", "second-key"]
    assert not any(key in repr(vars(provider)) for key in ("first-key", "second-key"))


def test_provider_missing_api_key_raises_auth_error() -> None:
    # Given credentials without an api_key
    provider = provider_for(replay("fx_daily.json"), key="")

    # When asking for bars
    with pytest.raises(AuthError, match="api_key"):
        provider.candles("EURUSD", Timeframe.D1, None, END)


def test_provider_satisfies_live_provider_and_supports_every_asset_class() -> None:
    # Given the provider
    provider: LiveProvider = provider_for(replay("fx_daily.json"))

    # Then it covers FX, crypto and equities
    assert provider.name == "alpha_vantage"
    assert all(provider.supports(asset_class) for asset_class in AssetClass)


def test_probe_exchange_rate_body_passes() -> None:
    # Given a recorded CURRENCY_EXCHANGE_RATE body
    seen: list[httpx.Request] = []
    provider = provider_for(replay("exchange_rate.json", seen))

    # When probing
    provider.probe()

    # Then one small authenticated request was made
    assert params(seen[0]) == {
        "function": "CURRENCY_EXCHANGE_RATE",
        "from_currency": "EUR",
        "to_currency": "USD",
        "apikey": API_KEY,
    }


def test_probe_bad_key_raises_auth_error() -> None:
    # Given the fake server and a wrong key
    provider = provider_for(FakeAlphaVantage(lambda asset, timeframe: [], api_key=API_KEY), key="wrong-key")

    # When probing
    with pytest.raises(AuthError) as raised:
        provider.probe()

    # Then the key is rejected, and not echoed
    assert "wrong-key" not in str(raised.value)


# --- the fake server ------------------------------------------------------------------------------


def history(timeframe: Timeframe, count: int, start: datetime, price: float, volume: float) -> list[Bar]:
    step = timeframe.duration
    return [
        Bar(start + i * step, price + i, price + i + 0.5, price + i - 0.25, price + i + 0.125, volume + i)
        for i in range(count)
    ]


def serve(bars: Sequence[Bar]) -> Callable[[str, Timeframe], Sequence[Bar]]:
    return lambda asset, timeframe: bars


@pytest.mark.parametrize(
    ("asset", "timeframe", "function", "has_volume"),
    [
        ("EURUSD", Timeframe.M15, "FX_INTRADAY", False),
        ("GBPUSD", Timeframe.D1, "FX_DAILY", False),
        ("ETHUSD", Timeframe.M1, "CRYPTO_INTRADAY", True),
        ("BTCUSD", Timeframe.D1, "DIGITAL_CURRENCY_DAILY", True),
        ("AAPL", Timeframe.M30, "TIME_SERIES_INTRADAY", True),
        ("MSFT", Timeframe.D1, "TIME_SERIES_DAILY", True),
    ],
)
def test_fake_server_round_trips_bars_through_the_provider(
    asset: str, timeframe: Timeframe, function: str, has_volume: bool
) -> None:
    # Given the fake server holding 150 bars (the 30m and daily ones span the 2024-03-10 US/Eastern DST switch)
    bars = history(timeframe, 150, t(2024, 3, 9), 100.0, 7.0)
    fake = FakeAlphaVantage(serve(bars), api_key=API_KEY)
    provider = provider_for(fake)

    # When the provider asks for the latest page, then for everything from the first bar
    latest = provider.candles(asset, timeframe, None, END)
    everything = provider.candles(asset, timeframe, bars[0].time, END)

    # Then compact is the 100 newest bars (DIGITAL_CURRENCY_DAILY has no compact) and full is the whole
    # history, both identical to what was served
    expected = bars if has_volume else [Bar(b.time, b.open, b.high, b.low, b.close, 0.0) for b in bars]
    assert latest == (expected if function == "DIGITAL_CURRENCY_DAILY" else expected[-100:])
    assert everything == expected
    assert params(fake.requests[0])["function"] == function


def test_fake_server_down_rate_limited_and_unknown_symbol_map_to_errors() -> None:
    # Given the fake server
    fake = FakeAlphaVantage(serve(history(Timeframe.H1, 3, t(2024, 1, 2), 1.0, 0.0)), api_key=API_KEY)
    provider = provider_for(fake)

    # When it is down, then throttling
    fake.down = True
    with pytest.raises(TransientError):
        provider.candles("EURUSD", Timeframe.H1, None, END)
    fake.down, fake.rate_limited = False, True
    with pytest.raises(RateLimitedError) as limited:
        provider.candles("EURUSD", Timeframe.H1, None, END)

    # Then each is classified, and a throttle suggests waiting a minute
    assert limited.value.retry_after_seconds == 60
    assert len(fake.requests) == 2


def test_fake_server_symbol_without_history_answers_invalid_api_call() -> None:
    # Given a fake whose history lookup fails for the asset
    def bars(asset: str, timeframe: Timeframe) -> Sequence[Bar]:
        raise KeyError(asset)

    provider = provider_for(FakeAlphaVantage(bars, api_key=API_KEY))

    # When asking for it
    with pytest.raises(InvalidInputError, match="Invalid API call"):
        provider.candles("USDJPY", Timeframe.H1, None, END)


def test_fake_server_probe_answers_exchange_rate() -> None:
    # Given the fake server with a key that matches
    fake = FakeAlphaVantage(serve(history(Timeframe.H1, 2, t(2024, 1, 2), 1.09, 0.0)), api_key=API_KEY)

    # When probing through it
    provider_for(fake).probe()

    # Then it answered the documented function
    assert params(fake.requests[0])["function"] == "CURRENCY_EXCHANGE_RATE"


def test_request_urls_carrying_the_key_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import httpx

    from ffe.adapters.providers import base

    # Given httpx's own request logging at its most verbose setting for the root logger
    caplog.set_level(logging.DEBUG)
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})))
    # When a key-bearing request is made through the shared module's settings
    base.get_json(client, base.Call("alpha_vantage"), "https://www.alphavantage.co/query", params={"apikey": "SECRET"})
    # Then nothing logged it
    assert "SECRET" not in caplog.text
