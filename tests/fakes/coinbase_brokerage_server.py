"""A fake Coinbase Advanced Trade brokerage venue for ``httpx.MockTransport`` (orders, accounts, products).

It checks every request's JWT with the public half of a throwaway P-256 key, the way Coinbase does, and keeps
orders by client_order_id with the documented de-duplication: a second create with the same client_order_id
does not create an order and answers the first one. Bodies are the recorded ones in
``tests/fakes/bodies/coinbase_broker``. (The market-data fake, Coinbase Exchange candles, is
``tests.fakes.coinbase_server.FakeCoinbaseMarketData``.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ffe.adapters.brokers.coinbase import CoinbaseBroker

BODIES = Path(__file__).parent / "bodies" / "coinbase_broker"
KEY_NAME = "organizations/5c1d6a2e-7f0b-4e59-9a3c-2b8e1f4d6c70/apiKeys/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
_KEY = ec.generate_private_key(ec.SECP256R1())
PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
).decode()
PUBLIC = _KEY.public_key()
NOW = 1_709_265_600  # 2024-03-01T04:00:00Z
API = "/api/v3/brokerage"
REQUEST_ID = "f2b1c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def body(name: str) -> Any:
    return json.loads((BODIES / name).read_text())


def raw(name: str) -> bytes:
    return (BODIES / name).read_bytes()


class FakeCoinbaseBrokerage:
    """Advanced Trade's brokerage routes over one portfolio; counts order creations (POSTs)."""

    def __init__(self, *, create: str = "ok", accounts: Any = None, price: str = "62000.00") -> None:
        self.create = create  # "ok", or a recorded failure body to answer every create with
        self.accounts = accounts if accounts is not None else body("accounts.json")
        self.price = price
        self.requests: list[httpx.Request] = []
        self.orders: dict[str, dict[str, Any]] = {}  # order_id -> order object
        self.by_client: dict[str, str] = {}
        self.lose_next_create_response = False  # create the order, then time out before answering

    @property
    def posts(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self._authorized(request):
            return httpx.Response(401, text="Unauthorized\n", headers={"x-request-id": REQUEST_ID})
        path = request.url.path
        if request.method == "GET" and path == f"{API}/accounts":
            return answer_json(self.accounts)
        if request.method == "GET" and path.startswith(f"{API}/products/"):
            product_id = path.rsplit("/", 1)[1]
            if product_id not in ("BTC-USD", "ETH-USD"):
                return answer_json(body("error_not_found.json"), 404)
            product = body("product_btc_usd.json") | {"product_id": product_id, "price": self.price}
            return answer_json(product)
        if request.method == "POST" and path == f"{API}/orders":
            return self._create(request)
        if request.method == "GET" and path == f"{API}/orders/historical/batch":
            status = request.url.params.get("order_status")
            orders = [o for o in reversed(self.orders.values()) if status in (None, o["status"])]
            listed = body("orders_list.json") | {"orders": orders}
            return answer_json(listed)
        if request.method == "GET" and path.startswith(f"{API}/orders/historical/"):
            order = self.orders.get(path.rsplit("/", 1)[1])
            return answer_json({"order": order}) if order else answer_json(body("error_not_found.json"), 404)
        return answer_json({"error": "NOT_FOUND", "message": "Not Found"}, 404)

    def _authorized(self, request: httpx.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, PUBLIC, algorithms=["ES256"], options={"verify_exp": False, "verify_nbf": False})
        except jwt.PyJWTError:
            return False
        return scheme == "Bearer" and claims.get("uri") == f"{request.method} {request.url.host}{request.url.path}"

    def _create(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        if self.create != "ok":
            return answer_json(body(self.create))
        client_id = payload["client_order_id"]
        order_id = self.by_client.get(client_id)
        if order_id is None:  # a duplicate client_order_id creates nothing and answers the first order
            order_id = f"11111-00000-{len(self.orders):06d}"
            self.by_client[client_id] = order_id
            size = payload["order_configuration"]["market_market_ioc"]["base_size"]
            self.orders[order_id] = body("order_filled.json")["order"] | {
                "order_id": order_id,
                "client_order_id": client_id,
                "product_id": payload["product_id"],
                "side": payload["side"],
                "filled_size": size,
                "order_configuration": {"market_market_ioc": {"base_size": size}},
            }
        if self.lose_next_create_response:
            self.lose_next_create_response = False
            raise httpx.ReadTimeout("timed out reading the response", request=request)
        created = body("order_created.json")
        created["success_response"] |= {
            "order_id": order_id,
            "client_order_id": client_id,
            "product_id": payload["product_id"],
            "side": payload["side"],
        }
        return answer_json(created)


def answer_json(value: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=value, headers={"x-request-id": REQUEST_ID})


def credentials(**overrides: str) -> Callable[[], Mapping[str, str]]:
    values = {"key_name": KEY_NAME, "private_key": PEM} | overrides
    return lambda: values


def broker_for(
    handler: Callable[[httpx.Request], httpx.Response], creds: Callable[[], Mapping[str, str]] | None = None
) -> CoinbaseBroker:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return CoinbaseBroker(client, creds or credentials(), clock=lambda: NOW)
