"""OandaBroker against recorded OANDA v20 bodies and the fake venue (httpx.MockTransport only): what is
particular to OANDA. What every broker must do is in tests/unit/adapters/contracts/test_broker_contract.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

import httpx
import pytest

from ffe.domain.errors import AuthError, InvalidInputError, TransientError
from ffe.domain.portfolio import Balance, OrderRequest, OrderSide, OrderStatus, PendingOrder, Position, ProductRules
from tests.fakes.oanda_brokerage_server import (
    ACCOUNT,
    PRACTICE,
    REQUEST_ID,
    TOKEN,
    FakeOandaBrokerage,
    answer_json,
    body,
    broker_for,
    credentials,
    raw,
)

CLIENT_ID = "ffe-0001"


def answering(status: int, content: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=content, headers={"RequestID": REQUEST_ID})


def order(quantity: str = "10000", side: OrderSide = OrderSide.BUY, client_order_id: str = CLIENT_ID) -> OrderRequest:
    return OrderRequest(client_order_id, "EURUSD", side, D(quantity))


def routes(fake: FakeOandaBrokerage) -> list[str]:
    return [
        f"{r.method} {r.url.raw_path.decode().split('?')[0].removeprefix(f'/v3/accounts/{ACCOUNT}/')}"
        for r in fake.requests
    ]


# --- balance ----------------------------------------------------------------------------------------------------


def test_balance_is_nav_and_margin_available_in_the_home_currency() -> None:
    # Given the recorded account summary
    fake = FakeOandaBrokerage()
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
    fake = FakeOandaBrokerage()
    broker_for(fake, credentials(environment="live")).balance()
    assert fake.requests[0].url.host == "api-fxtrade.oanda.com"


def test_balance_401_is_an_auth_error_naming_the_token_to_fix() -> None:
    # Given a token OANDA does not accept
    fake = FakeOandaBrokerage()
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
    fake = FakeOandaBrokerage()
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


def test_missing_credentials_are_an_auth_error_before_any_request() -> None:
    fake = FakeOandaBrokerage()
    for creds in (credentials(token=""), credentials(account_id="")):
        with pytest.raises(AuthError, match="Fix:"):
            broker_for(fake, creds).balance()
    assert fake.requests == []


# --- positions and product rules ----------------------------------------------------------------------------------


def test_positions_are_net_units_with_the_side_average_price() -> None:
    positions = broker_for(FakeOandaBrokerage()).positions()
    assert positions == [Position("EURUSD", D("10000"), D("1.08412")), Position("GBPUSD", D("-5000"), D("1.26510"))]


def test_account_is_the_balance_and_the_positions_one_request_each() -> None:
    fake = FakeOandaBrokerage()
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
    fake = FakeOandaBrokerage()
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
    fake = FakeOandaBrokerage()
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
    fake = FakeOandaBrokerage()
    result = broker_for(fake).place_order(order("2500", OrderSide.SELL))
    assert json.loads(fake.requests[-1].content)["order"]["units"] == "-2500"
    assert result.filled_quantity == D("2500")


def test_place_order_insufficient_margin_is_rejected_with_the_venue_reason() -> None:
    # Given a venue that cancels the FOK order for lack of margin
    fake = FakeOandaBrokerage(mode="margin")
    # When a huge order is placed
    result = broker_for(fake).place_order(order("50000000"))
    # Then it is a REJECTED result with OANDA's reason, not an exception
    assert result.status is OrderStatus.REJECTED
    assert result.detail == "INSUFFICIENT_MARGIN"
    assert result.venue_order_id == "10"
    assert (result.filled_quantity, result.average_price, result.fee) == (D(0), None, D(0))


def test_place_order_rejected_by_the_venue_is_rejected_with_reason_and_message() -> None:
    fake = FakeOandaBrokerage(mode="reject")
    result = broker_for(fake).place_order(order("200000000"))
    assert result.status is OrderStatus.REJECTED
    assert result.venue_order_id is None
    assert result.detail == "UNITS_LIMIT_EXCEEDED: The units specified exceeds the maximum number of units allowed"


def test_place_order_400_without_a_reject_transaction_is_invalid_input() -> None:
    fake = FakeOandaBrokerage()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return answer_json({"errorMessage": "Invalid value specified for 'order.units'"}, 400)
        return fake(request)

    with pytest.raises(InvalidInputError, match=r"order\.units"):
        broker_for(handler).place_order(order())


def test_place_order_off_the_units_precision_is_refused() -> None:
    fake = FakeOandaBrokerage()
    with pytest.raises(InvalidInputError, match="increment"):
        broker_for(fake).place_order(order("100.5"))
    assert fake.posts == 0


def test_duplicate_place_order_posts_once_in_one_container_and_across_containers() -> None:
    # Given an order placed once
    fake = FakeOandaBrokerage()
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
    fake = FakeOandaBrokerage()

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
    fake = FakeOandaBrokerage(mode="margin")
    first = broker_for(fake).place_order(order("50000000"))
    fake.mode = "fill"
    second = broker_for(fake).place_order(order("50000000"))
    assert fake.posts == 1
    assert second == first


def test_order_status_unknown_client_id_is_none() -> None:
    fake = FakeOandaBrokerage()
    assert broker_for(fake).order_status("never-placed") is None
    assert str(fake.requests[0].url) == f"{PRACTICE}/orders/@never-placed"


def test_order_status_quotes_the_client_id_into_the_path() -> None:
    fake = FakeOandaBrokerage()
    broker_for(fake).order_status("cycle/7 btc")
    assert fake.requests[0].url.raw_path.decode() == f"/v3/accounts/{ACCOUNT}/orders/@cycle%2F7%20btc"


def test_order_status_of_a_pending_order() -> None:
    fake = FakeOandaBrokerage()
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
    fake = FakeOandaBrokerage()
    broker_for(fake).place_order(order())
    fake.orders[CLIENT_ID] = copy.deepcopy(fake.orders[CLIENT_ID]) | {"state": "HALF_DONE"}
    with pytest.raises(InvalidInputError, match="HALF_DONE"):
        broker_for(fake).order_status(CLIENT_ID)


# --- open orders ------------------------------------------------------------------------------------------------


def test_open_orders_are_the_pending_orders_that_add_units_signed_by_side() -> None:
    # Given a pending EUR_USD limit buy (ours), a GBP_USD stop sell (placed by hand) and a take-profit on a trade
    fake = FakeOandaBrokerage()
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
    fake = FakeOandaBrokerage()
    fake.pending = body("pending_orders.json")
    fake.pending["orders"][0]["units"] = units
    with pytest.raises(InvalidInputError, match="units of order 21"):
        broker_for(fake).open_orders()
