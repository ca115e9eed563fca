"""InferDecision against a sagemaker-runtime stand-in: the endpoint's ensemble decides, and every way the
endpoint can fail (timeout, error, garbage, open breaker) is a HOLD saying inference_unavailable."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from ffe.adapters.breaker import make_breaker
from ffe.adapters.inference import SageMakerInference
from ffe.contracts import BarsSummary, DecideInput, InferenceRequest
from ffe.domain.models import Action
from ffe.domain.strategies import StrategyParams, score_all
from ffe.steps.infer import infer_decision
from tests.unit.steps.test_regime_and_decide import BUNDLE, market, regime_for


class Runtime:
    """The two things InferDecision uses of a boto3 ``sagemaker-runtime`` client: invoke_endpoint and its Body."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if isinstance(self.answer, Exception):
            raise self.answer
        body = self.answer if isinstance(self.answer, bytes) else json.dumps(self.answer).encode()
        return {"Body": io.BytesIO(body), "ContentType": "application/json"}


def prediction(action: str = "BUY") -> dict[str, Any]:
    voters = [
        {
            "voter": "rl",
            "status": "voted",
            "action": action,
            "confidence": 0.4,
            "model": "meta-controller",
            "model_version": "ffe-x",
            "latency_ms": 3.2,
            "weights": {"trend_following": 0.4, "mean_reversion": 0.2, "breakout": 0.2, "flat": 0.2},
        },
        {
            "voter": "llm",
            "status": "voted",
            "action": action,
            "confidence": 0.6,
            "reasoning": "momentum",
            "model": "llama3.2:3b-instruct-q4_0",
            "latency_ms": 800.0,
        },
    ]
    return {
        "predictions": [
            {
                "action": action,
                "confidence": 0.5,
                "reason": "RL BUY, the LLM agrees",
                "rule": "rl_confirmed",
                "voters": voters,
            }
        ],
        "model_version": "ffe-x",
        "device": "cuda:0 (NVIDIA A10G)",
    }


def decide_input() -> DecideInput:
    payload = market()
    return DecideInput.model_validate({**payload, "regime": regime_for(payload).model_dump(mode="json")})


def client(runtime: Runtime, fail_max: int = 3) -> SageMakerInference:
    return SageMakerInference(
        runtime, "ffe-dev-inference", "AllTraffic", make_breaker("inference:t", fail_max=fail_max)
    )


def test_the_endpoint_ensemble_decides_and_explains_itself() -> None:
    runtime = Runtime(prediction())
    record = infer_decision(decide_input(), client(runtime), StrategyParams(), 0.15, trace_header="Root=1-abc")
    assert (record.action, record.confidence, record.model, record.model_version) == (
        Action.BUY,
        0.5,
        "inference_ensemble",
        "ffe-x",
    )
    assert [v.voter for v in record.voters] == ["rl", "llm"] and record.voters[1].model == "llama3.2:3b-instruct-q4_0"
    assert record.weights["trend_following"] == 0.4 and "rule rl_confirmed" in record.reason
    # What went over the wire: the stage's endpoint and variant, a valid request, the trace
    call = runtime.calls[0]
    assert (call["EndpointName"], call["TargetVariant"], call["ContentType"]) == (
        "ffe-dev-inference",
        "AllTraffic",
        "application/json",
    )
    sent = InferenceRequest.model_validate_json(call["Body"])
    assert sent.instances[0].asset == "BTCUSD" and len(sent.instances[0].path_posteriors) == BUNDLE.meta.roll_bars
    assert call["CustomAttributes"] == "X-Amzn-Trace-Id=Root=1-abc"


def test_what_the_columns_say_of_the_bars_is_what_the_bars_say() -> None:
    # InferDecision reads the columns, never rebuilding the bars: the bar, the scores and the summary are the bars'
    inp = decide_input()
    runtime = Runtime(prediction())
    record = infer_decision(inp, client(runtime), StrategyParams(), 0.15)
    bars = inp.domain_bars()
    scores = {str(k): round(v, 6) for k, v in score_all(bars, StrategyParams()).items()}
    assert (record.bar_time, record.bar_close, record.signals) == (bars[-1].time, bars[-1].close, scores)
    summary = InferenceRequest.model_validate_json(runtime.calls[0]["Body"]).instances[0].summary
    assert summary == BarsSummary(
        bars=len(bars),
        first_time=bars[0].time,
        last_time=bars[-1].time,
        last_close=bars[-1].close,
        change_pct=round((bars[-1].close / bars[0].close - 1.0) * 100.0, 4),
        high=max(b.high for b in bars),
        low=min(b.low for b in bars),
    )


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (ReadTimeoutError(endpoint_url="https://runtime.sagemaker"), "ReadTimeoutError"),
        (b"<html>502 Bad Gateway</html>", "not a prediction"),
        ({"predictions": [], "model_version": "x", "device": "cpu"}, "0 predictions for 1"),
        ({**prediction(), "predictions": [{"action": "MOON"}]}, "not a prediction"),
    ],
    ids=["timeout", "garbage", "no-prediction", "invalid-action"],
)
def test_an_endpoint_that_cannot_answer_is_a_hold_never_a_guess(answer: Any, why: str) -> None:
    record = infer_decision(decide_input(), client(Runtime(answer)), StrategyParams(), 0.15)
    assert record.action is Action.HOLD and record.confidence == 1.0 and record.model_version == "unavailable"
    assert record.reason.startswith("inference_unavailable: ffe-dev-inference") and why in record.reason
    assert record.voters == [] and record.weights == {}


def test_the_breaker_opens_and_then_the_endpoint_is_not_called() -> None:
    runtime = Runtime(ReadTimeoutError(endpoint_url="https://runtime.sagemaker"))
    endpoint = client(runtime, fail_max=2)
    for _ in range(2):
        infer_decision(decide_input(), endpoint, StrategyParams(), 0.15)
    record = infer_decision(decide_input(), endpoint, StrategyParams(), 0.15)
    assert len(runtime.calls) == 2  # the third decision never reached the endpoint
    assert record.action is Action.HOLD and "circuit breaker for ffe-dev-inference is open" in record.reason


def test_no_regime_path_means_no_rl_vote_and_a_hold() -> None:
    runtime = Runtime(prediction())
    record = infer_decision(DecideInput.model_validate(market()), client(runtime), StrategyParams(), 0.15)
    assert record.action is Action.HOLD and not runtime.calls
    assert record.reason == "inference_unavailable: the RL voter needs the regime path (no regime was detected)"
