"""What every ``ffe.domain.ports.LiveProvider`` must do, run against each implementation with recorded bodies and
through its fake server (httpx.MockTransport only). What is particular to one venue (its endpoints, paging,
credentials, body quirks) stays in tests/unit/adapters/providers/.

Alpha Vantage answers most errors inside HTTP 200 bodies, always asks (even for an empty window), serves whole
compact/full pages and supports every asset class, so it takes the contract's error and transport questions here
and answers the rest in its own module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ffe.adapters.providers.alpha_vantage import AlphaVantageProvider
from ffe.adapters.providers.coinbase import CoinbaseProvider
from ffe.adapters.providers.oanda import OandaProvider
from ffe.domain.errors import AuthError, FfeError, InvalidInputError, RateLimitedError, TransientError
from ffe.domain.models import Bar, Timeframe
from ffe.domain.ports import LiveProvider
from tests.fakes import coinbase_server, oanda_server
from tests.fakes.alpha_vantage_server import FakeAlphaVantage
from tests.fakes.coinbase_server import FakeCoinbaseMarketData
from tests.fakes.oanda_server import FakeOandaMarketData

Handler = Callable[[httpx.Request], httpx.Response]
MARCH_1 = datetime(2024, 3, 1, tzinfo=UTC)
OANDA_NOW = MARCH_1 + timedelta(hours=4, minutes=20)  # the recorded OANDA page was taken while 04:00 was forming
OANDA_CLOCK = OANDA_NOW + timedelta(seconds=30)
OANDA_TOKEN = "s3cr3t-practice-token-9f8e7d"
OANDA_ACCOUNT = "101-001-1234567-001"
AV_KEY = "SECRET-TEST-KEY"
AV_BODIES = Path(__file__).resolve().parents[3] / "fakes" / "bodies" / "alpha_vantage"
AV_END = datetime(2030, 1, 1, tzinfo=UTC)


class Canned:
    """A handler that records each request and answers the same body with the venue's request id header."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status, self.body, self.headers = status, body, {"content-type": "application/json", **headers}
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return httpx.Response(self.status, content=self.body, headers=self.headers)


def hours(n: float) -> datetime:
    return MARCH_1 + timedelta(hours=n)


@dataclass(frozen=True)
class Venue:
    """One LiveProvider implementation and what the contract needs to ask it."""

    name: str
    provider: Callable[[Handler], LiveProvider]
    asset: str
    start: datetime | None
    end: datetime
    request_id_header: str
    request_id: str
    secrets: tuple[str, ...]
    errors: Sequence[tuple[int, bytes, type[FfeError]]]  # (HTTP status, body, the error it must be)
    rate_limited: bytes  # a 429 body
    rate_limited_words: str | None  # what the error quotes of the body, where it says anything
    truncated: bytes  # a 200 body cut off mid-JSON
    history: Callable[[int], list[Bar]]  # ``count`` hourly bars from MARCH_1 with prices the venue can quote
    fake: Callable[[list[Bar]], Any]  # its fake server serving these bars for its assets: a handler with .down
    hosts: tuple[str, ...]  # where the fake listens
    fake_request_ids: bool  # whether the fake's answers carry a request id
    down_words: str | None = None
    unsupported: tuple[str, ...] = ()  # assets of a class it does not support, and the words of the refusal
    unsupported_words: str | None = None
    page: bytes | None = None  # a recorded hourly page of ``asset`` from MARCH_1 00:00 to 04:00
    skips_empty_window: bool = False
    round_trip: tuple[str, str] | None = None  # (an asset of the fake's, the path its candles are asked at)
    clock: Callable[[Handler, datetime], LiveProvider] | None = None  # the provider with this machine clock

    def canned(self, status: int, body: bytes, **headers: str) -> Canned:
        return Canned(status, body, {self.request_id_header: self.request_id, **headers})

    def ask(self, provider: LiveProvider) -> list[Bar]:
        return provider.candles(self.asset, Timeframe.H1, self.start, self.end)


def _hourly(count: int, price: float) -> list[Bar]:
    return [
        Bar(hours(i), price + i, price + i + 0.5, price + i - 0.25, price + i + 0.125, 1.0 + i) for i in range(count)
    ]


def _half(body: bytes) -> bytes:
    return body[: len(body) // 2]


def _serving(bars: list[Bar], *assets: str) -> Callable[[str, Timeframe], list[Bar]]:
    """A fake's history: ``bars`` for each of ``assets`` at any timeframe; any other asset is unknown."""

    def history(asset: str, timeframe: Timeframe) -> list[Bar]:
        if asset not in assets:
            raise KeyError(asset)
        return bars

    return history


def _oanda_provider(handler: Handler, now: datetime = OANDA_CLOCK) -> LiveProvider:
    credentials = {"token": OANDA_TOKEN, "account_id": OANDA_ACCOUNT, "environment": "practice"}
    return OandaProvider(httpx.Client(transport=httpx.MockTransport(handler)), lambda: credentials, clock=lambda: now)


COINBASE = Venue(
    name="coinbase",
    provider=lambda handler: CoinbaseProvider(httpx.Client(transport=httpx.MockTransport(handler))),
    asset="BTCUSD",
    start=MARCH_1,
    end=hours(5),
    request_id_header="x-request-id",
    request_id="req-7f3a",
    secrets=(),
    errors=[
        (401, b'{"message": "Unauthorized."}', AuthError),
        (403, b'{"message": "Forbidden"}', AuthError),
        (404, coinbase_server.recorded("error_not_found.json"), InvalidInputError),
        (400, coinbase_server.recorded("error_unsupported_granularity.json"), InvalidInputError),
        (400, coinbase_server.recorded("error_too_many_candles.json"), InvalidInputError),
        (429, coinbase_server.recorded("error_rate_limited.json"), RateLimitedError),
        (500, b'{"message": "Internal server error"}', TransientError),
        (503, b"<html>503 Service Temporarily Unavailable</html>", TransientError),
    ],
    rate_limited=coinbase_server.recorded("error_rate_limited.json"),
    rate_limited_words="Public rate limit exceeded",
    truncated=_half(coinbase_server.recorded("candles_btc_usd_3600.json")),
    history=lambda count: _hourly(count, 60_000.0),
    fake=lambda bars: FakeCoinbaseMarketData(_serving(bars, "BTCUSD", "ETHUSD")),
    hosts=(FakeCoinbaseMarketData.host,),
    fake_request_ids=True,
    down_words="service unavailable",
    unsupported=("EURUSD", "SPY"),
    unsupported_words="crypto only",
    page=coinbase_server.recorded("candles_btc_usd_3600.json"),
    skips_empty_window=True,
    round_trip=("ETHUSD", "/products/ETH-USD/candles"),
)

OANDA = Venue(
    name="oanda",
    provider=_oanda_provider,
    asset="EURUSD",
    start=MARCH_1,
    end=OANDA_NOW,
    request_id_header="RequestID",
    request_id="24716403001425966",
    secrets=(OANDA_TOKEN,),
    errors=[
        (401, oanda_server.recorded("error_unauthorized.json"), AuthError),
        (403, oanda_server.recorded("error_forbidden.json"), AuthError),
        (400, oanda_server.recorded("error_invalid_instrument.json"), InvalidInputError),
        (400, oanda_server.recorded("error_to_in_future.json"), InvalidInputError),
        (404, b'{"errorMessage": "Not Found"}', InvalidInputError),
        (429, b'{"errorMessage": "Too many requests"}', RateLimitedError),
        (500, b'{"errorMessage": "Internal Server Error"}', TransientError),
        (503, b"<html>503 Service Unavailable</html>", TransientError),
    ],
    rate_limited=b'{"errorMessage": "Too many requests"}',
    rate_limited_words="Too many requests",
    truncated=_half(oanda_server.recorded("candles_eur_usd_h1.json")),
    history=lambda count: [
        Bar(hours(i), p, p + 0.0004, p - 0.0003, p + 0.0001, 100 + i)
        for i, p in ((i, round(1.08 + (i % 50) * 0.0001, 5)) for i in range(count))
    ],
    fake=lambda bars: FakeOandaMarketData(
        _serving(bars, "EURUSD", "GBPUSD", "USDJPY"), token=OANDA_TOKEN, account_id=OANDA_ACCOUNT
    ),
    hosts=FakeOandaMarketData.hosts,
    fake_request_ids=True,
    unsupported=("BTCUSD", "AAPL"),
    unsupported_words="fx only",
    page=oanda_server.recorded("candles_eur_usd_h1.json"),
    skips_empty_window=True,
    round_trip=("GBPUSD", "/v3/instruments/GBP_USD/candles"),
    clock=lambda handler, now: _oanda_provider(handler, now),
)

ALPHA_VANTAGE = Venue(
    name="alpha_vantage",
    provider=lambda handler: AlphaVantageProvider(
        httpx.Client(transport=httpx.MockTransport(handler)), lambda: {"api_key": AV_KEY}
    ),
    asset="EURUSD",
    start=None,
    end=AV_END,
    request_id_header="x-request-id",
    request_id="req-av-123",
    secrets=(AV_KEY,),
    errors=[
        (401, (AV_BODIES / "error_invalid_call.json").read_bytes(), AuthError),
        (403, (AV_BODIES / "error_invalid_call.json").read_bytes(), AuthError),
        (429, (AV_BODIES / "error_invalid_call.json").read_bytes(), RateLimitedError),
        (500, (AV_BODIES / "error_invalid_call.json").read_bytes(), TransientError),
        (503, (AV_BODIES / "error_invalid_call.json").read_bytes(), TransientError),
    ],
    rate_limited=(AV_BODIES / "error_invalid_call.json").read_bytes(),
    rate_limited_words=None,
    truncated=(AV_BODIES / "truncated.txt").read_bytes(),
    history=lambda count: _hourly(count, 1.08),
    fake=lambda bars: FakeAlphaVantage(_serving(bars, "EURUSD"), api_key=AV_KEY),
    hosts=(FakeAlphaVantage.host,),
    fake_request_ids=False,
)

VENUES = [COINBASE, OANDA, ALPHA_VANTAGE]


def each(venues: Sequence[Venue] = VENUES) -> Any:
    return pytest.mark.parametrize("venue", venues, ids=[v.name for v in venues])


# --- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venue", "status", "body", "expected"),
    [
        pytest.param(v, status, body, expected, id=f"{v.name}-{status}-{i}")
        for v in VENUES
        for i, (status, body, expected) in enumerate(v.errors)
    ],
)
def test_candles_http_error_is_classified_with_full_context(
    venue: Venue, status: int, body: bytes, expected: type[FfeError]
) -> None:
    # Given the venue answering an error with a request id
    handler = venue.canned(status, body)
    # When candles are asked for
    with pytest.raises(FfeError) as caught:
        venue.ask(venue.provider(handler))
    # Then the error has the right class and names provider, asset, timeframe, HTTP status and request id
    assert type(caught.value) is expected
    message = str(caught.value)
    for part in (venue.name, f"asset={venue.asset}", "timeframe=1h", f"http_status={status}"):
        assert part in message
    assert f"request_id={venue.request_id}" in message
    # And no secret of the venue's
    for secret in venue.secrets:
        assert secret not in message and secret not in repr(caught.value.context)


@each()
def test_candles_rate_limited_keeps_retry_after_seconds(venue: Venue) -> None:
    # Given the venue's 429 with Retry-After: 30
    handler = venue.canned(429, venue.rate_limited, **{"Retry-After": "30"})
    # When asked
    with pytest.raises(RateLimitedError, match=venue.rate_limited_words) as caught:
        venue.ask(venue.provider(handler))
    # Then the caller knows how long to wait
    assert caught.value.retry_after_seconds == 30


@pytest.mark.parametrize(
    ("venue", "failure"),
    [
        pytest.param(v, failure, id=f"{v.name}-{type(failure).__name__}")
        for v in VENUES
        for failure in (
            httpx.ReadTimeout("read timed out"),
            httpx.ConnectTimeout("connect timed out"),
            httpx.ConnectError("refused"),
        )
    ],
)
def test_candles_transport_failure_is_transient_with_context(venue: Venue, failure: httpx.TransportError) -> None:
    # Given a transport that fails before any response
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    # When asked
    with pytest.raises(TransientError) as caught:
        venue.ask(venue.provider(handler))
    # Then it is worth a retry and still says who and what
    assert caught.value.context == {"provider": venue.name, "asset": venue.asset, "timeframe": Timeframe.H1}
    assert caught.value.__cause__ is failure


@each()
def test_candles_truncated_json_is_invalid_input(venue: Venue) -> None:
    # Given a body cut off mid-JSON
    handler = venue.canned(200, venue.truncated)
    # When asked
    with pytest.raises(InvalidInputError, match="malformed JSON") as caught:
        venue.ask(venue.provider(handler))
    # Then the error still carries status and request id
    assert caught.value.context["http_status"] == 200
    assert caught.value.context["request_id"] == venue.request_id


@pytest.mark.parametrize(
    ("venue", "asset"), [pytest.param(v, a, id=f"{v.name}-{a}") for v in VENUES for a in v.unsupported]
)
def test_candles_unsupported_asset_class_is_invalid_input_without_a_request(venue: Venue, asset: str) -> None:
    # Given an asset of a class the venue does not serve
    handler = venue.canned(200, b"[]")
    # When candles are asked for
    with pytest.raises(InvalidInputError, match=venue.unsupported_words) as caught:
        venue.provider(handler).candles(asset, Timeframe.H1, MARCH_1, hours(1))
    # Then it is refused before any request, naming provider and asset
    assert handler.seen == []
    assert caught.value.context["provider"] == venue.name and caught.value.context["asset"] == asset


# --- windows ----------------------------------------------------------------------------------------------------


@each([v for v in VENUES if v.page is not None])
def test_candles_rows_outside_the_window_are_dropped(venue: Venue) -> None:
    # Given the recorded page of 00:00 .. 04:00 (a row before start and rows at or after end among them)
    assert venue.page is not None
    handler = venue.canned(200, venue.page)
    # When [01:00, 03:00) is asked for
    bars = venue.provider(handler).candles(venue.asset, Timeframe.H1, hours(1), hours(3))
    # Then only the bars opening inside it remain
    assert [b.time for b in bars] == [hours(1), hours(2)]


@each([v for v in VENUES if v.skips_empty_window])
def test_candles_empty_window_makes_no_request(venue: Venue) -> None:
    # Given a window that holds no bucket
    assert venue.page is not None
    handler = venue.canned(200, venue.page)
    # When start == end
    bars = venue.provider(handler).candles(venue.asset, Timeframe.H1, hours(3), hours(3))
    # Then nothing is asked
    assert bars == [] and handler.seen == []


# --- through the fake server ------------------------------------------------------------------------------------


@each()
def test_fake_down_is_transient(venue: Venue) -> None:
    fake = venue.fake(venue.history(5))
    fake.down = True
    with pytest.raises(TransientError, match=venue.down_words) as caught:
        venue.ask(venue.provider(fake))
    assert caught.value.context["http_status"] == 503
    if venue.fake_request_ids:
        assert caught.value.context["request_id"]


@each([v for v in VENUES if v.round_trip is not None])
def test_fake_round_trip_gives_back_the_history_it_serves(venue: Venue) -> None:
    # Given a fake venue with 50 hourly bars
    assert venue.round_trip is not None
    asset, path = venue.round_trip
    bars = venue.history(50)
    fake = venue.fake(bars)
    provider = venue.clock(fake, hours(100)) if venue.clock else venue.provider(fake)
    # When a window inside them is asked for
    got = provider.candles(asset, Timeframe.H1, bars[10].time, bars[40].time)
    # Then exactly those bars come back, unchanged, from the documented path on the venue's host
    assert got == bars[10:40]
    assert fake.requests[0].url.path == path
    assert fake.requests[0].url.host in venue.hosts
