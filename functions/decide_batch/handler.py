"""DecideBatch: a Distributed Map batch of assets decided in one invocation (fetch, staleness, regime, one inference
call, the risk gate), each asset exactly as the five per-asset functions decide it, with the same metrics
(``ffe.stage_steps``: the same steps, settings, adapters and metrics)."""

from dataclasses import replace
from functools import partial
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.contracts import DecideBatchInput, parse
from ffe.observability import logger, timed, tracer
from ffe.settings import InferenceSettings, get_settings
from ffe.stage_steps.fetch import fetch
from ffe.stage_steps.gate import gate
from ffe.stage_steps.infer import infer_many
from ffe.stage_steps.regime import regime
from ffe.stage_steps.staleness import staleness
from ffe.steps.batch import BatchStages, decide_batch


@logger.inject_lambda_context(correlation_id_path="BatchInput.execution_id")
@tracer.capture_lambda_handler
@timed("decide_batch")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(DecideBatchInput, event)
    logger.append_keys(cycle_id=inp.batch.cycle_id, timeframe=inp.batch.timeframe)
    result = decide_batch(inp, stages(inp), remaining_ms=context.get_remaining_time_in_millis)
    kinds = [r.kind for r in result.records]
    logger.info("batch decided", extra={"assets": len(kinds), "failures": kinds.count("failure")})
    return result.model_dump(mode="json", by_alias=True)


STAGES = BatchStages(fetch=fetch, staleness=staleness, regime=regime, infer_many=infer_many, gate=gate)


def stages(inp: DecideBatchInput) -> BatchStages:
    """The stages for this batch: with an LLM budget, the LLM voter votes only on the assets whose position in the
    cycle's universe is within it (INFERENCE_LLM_ASSETS_PER_CYCLE)."""
    budget = get_settings(InferenceSettings).inference_llm_assets_per_cycle
    if budget is None:
        return STAGES
    within = frozenset(str(item.asset) for item in inp.items if item.item < budget)
    return replace(STAGES, infer_many=partial(infer_many, llm_assets=within))
