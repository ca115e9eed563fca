"""DecideBatch: every asset of a Distributed Map batch decided in one invocation, each exactly as the inline Map
decides it (``state_machines/decision_cycle.asl.json``, the ItemProcessor of "Decide each asset").

Per asset, in the batch's order: the task (the batch's context and the item), Fetch market data, Check staleness
(a refused series is the HOLD the "Hold on stale data" Pass state builds), Detect regime; then ONE inference call
for every fresh asset of the batch; then Gate risk per asset. The bars never leave the invocation (a batch's bars
through Step Functions would break its 256 KB state limit). Any error of one asset's step becomes that asset's
failure record, as the ASL's "Build <step> failure record" states build it, never the batch's; a TransientError
is first retried for that asset as the ASL retries a task (:data:`ASL_RETRY`).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ffe.contracts import (
    AssetTask,
    CheckStalenessResult,
    DecideBatchInput,
    DecideBatchResult,
    DecideInput,
    DecisionRecord,
    DetectRegimeInput,
    FailedStep,
    FailureRecord,
    GateRiskInput,
    MarketData,
    RegimeResult,
    parse,
)
from ffe.domain.errors import TransientError
from ffe.domain.staleness import GateCode
from ffe.observability import logger


@dataclass(frozen=True)
class BatchStages:
    """The five steps as one asset's callables (the handler builds them from the same factories the five
    per-asset handlers use; a unit test passes fakes). ``infer_many`` answers one outcome per input, in order: the
    asset's record, or the exception that asset's own input raised (``ffe.steps.infer.infer_outcomes``)."""

    fetch: Callable[[AssetTask], MarketData]
    staleness: Callable[[MarketData], CheckStalenessResult]
    regime: Callable[[DetectRegimeInput], RegimeResult]
    infer_many: Callable[[Sequence[DecideInput]], Sequence[DecisionRecord | Exception]]
    gate: Callable[[GateRiskInput], DecisionRecord]


@dataclass(frozen=True)
class RetryPolicy:
    """A task's Retry for TransientError in the ASL: ``MaxAttempts`` retries after the first try, the n-th after
    a delay drawn uniformly from 0 to ``min(max_delay_s, interval_s * backoff ** (n - 1))`` (``JitterStrategy``
    FULL). tests/unit/steps/test_batch.py reads these figures off the ASL's "Fetch market data" state."""

    retries: int = 3
    interval_s: float = 1.0
    backoff: float = 2.0
    max_delay_s: float = 8.0

    def delay(self, retry: int, rng: Callable[[], float]) -> float:
        """Seconds before the ``retry``-th retry (1-based)."""
        return rng() * min(self.max_delay_s, self.interval_s * self.backoff ** (retry - 1))


ASL_RETRY = RetryPolicy()
# What a retry must leave of the invocation for the rest of the batch: a chosen margin (one inference call, at most
# InferenceSettings' 2 s read + 1 s connect timeouts, and up to 20 gates), not a measured figure.
RETRY_RESERVE_MS = 10_000


@dataclass
class _Retrying:
    """Calls a step, retrying a TransientError as :class:`RetryPolicy` says while the invocation has time left."""

    policy: RetryPolicy
    sleep: Callable[[float], None]
    rng: Callable[[], float]
    remaining_ms: Callable[[], float]
    reserve_ms: float

    def __call__(self, step: Callable[..., Any], *args: Any) -> Any:
        retry = 0
        while True:
            try:
                return step(*args)
            except TransientError:  # RateLimitedError too
                retry += 1
                if retry > self.policy.retries:
                    raise
                delay = self.policy.delay(retry, self.rng)
                if self.remaining_ms() - delay * 1000 < self.reserve_ms:
                    raise  # no time left to wait for it: the asset's failure, before the batch times out
                self.sleep(delay)


def decide_batch(
    inp: DecideBatchInput,
    stages: BatchStages,
    *,
    remaining_ms: Callable[[], float] = lambda: math.inf,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    retry: RetryPolicy = ASL_RETRY,
    reserve_ms: float = RETRY_RESERVE_MS,
) -> DecideBatchResult:
    """One record per item, in the batch's order: a decision (the risk gate's verdict, or a HOLD on stale data)
    or the asset's failure naming the step that failed.

    ``remaining_ms`` is the invocation's time left (Lambda's ``context.get_remaining_time_in_millis``): a retry
    that would leave less than ``reserve_ms`` is not made.
    """
    call = _Retrying(retry, sleep, rng, remaining_ms, reserve_ms)
    ctx = inp.batch
    records: list[DecisionRecord | FailureRecord | None] = [None] * len(inp.items)
    fresh: list[tuple[int, DecideInput]] = []
    for i, item in enumerate(inp.items):
        given = {"cycle_id": ctx.cycle_id, "as_of": ctx.as_of, "timeframe": ctx.timeframe, "asset": item.asset}
        step: FailedStep = "fetch"
        try:
            task = parse(
                AssetTask,
                {
                    **given,
                    "execution_id": ctx.execution_id,
                    "item": item.item,
                    "models": ctx.models,
                    "asset_class": item.asset_class,
                },
            )
            data = call(stages.fetch, task)
            given = _labels(data)  # the ASL's state from here on is the fetch's output
            step = "staleness"
            staleness = call(stages.staleness, data)
            if staleness.stale or staleness.code is not GateCode.FRESH:  # the ASL's "Is the data fresh?"
                records[i] = hold_on_stale_data(data, staleness)
                continue
            step = "regime"
            regime = call(stages.regime, DetectRegimeInput.model_validate({**dict(data), "staleness": staleness}))
            step = "infer"
            fresh.append((i, DecideInput.model_validate({**dict(data), "staleness": staleness, "regime": regime})))
        except Exception as exc:  # States.ALL: the asset's failure record
            records[i] = failure_record(step, exc, given, ctx.execution_id, item.item)
    if fresh:
        try:
            outcomes = list(call(stages.infer_many, [decide for _, decide in fresh]))
            if len(outcomes) != len(fresh):
                raise RuntimeError(f"inference answered {len(outcomes)} outcomes for {len(fresh)} assets")
        except Exception as exc:  # no asset's own error: every asset that was asked fails at infer
            outcomes = [exc] * len(fresh)
        for (i, decide), outcome in zip(fresh, outcomes, strict=True):
            given = _labels(decide)
            if isinstance(outcome, Exception):
                records[i] = failure_record("infer", outcome, given, ctx.execution_id, inp.items[i].item)
                continue
            try:
                gated = GateRiskInput.model_validate({**dict(decide), "decision": outcome})
                records[i] = call(stages.gate, gated)
            except Exception as exc:
                records[i] = failure_record("gate", exc, given, ctx.execution_id, inp.items[i].item)
    return DecideBatchResult(records=[r for r in records if r is not None])


def hold_on_stale_data(data: MarketData, staleness: CheckStalenessResult) -> DecisionRecord:
    """The ASL's "Hold on stale data" Pass state, field for field: a HOLD at confidence 1.0 with the gate's reason."""
    state = data.model_dump(mode="json")
    gate = staleness.model_dump(mode="json")
    return DecisionRecord.model_validate(
        {
            "kind": "decision",
            "cycle_id": state["cycle_id"],
            "as_of": state["as_of"],
            "timeframe": state["timeframe"],
            "asset": state["asset"],
            "execution_id": state["execution_id"],
            "bar_time": gate["last_bar_time"],
            "action": "HOLD",
            "confidence": 1.0,
            "stale": True,
            "reason": gate["reason"],
            "data_age_seconds": gate["age_seconds"],
            "staleness_threshold_seconds": gate["threshold_seconds"],
            "model": "staleness_gate",
            "model_version": "1",
            "signals": {},
            "source": state["source"],
            "input_sha256": state["bars_sha256"],
        }
    )


def failure_record(
    step: FailedStep, exc: BaseException, given: dict[str, Any], execution_id: str | None, item: int
) -> FailureRecord:
    """The ASL's "Build <step> failure record" Pass state: the error's class name, Lambda's cause (``errorType``,
    ``errorMessage``: what ``ffe.steps.record.lambda_error_message`` reads), the labels as the state held them;
    only the fetch's carries the item (two bad assets of one cycle are two failures). The traceback goes to the log
    (as Lambda logs a task's error), not into the record: 20 of them would crowd the batch's 256 KB result."""
    logger.warning("asset failed", exc_info=exc, extra={"asset": given.get("asset"), "step": step})
    cause = json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)})
    record: dict[str, Any] = {
        "kind": "failure",
        **given,
        "execution_id": execution_id,
        "error": type(exc).__name__,
        "cause": cause,
        "step": step,
    }
    if step == "fetch":
        record["item"] = item
    return FailureRecord.model_validate(record)


def _labels(data: MarketData) -> dict[str, Any]:
    """cycle_id, as_of, timeframe and asset as the fetch's output carries them (JSON, as the ASL's state)."""
    return data.model_dump(mode="json", include={"cycle_id", "as_of", "timeframe", "asset"})
