"""Coinbase Advanced Trade (spot) as a ``Broker``: balances, holdings, product rules, market orders.

Authentication (https://docs.cdp.coinbase.com/advanced-trade/docs/rest-api-auth and
https://docs.cdp.coinbase.com/get-started/authentication/jwt-authentication): a CDP API key is a key name
(``organizations/{org_id}/apiKeys/{key_id}``) and an EC P-256 private key in PEM. Every request carries its
own JWT, ``Authorization: Bearer <jwt>``, signed ES256 with header ``kid`` = key name and a random ``nonce``,
and claims ``sub`` = key name, ``iss`` = "cdp", ``nbf`` = now, ``exp`` = now + 120 s and
``uri`` = "<METHOD> api.coinbase.com<path>" (the path without its query string). A JWT is never reused.

Endpoints (https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/...), all on
https://api.coinbase.com:
- ``GET /api/v3/brokerage/accounts?limit=&cursor=`` (accounts/list-accounts): ``{"accounts": [{"currency",
  "available_balance": {"value", "currency"}, "hold": {...}, ...}], "has_next", "cursor"}``.
- ``GET /api/v3/brokerage/products/{product_id}`` (products/get-product): ``price``, ``base_min_size``,
  ``base_increment``, ``quote_min_size``, ... as decimal strings.
- ``POST /api/v3/brokerage/orders`` (orders/create-order) with ``{"client_order_id", "product_id", "side",
  "order_configuration": {"market_market_ioc": {"base_size"}}}``: ``{"success": true, "success_response":
  {"order_id", ...}}`` or ``{"success": false, "error_response": {"error", "message", "error_details",
  "preview_failure_reason", "new_order_failure_reason"}}`` (HTTP 200 either way).
- ``GET /api/v3/brokerage/orders/historical/{order_id}`` (orders/get-order): ``{"order": {"status",
  "filled_size", "average_filled_price", "total_fees", "reject_reason", ...}}``.
- ``GET /api/v3/brokerage/orders/historical/batch?limit=&cursor=`` (orders/list-orders); with
  ``order_status=OPEN`` it lists the orders still working, which the risk gate counts (``open_orders``).

Choices:
- Idempotency. The create-order reference documents ``client_order_id`` as "A unique ID provided for the
  order (used for identification purposes). If the ID provided is not unique, the order will not be created
  and the order corresponding with that ID will be returned instead." List Orders documents no filter by
  client order id (only ``order_ids``, ``product_ids``, statuses, dates...), so ``place_order`` relies on that
  documented de-duplication: a retried POST (after a timeout, or from another container) gets the first
  order back. Within one container an id already placed is not even re-sent: its venue order id is
  remembered and the order is read with Get Order.
- ``order_status`` reads a remembered order by id; otherwise it scans the most recent orders
  (``MAX_SCAN_PAGES`` x ``SCAN_PAGE`` of them, newest first) for the client order id, and answers None
  when none of them has it.
- Spot only: the account currency is ``quote`` (USD). Cash is the quote currency plus ``CASH_EQUIVALENTS``
  (USDC, which Coinbase converts 1:1 to and from USD); every other non-zero holding is valued at its
  ``<CUR>-<QUOTE>`` product price, and a holding that cannot be priced fails the balance read rather than
  being left out. ``available`` is the cash available (not on hold).
- Positions are the non-zero holdings of non-cash currencies (available + hold), as ``<CUR><QUOTE>``.
  The accounts endpoint carries no cost basis, so ``average_price`` is the product's current price.
- ``account()`` is the balance and the positions from one listing and one price per holding; ``balance()``
  and ``positions()`` are its halves (each costs the same requests).
- A market order asks for ``market_market_ioc`` with ``base_size`` (engine quantities are base units).
"""

from __future__ import annotations

import secrets as token_source
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ffe.adapters.brokers import RulesCache, check_quantity, decimal_field, field_of, plain, send_json
from ffe.adapters.providers.base import Call, Credentials, split_pair
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

BASE_URL = "https://api.coinbase.com"
API = "/api/v3/brokerage"
JWT_LIFETIME_SECONDS = 120  # "Your JWT expires after 2 minutes"
ACCOUNTS_PAGE = 250  # List Accounts' maximum limit
MAX_PAGES = 20  # 5000 accounts: a body that keeps saying has_next past this is malformed
SCAN_PAGE = 100
MAX_SCAN_PAGES = 5
CASH_EQUIVALENTS = {"USD": ("USDC",)}

KEY_HINT = (
    "check the Coinbase secret: 'key_name' must be the CDP API key name (organizations/{org_id}/apiKeys/{key_id}) "
    "and 'private_key' its ECDSA (ES256) private key PEM, both from the key's JSON download; the key must not be "
    "expired or deleted, and this machine's clock must be right (each JWT is valid for 2 minutes)"
)
_ALLOWLIST = "and allow this host's IP if the key has an IP allowlist"
VIEW_HINT = f"give the CDP API key the 'View' permission on this portfolio, {_ALLOWLIST}"
TRADE_HINT = f"give the CDP API key the 'Trade' permission on this portfolio, {_ALLOWLIST}"

# Get Order statuses (orders/get-order): OPEN, FILLED, CANCELLED, EXPIRED, FAILED, UNKNOWN_ORDER_STATUS,
# QUEUED, CANCEL_QUEUED (and PENDING).
_WORKING = {"PENDING", "OPEN", "QUEUED", "CANCEL_QUEUED", "UNKNOWN_ORDER_STATUS"}
_ENDED = {"CANCELLED", "EXPIRED"}


class CoinbaseBroker:
    """``credentials()`` -> {"key_name": ..., "private_key": PEM EC key}, read on every request."""

    name = "coinbase"

    def __init__(
        self,
        client: httpx.Client,
        credentials: Credentials,
        *,
        base_url: str = BASE_URL,
        quote: str = "USD",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        account_id: str = "coinbase",
    ) -> None:
        self.account_id = account_id  # what the risk gate's lock, reservations and kill switches key on
        self._client = client
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._host = httpx.URL(self._base_url).host
        self._quote = quote
        self._cash = {quote, *CASH_EQUIVALENTS.get(quote, ())}
        self._clock = clock
        self._rules = RulesCache(monotonic)
        self._placed: dict[str, str] = {}  # client_order_id -> venue order id, for this container

    # --- Broker -------------------------------------------------------------------------------------------------

    def balance(self) -> Balance:
        """Quote-currency equity (cash + holdings at product prices) and available cash."""
        return self.account()[0]

    def positions(self) -> list[Position]:
        return self.account()[1]

    def account(self) -> tuple[Balance, list[Position]]:
        """The balance and the positions from one listing of the accounts and one price per held currency."""
        call = Call(self.name)
        holdings = self._holdings(call)
        prices = {
            currency: self._price(currency, call)
            for currency, (_, total) in holdings.items()
            if currency not in self._cash and total
        }
        cash = sum((total for currency, (_, total) in holdings.items() if currency in self._cash), Decimal(0))
        available = sum((free for currency, (free, _) in holdings.items() if currency in self._cash), Decimal(0))
        equity = cash
        for currency, price in prices.items():
            equity += holdings[currency][1] * price
        positions = [
            Position(f"{currency}{self._quote}", holdings[currency][1], price)
            for currency, price in sorted(prices.items())
        ]
        return Balance(self._quote, equity, available), positions

    def settle(self, asset: str, bars: Sequence[Bar]) -> list[OrderResult]:
        """Nothing to do: the venue fills its own orders and its account reads are current."""
        return []

    def product_rules(self, asset: str, asset_class: AssetClass | None = None) -> ProductRules:
        """``base_min_size``, ``base_increment`` and ``quote_min_size`` of the product, cached for 5 minutes."""
        cached = self._rules.get(asset)
        if cached is not None:
            return cached
        call = Call(self.name, asset)
        body, response = self._product(_product_id(call), call)
        rules = ProductRules(
            asset=asset,
            min_size=decimal_field(body.get("base_min_size"), "base_min_size", call, response),
            size_increment=decimal_field(body.get("base_increment"), "base_increment", call, response),
            min_notional=decimal_field(body.get("quote_min_size"), "quote_min_size", call, response),
        )
        if rules.size_increment <= 0:
            raise InvalidInputError(f"{self.name} sent base_increment {rules.size_increment}", **call.context(response))
        return self._rules.put(rules)

    def place_order(self, order: OrderRequest) -> OrderResult:
        """A market IOC order for ``order.quantity`` base units; the same client_order_id never fills twice."""
        call = Call(self.name, order.asset)
        product_id = _product_id(call)
        known = self._placed.get(order.client_order_id)
        if known is not None:
            return self._order_by_id(known, call)
        check_quantity(order, self.product_rules(order.asset), call)
        payload = {
            "client_order_id": order.client_order_id,
            "product_id": product_id,
            "side": order.side.value,
            "order_configuration": {"market_market_ioc": {"base_size": plain(order.quantity)}},
        }
        body, response = self._request("POST", f"{API}/orders", call, TRADE_HINT, json=payload)
        success = field_of(body, "success", bool, call, response)
        if not success:
            return OrderResult(
                order.client_order_id, None, OrderStatus.REJECTED, Decimal(0), None, Decimal(0), _failure(body)
            )
        created = field_of(body, "success_response", dict, call, response)
        order_id = field_of(created, "order_id", str, call, response)
        if not order_id:
            raise InvalidInputError(f"{self.name} accepted an order without an order_id", **call.context(response))
        result = self._order_by_id(order_id, call)
        if result.client_order_id != order.client_order_id:
            raise InvalidInputError(
                f"{self.name} answered client_order_id {order.client_order_id!r} with order {order_id} of "
                f"client_order_id {result.client_order_id!r}",
                **call.context(),
            )
        self._placed[order.client_order_id] = order_id
        return result

    def order_status(self, client_order_id: str) -> OrderResult | None:
        call = Call(self.name)
        known = self._placed.get(client_order_id)
        if known is not None:
            return self._order_by_id(known, call)
        for order, response in self._recent_orders(call):
            if order.get("client_order_id") == client_order_id:
                result = _result(order, call, response)
                if result.venue_order_id:
                    self._placed[client_order_id] = result.venue_order_id
                return result
        return None

    def open_orders(self) -> list[PendingOrder]:
        """Every OPEN order of the portfolio (List Orders with ``order_status=OPEN``), with what is left to fill.

        All of them or an error: more open orders than ``MAX_SCAN_PAGES`` pages, or one sized in the quote
        currency (no base size to count), fails the read rather than leaving an order out of the risk gate.
        """
        call = Call(self.name)
        out: list[PendingOrder] = []
        cursor = ""
        for _ in range(MAX_SCAN_PAGES):
            params = {"limit": str(SCAN_PAGE), "order_status": "OPEN"} | ({"cursor": cursor} if cursor else {})
            body, response = self._request("GET", f"{API}/orders/historical/batch", call, VIEW_HINT, params=params)
            for order in field_of(body, "orders", list, call, response):
                pending = _pending(order, call, response)
                if pending is not None:
                    out.append(pending)
            if not field_of(body, "has_next", bool, call, response):
                return out
            cursor = field_of(body, "cursor", str, call, response)
        raise InvalidInputError(
            f"{self.name} listed more than {MAX_SCAN_PAGES * SCAN_PAGE} open orders; cannot count them all",
            **call.context(),
        )

    # --- reads --------------------------------------------------------------------------------------------------

    def _holdings(self, call: Call) -> dict[str, tuple[Decimal, Decimal]]:
        """currency -> (available, available + hold), summed over every account of the portfolio."""
        out: dict[str, tuple[Decimal, Decimal]] = {}
        cursor = ""
        for _ in range(MAX_PAGES):
            params = {"limit": str(ACCOUNTS_PAGE)} | ({"cursor": cursor} if cursor else {})
            body, response = self._request("GET", f"{API}/accounts", call, VIEW_HINT, params=params)
            for account in field_of(body, "accounts", list, call, response):
                currency = field_of(account, "currency", str, call, response)
                free = _amount(account, "available_balance", call, response)
                hold = _amount(account, "hold", call, response)
                before = out.get(currency, (Decimal(0), Decimal(0)))
                out[currency] = (before[0] + free, before[1] + free + hold)
            if not field_of(body, "has_next", bool, call, response):
                return out
            cursor = field_of(body, "cursor", str, call, response)
        raise InvalidInputError(f"{self.name} kept paging accounts past {MAX_PAGES} pages", **call.context())

    def _price(self, currency: str, call: Call) -> Decimal:
        body, response = self._product(f"{currency}-{self._quote}", call)
        price = decimal_field(body.get("price"), f"price of {currency}-{self._quote}", call, response)
        if price <= 0:
            product = f"{currency}-{self._quote}"
            raise InvalidInputError(f"{self.name} sent price {price} for {product}", **call.context(response))
        return price

    def _product(self, product_id: str, call: Call) -> tuple[dict[str, Any], httpx.Response]:
        body, response = self._request("GET", f"{API}/products/{quote(product_id, safe='')}", call, VIEW_HINT)
        if not isinstance(body, dict):
            raise InvalidInputError(f"{self.name} sent a product that is not an object", **call.context(response))
        return body, response

    def _order_by_id(self, order_id: str, call: Call) -> OrderResult:
        path = f"{API}/orders/historical/{quote(order_id, safe='')}"
        body, response = self._request("GET", path, call, VIEW_HINT)
        return _result(field_of(body, "order", dict, call, response), call, response)

    def _recent_orders(self, call: Call) -> Iterator[tuple[dict[str, Any], httpx.Response]]:
        cursor = ""
        for _ in range(MAX_SCAN_PAGES):
            params = {"limit": str(SCAN_PAGE)} | ({"cursor": cursor} if cursor else {})
            body, response = self._request("GET", f"{API}/orders/historical/batch", call, VIEW_HINT, params=params)
            for order in field_of(body, "orders", list, call, response):
                if not isinstance(order, dict):
                    raise InvalidInputError(f"{self.name} listed a non-object order", **call.context(response))
                yield order, response
            if not field_of(body, "has_next", bool, call, response):
                return
            cursor = field_of(body, "cursor", str, call, response)

    # --- transport ----------------------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, call: Call, permission_hint: str, **kwargs: Any
    ) -> tuple[Any, httpx.Response]:
        token, secrets = self._jwt(method, path, call)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return send_json(
            self._client,
            call,
            method,
            f"{self._base_url}{path}",
            hint=KEY_HINT,
            forbidden_hint=permission_hint,
            secrets=(token, *secrets),
            headers=headers,
            **kwargs,
        )

    def _jwt(self, method: str, path: str, call: Call) -> tuple[str, tuple[str, ...]]:
        """A fresh ES256 JWT for this one request, and the secrets that must never reach an error."""
        credentials = self._credentials()
        key_name = (credentials.get("key_name") or "").strip()
        pem = credentials.get("private_key") or ""
        if not key_name or not pem.strip():
            message = f"{self.name} credentials need 'key_name' and 'private_key'. Fix: {KEY_HINT}"
            raise AuthError(message, **call.context())
        key = _private_key(pem, call)
        now = int(self._clock())
        claims = {
            "sub": key_name,
            "iss": "cdp",
            "nbf": now,
            "exp": now + JWT_LIFETIME_SECONDS,
            "uri": f"{method} {self._host}{path}",
        }
        headers = {"kid": key_name, "nonce": token_source.token_hex(16)}
        return jwt.encode(claims, key, algorithm="ES256", headers=headers), (key_name, pem)


def _private_key(pem: str, call: Call) -> ec.EllipticCurvePrivateKey:
    if "\\n" in pem and "\n" not in pem.strip():
        pem = pem.replace("\\n", "\n")  # a PEM pasted on one line with escaped newlines, as the docs allow
    try:
        key = serialization.load_pem_private_key(pem.strip().encode() + b"\n", password=None)
    except (ValueError, TypeError) as exc:
        raise AuthError(
            f"{call.provider} 'private_key' is not an unencrypted PEM private key. Fix: {KEY_HINT}", **call.context()
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise AuthError(
            f"{call.provider} 'private_key' is not an EC P-256 key; Advanced Trade signs with ES256 (create the CDP "
            f"key with the ECDSA signature algorithm). Fix: {KEY_HINT}",
            **call.context(),
        )
    return key


def _product_id(call: Call) -> str:
    """'BTCUSD' -> 'BTC-USD'."""
    try:
        return "-".join(split_pair(call.asset or ""))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{call.provider}: {call.asset!r} is not a currency pair", **call.context()) from exc


def _amount(account: Any, key: str, call: Call, response: httpx.Response) -> Decimal:
    money = field_of(account, key, dict, call, response)
    currency = account.get("currency")
    return decimal_field(money.get("value"), f"{currency} {key}", call, response)


def _failure(body: dict[str, Any]) -> str:
    """The venue's own reason for a failed create-order, most specific first."""
    error = body.get("error_response")
    error = error if isinstance(error, dict) else {}
    parts = [
        str(error[key])
        for key in ("error", "preview_failure_reason", "new_order_failure_reason", "message", "error_details")
        if error.get(key) and not _placeholder(str(error[key]))
    ]
    if not parts and body.get("failure_reason"):
        parts.append(str(body["failure_reason"]))
    return ": ".join(dict.fromkeys(parts)) or "rejected without a reason"


def _placeholder(value: str) -> bool:
    """Enum defaults that say nothing ("UNKNOWN_FAILURE_REASON", "REJECT_REASON_UNSPECIFIED")."""
    return value.startswith("UNKNOWN_") or value.endswith("_UNSPECIFIED")


def _pending(order: Any, call: Call, response: httpx.Response) -> PendingOrder | None:
    """An open order as what it may still add: its base size less what has filled (None once nothing is left)."""
    if not isinstance(order, dict):
        raise InvalidInputError(f"{call.provider} listed a non-object order", **call.context(response))
    order_id = field_of(order, "order_id", str, call, response)
    product = field_of(order, "product_id", str, call, response)
    side = field_of(order, "side", str, call, response)
    if side not in ("BUY", "SELL"):
        raise InvalidInputError(f"{call.provider} sent order {order_id} with side {side!r}", **call.context(response))
    shapes = [v for v in field_of(order, "order_configuration", dict, call, response).values() if isinstance(v, dict)]
    shape = shapes[0] if shapes else {}
    if shape.get("base_size") in (None, ""):
        raise InvalidInputError(
            f"{call.provider} open order {order_id} on {product} has no base size (sized in quote currency?): it "
            "cannot be counted against the risk limits; cancel it or let it fill",
            **call.context(response),
        )
    size = decimal_field(shape.get("base_size"), f"base_size of order {order_id}", call, response)
    filled = decimal_field(order.get("filled_size") or "0", f"filled_size of order {order_id}", call, response)
    price = shape.get("limit_price")
    limit = decimal_field(price, f"limit_price of order {order_id}", call, response) if price else None
    left = size - filled
    if left <= 0:
        return None
    asset = product.replace("-", "")
    return PendingOrder(str(order.get("client_order_id") or order_id), asset, OrderSide(side), left, limit or None)


def _result(order: dict[str, Any], call: Call, response: httpx.Response) -> OrderResult:
    """An Advanced Trade order object as the engine's OrderResult."""
    client_order_id = field_of(order, "client_order_id", str, call, response)
    order_id = field_of(order, "order_id", str, call, response)
    status = field_of(order, "status", str, call, response)
    filled = decimal_field(order.get("filled_size"), "filled_size", call, response)
    price = decimal_field(order.get("average_filled_price"), "average_filled_price", call, response)
    fee = decimal_field(order.get("total_fees"), "total_fees", call, response)
    reason = ": ".join(
        str(order[key])
        for key in ("reject_reason", "reject_message", "cancel_message")
        if order.get(key) and not _placeholder(str(order[key]))
    )
    if status == "FILLED":
        outcome = OrderStatus.FILLED
    elif status == "FAILED":
        outcome = OrderStatus.REJECTED
    elif status in _ENDED:
        outcome = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.CANCELLED
    elif status in _WORKING:
        outcome = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.PENDING
    else:
        raise InvalidInputError(f"{call.provider} sent an unknown order status {status!r}", **call.context(response))
    if filled and price <= 0:
        raise InvalidInputError(
            f"{call.provider} sent a fill of {filled} at average_filled_price {price}", **call.context(response)
        )
    detail = reason or ("" if status == outcome.value else status)
    return OrderResult(client_order_id, order_id, outcome, filled, price if filled else None, fee, detail)
