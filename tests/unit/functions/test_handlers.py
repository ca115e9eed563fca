"""The real handlers, called the way Lambda calls them (event dict + context)."""

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ffe.contracts import MarketData
from ffe.domain.errors import InvalidInputError
from ffe.stage_steps import fetch as fetch_step
from functions.check_staleness import handler as check_staleness
from functions.detect_regime import handler as detect_regime
from functions.fetch_market_data import handler as fetch
from functions.infer_decision import handler as infer_decision
from gpu_inference.gpu import LLAMA_1B_Q4, LlmPlan
from gpu_inference.llm import LlmVoter
from gpu_inference.predictor import Predictor
from gpu_inference.serve import serve_in_thread
from tests.fakes.market_data import FixedProvider, hourly

EVENTS = Path(__file__).resolve().parents[2] / "events"
AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
CPU_PLAN = LlmPlan(LLAMA_1B_Q4, None, "cpu", "no GPU")


def task(**change: object) -> dict:
    return {**json.loads((EVENTS / "asset_task.json").read_text()), **change}


def test_fetch_returns_validated_bars_for_the_asset(lambda_context, capsys) -> None:
    out = fetch.lambda_handler(task(), lambda_context)
    data = MarketData.model_validate(out)
    assert data.asset == "BTCUSD" and len(data.bars) == 120
    assert data.bars[-1].time < AS_OF
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any("bars_fetched" in m for m in metrics)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"asset": "XAUUSD"}, "unknown asset 'XAUUSD'"), ({"timeframe": "7m"}, "timeframe"), ({"as_of": None}, "as_of")],
)
def test_fetch_rejects_bad_tasks_with_invalid_input(lambda_context, change, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fetch.lambda_handler(task(**change), lambda_context)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda b: [*b[:-1], replace(b[-1], close=math.nan)], "close is not a finite number"),
        (lambda b: [*b[:-1], replace(b[-1], low=-2.0)], "low must be positive"),
        (lambda b: [*b, b[-1]], "duplicated timestamp"),
        (lambda b: [*b[:-2], b[-1], b[-2]], "out of order"),
        (lambda b: [*b, replace(b[-1], time=AS_OF + timedelta(hours=2))], "in the future"),
    ],
    ids=["nan", "negative", "duplicate", "out-of-order", "future"],
)
def test_fetch_never_passes_bad_bars_on(lambda_context, monkeypatch, corrupt, message) -> None:
    bars = hourly([100 + i * 0.1 for i in range(80)], AS_OF - timedelta(hours=2))
    monkeypatch.setattr(fetch_step, "get_provider", lambda settings: FixedProvider(corrupt(bars)))
    with pytest.raises(InvalidInputError, match=message):
        fetch.lambda_handler(task(), lambda_context)


def fetched(lambda_context) -> dict:
    return fetch.lambda_handler(task(), lambda_context)


def test_check_staleness_fresh_series_and_metric(lambda_context, capsys) -> None:
    data = fetched(lambda_context)
    capsys.readouterr()
    out = check_staleness.lambda_handler(data, lambda_context)
    assert out["stale"] is False and out["age_seconds"] == 60.0 and out["threshold_seconds"] == 7200
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[0]["data_staleness_seconds"] == [60.0]
    assert emf[0]["asset"] == "BTCUSD"


def test_check_staleness_rejects_tampered_bars(lambda_context) -> None:
    data = fetched(lambda_context)
    data["bars"]["volume"][-1] = data["bars"]["volume"][-1] + 1
    with pytest.raises(InvalidInputError, match="bars_sha256 does not match"):
        check_staleness.lambda_handler(data, lambda_context)


@pytest.fixture
def endpoint(monkeypatch) -> Iterator[str]:
    """The inference container's server on loopback (bundled champion, CPU, no Ollama), as InferDecision's URL."""
    server, stop = serve_in_thread(Predictor.load("bundled", device="cpu", llm=LlmVoter(CPU_PLAN)))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("INFERENCE_ENDPOINT", "ffe-dev-inference")
    monkeypatch.setenv("INFERENCE_ENDPOINT_URL", server.url)
    yield server.url
    stop()


def regime_detected(lambda_context) -> dict:
    data = fetched(lambda_context)
    data["staleness"] = check_staleness.lambda_handler(data, lambda_context)
    data["regime"] = detect_regime.lambda_handler(data, lambda_context)
    return data


def test_detect_regime_then_infer_with_the_shipped_champion(lambda_context, endpoint, capsys) -> None:
    data = regime_detected(lambda_context)
    assert data["regime"]["available"] is True and data["regime"]["asset_class"] == "crypto"
    capsys.readouterr()
    out = infer_decision.lambda_handler(data, lambda_context)
    # the endpoint served the same champion DetectRegime read, and both voters are in the record
    assert out["kind"] == "decision" and out["model"] == "inference_ensemble"
    assert out["model_version"] == data["regime"]["model_version"]
    assert out["regime"] == data["regime"]["label"] and abs(sum(out["weights"].values()) - 1.0) <= 1e-3
    assert [(v["voter"], v["status"]) for v in out["voters"]] == [("rl", "voted"), ("llm", "unavailable")]
    assert set(out["signals"]) == {"trend_following", "mean_reversion", "breakout"}
    last_bar = datetime.fromtimestamp(data["bars"]["time"][-1], UTC)
    assert out["bar_time"] == f"{last_bar:%Y-%m-%dT%H:%M:%SZ}" and out["input_sha256"] == data["bars_sha256"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[0]["inference_unavailable"] == [0.0]


def test_infer_holds_when_the_endpoint_is_down(lambda_context, endpoint, monkeypatch, capsys) -> None:
    data = regime_detected(lambda_context)
    monkeypatch.setenv("INFERENCE_ENDPOINT_URL", "http://127.0.0.1:9")  # nobody listens there
    capsys.readouterr()
    out = infer_decision.lambda_handler(data, lambda_context)
    assert (out["action"], out["confidence"], out["model_version"]) == ("HOLD", 1.0, "unavailable")
    assert out["reason"].startswith("inference_unavailable: ffe-dev-inference: EndpointConnectionError")
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[0]["inference_unavailable"] == [1.0]


def test_infer_refuses_stale_data(lambda_context) -> None:
    data = fetched(lambda_context)
    staleness = check_staleness.lambda_handler(data, lambda_context)
    data["staleness"] = {**staleness, "stale": True}
    with pytest.raises(InvalidInputError, match="stale data must never reach a model"):
        infer_decision.lambda_handler(data, lambda_context)
