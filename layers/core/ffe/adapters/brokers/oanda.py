"""OANDA v20 as a ``Broker``: account summary, open positions, instrument rules, FOK market orders.

Endpoints (https://developer.oanda.com/rest-live-v20/account-ep/, .../position-ep/, .../order-ep/,
.../transaction-ep/), with ``Authorization: Bearer <token>`` on https://api-fxpractice.oanda.com (practice) or
https://api-fxtrade.oanda.com (live), the same hosts as the market-data adapter:
- ``GET /v3/accounts/{accountID}/summary``: ``{"account": {"currency", "balance", "NAV", "marginAvailable", ...}}``.
- ``GET /v3/accounts/{accountID}/openPositions``: ``{"positions": [{"instrument", "long": {"units",
  "averagePrice"}, "short": {"units" (negative), "averagePrice"}}]}``.
- ``GET /v3/accounts/{accountID}/instruments?instruments=EUR_USD``: ``{"instruments": [{"name",
  "minimumTradeSize", "tradeUnitsPrecision", ...}]}``.
- ``POST /v3/accounts/{accountID}/orders`` with ``{"order": {"type": "MARKET", "instrument", "units" (negative
  sells), "timeInForce": "FOK", "positionFill": "DEFAULT", "clientExtensions": {"id": client_order_id}}}``:
  201 ``{"orderCreateTransaction", "orderFillTransaction" | "orderCancelTransaction" (with "reason", e.g.
  INSUFFICIENT_MARGIN)}``; 400/404 ``{"orderRejectTransaction" (with "rejectReason"), "errorCode",
  "errorMessage"}``.
- ``GET /v3/accounts/{accountID}/orders/@{clientOrderID}`` (an OrderSpecifier may be "@" + the client id):
  ``{"order": {"id", "state" (PENDING, FILLED, TRIGGERED, CANCELLED), "fillingTransactionID",
  "cancellingTransactionID", ...}}``; 404 when there is no such order.
- ``GET /v3/accounts/{accountID}/transactions/{transactionID}``: the ORDER_FILL / ORDER_CANCEL of that order.
- ``GET /v3/accounts/{accountID}/pendingOrders``: ``{"orders": [{"id", "type", "instrument", "units", "price",
  "clientExtensions": {"id"}, ...}]}``, every order not yet filled or cancelled (the risk gate counts them).

Choices:
- Idempotency: ``place_order`` first asks for ``orders/@{client_order_id}``; when the order exists its result is
  returned and nothing is posted. A rejected create (400) creates no order, so a retry may post again.
- A FOK market order that OANDA cancels at once (insufficient margin, market halted, ...) is REJECTED with the
  cancel reason; only a client-requested cancel is CANCELLED.
- ``balance()`` is in the account's home currency: equity = NAV, available = marginAvailable.
- Units are base-currency units (EUR for EUR_USD); the size increment is 10 ** -tradeUnitsPrecision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from ffe.adapters.brokers import RulesCache, check_quantity, decimal_field, field_of, plain, send_json
from ffe.adapters.providers.base import Call, Credentials, provider_message, split_pair
from ffe.domain.errors import AuthError, InvalidInputError
from ffe.domain.models import AssetClass, Bar
from ffe.domain.portfolio import (
    Balance,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    PendingOrder,
    Position,
    ProductRules,
)

HOSTS = {"practice": "https://api-fxpractice.oanda.com", "live": "https://api-fxtrade.oanda.com"}
ACCESS_HINT = (
    "check the OANDA secret's 'token': it must be a current v20 personal access token (OANDA Hub > Manage API "
    "Access; a regenerated token revokes the old one), and a practice token only works with environment=practice"
)
ACCOUNT_HINT = (
    "check the OANDA secret's 'account_id' and 'environment': the account must belong to the token's user on that "
    "environment (practice or live), and be a v20 account (xxx-xxx-xxxxxxx-xxx)"
)
# ORDER_CANCEL reasons of a FOK market order are venue refusals, except the client's own cancel.
_CLIENT_CANCEL = "CLIENT_REQUEST"
# Pending order types that carry units of their own (the others close trades: TAKE_PROFIT, STOP_LOSS, ...).
_OPENING = {"MARKET", "LIMIT", "STOP", "MARKET_IF_TOUCHED"}


class OandaBroker:
    """``credentials()`` -> {"token", "account_id", "environment" ("practice" | "live")}, read on every call."""

    name = "oanda"

    def __init__(
        self,
        client: httpx.Client,
        credentials: Credentials,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        account_id: str = "oanda",
    ) -> None:
        self.account_id = account_id  # what the risk gate's lock, reservations and kill switches key on
        self._client = client
        self._credentials = credentials
        self._rules = RulesCache(monotonic)

    # --- Broker -------------------------------------------------------------------------------------------------

    def balance(self) -> Balance:
        """NAV and margin available, in the account's home currency."""
        call = Call(self.name)
        body, response = self._request("GET", "summary", call)
        account = field_of(body, "account", dict, call, response)
        currency = field_of(account, "currency", str, call, response)
        decimal_field(account.get("balance"), "balance", call, response)  # validated: never trade on a bad read
        equity = decimal_field(account.get("NAV"), "NAV", call, response)
        available = decimal_field(account.get("marginAvailable"), "marginAvailable", call, response)
        return Balance(currency, equity, available)

    def positions(self) -> list[Position]:
        """Net open position per instrument (short units are negative)."""
        call = Call(self.name)
        body, response = self._request("GET", "openPositions", call)
        out = []
        for position in field_of(body, "positions", list, call, response):
            instrument = field_of(position, "instrument", str, call, response)
            long_units, long_price = _side(position, "long", call, response)
            short_units, short_price = _side(position, "short", call, response)
            net = long_units + short_units
            if net:
                price = long_price if net > 0 else short_price
                if price is None:
                    raise InvalidInputError(
                        f"{self.name} sent {instrument} units without an averagePrice", **call.context(response)
                    )
                out.append(Position(instrument.replace("_", ""), net, price))
        return out

    def account(self) -> tuple[Balance, list[Position]]:
        """``balance()`` and ``positions()``: two endpoints, nothing the two reads share."""
        return self.balance(), self.positions()

    def settle(self, asset: str, bars: Sequence[Bar]) -> list[OrderResult]:
        """Nothing to do: the venue fills its own orders and its account reads are current."""
        return []

    def product_rules(self, asset: str, asset_class: AssetClass | None = None) -> ProductRules:
        """``minimumTradeSize`` and ``10 ** -tradeUnitsPrecision`` of the instrument, cached for 5 minutes."""
        cached = self._rules.get(asset)
        if cached is not None:
            return cached
        call = Call(self.name, asset)
        instrument = _instrument(call)
        body, response = self._request("GET", "instruments", call, params={"instruments": instrument})
        found = [i for i in field_of(body, "instruments", list, call, response) if _name(i) == instrument]
        if not found:
            raise InvalidInputError(
                f"{self.name} does not list {instrument} for this account", **call.context(response)
            )
        minimum = decimal_field(found[0].get("minimumTradeSize"), "minimumTradeSize", call, response)
        precision = field_of(found[0], "tradeUnitsPrecision", int, call, response)
        if not 0 <= precision <= 12:
            raise InvalidInputError(f"{self.name} sent tradeUnitsPrecision {precision}", **call.context(response))
        rules = ProductRules(asset=asset, min_size=minimum, size_increment=Decimal(1).scaleb(-precision))
        return self._rules.put(rules)

    def place_order(self, order: OrderRequest) -> OrderResult:
        """A FOK market order; an order already carrying ``client_order_id`` is returned instead of placed."""
        call = Call(self.name, order.asset)
        instrument = _instrument(call)
        rules = self.product_rules(order.asset)
        check_quantity(order, rules, call)
        existing = self.order_status(order.client_order_id)
        if existing is not None:
            return existing
        units = order.quantity if order.side is OrderSide.BUY else -order.quantity
        payload = {
            "order": {
                "type": "MARKET",
                "instrument": instrument,
                "units": plain(units.quantize(rules.size_increment)),
                "timeInForce": "FOK",
                "positionFill": "DEFAULT",
                "clientExtensions": {"id": order.client_order_id},
            }
        }
        body, response = self._request("POST", "orders", call, json=payload, accept=(400, 404))
        if response.status_code >= 400:
            return self._rejected(order.client_order_id, body, call, response)
        return _created(order.client_order_id, body, call, response)

    def order_status(self, client_order_id: str) -> OrderResult | None:
        call = Call(self.name)
        path = f"orders/@{quote(client_order_id, safe='')}"
        body, response = self._request("GET", path, call, accept=(404,))
        if response.status_code == 404:
            message = provider_message(response).lower()
            if "account" in message and "order" not in message:  # the account, not the order, is missing
                raise InvalidInputError(
                    f"{self.name}: {provider_message(response)}. Fix: {ACCOUNT_HINT}", **call.context(response)
                )
            return None
        venue_order = field_of(body, "order", dict, call, response)
        return self._from_order(client_order_id, venue_order, call, response)

    def open_orders(self) -> list[PendingOrder]:
        """The account's pending orders that open or add units (market, limit, stop, market-if-touched); the
        take-profit and stop-loss orders attached to trades only close them, so they add no exposure."""
        call = Call(self.name)
        body, response = self._request("GET", "pendingOrders", call)
        out = []
        for order in field_of(body, "orders", list, call, response):
            kind = field_of(order, "type", str, call, response)
            if kind not in _OPENING:
                continue
            order_id = field_of(order, "id", str, call, response)
            instrument = field_of(order, "instrument", str, call, response)
            units = decimal_field(order.get("units"), f"units of order {order_id}", call, response, signed=True)
            price = order.get("price")
            limit = decimal_field(price, f"price of order {order_id}", call, response) if price else None
            extensions = order.get("clientExtensions")
            client_id = extensions.get("id") if isinstance(extensions, dict) else None
            side = OrderSide.BUY if units > 0 else OrderSide.SELL
            if units:
                out.append(
                    PendingOrder(
                        str(client_id or f"oanda-{order_id}"), instrument.replace("_", ""), side, abs(units), limit
                    )
                )
        return out

    # --- helpers ------------------------------------------------------------------------------------------------

    def _from_order(
        self, client_order_id: str, order: dict[str, Any], call: Call, response: httpx.Response
    ) -> OrderResult:
        order_id = field_of(order, "id", str, call, response)
        state = field_of(order, "state", str, call, response)
        if state == "FILLED":
            fill = self._transaction(field_of(order, "fillingTransactionID", str, call, response), call)
            return _filled(client_order_id, order_id, fill, call, response)
        if state == "CANCELLED":
            cancel = self._transaction(field_of(order, "cancellingTransactionID", str, call, response), call)
            return _cancelled(client_order_id, order_id, cancel)
        if state in ("PENDING", "TRIGGERED"):
            return OrderResult(client_order_id, order_id, OrderStatus.PENDING, Decimal(0), None, Decimal(0), state)
        raise InvalidInputError(f"{self.name} sent an unknown order state {state!r}", **call.context(response))

    def _transaction(self, transaction_id: str, call: Call) -> dict[str, Any]:
        body, response = self._request("GET", f"transactions/{quote(transaction_id, safe='')}", call)
        return dict(field_of(body, "transaction", dict, call, response))

    def _rejected(self, client_order_id: str, body: Any, call: Call, response: httpx.Response) -> OrderResult:
        """A 400/404 create: a venue rejection when it carries an orderRejectTransaction, else a bad request."""
        reject = body.get("orderRejectTransaction") if isinstance(body, dict) else None
        if not isinstance(reject, dict):
            message = provider_message(response)
            hint = f". Fix: {ACCOUNT_HINT}" if response.status_code == 404 else ""
            raise InvalidInputError(f"{self.name} refused the order: {message}{hint}", **call.context(response))
        reason = [str(reject.get("rejectReason") or ""), str(body.get("errorMessage") or "")]
        detail = ": ".join(part for part in dict.fromkeys(reason) if part) or "rejected without a reason"
        return OrderResult(client_order_id, None, OrderStatus.REJECTED, Decimal(0), None, Decimal(0), detail)

    def _request(self, method: str, path: str, call: Call, **kwargs: Any) -> tuple[Any, httpx.Response]:
        credentials = self._credentials()
        token = (credentials.get("token") or "").strip()
        account_id = (credentials.get("account_id") or "").strip()
        if not token:
            raise AuthError(f"{self.name} credentials have no 'token'. Fix: {ACCESS_HINT}", **call.context())
        if not account_id:
            raise AuthError(f"{self.name} credentials have no 'account_id'. Fix: {ACCOUNT_HINT}", **call.context())
        environment = (credentials.get("environment") or "practice").strip().lower()
        if environment not in HOSTS:
            raise InvalidInputError(
                f"{self.name} environment must be one of {sorted(HOSTS)}, not {environment!r}", **call.context()
            )
        url = f"{HOSTS[environment]}/v3/accounts/{quote(account_id, safe='')}/{path}"
        headers = {"Authorization": f"Bearer {token}", "Accept-Datetime-Format": "RFC3339"}
        return send_json(
            self._client,
            call,
            method,
            url,
            hint=ACCESS_HINT,
            forbidden_hint=ACCOUNT_HINT,
            secrets=(token,),
            headers=headers,
            **kwargs,
        )


def _instrument(call: Call) -> str:
    """'EURUSD' -> 'EUR_USD'."""
    try:
        return "_".join(split_pair(call.asset or ""))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{call.provider}: {call.asset!r} is not a currency pair", **call.context()) from exc


def _name(instrument: Any) -> str | None:
    return instrument.get("name") if isinstance(instrument, dict) else None


def _side(position: Any, key: str, call: Call, response: httpx.Response) -> tuple[Decimal, Decimal | None]:
    side = field_of(position, key, dict, call, response)
    units = decimal_field(side.get("units"), f"{key}.units", call, response, signed=True)
    if (key == "long" and units < 0) or (key == "short" and units > 0):
        raise InvalidInputError(f"{call.provider} sent {key}.units {units}", **call.context(response))
    price = side.get("averagePrice")
    return units, None if price is None else decimal_field(price, f"{key}.averagePrice", call, response)


def _created(client_order_id: str, body: Any, call: Call, response: httpx.Response) -> OrderResult:
    """A 201 create: filled, cancelled at once (a FOK refusal), or still pending."""
    created = field_of(body, "orderCreateTransaction", dict, call, response)
    order_id = field_of(created, "id", str, call, response)
    fill = body.get("orderFillTransaction")
    if isinstance(fill, dict):
        return _filled(client_order_id, order_id, fill, call, response)
    cancel = body.get("orderCancelTransaction")
    if isinstance(cancel, dict):
        return _cancelled(client_order_id, order_id, cancel)
    return OrderResult(client_order_id, order_id, OrderStatus.PENDING, Decimal(0), None, Decimal(0), "PENDING")


def _filled(
    client_order_id: str, order_id: str, fill: dict[str, Any], call: Call, response: httpx.Response
) -> OrderResult:
    if fill.get("type") != "ORDER_FILL":
        raise InvalidInputError(f"{call.provider} sent a {fill.get('type')!r} as the fill", **call.context(response))
    units = decimal_field(fill.get("units"), "orderFillTransaction.units", call, response, signed=True)
    vwap = fill.get("fullVWAP", fill.get("price"))  # "price" is the deprecated name of the fill price
    price = decimal_field(vwap, "orderFillTransaction.fullVWAP", call, response)
    fee = Decimal(0)
    for key in ("commission", "guaranteedExecutionFee"):
        if fill.get(key) is not None:
            fee += abs(decimal_field(fill[key], f"orderFillTransaction.{key}", call, response, signed=True))
    return OrderResult(client_order_id, order_id, OrderStatus.FILLED, abs(units), price, fee)


def _cancelled(client_order_id: str, order_id: str, cancel: dict[str, Any]) -> OrderResult:
    reason = str(cancel.get("reason") or "cancelled without a reason")
    status = OrderStatus.CANCELLED if reason == _CLIENT_CANCEL else OrderStatus.REJECTED
    return OrderResult(client_order_id, order_id, status, Decimal(0), None, Decimal(0), reason)
