"""ExecuteOrder: place an approved decision's order on the stage's venue, exactly once."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.brokers_factory import get_broker, get_reservations
from ffe.adapters.store import get_store
from ffe.contracts import ExecuteOrderInput, parse
from ffe.observability import emit, logger, timed, tracer
from ffe.settings import RiskSettings, get_settings
from ffe.steps.execute import execute_order


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("execute")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(ExecuteOrderInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset)
    settings = get_settings(RiskSettings)
    # The order goes in at the close of the bar it was decided on, so it fills at the next bar's open.
    placed_at = inp.bar_time + inp.timeframe.duration if inp.bar_time else inp.as_of
    broker = get_broker(settings, placed_at, inp.asset, inp.asset_class)
    result = execute_order(inp, broker, get_store(), settings.execution_mode, get_reservations(settings))
    side = inp.risk.side if inp.risk is not None and inp.risk.side else str(inp.action)
    emit("orders", int(result.created), {"asset": inp.asset, "venue": result.venue}, side=side)
    logger.info(
        "order placed",
        extra={
            "client_order_id": result.client_order_id,
            "order_status": result.status,
            "venue": result.venue,
            "new_order": result.created,
        },
    )
    return result.model_dump(mode="json")
