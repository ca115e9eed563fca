"""What every live ``ffe.domain.ports.Broker`` must do, run against each implementation through its fake venue
(httpx.MockTransport only). What is particular to one venue stays in tests/unit/adapters/brokers/.

The paper broker (PostgreSQL, no HTTP) is held to the same port by the type checker below and tested through the
database in tests/integration/test_paper_broker.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from ffe.domain.errors import InvalidInputError, RateLimitedError, TransientError
from ffe.domain.models import Bar
from ffe.domain.portfolio import OrderRequest, OrderSide
from ffe.domain.ports import Broker
from tests.fakes import coinbase_brokerage_server as cb
from tests.fakes import oanda_brokerage_server as oa

if TYPE_CHECKING:
    from ffe.adapters.paper_broker import PaperBroker

Handler = Callable[[httpx.Request], httpx.Response]


def _paper_broker_is_a_broker(paper: PaperBroker) -> Broker:
    return paper  # checked by mypy, never run


@dataclass(frozen=True)
class Venue:
    """One broker implementation and what its fake venue needs to be asked the contract's questions."""

    name: str
    broker_for: Callable[[Handler], Broker]
    fake: Callable[[], Any]  # a fresh fake venue: a handler with .requests
    fake_with_account: Callable[[Any], Handler]  # the fake answering the balance read with this body
    asset: str
    quantity: str  # an order size the venue accepts
    balance_endpoint: str
    request_id: str
    truncated: bytes
    server_error: bytes
    server_statuses: tuple[int, ...]
    below_minimum: tuple[str, ...]
    create_status: int
    malformed_creates: Sequence[tuple[str, dict[str, Any]]]
    bad_accounts: Sequence[tuple[str, Any]]
    leaks: Callable[[Exception, list[httpx.Request]], list[str]] = field(repr=False)  # secrets found in the error

    def answering(self, status: int, content: bytes) -> Handler:
        return lambda request: httpx.Response(status, content=content, headers=self._id_header())

    def answer(self, value: Any, status: int) -> httpx.Response:
        return httpx.Response(status, json=value, headers=self._id_header())

    def _id_header(self) -> dict[str, str]:
        return {"x-request-id" if self.name == "coinbase" else "RequestID": self.request_id}


def _coinbase_leaks(error: Exception, requests: list[httpx.Request]) -> list[str]:
    text = str(error) + repr(getattr(error, "context", {}))
    secrets = [cb.KEY_NAME, *(line for line in cb.PEM.splitlines() if "PRIVATE KEY" not in line)]
    secrets += [r.headers["Authorization"].split(" ", 1)[1] for r in requests]  # the JWTs it signed
    return [s for s in secrets if s in text]


def _oanda_leaks(error: Exception, requests: list[httpx.Request]) -> list[str]:
    text = str(error) + repr(getattr(error, "context", {}))
    return [oa.TOKEN] if oa.TOKEN in text else []


def _with_usd(**changes: Any) -> Any:
    accounts = cb.body("accounts.json")
    usd = accounts["accounts"][0]
    for key, value in changes.items():
        if value is None:
            usd.pop(key)
        else:
            usd[key] = value
    return accounts


def _summary(**changes: Any) -> Any:
    summary = oa.body("account_summary.json")
    for key, value in changes.items():
        if value is None:
            summary["account"].pop(key)
        else:
            summary["account"][key] = value
    return summary


COINBASE = Venue(
    name="coinbase",
    broker_for=lambda handler: cb.broker_for(handler),
    fake=cb.FakeCoinbaseBrokerage,
    fake_with_account=lambda accounts: cb.FakeCoinbaseBrokerage(accounts=accounts),
    asset="BTCUSD",
    quantity="0.001",
    balance_endpoint="GET https://api.coinbase.com/api/v3/brokerage/accounts",
    request_id=cb.REQUEST_ID,
    truncated=cb.raw("truncated.txt"),
    server_error=cb.raw("error_internal.json"),
    server_statuses=(500, 502, 503),
    below_minimum=("0.000001", "0", "-0.01", "NaN"),  # base_min_size is 0.00001
    create_status=200,
    malformed_creates=[
        ("empty", {}),
        ("success-not-bool", {"success": "yes"}),
        ("no-success-response", {"success": True}),
        ("empty-order-id", {"success": True, "success_response": {"order_id": ""}}),
    ],
    bad_accounts=[
        ("negative", _with_usd(available_balance={"value": "-5.00", "currency": "USD"})),
        ("nan", _with_usd(available_balance={"value": "NaN", "currency": "USD"})),
        ("infinite-hold", _with_usd(hold={"value": "Infinity", "currency": "USD"})),
        ("text", _with_usd(available_balance={"value": "ten", "currency": "USD"})),
        ("float", _with_usd(available_balance={"value": 10.5, "currency": "USD"})),
        ("no-available", _with_usd(available_balance=None)),
        ("no-hold", _with_usd(hold=None)),
        ("no-currency", _with_usd(currency=None)),
        ("no-accounts", {"has_next": False, "cursor": ""}),
        ("accounts-not-a-list", {"accounts": "none", "has_next": False}),
        ("not-an-object", []),
    ],
    leaks=_coinbase_leaks,
)

OANDA = Venue(
    name="oanda",
    broker_for=lambda handler: oa.broker_for(handler),
    fake=oa.FakeOandaBrokerage,
    fake_with_account=lambda summary: oa.FakeOandaBrokerage(summary=summary),
    asset="EURUSD",
    quantity="10000",
    balance_endpoint=f"GET {oa.PRACTICE}/summary",
    request_id=oa.REQUEST_ID,
    truncated=oa.raw("truncated.txt"),
    server_error=oa.raw("error_service_unavailable.json"),
    server_statuses=(500, 502, 503, 504),
    below_minimum=("0.5", "0", "-100", "NaN"),  # minimumTradeSize is 1
    create_status=201,
    malformed_creates=[
        ("empty", {}),
        ("no-order-id", {"orderCreateTransaction": {"type": "MARKET_ORDER"}}),
        (
            "fill-without-price",
            {"orderCreateTransaction": {"id": "10"}, "orderFillTransaction": {"type": "ORDER_FILL", "units": "10000"}},
        ),
        (
            "nan-price",
            {
                "orderCreateTransaction": {"id": "10"},
                "orderFillTransaction": {"type": "ORDER_FILL", "units": "10000", "fullVWAP": "NaN"},
            },
        ),
    ],
    bad_accounts=[
        ("negative-nav", _summary(NAV="-12.50")),
        ("negative-margin", _summary(marginAvailable="-1")),
        ("negative-balance", _summary(balance="-0.01")),
        ("nan", _summary(NAV="NaN")),
        ("infinite", _summary(marginAvailable="Infinity")),
        ("text", _summary(NAV="n/a")),
        ("float", _summary(NAV=100009.21)),
        ("no-nav", _summary(NAV=None)),
        ("no-margin", _summary(marginAvailable=None)),
        ("no-currency", _summary(currency=None)),
        ("no-account", {"lastTransactionID": "9"}),
        ("not-an-object", []),
    ],
    leaks=_oanda_leaks,
)

VENUES = [COINBASE, OANDA]
CLIENT_ID = "ffe-contract-0001"


def each_venue() -> Any:
    return pytest.mark.parametrize("venue", VENUES, ids=[v.name for v in VENUES])


def order(venue: Venue, quantity: str) -> OrderRequest:
    return OrderRequest(CLIENT_ID, venue.asset, OrderSide.BUY, D(quantity))


def cases(attribute: str) -> list[Any]:
    """``(venue, value)`` for every value a venue lists under ``attribute``, with readable ids."""
    params = []
    for venue in VENUES:
        for item in getattr(venue, attribute):
            value, label = (item[1], item[0]) if isinstance(item, tuple) else (item, str(item))
            params.append(pytest.param(venue, value, id=f"{venue.name}-{label}"))
    return params


# --- the port itself --------------------------------------------------------------------------------------------


@each_venue()
def test_every_broker_names_its_venue_and_its_account(venue: Venue) -> None:
    broker = venue.broker_for(venue.fake())
    assert broker.name == venue.name
    assert broker.account_id == venue.name  # the default: what the gate's lock and reservations key on


@each_venue()
def test_settle_at_a_live_venue_does_nothing_and_sends_nothing(venue: Venue) -> None:
    # Given a live venue, which fills its own orders
    fake = venue.fake()
    # When the gate has it settle the asset's newest bars
    bars = [Bar(datetime(2024, 3, 1, tzinfo=UTC), 1.1, 1.2, 1.0, 1.1, 5.0)]
    settled = venue.broker_for(fake).settle(venue.asset, bars)
    # Then nothing was filled and not a single request went out
    assert settled == []
    assert fake.requests == []


# --- reading the account ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("venue", "status"), [(v, s) for v in VENUES for s in v.server_statuses])
def test_balance_server_error_is_transient_with_context(venue: Venue, status: int) -> None:
    with pytest.raises(TransientError) as caught:
        venue.broker_for(venue.answering(status, venue.server_error)).balance()
    assert not isinstance(caught.value, RateLimitedError)
    assert caught.value.context["http_status"] == status
    assert caught.value.context["request_id"] == venue.request_id


@pytest.mark.parametrize(
    ("venue", "failure"),
    [(v, f) for v in VENUES for f in (httpx.ConnectTimeout, httpx.ReadTimeout)],
    ids=lambda p: p.name if isinstance(p, Venue) else p.__name__,
)
def test_balance_timeout_is_transient_and_names_the_endpoint(
    venue: Venue, failure: type[httpx.TimeoutException]
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise failure("timed out", request=request)

    with pytest.raises(TransientError) as caught:
        venue.broker_for(handler).balance()
    assert caught.value.context["endpoint"] == venue.balance_endpoint
    assert caught.value.context["provider"] == venue.name
    assert venue.leaks(caught.value, seen) == []


@each_venue()
def test_balance_malformed_json_is_invalid_input(venue: Venue) -> None:
    with pytest.raises(InvalidInputError, match="malformed JSON") as caught:
        venue.broker_for(venue.answering(200, venue.truncated)).balance()
    assert caught.value.context["http_status"] == 200


@pytest.mark.parametrize(("venue", "account"), cases("bad_accounts"))
def test_balance_bad_numbers_or_missing_fields_are_invalid_input_never_a_default(venue: Venue, account: Any) -> None:
    # Given an account body that is not a readable balance
    broker = venue.broker_for(venue.fake_with_account(copy.deepcopy(account)))
    # When / Then the read fails loudly instead of falling back to a default
    with pytest.raises(InvalidInputError):
        broker.balance()


# --- placing orders ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("venue", "quantity"), cases("below_minimum"))
def test_place_order_below_the_minimum_is_refused_before_any_order_request(venue: Venue, quantity: str) -> None:
    # Given the product's rules are already known
    fake = venue.fake()
    broker = venue.broker_for(fake)
    broker.product_rules(venue.asset)
    fake.requests.clear()
    # When a smaller (or non-positive, or non-numeric) order is placed
    with pytest.raises(InvalidInputError) as caught:
        broker.place_order(order(venue, quantity))
    # Then nothing at all was sent (no lookup, no create) and the error names the order
    assert fake.requests == []
    assert caught.value.context["client_order_id"] == CLIENT_ID


@pytest.mark.parametrize(("venue", "answer"), cases("malformed_creates"))
def test_place_order_malformed_create_response_is_invalid_input(venue: Venue, answer: dict[str, Any]) -> None:
    fake = venue.fake()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return venue.answer(answer, venue.create_status)
        return fake(request)

    with pytest.raises(InvalidInputError):
        venue.broker_for(handler).place_order(order(venue, venue.quantity))
