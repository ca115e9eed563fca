"""A fake OANDA v20 brokerage account for ``httpx.MockTransport`` (summary, positions, instruments, orders).

It keeps orders by their client extension id, answers ``orders/@{clientID}`` (404 when unknown) and
``transactions/{id}``, and counts order creations (POSTs). Bodies are the recorded ones in
``tests/fakes/bodies/oanda_broker``. (The market-data fake, v20 candles, is
``tests.fakes.oanda_server.FakeOandaMarketData``.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from ffe.adapters.brokers.oanda import OandaBroker

BODIES = Path(__file__).parent / "bodies" / "oanda_broker"
TOKEN = "0f9e8d7c6b5a49382716a5b4c3d2e1f0-8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
ACCOUNT = "101-001-1234567-001"
PRACTICE = f"https://api-fxpractice.oanda.com/v3/accounts/{ACCOUNT}"
REQUEST_ID = "24716403001425966"


def body(name: str) -> Any:
    return json.loads((BODIES / name).read_text())


def raw(name: str) -> bytes:
    return (BODIES / name).read_bytes()


class FakeOandaBrokerage:
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
            return answer_json(body("error_unauthorized.json"), 401)
        prefix = f"/v3/accounts/{ACCOUNT}/"
        path = request.url.raw_path.decode().split("?")[0]
        if not path.startswith(prefix):
            return answer_json(body("error_forbidden.json"), 403)
        route = path.removeprefix(prefix)
        if request.method == "GET" and route == "summary":
            return answer_json(self.summary)
        if request.method == "GET" and route == "pendingOrders":
            return answer_json(self.pending)
        if request.method == "GET" and route == "openPositions":
            return answer_json(body("open_positions.json"))
        if request.method == "GET" and route == "instruments":
            listed = body("instruments_eur_usd.json")
            wanted = request.url.params["instruments"].split(",")
            listed["instruments"] = [i for i in listed["instruments"] if i["name"] in wanted]
            return answer_json(listed)
        if request.method == "GET" and route.startswith("orders/@"):
            order = self.orders.get(route.removeprefix("orders/@"))
            return (
                answer_json({"order": order, "lastTransactionID": "14"})
                if order
                else answer_json(body("error_order_not_found.json"), 404)
            )
        if request.method == "GET" and route.startswith("transactions/"):
            transaction = self.transactions.get(route.removeprefix("transactions/"))
            return (
                answer_json({"transaction": transaction, "lastTransactionID": "14"})
                if transaction
                else answer_json({}, 404)
            )
        if request.method == "POST" and route == "orders":
            return self._create(json.loads(request.content)["order"])
        return answer_json({"errorMessage": "Invalid path"}, 404)

    def _create(self, spec: dict[str, Any]) -> httpx.Response:
        client_id = spec["clientExtensions"]["id"]
        if self.mode == "reject":
            rejected = body("order_reject_units_limit.json")
            rejected["orderRejectTransaction"] |= {"units": spec["units"], "clientExtensions": {"id": client_id}}
            return answer_json(rejected, 400)
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
        return answer_json(answer, 201)


def answer_json(value: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=value, headers={"RequestID": REQUEST_ID})


def credentials(**overrides: str) -> Callable[[], Mapping[str, str]]:
    values = {"token": TOKEN, "account_id": ACCOUNT, "environment": "practice"} | overrides
    return lambda: values


def broker_for(
    handler: Callable[[httpx.Request], httpx.Response], creds: Callable[[], Mapping[str, str]] | None = None
) -> OandaBroker:
    return OandaBroker(httpx.Client(transport=httpx.MockTransport(handler)), creds or credentials())
