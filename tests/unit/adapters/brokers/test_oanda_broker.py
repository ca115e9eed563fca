"""OandaBroker against recorded OANDA v20 bodies and a fake venue (httpx.MockTransport only).

The fake keeps orders by their client extension id, answers ``orders/@{clientID}`` (404 when unknown) and
``transactions/{id}``, and counts order creations (POSTs).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest

from ffe.adapters.brokers.oanda import OandaBroker
from ffe.domain.errors import AuthError, InvalidInputError, RateLimitedError, TransientError
from ffe.domain.portfolio import Balance, OrderRequest, OrderSide, OrderStatus, PendingOrder, Position, ProductRules

BODIES = Path(__file__).resolve().parents[3] / "fakes" / "bodies" / "oanda_broker"
TOKEN = "0f9e8d7c6b5a49382716a5b4c3d2e1f0-8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
ACCOUNT = "101-001-1234567-001"
PRACTICE = f"https://api-fxpractice.oanda.com/v3/accounts/{ACCOUNT}"
REQUEST_ID = "24716403001425966"
CLIENT_ID = "ffe-0001"


def body(name: str) -> Any:
    return json.loads((BODIES / name).read_text())


def raw(name: str) -> bytes:
    return (BODIES / name).read_bytes()


class FakeOanda:
    """One v20 account; ``mode`` says how the next creates end: "fill", "margin" (FOK cancel) or "reject"."""

    def __init__(self, mode: str = "fill", summary: Any = None) -> None:
        self.mode = mode
        self.summary = summary if summary is not None else body("account_summary.json")
        self.requests: list[httpx.Request] = []
        self.orders: dict[str, dict[str, Any]] = {}  # client id -> order
        self.transactions: dict[str, dict[str, Any]] = {}
        self.pending: Any = {"orders": [], "lastTransactionID": "14"}
        self._next_id = 10

    @property
    def posts(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _json(body("error_unauthorized.json"), 401)
        prefix = f"/v3/accounts/{ACCOUNT}/"
        path = request.url.raw_path.decode().split("?")[0]
        if not path.startswith(prefix):
            return _json(body("error_forbidden.json"), 403)
        route = path.removeprefix(prefix)
        if request.method == "GET" and route == "summary":
            return _json(self.summary)
        if request.method == "GET" and route == "pendingOrders":
            return _json(self.pending)
        if request.method == "GET" and route == "openPositions":
            return _json(body("open_positions.json"))
        if request.method == "GET" and route == "instruments":
            listed = body("instruments_eur_usd.json")
            wanted = request.url.params["instruments"].split(",")
            listed["instruments"] = [i for i in listed["instruments"] if i["name"] in wanted]
            return _json(listed)
        if request.method == "GET" and route.startswith("orders/@"):
            order = self.orders.get(route.removeprefix("orders/@"))
            return (
                _json({"order": order, "lastTransactionID": "14"})
                if order
                else _json(body("error_order_not_found.json"), 404)
            )
        if request.method == "GET" and route.startswith("transactions/"):
            transaction = self.transactions.get(route.removeprefix("transactions/"))
            return _json({"transaction": transaction, "lastTransactionID": "14"}) if transaction else _json({}, 404)
        if request.method == "POST" and route == "orders":
            return self._create(json.loads(request.content)["order"])
        return _json({"errorMessage": "Invalid path"}, 404)

    def _create(self, spec: dict[str, Any]) -> httpx.Response:
        client_id = spec["clientExtensions"]["id"]
        if self.mode == "reject":
            rejected = body("order_reject_units_limit.json")
            rejected["orderRejectTransaction"] |= {"units": spec["units"], "clientExtensions": {"id": client_id}}
            return _json(rejected, 400)
        order_id, outcome_id = str(self._next_id), str(self._next_id + 1)
        self._next_id += 2
        recorded = body("order_fill.json" if self.mode == "fill" else "order_cancel_insufficient_margin.json")
        created = recorded["orderCreateTransaction"] | {
            "id": order_id,
            "units": spec["units"],
            "clientExtensions": {"id": client_id},
        }
        order = body("order_get_filled.json")["order"] | {
            "id": order_id,
            "units": spec["units"],
            "clientExtensions": {"id": client_id},
        }
        answer: dict[str, Any] = {
            "orderCreateTransaction": created,
            "relatedTransactionIDs": [order_id, outcome_id],
            "lastTransactionID": outcome_id,
        }
        if self.mode == "fill":
            fill = recorded["orderFillTransaction"] | {
                "id": outcome_id,
                "orderID": order_id,
                "clientOrderID": client_id,
                "units": spec["units"],
            }
            answer["orderFillTransaction"] = fill
            self.transactions[outcome_id] = fill
        else:
            cancel = recorded["orderCancelTransaction"] | {
                "id": outcome_id,
                "orderID": order_id,
                "clientOrderID": client_id,
            }
            answer["orderCancelTransaction"] = cancel
            self.transactions[outcome_id] = cancel
            order = {k: v for k, v in order.items() if k not in ("fillingTransactionID", "filledTime", "tradeOpenedID")}
            order |= {"state": "CANCELLED", "cancellingTransactionID": outcome_id, "cancelledTime": created["time"]}
        self.orders[client_id] = order
        return _json(answer, 201)


def _json(value: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=value, headers={"RequestID": REQUEST_ID})


def credentials(**overrides: str) -> Callable[[], Mapping[str, str]]:
    values = {"token": TOKEN, "account_id": ACCOUNT, "environment": "practice"} | overrides
    return lambda: values


def broker_for(
    handler: Callable[[httpx.Request], httpx.Response], creds: Callable[[], Mapping[str, str]] | None = None
) -> OandaBroker:
    return OandaBroker(httpx.Client(transport=httpx.MockTransport(handler)), creds or credentials())


def answering(status: int, content: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=content, headers={"RequestID": REQUEST_ID})


def order(quantity: str = "10000", side: OrderSide = OrderSide.BUY, client_order_id: str = CLIENT_ID) -> OrderRequest:
    return OrderRequest(client_order_id, "EURUSD", side, D(quantity))


def routes(fake: FakeOanda) -> list[str]:
    return [
        f"{r.method} {r.url.raw_path.decode().split('?')[0].removeprefix(f'/v3/accounts/{ACCOUNT}/')}"
        for r in fake.requests
    ]


# --- balance ----------------------------------------------------------------------------------------------------


def test_balance_is_nav_and_margin_available_in_the_home_currency() -> None:
    # Given the recorded account summary
    fake = FakeOanda()
    # When the balance is read
    balance = broker_for(fake).balance()
    # Then equity is NAV and available is marginAvailable, as Decimals
    assert balance == Balance("USD", D("100009.2100"), D("99665.8800"))
    assert isinstance(balance.equity, D)
    # And one GET went to the practice host's summary with the bearer token
    (request,) = fake.requests
    assert (request.method, str(request.url)) == ("GET", f"{PRACTICE}/summary")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_balance_live_environment_uses_the_fxtrade_host() -> None:
    fake = FakeOanda()
    broker_for(fake, credentials(environment="live")).balance()
    assert fake.requests[0].url.host == "api-fxtrade.oanda.com"


def test_balance_401_is_an_auth_error_naming_the_token_to_fix() -> None:
    # Given a token OANDA does not accept
    fake = FakeOanda()
    # When the balance is read with it
    with pytest.raises(AuthError) as caught:
        broker_for(fake, credentials(token="revoked-0123456789abcdef")).balance()
    # Then the error names the secret to fix, carries the context, and never the token
    error = caught.value
    assert "'token'" in str(error) and "Fix:" in str(error)
    assert "Insufficient authorization to perform request." in str(error)
    assert error.context["provider"] == "oanda"
    assert error.context["http_status"] == 401
    assert error.context["request_id"] == REQUEST_ID
    assert error.context["endpoint"] == f"GET {PRACTICE}/summary"
    assert "revoked-0123456789abcdef" not in str(error) + repr(error.context)


def test_balance_403_is_an_auth_error_naming_the_account_id() -> None:
    fake = FakeOanda()
    with pytest.raises(AuthError) as caught:
        broker_for(fake, credentials(account_id="101-001-7654321-001")).balance()
    assert "'account_id'" in str(caught.value)
    assert caught.value.context["http_status"] == 403
    assert TOKEN not in str(caught.value) + repr(caught.value.context)


def test_an_auth_error_echoing_the_token_is_redacted() -> None:
    echo = json.dumps({"errorMessage": f"Invalid token {TOKEN}"}).encode()
    with pytest.raises(AuthError) as caught:
        broker_for(answering(401, echo)).balance()
    assert TOKEN not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_balance_server_error_is_transient(status: int) -> None:
    with pytest.raises(TransientError) as caught:
        broker_for(answering(status, raw("error_service_unavailable.json"))).balance()
    assert not isinstance(caught.value, RateLimitedError)
    assert caught.value.context["http_status"] == status
    assert caught.value.context["request_id"] == REQUEST_ID


def test_balance_timeout_is_transient_and_names_the_endpoint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(TransientError) as caught:
        broker_for(handler).balance()
    assert caught.value.context["endpoint"] == f"GET {PRACTICE}/summary"
    assert TOKEN not in str(caught.value)


def test_balance_malformed_json_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="malformed JSON"):
        broker_for(answering(200, raw("truncated.txt"))).balance()


def _summary(**changes: Any) -> Any:
    summary = body("account_summary.json")
    for key, value in changes.items():
        if value is None:
            summary["account"].pop(key)
        else:
            summary["account"][key] = value
    return summary


@pytest.mark.parametrize(
    "summary",
    [
        _summary(NAV="-12.50"),
        _summary(marginAvailable="-1"),
        _summary(balance="-0.01"),
        _summary(NAV="NaN"),
        _summary(marginAvailable="Infinity"),
        _summary(NAV="n/a"),
        _summary(NAV=100009.21),
        _summary(NAV=None),
        _summary(marginAvailable=None),
        _summary(currency=None),
        {"lastTransactionID": "9"},
        [],
    ],
    ids=[
        "negative-nav",
        "negative-margin",
        "negative-balance",
        "nan",
        "infinite",
        "text",
        "float",
        "no-nav",
        "no-margin",
        "no-currency",
        "no-account",
        "not-an-object",
    ],
)
def test_balance_bad_numbers_or_missing_fields_are_invalid_input_never_a_default(summary: Any) -> None:
    with pytest.raises(InvalidInputError):
        broker_for(FakeOanda(summary=summary)).balance()


def test_missing_credentials_are_an_auth_error_before_any_request() -> None:
    fake = FakeOanda()
    for creds in (credentials(token=""), credentials(account_id="")):
        with pytest.raises(AuthError, match="Fix:"):
            broker_for(fake, creds).balance()
    assert fake.requests == []


# --- positions and product rules ----------------------------------------------------------------------------------


def test_positions_are_net_units_with_the_side_average_price() -> None:
    positions = broker_for(FakeOanda()).positions()
    assert positions == [Position("EURUSD", D("10000"), D("1.08412")), Position("GBPUSD", D("-5000"), D("1.26510"))]


def test_account_is_the_balance_and_the_positions_one_request_each() -> None:
    fake = FakeOanda()
    balance, positions = broker_for(fake).account()
    assert balance == Balance("USD", D("100009.2100"), D("99665.8800"))
    assert positions == [Position("EURUSD", D("10000"), D("1.08412")), Position("GBPUSD", D("-5000"), D("1.26510"))]
    assert [str(r.url) for r in fake.requests] == [f"{PRACTICE}/summary", f"{PRACTICE}/openPositions"]


def test_positions_units_without_an_average_price_are_invalid_input() -> None:
    bad = body("open_positions.json")
    del bad["positions"][0]["long"]["averagePrice"]
    with pytest.raises(InvalidInputError, match="averagePrice"):
        broker_for(answering(200, json.dumps(bad).encode())).positions()


def test_product_rules_parse_minimum_trade_size_and_units_precision() -> None:
    # Given the recorded EUR_USD instrument
    fake = FakeOanda()
    broker = broker_for(fake)
    # When its rules are read twice
    rules = broker.product_rules("EURUSD")
    assert broker.product_rules("EURUSD") == rules
    # Then minimumTradeSize and 10^-tradeUnitsPrecision, from one filtered request
    assert rules == ProductRules("EURUSD", D("1"), D("1"))
    (request,) = fake.requests
    assert str(request.url) == f"{PRACTICE}/instruments?instruments=EUR_USD"


def test_product_rules_fractional_units_precision() -> None:
    listed = body("instruments_eur_usd.json")
    listed["instruments"][0] |= {"tradeUnitsPrecision": 2, "minimumTradeSize": "0.01"}
    rules = broker_for(answering(200, json.dumps(listed).encode())).product_rules("EURUSD")
    assert (rules.min_size, rules.size_increment) == (D("0.01"), D("0.01"))


@pytest.mark.parametrize(
    "change",
    [{"minimumTradeSize": None}, {"tradeUnitsPrecision": "0"}, {"minimumTradeSize": "-1"}, {"name": "GBP_USD"}],
    ids=["no-minimum", "precision-not-int", "negative-minimum", "not-listed"],
)
def test_product_rules_malformed_instrument_is_invalid_input(change: dict[str, Any]) -> None:
    listed = body("instruments_eur_usd.json")
    listed["instruments"][0] |= change
    with pytest.raises(InvalidInputError):
        broker_for(answering(200, json.dumps(listed).encode())).product_rules("EURUSD")


# --- orders -------------------------------------------------------------------------------------------------------


def test_place_order_looks_up_the_client_id_then_posts_a_fok_market_order() -> None:
    # Given a venue that fills
    fake = FakeOanda()
    # When 10000 EUR_USD are bought
    result = broker_for(fake).place_order(order("10000"))
    # Then the client id was looked up (404) before the documented order body was posted
    assert routes(fake) == ["GET instruments", f"GET orders/@{CLIENT_ID}", "POST orders"]
    post = fake.requests[-1]
    assert str(post.url) == f"{PRACTICE}/orders"
    assert json.loads(post.content) == {
        "order": {
            "type": "MARKET",
            "instrument": "EUR_USD",
            "units": "10000",
            "timeInForce": "FOK",
            "positionFill": "DEFAULT",
            "clientExtensions": {"id": CLIENT_ID},
        }
    }
    # And the fill maps onto the result as Decimals
    assert result.status is OrderStatus.FILLED
    assert (result.client_order_id, result.venue_order_id) == (CLIENT_ID, "10")
    assert (result.filled_quantity, result.average_price, result.fee) == (D("10000"), D("1.08434"), D("0.0000"))


def test_place_order_sell_sends_negative_units() -> None:
    fake = FakeOanda()
    result = broker_for(fake).place_order(order("2500", OrderSide.SELL))
    assert json.loads(fake.requests[-1].content)["order"]["units"] == "-2500"
    assert result.filled_quantity == D("2500")


def test_place_order_insufficient_margin_is_rejected_with_the_venue_reason() -> None:
    # Given a venue that cancels the FOK order for lack of margin
    fake = FakeOanda(mode="margin")
    # When a huge order is placed
    result = broker_for(fake).place_order(order("50000000"))
    # Then it is a REJECTED result with OANDA's reason, not an exception
    assert result.status is OrderStatus.REJECTED
    assert result.detail == "INSUFFICIENT_MARGIN"
    assert result.venue_order_id == "10"
    assert (result.filled_quantity, result.average_price, result.fee) == (D(0), None, D(0))


def test_place_order_rejected_by_the_venue_is_rejected_with_reason_and_message() -> None:
    fake = FakeOanda(mode="reject")
    result = broker_for(fake).place_order(order("200000000"))
    assert result.status is OrderStatus.REJECTED
    assert result.venue_order_id is None
    assert result.detail == "UNITS_LIMIT_EXCEEDED: The units specified exceeds the maximum number of units allowed"


def test_place_order_400_without_a_reject_transaction_is_invalid_input() -> None:
    fake = FakeOanda()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _json({"errorMessage": "Invalid value specified for 'order.units'"}, 400)
        return fake(request)

    with pytest.raises(InvalidInputError, match=r"order\.units"):
        broker_for(handler).place_order(order())


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"orderCreateTransaction": {"type": "MARKET_ORDER"}},
        {"orderCreateTransaction": {"id": "10"}, "orderFillTransaction": {"type": "ORDER_FILL", "units": "10000"}},
        {
            "orderCreateTransaction": {"id": "10"},
            "orderFillTransaction": {"type": "ORDER_FILL", "units": "10000", "fullVWAP": "NaN"},
        },
    ],
    ids=["empty", "no-order-id", "fill-without-price", "nan-price"],
)
def test_place_order_malformed_create_response_is_invalid_input(answer: dict[str, Any]) -> None:
    fake = FakeOanda()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _json(answer, 201)
        return fake(request)

    with pytest.raises(InvalidInputError):
        broker_for(handler).place_order(order())


@pytest.mark.parametrize("quantity", ["0.5", "0", "-100", "NaN"])
def test_place_order_below_the_minimum_is_refused_before_any_order_request(quantity: str) -> None:
    # Given the instrument rules are known (minimumTradeSize 1)
    fake = FakeOanda()
    broker = broker_for(fake)
    broker.product_rules("EURUSD")
    fake.requests.clear()
    # When a smaller order is placed
    with pytest.raises(InvalidInputError) as caught:
        broker.place_order(order(quantity))
    # Then nothing was sent: no lookup, no POST
    assert fake.requests == []
    assert caught.value.context["client_order_id"] == CLIENT_ID


def test_place_order_off_the_units_precision_is_refused() -> None:
    fake = FakeOanda()
    with pytest.raises(InvalidInputError, match="increment"):
        broker_for(fake).place_order(order("100.5"))
    assert fake.posts == 0


def test_duplicate_place_order_posts_once_in_one_container_and_across_containers() -> None:
    # Given an order placed once
    fake = FakeOanda()
    first = broker_for(fake).place_order(order())
    # When the same client id is placed again, by the same broker and by a fresh one
    again = broker_for(fake)
    second = again.place_order(order())
    third = again.place_order(order())
    # Then OANDA saw a single POST; the others found the order by client id and read its fill
    assert fake.posts == 1
    assert second == first == third
    assert routes(fake)[-2:] == [f"GET orders/@{CLIENT_ID}", "GET transactions/11"]


def test_a_lost_create_response_is_transient_and_the_retry_finds_the_order_instead_of_posting() -> None:
    # Given a venue that fills the order, then the response is lost on the way back
    fake = FakeOanda()

    def handler(request: httpx.Request) -> httpx.Response:
        response = fake(request)
        if request.method == "POST":
            raise httpx.ReadTimeout("timed out reading the response", request=request)
        return response

    broker = broker_for(handler)
    with pytest.raises(TransientError) as caught:
        broker.place_order(order())
    assert caught.value.context["endpoint"] == f"POST {PRACTICE}/orders"
    # When the state machine retries the same order
    result = broker.place_order(order())
    # Then the retry found the filled order by its client id and posted nothing
    assert fake.posts == 1
    assert result.status is OrderStatus.FILLED


def test_duplicate_of_a_margin_refused_order_returns_the_refusal_without_posting() -> None:
    fake = FakeOanda(mode="margin")
    first = broker_for(fake).place_order(order("50000000"))
    fake.mode = "fill"
    second = broker_for(fake).place_order(order("50000000"))
    assert fake.posts == 1
    assert second == first


def test_order_status_unknown_client_id_is_none() -> None:
    fake = FakeOanda()
    assert broker_for(fake).order_status("never-placed") is None
    assert str(fake.requests[0].url) == f"{PRACTICE}/orders/@never-placed"


def test_order_status_quotes_the_client_id_into_the_path() -> None:
    fake = FakeOanda()
    broker_for(fake).order_status("cycle/7 btc")
    assert fake.requests[0].url.raw_path.decode() == f"/v3/accounts/{ACCOUNT}/orders/@cycle%2F7%20btc"


def test_order_status_of_a_pending_order() -> None:
    fake = FakeOanda()
    broker_for(fake).place_order(order())
    fake.orders[CLIENT_ID] = {k: v for k, v in fake.orders[CLIENT_ID].items() if "ill" not in k} | {"state": "PENDING"}
    result = broker_for(fake).order_status(CLIENT_ID)
    assert result is not None
    assert (result.status, result.filled_quantity, result.average_price) == (OrderStatus.PENDING, D(0), None)


def test_order_status_404_for_a_missing_account_is_invalid_input_not_none() -> None:
    missing = json.dumps({"errorMessage": "The Account specified does not exist"}).encode()
    with pytest.raises(InvalidInputError, match="account_id"):
        broker_for(answering(404, missing)).order_status(CLIENT_ID)


def test_order_status_server_error_is_transient_not_none() -> None:
    with pytest.raises(TransientError):
        broker_for(answering(503, raw("error_service_unavailable.json"))).order_status(CLIENT_ID)


def test_order_status_unknown_state_is_invalid_input() -> None:
    fake = FakeOanda()
    broker_for(fake).place_order(order())
    fake.orders[CLIENT_ID] = copy.deepcopy(fake.orders[CLIENT_ID]) | {"state": "HALF_DONE"}
    with pytest.raises(InvalidInputError, match="HALF_DONE"):
        broker_for(fake).order_status(CLIENT_ID)


# --- open orders ------------------------------------------------------------------------------------------------


def test_open_orders_are_the_pending_orders_that_add_units_signed_by_side() -> None:
    # Given a pending EUR_USD limit buy (ours), a GBP_USD stop sell (placed by hand) and a take-profit on a trade
    fake = FakeOanda()
    fake.pending = body("pending_orders.json")
    # When the gate asks what is on its way
    pending = broker_for(fake).open_orders()
    # Then the two orders that add units are there, with their sides, units and prices; the take-profit only closes
    assert pending == [
        PendingOrder("ffe-2f6c1d7a9e0b4c3d8a1f5e6b7c8d", "EURUSD", OrderSide.BUY, D("5000"), D("1.07500")),
        PendingOrder("oanda-22", "GBPUSD", OrderSide.SELL, D("2000"), D("1.25000")),
    ]
    assert routes(fake) == ["GET pendingOrders"]


@pytest.mark.parametrize("units", [None, "lots", "NaN"])
def test_open_orders_with_unreadable_units_are_invalid_input_never_left_out(units: Any) -> None:
    fake = FakeOanda()
    fake.pending = body("pending_orders.json")
    fake.pending["orders"][0]["units"] = units
    with pytest.raises(InvalidInputError, match="units of order 21"):
        broker_for(fake).open_orders()
