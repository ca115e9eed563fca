"""ExecuteOrder: place the order of an approved decision, exactly once, and link it to the decision.

Only what the risk gate reserved is placed, under the same account lock the gate sizes under: a
reservation that expired or was released (its cycle ended) is refused, so no order ever reaches a venue
without the headroom it was sized for still being spent on it.
"""

from __future__ import annotations

from ffe.contracts import ExecuteOrderInput, ExecuteOrderResult
from ffe.domain.errors import InvalidInputError
from ffe.domain.portfolio import OrderRequest, OrderSide, OrderStatus, client_order_id
from ffe.domain.ports import PLACED, RELEASED, Broker, ExecutionLog, Reservations


def execute_order(
    inp: ExecuteOrderInput, broker: Broker, log: ExecutionLog, mode: str, reservations: Reservations
) -> ExecuteOrderResult:
    """Place the approved order (idempotent at the venue by client order id) and store the execution.

    Raises:
        InvalidInputError: nothing approved to execute, or the gate's reservation is no longer live.
    """
    risk = inp.risk
    if risk is None or not risk.approved or risk.side is None or risk.quantity <= 0 or inp.recorded.id is None:
        raise InvalidInputError(f"no approved order to execute for {inp.asset} in cycle {inp.cycle_id}")
    order = OrderRequest(
        client_order_id(inp.cycle_id, inp.asset, inp.bar_time),
        inp.asset,
        OrderSide(risk.side),
        risk.quantity,
        inp.asset_class,
    )
    with reservations.account(broker.account_id) as book:
        reservation = book.get(order.client_order_id)
        if mode == "off":  # decisions and sizes are recorded, nothing is sent to any venue
            if reservation is not None and reservation.live:
                book.mark(order.client_order_id, RELEASED, "execution mode off: nothing sent")
            return ExecuteOrderResult(
                client_order_id=order.client_order_id,
                venue="none",
                status="SKIPPED",
                quantity=order.quantity,
                decision_id=inp.recorded.id,
                created=False,
            )
        if reservation is None or not reservation.live:
            state = "no reservation" if reservation is None else f"its reservation is {reservation.status.lower()}"
            raise InvalidInputError(
                f"{inp.asset}: order {order.client_order_id} was not placed: {state} (expired or its cycle ended), "
                "so the risk headroom it was sized for is no longer held for it",
                asset=inp.asset,
                cycle_id=inp.cycle_id,
            )
        if reservation.side is not order.side or reservation.quantity != order.quantity:
            raise InvalidInputError(
                f"{inp.asset}: order {order.side} {order.quantity} does not match what the risk gate reserved "
                f"({reservation.side} {reservation.quantity}); not placed",
                asset=inp.asset,
                cycle_id=inp.cycle_id,
            )
        result = broker.place_order(order)
        ended = result.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED)
        book.mark(order.client_order_id, RELEASED if ended else PLACED, f"{result.status}: {result.detail}")
    created = log.record_execution(inp, order, result, broker.name, mode)
    return ExecuteOrderResult(
        client_order_id=order.client_order_id,
        venue=broker.name,
        status=str(result.status),
        quantity=order.quantity,
        decision_id=inp.recorded.id,
        created=created,
    )
