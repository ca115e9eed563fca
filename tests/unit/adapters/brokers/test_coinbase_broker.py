"""CoinbaseBroker against recorded Advanced Trade bodies and the fake venue (httpx.MockTransport only): what is
particular to Coinbase. What every broker must do is in tests/unit/adapters/contracts/test_broker_contract.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal as D

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ffe.adapters.brokers.coinbase import CoinbaseBroker
from ffe.domain.errors import AuthError, FfeError, InvalidInputError, TransientError
from ffe.domain.portfolio import Balance, OrderRequest, OrderSide, OrderStatus, PendingOrder, Position, ProductRules
from tests.fakes.coinbase_brokerage_server import (
    API,
    KEY_NAME,
    NOW,
    PEM,
    PUBLIC,
    REQUEST_ID,
    FakeCoinbaseBrokerage,
    answer_json,
    body,
    broker_for,
    credentials,
    raw,
)

CLIENT_ID = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"


def answering(status: int, content: bytes, seen: list[httpx.Request] | None = None) -> Callable:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=content, headers={"x-request-id": REQUEST_ID})

    return handler


def buy(quantity: str = "0.001", client_order_id: str = CLIENT_ID, side: OrderSide = OrderSide.BUY) -> OrderRequest:
    return OrderRequest(client_order_id, "BTCUSD", side, D(quantity))


def assert_no_secret(error: Exception, requests: list[httpx.Request] = ()) -> None:  # type: ignore[assignment]
    text = str(error) + repr(getattr(error, "context", {}))
    assert KEY_NAME not in text
    assert all(line not in text for line in PEM.splitlines() if "PRIVATE KEY" not in line)
    for request in requests:
        assert request.headers["Authorization"].split(" ", 1)[1] not in text


# --- balance ----------------------------------------------------------------------------------------------------


def test_balance_values_cash_and_holdings_in_usd_as_decimals() -> None:
    # Given USD 10250.55 free + 120 on hold, 0.125 BTC free + 0.005 on hold at 62000, and an empty ETH account
    fake = FakeCoinbaseBrokerage()
    # When the balance is read
    balance = broker_for(fake).balance()
    # Then equity is cash plus the BTC at its product price, available is the free cash, all Decimal
    assert balance == Balance("USD", D("10370.55") + D("0.130") * D("62000.00"), D("10250.55"))
    assert isinstance(balance.equity, D) and isinstance(balance.available, D)
    # And only the held BTC needed a price (no request for the empty ETH account)
    assert [r.url.path for r in fake.requests] == [f"{API}/accounts", f"{API}/products/BTC-USD"]
    assert fake.requests[0].url.params["limit"] == "250"


def test_balance_counts_usdc_as_cash() -> None:
    # Given a USDC account next to USD
    accounts = body("accounts.json")
    usdc = copy.deepcopy(accounts["accounts"][0])
    usdc |= {
        "currency": "USDC",
        "available_balance": {"value": "500", "currency": "USDC"},
        "hold": {"value": "0", "currency": "USDC"},
    }
    accounts["accounts"] = [accounts["accounts"][0], usdc]
    # When the balance is read
    balance = broker_for(FakeCoinbaseBrokerage(accounts=accounts)).balance()
    # Then USDC is cash at par, available and in equity, with no product lookup
    assert balance == Balance("USD", D("10870.55"), D("10750.55"))


def test_balance_follows_the_accounts_cursor() -> None:
    # Given two pages of accounts
    first = body("accounts.json") | {"has_next": True, "cursor": "789100"}
    first["accounts"] = first["accounts"][:1]
    second = body("accounts.json")
    second["accounts"] = second["accounts"][1:]
    fake = FakeCoinbaseBrokerage()
    pages = iter([first, second])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"{API}/accounts":
            fake.requests.append(request)
            return answer_json(next(pages))
        return fake(request)

    # When the balance is read
    balance = broker_for(handler).balance()
    # Then both pages count, the second asked for with the cursor
    assert balance.available == D("10250.55")
    assert balance.equity == D("10370.55") + D("0.130") * D("62000.00")
    assert [r.url.params.get("cursor") for r in fake.requests if r.url.path == f"{API}/accounts"] == [None, "789100"]


def test_balance_401_is_an_auth_error_naming_the_key_to_fix_and_no_secret() -> None:
    # Given Coinbase rejects the JWT
    seen: list[httpx.Request] = []
    broker = broker_for(answering(401, raw("error_unauthorized.txt"), seen))
    # When the balance is read
    with pytest.raises(AuthError) as caught:
        broker.balance()
    # Then the error says which secret to fix, with full context and no key, PEM or JWT
    error = caught.value
    assert "key_name" in str(error) and "private_key" in str(error) and "Fix:" in str(error)
    assert error.context["provider"] == "coinbase"
    assert error.context["http_status"] == 401
    assert error.context["request_id"] == REQUEST_ID
    assert error.context["endpoint"] == "GET https://api.coinbase.com/api/v3/brokerage/accounts"
    assert_no_secret(error, seen)


def test_balance_403_is_an_auth_error_naming_the_view_permission() -> None:
    seen: list[httpx.Request] = []
    broker = broker_for(answering(403, raw("error_permission_denied.json"), seen))
    with pytest.raises(AuthError) as caught:
        broker.balance()
    assert "'View' permission" in str(caught.value)
    assert "Missing required scopes" in str(caught.value)
    assert caught.value.context["http_status"] == 403
    assert_no_secret(caught.value, seen)


@pytest.mark.parametrize("price", ["0", "-1", "NaN"])
def test_balance_holding_without_a_usable_price_fails_the_read(price: str) -> None:
    with pytest.raises(InvalidInputError):
        broker_for(FakeCoinbaseBrokerage(price=price)).balance()


def test_balance_holding_without_a_usd_product_fails_the_read_instead_of_being_left_out() -> None:
    accounts = body("accounts.json")
    accounts["accounts"][1]["currency"] = "XYZ"
    with pytest.raises(InvalidInputError, match="ProductID is invalid"):
        broker_for(FakeCoinbaseBrokerage(accounts=accounts)).balance()


# --- JWT --------------------------------------------------------------------------------------------------------


def test_every_request_carries_a_fresh_es256_jwt_with_the_documented_claims() -> None:
    # Given a venue that checks signatures with the key's public half
    fake = FakeCoinbaseBrokerage()
    broker = broker_for(fake)
    # When the balance is read (two requests) and an order placed (POST)
    broker.balance()
    broker.place_order(buy())
    # Then each Authorization is "Bearer <jwt>" signed ES256 by our key, with the documented header and claims
    seen = []
    for request in fake.requests:
        scheme, token = request.headers["Authorization"].split(" ")
        assert scheme == "Bearer"
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, PUBLIC, algorithms=["ES256"], options={"verify_exp": False, "verify_nbf": False})
        assert header["alg"] == "ES256"
        assert header["kid"] == KEY_NAME
        assert len(header["nonce"]) == 32 and int(header["nonce"], 16) >= 0
        assert claims == {
            "sub": KEY_NAME,
            "iss": "cdp",
            "nbf": NOW,
            "exp": NOW + 120,
            "uri": f"{request.method} api.coinbase.com{request.url.path}",
        }
        seen.append((token, header["nonce"]))
    # And the uri never carries the query string, and no JWT or nonce is reused
    assert fake.requests[0].url.query and "?" not in jwt.decode(seen[0][0], options={"verify_signature": False})["uri"]
    assert any(r.method == "POST" for r in fake.requests)
    assert len({token for token, _ in seen}) == len(seen) == len({nonce for _, nonce in seen})


def test_jwt_verifies_against_the_public_key_within_its_two_minute_window() -> None:
    # Given a broker on the real clock
    fake = FakeCoinbaseBrokerage()
    client = httpx.Client(transport=httpx.MockTransport(fake))
    CoinbaseBroker(client, credentials()).product_rules("BTCUSD")
    # When the token is verified with nbf/exp checks on
    token = fake.requests[0].headers["Authorization"].split(" ")[1]
    claims = jwt.decode(token, PUBLIC, algorithms=["ES256"])
    # Then it is valid now and expires two minutes after it starts
    assert claims["exp"] - claims["nbf"] == 120


def test_private_key_pasted_with_escaped_newlines_is_accepted() -> None:
    fake = FakeCoinbaseBrokerage()
    broker_for(fake, credentials(private_key=PEM.replace("\n", "\\n"))).product_rules("BTCUSD")
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "overrides",
    [{"private_key": "not a key"}, {"private_key": ""}, {"key_name": ""}],
    ids=["garbage-key", "no-key", "no-key-name"],
)
def test_unusable_credentials_are_an_auth_error_before_any_request(overrides: dict[str, str]) -> None:
    fake = FakeCoinbaseBrokerage()
    with pytest.raises(AuthError, match="Fix:") as caught:
        broker_for(fake, credentials(**overrides)).balance()
    assert fake.requests == []
    assert_no_secret(caught.value)


def test_a_non_p256_key_is_an_auth_error_that_says_es256() -> None:
    other = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(AuthError, match="ES256"):
        broker_for(FakeCoinbaseBrokerage(), credentials(private_key=other.decode())).balance()


# --- positions and product rules ----------------------------------------------------------------------------------


def test_positions_are_the_non_zero_crypto_holdings_in_engine_symbols() -> None:
    positions = broker_for(FakeCoinbaseBrokerage()).positions()
    assert positions == [Position("BTCUSD", D("0.13000000"), D("62000.00"))]


def test_account_lists_the_accounts_once_and_prices_each_holding_once() -> None:
    # Given BTC and ETH both held next to USD
    accounts = body("accounts.json")
    accounts["accounts"][2]["available_balance"]["value"] = "2"
    fake = FakeCoinbaseBrokerage(accounts=accounts)
    broker = broker_for(fake)
    # When the whole account is read
    balance, positions = broker.account()
    # Then it is what balance() and positions() answer apart
    assert (balance, positions) == (broker.balance(), broker.positions())
    assert positions == [Position("BTCUSD", D("0.13000000"), D("62000.00")), Position("ETHUSD", D("2"), D("62000.00"))]
    assert balance == Balance("USD", D("10370.55") + (D("0.130") + D("2")) * D("62000.00"), D("10250.55"))
    # And it cost one listing and one price per holding (balance() and positions() each cost the same again)
    paths = [r.url.path for r in fake.requests]
    one_read = [f"{API}/accounts", f"{API}/products/BTC-USD", f"{API}/products/ETH-USD"]
    assert paths == one_read * 3


def test_product_rules_parse_base_min_size_increment_and_quote_min_size() -> None:
    # Given the recorded BTC-USD product
    fake = FakeCoinbaseBrokerage()
    broker = broker_for(fake)
    # When its rules are read twice
    rules = broker.product_rules("BTCUSD")
    again = broker.product_rules("BTCUSD")
    # Then they come from base_min_size, base_increment and quote_min_size, and the second read is cached
    assert rules == ProductRules("BTCUSD", D("0.00001"), D("0.00000001"), D("1"))
    assert again == rules
    assert [r.url.path for r in fake.requests] == [f"{API}/products/BTC-USD"]


def test_product_rules_unknown_product_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="ProductID is invalid"):
        broker_for(FakeCoinbaseBrokerage()).product_rules("DOGEUSD")


@pytest.mark.parametrize("field", ["base_min_size", "base_increment", "quote_min_size"])
def test_product_rules_missing_field_is_invalid_input(field: str) -> None:
    product = body("product_btc_usd.json")
    product.pop(field)
    with pytest.raises(InvalidInputError, match=field):
        broker_for(answering(200, json.dumps(product).encode())).product_rules("BTCUSD")


# --- orders -------------------------------------------------------------------------------------------------------


def test_place_order_posts_a_market_ioc_order_and_reads_back_its_fill() -> None:
    # Given a venue that fills market orders
    fake = FakeCoinbaseBrokerage()
    # When 0.001 BTC is bought
    result = broker_for(fake).place_order(buy("0.001"))
    # Then the documented create-order body went out
    (post,) = [r for r in fake.requests if r.method == "POST"]
    assert str(post.url) == "https://api.coinbase.com/api/v3/brokerage/orders"
    assert json.loads(post.content) == {
        "client_order_id": CLIENT_ID,
        "product_id": "BTC-USD",
        "side": "BUY",
        "order_configuration": {"market_market_ioc": {"base_size": "0.001"}},
    }
    # And the result is the order's fill as Decimals, read with Get Order
    assert result.status is OrderStatus.FILLED
    assert (result.client_order_id, result.venue_order_id) == (CLIENT_ID, "11111-00000-000000")
    assert (result.filled_quantity, result.average_price, result.fee) == (D("0.001"), D("62010.5"), D("0.372063"))
    assert result.detail == ""
    assert fake.requests[-1].url.path == f"{API}/orders/historical/11111-00000-000000"


def test_place_order_sell_sends_side_sell_and_a_plain_decimal_size() -> None:
    fake = FakeCoinbaseBrokerage()
    broker_for(fake).place_order(buy("1E-5", side=OrderSide.SELL))
    (post,) = [r for r in fake.requests if r.method == "POST"]
    sent = json.loads(post.content)
    assert sent["side"] == "SELL"
    assert sent["order_configuration"]["market_market_ioc"]["base_size"] == "0.00001"


def test_place_order_insufficient_funds_is_rejected_with_the_venue_reason() -> None:
    # Given a venue answering success=false, INSUFFICIENT_FUND
    fake = FakeCoinbaseBrokerage(create="order_insufficient_fund.json")
    # When an order is placed
    result = broker_for(fake).place_order(buy("10"))
    # Then it is a REJECTED result carrying Coinbase's reason, not an exception
    assert result.status is OrderStatus.REJECTED
    assert result.venue_order_id is None
    assert result.filled_quantity == 0 and result.average_price is None and result.fee == 0
    assert "INSUFFICIENT_FUND" in result.detail
    assert "Insufficient balance in source account" in result.detail


def test_place_order_venue_rejection_keeps_the_preview_failure_reason() -> None:
    fake = FakeCoinbaseBrokerage(create="order_base_size_too_small.json")
    result = broker_for(fake).place_order(buy("0.00001"))
    assert result.status is OrderStatus.REJECTED
    assert result.detail == "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"


def test_place_order_below_the_minimum_with_cold_rules_sends_no_order() -> None:
    fake = FakeCoinbaseBrokerage()
    with pytest.raises(InvalidInputError, match=r"below the venue minimum 0\.00001; not sent"):
        broker_for(fake).place_order(buy("0.000009"))
    assert [r.method for r in fake.requests] == ["GET"]
    assert fake.posts == 0


def test_place_order_off_the_increment_is_refused() -> None:
    fake = FakeCoinbaseBrokerage()
    with pytest.raises(InvalidInputError, match="increment"):
        broker_for(fake).place_order(buy("0.000100001"))
    assert fake.posts == 0


def test_duplicate_place_order_in_one_container_posts_once() -> None:
    # Given one broker
    fake = FakeCoinbaseBrokerage()
    broker = broker_for(fake)
    # When the same client_order_id is placed twice
    first = broker.place_order(buy())
    second = broker.place_order(buy())
    # Then one order was created and sent once; the second call read it back
    assert fake.posts == 1
    assert len(fake.orders) == 1
    assert second == first


def test_duplicate_place_order_from_another_container_gets_the_first_order_back() -> None:
    # Given an order placed by one container
    fake = FakeCoinbaseBrokerage()
    first = broker_for(fake).place_order(buy())
    # When another container (a fresh broker) places the same client_order_id
    second = broker_for(fake).place_order(buy())
    # Then Coinbase's documented de-duplication answers the first order: still a single order
    assert len(fake.orders) == 1
    assert second.venue_order_id == first.venue_order_id
    assert second == first


def test_a_lost_create_response_is_transient_and_the_retry_does_not_double_the_order() -> None:
    # Given a venue that creates the order, then the response is lost
    fake = FakeCoinbaseBrokerage()
    fake.lose_next_create_response = True
    broker = broker_for(fake)
    # When the order is placed, fails, and the state machine retries it
    with pytest.raises(TransientError) as caught:
        broker.place_order(buy())
    assert caught.value.context["endpoint"] == "POST https://api.coinbase.com/api/v3/brokerage/orders"
    result = broker.place_order(buy())
    # Then there is still one order, and the retry returns it
    assert len(fake.orders) == 1
    assert result.status is OrderStatus.FILLED


def test_place_order_403_names_the_trade_permission() -> None:
    fake = FakeCoinbaseBrokerage()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            fake.requests.append(request)
            return answer_json(body("error_permission_denied.json"), 403)
        return fake(request)

    with pytest.raises(AuthError, match="'Trade' permission") as caught:
        broker_for(handler).place_order(buy())
    assert_no_secret(caught.value, fake.requests)


@pytest.mark.parametrize(
    ("changes", "status", "detail"),
    [
        (
            {"status": "CANCELLED", "filled_size": "0", "average_filled_price": "0", "total_fees": "0"},
            OrderStatus.CANCELLED,
            "",
        ),
        (
            {"status": "EXPIRED", "filled_size": "0", "average_filled_price": "0", "total_fees": "0"},
            OrderStatus.CANCELLED,
            "EXPIRED",
        ),
        ({"status": "CANCELLED", "filled_size": "0.0004"}, OrderStatus.PARTIALLY_FILLED, "CANCELLED"),
        (
            {"status": "OPEN", "filled_size": "0", "average_filled_price": "0", "total_fees": "0"},
            OrderStatus.PENDING,
            "OPEN",
        ),
        (
            {
                "status": "FAILED",
                "filled_size": "0",
                "average_filled_price": "0",
                "total_fees": "0",
                "reject_message": "Insufficient balance in source account",
            },
            OrderStatus.REJECTED,
            "Insufficient balance in source account",
        ),
    ],
    ids=["cancelled", "expired", "partially-filled", "open", "failed"],
)
def test_order_statuses_map_to_the_engine_vocabulary(changes: dict[str, str], status: OrderStatus, detail: str) -> None:
    fake = FakeCoinbaseBrokerage()
    broker = broker_for(fake)
    broker.place_order(buy())
    fake.orders["11111-00000-000000"] |= changes
    result = broker.order_status(CLIENT_ID)
    assert result is not None
    assert (result.status, result.detail) == (status, detail)
    if result.filled_quantity == 0:
        assert result.average_price is None


def test_a_fill_without_a_price_is_invalid_input() -> None:
    fake = FakeCoinbaseBrokerage()
    broker = broker_for(fake)
    broker.place_order(buy())
    fake.orders["11111-00000-000000"]["average_filled_price"] = "0"
    with pytest.raises(InvalidInputError, match="average_filled_price"):
        broker.order_status(CLIENT_ID)


def test_an_unknown_order_status_is_invalid_input() -> None:
    fake = FakeCoinbaseBrokerage()
    broker = broker_for(fake)
    broker.place_order(buy())
    fake.orders["11111-00000-000000"]["status"] = "HALF_DONE"
    with pytest.raises(InvalidInputError, match="HALF_DONE"):
        broker.order_status(CLIENT_ID)


def test_order_status_finds_an_order_placed_by_another_container_in_the_recent_orders() -> None:
    # Given an order placed elsewhere
    fake = FakeCoinbaseBrokerage()
    placed = broker_for(fake).place_order(buy())
    fake.requests.clear()
    # When a fresh broker asks for its status
    result = broker_for(fake).order_status(CLIENT_ID)
    # Then it is found by scanning List Orders, and matches what was placed
    assert result == placed
    assert fake.requests[0].url.path == f"{API}/orders/historical/batch"


def test_order_status_unknown_client_order_id_is_none() -> None:
    assert broker_for(FakeCoinbaseBrokerage()).order_status("never-placed") is None


def test_errors_are_ffe_errors_with_the_broker_as_provider() -> None:
    with pytest.raises(FfeError) as caught:
        broker_for(answering(500, raw("error_internal.json"))).place_order(buy())
    assert caught.value.context["provider"] == "coinbase"
    assert caught.value.context["asset"] == "BTCUSD"


# --- open orders ------------------------------------------------------------------------------------------------


def test_open_orders_list_what_is_left_to_fill_of_each_open_order() -> None:
    # Given an ETH-USD limit buy of 1.5 at 3400 with 0.5 filled, next to a filled market order
    fake = FakeCoinbaseBrokerage()
    fake.orders = {o["order_id"]: o for o in body("orders_open.json")["orders"]}
    fake.orders["11111-00000-000000"] = body("order_filled.json")["order"]
    # When the gate asks what is on its way
    pending = broker_for(fake).open_orders()
    # Then only the open order counts, for the 1.0 ETH it may still buy at its limit price
    assert pending == [
        PendingOrder("ffe-7d2e9c4b1a0f3e6d5c8b7a9f0e1d", "ETHUSD", OrderSide.BUY, D("1.0"), D("3400.00"))
    ]
    [request] = fake.requests
    assert request.url.path == f"{API}/orders/historical/batch" and request.url.params["order_status"] == "OPEN"


def test_an_open_order_sized_in_quote_currency_fails_the_read_rather_than_being_left_out() -> None:
    fake = FakeCoinbaseBrokerage()
    [order] = body("orders_open.json")["orders"]
    order["order_configuration"] = {"market_market_ioc": {"quote_size": "250.00"}}
    fake.orders = {order["order_id"]: order}
    with pytest.raises(InvalidInputError, match="has no base size"):
        broker_for(fake).open_orders()
