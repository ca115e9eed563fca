"""OandaProvider against recorded OANDA v20 bodies and the fake server (httpx.MockTransport only): what is
particular to OANDA. What every LiveProvider must do is in tests/unit/adapters/contracts/test_provider_contract.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ffe.adapters.providers.oanda import OandaProvider
from ffe.domain.errors import AuthError, FfeError, InvalidInputError
from ffe.domain.models import AssetClass, Bar, Timeframe
from tests.fakes.oanda_server import FakeOandaMarketData, recorded

MARCH_1 = datetime(2024, 3, 1, tzinfo=UTC)
NOW = MARCH_1 + timedelta(hours=4, minutes=20)  # the recorded page was taken while the 04:00 candle was forming
CLOCK = NOW + timedelta(seconds=30)  # this machine's clock when the tests ask for [.., NOW)
TOKEN = "s3cr3t-practice-token-9f8e7d"
ACCOUNT = "101-001-1234567-001"
Handler = Callable[[httpx.Request], httpx.Response]


class Venue:
    """A handler that records each request and answers the same JSON body with a RequestID."""

    def __init__(self, status: int, body: bytes, **headers: str) -> None:
        self.status, self.body = status, body
        self.headers = {"content-type": "application/json", "RequestID": "24716403001425966", **headers}
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return httpx.Response(self.status, content=self.body, headers=self.headers)


def credentials(**overrides: str) -> Callable[[], Mapping[str, str]]:
    values = {"token": TOKEN, "account_id": ACCOUNT, "environment": "practice"} | overrides
    return lambda: {k: v for k, v in values.items() if v}


def provider_for(
    handler: Handler, creds: Callable[[], Mapping[str, str]] | None = None, now: datetime = CLOCK
) -> OandaProvider:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return OandaProvider(client, creds or credentials(), clock=lambda: now)


def history(timeframe: Timeframe, count: int, first: datetime = MARCH_1) -> list[Bar]:
    """``count`` consecutive bars from ``first``, with prices OANDA would quote to five places."""
    bars = []
    for i in range(count):
        price = round(1.08 + (i % 50) * 0.0001, 5)
        bars.append(Bar(first + i * timeframe.duration, price, price + 0.0004, price - 0.0003, price + 0.0001, 100 + i))
    return bars


def fake_with(bars_by_timeframe: dict[Timeframe, list[Bar]], token: str = TOKEN) -> FakeOandaMarketData:
    def bars(asset: str, timeframe: Timeframe) -> list[Bar]:
        if asset not in ("EURUSD", "GBPUSD", "USDJPY"):
            raise KeyError(asset)
        return bars_by_timeframe.get(timeframe, [])

    return FakeOandaMarketData(bars, token=token, account_id=ACCOUNT)


def hours(n: float) -> datetime:
    return MARCH_1 + timedelta(hours=n)


# --- success path against the recorded body ---------------------------------------------------------------------


def test_candles_recorded_page_maps_mid_prices_oldest_first_in_utc() -> None:
    # Given the recorded EUR_USD H1 page whose last candle is still forming
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    # When [00:00, now) is asked for
    bars = provider_for(handler).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    # Then the mid prices map onto bars oldest first in UTC, floats throughout, the forming one kept last
    assert [b.time for b in bars] == [hours(h) for h in range(5)]
    assert all(b.time.tzinfo is UTC for b in bars)
    assert bars[0] == Bar(MARCH_1, open=1.08045, high=1.08092, low=1.08021, close=1.08077, volume=1021.0)
    assert bars[-1] == Bar(hours(4), 1.08040, 1.08066, 1.08025, 1.08058, 412.0)
    assert all(isinstance(v, float) for b in bars for v in (b.open, b.high, b.low, b.close, b.volume))


def test_candles_request_uses_the_documented_endpoint_parameters_and_bearer_token() -> None:
    # Given a venue answering the recorded page
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    # When a window that has already passed is asked for
    provider_for(handler).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    # Then one GET went to the practice host with price=M, the granularity, and an RFC3339 from/to range
    (request,) = handler.seen
    assert request.method == "GET"
    assert str(request.url.copy_with(query=None)) == "https://api-fxpractice.oanda.com/v3/instruments/EUR_USD/candles"
    assert dict(request.url.params) == {
        "price": "M",
        "granularity": "H1",
        "from": "2024-03-01T00:00:00Z",
        "to": "2024-03-01T04:20:00Z",
    }
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept-Datetime-Format"] == "RFC3339"


@pytest.mark.parametrize("environment", ["live", "Live"])
def test_candles_live_environment_uses_the_fxtrade_host(environment: str) -> None:
    # Given live credentials
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    # When candles are asked for
    provider_for(handler, credentials(environment=environment)).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    # Then the request went to the fxTrade (live) host
    assert handler.seen[0].url.host == "api-fxtrade.oanda.com"


def test_candles_environment_defaults_to_practice() -> None:
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    provider_for(handler, credentials(environment="")).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    assert handler.seen[0].url.host == "api-fxpractice.oanda.com"


def test_candles_unknown_environment_is_invalid_input_without_a_request() -> None:
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    with pytest.raises(InvalidInputError, match="environment"):
        provider_for(handler, credentials(environment="sandbox")).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    assert handler.seen == []


def test_candles_read_credentials_at_call_time() -> None:
    # Given credentials that rotate between two calls
    current = {"token": "first-token", "account_id": ACCOUNT}
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    provider = provider_for(handler, lambda: dict(current))
    # When the secret changes between calls
    provider.candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    current["token"] = "second-token"
    provider.candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    # Then each request carried the token current at the time
    assert [r.headers["Authorization"] for r in handler.seen] == ["Bearer first-token", "Bearer second-token"]


def test_candles_window_ending_in_the_future_sends_count_instead_of_to() -> None:
    # Given an end later than this machine's clock (OANDA refuses a future 'to')
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    # When asked
    bars = provider_for(handler).candles("EURUSD", Timeframe.H1, MARCH_1, hours(5))
    # Then the request has from + count and no 'to', and bars still stop before end
    params = handler.seen[0].url.params
    assert "to" not in params and params["from"] == "2024-03-01T00:00:00Z" and params["count"] == "6"
    assert bars[-1].time == hours(4)


def test_candles_end_within_clock_skew_of_now_sends_count_instead_of_to() -> None:
    # Given an end only two seconds before this machine's clock (OANDA's clock may be behind ours)
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    # When asked
    provider_for(handler, now=NOW + timedelta(seconds=2)).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    # Then no 'to' is sent
    assert "to" not in handler.seen[0].url.params and handler.seen[0].url.params["count"] == "6"


def test_candles_without_start_ask_for_the_last_500_up_to_end() -> None:
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    bars = provider_for(handler).candles("EURUSD", Timeframe.H1, None, hours(4))
    params = handler.seen[0].url.params
    assert params["count"] == "500" and params["to"] == "2024-03-01T04:00:00Z" and "from" not in params
    assert [b.time for b in bars] == [hours(h) for h in range(4)]  # the 04:00 row is not before end


def test_candles_without_start_and_end_in_the_future_ask_for_the_latest_500() -> None:
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    provider_for(handler).candles("EURUSD", Timeframe.H1, None, hours(6))
    assert dict(handler.seen[0].url.params) == {"price": "M", "granularity": "H1", "count": "500"}


def test_candles_daily_are_aligned_to_utc_midnight() -> None:
    handler = Venue(200, recorded("candles_empty.json"))
    provider_for(handler, now=MARCH_1 + timedelta(days=30)).candles(
        "EURUSD", Timeframe.D1, MARCH_1, MARCH_1 + timedelta(days=10)
    )
    params = handler.seen[0].url.params
    assert params["granularity"] == "D" and params["dailyAlignment"] == "0" and params["alignmentTimezone"] == "UTC"


@pytest.mark.parametrize(
    ("timeframe", "granularity"),
    [
        (Timeframe.M1, "M1"),
        (Timeframe.M5, "M5"),
        (Timeframe.M15, "M15"),
        (Timeframe.M30, "M30"),
        (Timeframe.H1, "H1"),
        (Timeframe.H4, "H4"),
    ],
)
def test_candles_every_timeframe_has_a_native_granularity(timeframe: Timeframe, granularity: str) -> None:
    handler = Venue(200, recorded("candles_empty.json"))
    provider_for(handler).candles("EURUSD", timeframe, MARCH_1, MARCH_1 + timeframe.duration * 10)
    assert handler.seen[0].url.params["granularity"] == granularity
    assert "dailyAlignment" not in handler.seen[0].url.params


def test_candles_keep_complete_candles_and_only_a_forming_last_one() -> None:
    # Given a page whose middle candle is flagged incomplete (and the last one too)
    body = json.loads(recorded("candles_eur_usd_h1.json"))
    body["candles"][2]["complete"] = False
    handler = Venue(200, json.dumps(body).encode())
    # When asked
    bars = provider_for(handler).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    # Then the incomplete middle candle is dropped and the forming last one kept
    assert [b.time for b in bars] == [hours(0), hours(1), hours(3), hours(4)]


def test_candles_empty_list_gives_no_bars() -> None:
    handler = Venue(200, recorded("candles_empty.json"))
    assert provider_for(handler).candles("EURUSD", Timeframe.H1, MARCH_1, NOW) == []


def test_candles_jpy_pair_maps_to_its_instrument() -> None:
    handler = Venue(200, b'{"instrument": "USD_JPY", "granularity": "H1", "candles": []}')
    provider_for(handler).candles("USDJPY", Timeframe.H1, MARCH_1, NOW)
    assert handler.seen[0].url.path == "/v3/instruments/USD_JPY/candles"


# --- asset and input checks -------------------------------------------------------------------------------------


def test_supports_fx_only() -> None:
    provider = provider_for(Venue(200, b"{}"))
    assert provider.supports(AssetClass.FX)
    assert not provider.supports(AssetClass.CRYPTO) and not provider.supports(AssetClass.EQUITY)


def test_candles_missing_token_is_an_auth_error_without_a_request() -> None:
    handler = Venue(200, recorded("candles_eur_usd_h1.json"))
    with pytest.raises(AuthError, match="no token"):
        provider_for(handler, credentials(token="")).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    assert handler.seen == []


# --- errors ---------------------------------------------------------------------------------------------------


def test_candles_401_quotes_the_documented_wording() -> None:
    handler = Venue(401, recorded("error_unauthorized.json"))
    with pytest.raises(AuthError, match="Insufficient authorization to perform request"):
        provider_for(handler).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)


def _with_first_candle(change: Callable[[dict[str, object]], object]) -> bytes:
    body = json.loads(recorded("candles_eur_usd_h1.json"))
    body["candles"][0] = change(body["candles"][0])
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "body",
    [
        _with_first_candle(lambda c: {**c, "mid": {**c["mid"], "h": "one point oh eight"}}),  # type: ignore[dict-item]
        _with_first_candle(lambda c: {k: v for k, v in c.items() if k != "mid"}),
        _with_first_candle(lambda c: {**c, "mid": {"o": "1.08", "h": "1.09", "l": "1.07"}}),  # no close
        _with_first_candle(lambda c: {**c, "time": "yesterday"}),
        _with_first_candle(lambda c: {**c, "time": "2024-03-01T00:00:00"}),  # no offset
        _with_first_candle(lambda c: {**c, "complete": "yes"}),
        _with_first_candle(lambda c: {**c, "volume": "lots"}),
        _with_first_candle(lambda c: ["2024-03-01T00:00:00Z", 1.08, 1.09, 1.07, 1.08]),
        b'{"instrument": "EUR_USD", "granularity": "H1"}',
        b"[]",
    ],
)
def test_candles_malformed_candle_is_invalid_input_with_context(body: bytes) -> None:
    handler = Venue(200, body)
    with pytest.raises(InvalidInputError, match=r"malformed candle at index 0|without a 'candles' list") as caught:
        provider_for(handler).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    assert {"provider", "asset", "timeframe", "http_status", "request_id"} <= set(caught.value.context)


def _raise(failure: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    return handler


@pytest.mark.parametrize(
    "handler",
    [
        Venue(401, recorded("error_unauthorized.json")),
        Venue(403, recorded("error_forbidden.json")),
        Venue(400, recorded("error_invalid_instrument.json")),
        Venue(429, b'{"errorMessage": "Too many requests"}', **{"Retry-After": "30"}),
        Venue(500, b'{"errorMessage": "Internal Server Error"}'),
        Venue(200, recorded("candles_eur_usd_h1.json")[:100]),
        Venue(200, _with_first_candle(lambda c: {**c, "volume": "lots"})),
        _raise(httpx.ReadTimeout("read timed out")),
        _raise(httpx.ConnectError("[Errno 111] Connection refused")),
    ],
)
def test_errors_never_reveal_the_token(handler: Handler) -> None:
    # Given any failure of candles or probe
    calls: tuple[Callable[[OandaProvider], object], ...] = (
        lambda p: p.candles("EURUSD", Timeframe.H1, MARCH_1, NOW),
        lambda p: p.probe(),
    )
    for call in calls:
        # When the call fails
        with pytest.raises(FfeError) as caught:
            call(provider_for(handler))
        # Then neither the error, its context nor anything it chains to contains the token
        error: BaseException | None = caught.value
        while error is not None:
            assert TOKEN not in str(error) and TOKEN not in repr(error.args)
            error = error.__cause__ or error.__context__
        assert TOKEN not in repr(caught.value.context)


# --- pagination and the fake server -----------------------------------------------------------------------------


def test_candles_beyond_5000_are_paged_in_ranges_the_venue_accepts() -> None:
    # Given 12000 one-minute bars on the fake venue (which refuses ranges of more than 5000 candles)
    bars = history(Timeframe.M1, 12_000)
    fake = fake_with({Timeframe.M1: bars})
    end = MARCH_1 + timedelta(minutes=12_000)
    # When all of them are asked for, long after they closed
    got = provider_for(fake, now=end + timedelta(days=1)).candles("EURUSD", Timeframe.M1, MARCH_1, end)
    # Then three from/to requests bring every bar back exactly once, oldest first
    assert got == bars
    assert len(fake.requests) == 3
    assert all("to" in r.url.params and "count" not in r.url.params for r in fake.requests)


def test_candles_paged_window_ending_now_finishes_with_count() -> None:
    bars = history(Timeframe.M1, 6_000)
    fake = fake_with({Timeframe.M1: bars})
    end = MARCH_1 + timedelta(minutes=6_000)
    got = provider_for(fake, now=end - timedelta(seconds=1)).candles("EURUSD", Timeframe.M1, MARCH_1, end)
    assert got == bars
    assert ["to" in r.url.params for r in fake.requests] == [True, False]


def test_fake_round_trip_of_the_latest_page_keeps_the_forming_candle_last() -> None:
    # Given 600 hourly bars, the last one opening 20 minutes before "now"
    bars = history(Timeframe.H1, 600)
    now = bars[-1].time + timedelta(minutes=20)
    fake = fake_with({Timeframe.H1: bars})
    # When the most recent page up to now is asked for
    got = provider_for(fake, now=now).candles("EURUSD", Timeframe.H1, None, now)
    # Then it is the last 500, the forming one included for the router to drop
    assert got == bars[-500:]


def test_fake_bad_token_is_an_auth_error() -> None:
    fake = fake_with({Timeframe.H1: history(Timeframe.H1, 5)}, token="the-right-token")
    with pytest.raises(AuthError, match="Insufficient authorization") as caught:
        provider_for(fake).candles("EURUSD", Timeframe.H1, MARCH_1, NOW)
    assert caught.value.context["http_status"] == 401 and caught.value.context["request_id"]


def test_fake_unknown_instrument_is_invalid_input() -> None:
    fake = fake_with({})
    with pytest.raises(InvalidInputError, match="Invalid value specified for 'instrument'"):
        provider_for(fake).candles("AUDNZD", Timeframe.H1, MARCH_1, NOW)


def test_fake_refuses_count_with_both_from_and_to() -> None:
    fake = fake_with({Timeframe.H1: history(Timeframe.H1, 5)})
    params = {"granularity": "H1", "from": "2024-03-01T00:00:00Z", "to": "2024-03-01T04:00:00Z", "count": "5"}
    url = "https://api-fxpractice.oanda.com/v3/instruments/EUR_USD/candles"
    response = fake(httpx.Request("GET", url, params=params, headers={"Authorization": f"Bearer {TOKEN}"}))
    assert response.status_code == 400 and response.headers["RequestID"]


def test_fake_marks_candles_closing_after_to_incomplete() -> None:
    fake = fake_with({Timeframe.H1: history(Timeframe.H1, 5)})
    params = {"granularity": "H1", "from": "2024-03-01T00:00:00Z", "to": "2024-03-01T02:30:00Z"}
    url = "https://api-fxtrade.oanda.com/v3/instruments/EUR_USD/candles"
    body = fake(httpx.Request("GET", url, params=params, headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert [c["complete"] for c in body["candles"]] == [True, True, False]
    assert body["candles"][0]["time"] == "2024-03-01T00:00:00.000000000Z"
    assert isinstance(body["candles"][0]["mid"]["o"], str) and isinstance(body["candles"][0]["volume"], int)


# --- probe ------------------------------------------------------------------------------------------------------


def test_probe_reads_the_account_summary_with_the_bearer_token() -> None:
    # Given the recorded account summary
    handler = Venue(200, recorded("account_summary.json"))
    # When probed
    provider_for(handler).probe()
    # Then one GET went to the account's summary on the practice host, with the token
    (request,) = handler.seen
    assert str(request.url) == f"https://api-fxpractice.oanda.com/v3/accounts/{ACCOUNT}/summary"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("status", "body"), [(401, recorded("error_unauthorized.json")), (403, recorded("error_forbidden.json"))]
)
def test_probe_rejected_credentials_are_an_auth_error(status: int, body: bytes) -> None:
    handler = Venue(status, body)
    with pytest.raises(AuthError) as caught:
        provider_for(handler).probe()
    assert caught.value.context["http_status"] == status and caught.value.context["provider"] == "oanda"
    assert caught.value.context["request_id"] == "24716403001425966"


def test_probe_without_account_id_is_an_auth_error_without_a_request() -> None:
    handler = Venue(200, recorded("account_summary.json"))
    with pytest.raises(AuthError, match="account_id"):
        provider_for(handler, credentials(account_id="")).probe()
    assert handler.seen == []


def test_probe_body_without_account_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="account"):
        provider_for(Venue(200, b'{"lastTransactionID": "3"}')).probe()


def test_probe_against_the_fake_succeeds_and_fails_on_the_wrong_account() -> None:
    fake = fake_with({})
    provider_for(fake, credentials(environment="live")).probe()
    assert fake.requests[0].url.host == "api-fxtrade.oanda.com"
    with pytest.raises(AuthError, match="forbidden"):
        provider_for(fake, credentials(account_id="101-001-7654321-001")).probe()
    with pytest.raises(AuthError, match="Insufficient authorization"):
        provider_for(fake, credentials(token="wrong")).probe()
