"""ExecuteOrder: place the order of an approved decision, exactly once, and link it to the decision."""

from __future__ import annotations

import hashlib
from typing import Protocol

from ffe.contracts import ExecuteOrderInput, ExecuteOrderResult
from ffe.domain.errors import InvalidInputError
from ffe.domain.portfolio import Broker, OrderRequest, OrderResult, OrderSide


class ExecutionLog(Protocol):
    def record_execution(self, inp: ExecuteOrderInput, order: OrderRequest, result: OrderResult, venue: str,
                         mode: str) -> bool: ...  # fmt: skip


def client_order_id(inp: ExecuteOrderInput) -> str:
    """Deterministic per decision (cycle, asset, bar): a retried task sends the venue the same id."""
    key = f"{inp.cycle_id}|{inp.asset}|{inp.bar_time.isoformat() if inp.bar_time else '-'}"
    return "ffe-" + hashlib.sha256(key.encode()).hexdigest()[:28]


def execute_order(inp: ExecuteOrderInput, broker: Broker, log: ExecutionLog, mode: str) -> ExecuteOrderResult:
    """Place the approved order (idempotent at the venue by client order id) and store the execution."""
    risk = inp.risk
    if risk is None or not risk.approved or risk.side is None or risk.quantity <= 0 or inp.recorded.id is None:
        raise InvalidInputError(f"no approved order to execute for {inp.asset} in cycle {inp.cycle_id}")
    order = OrderRequest(client_order_id(inp), inp.asset, OrderSide(risk.side), risk.quantity)
    if mode == "off":  # decisions and sizes are recorded, nothing is sent to any venue
        return ExecuteOrderResult(client_order_id=order.client_order_id, venue="none", status="SKIPPED",
                                  quantity=order.quantity, decision_id=inp.recorded.id, created=False)  # fmt: skip
    result = broker.place_order(order)
    created = log.record_execution(inp, order, result, broker.name, mode)
    return ExecuteOrderResult(
        client_order_id=order.client_order_id, venue=broker.name, status=str(result.status),
        quantity=order.quantity, decision_id=inp.recorded.id, created=created,
    )  # fmt: skip
