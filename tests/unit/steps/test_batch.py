"""DecideBatch: a batch of assets decided in one invocation, each asset exactly as the inline Map decides it.

The steps run for real (replay bars, the data gate, seeded regime mixtures, ``infer_outcomes`` against an endpoint
fake, the risk gate on an in-memory venue); a stage is swapped for a failing one where a test needs an error. What
the ASL's Pass states build (the stale HOLD, the failure records) is evaluated from the ASL itself, so a drift in
either fails here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffe.adapters.inference import InferenceUnavailableError
from ffe.adapters.replay import ReplayProvider
from ffe.contracts import (
    AssetTask,
    CheckStalenessResult,
    DecideBatchInput,
    DecideBatchResult,
    DecideInput,
    DecisionRecord,
    DetectRegimeInput,
    FailureRecord,
    GateRiskInput,
    InferenceRequest,
    InferenceResponse,
    MarketData,
    RegimeResult,
)
from ffe.domain.errors import InvalidInputError, RateLimitedError, TransientError
from ffe.domain.features import FeatureParams
from ffe.domain.models import Action, AssetClass, Timeframe
from ffe.domain.ports import FetchedSeries
from ffe.domain.risk import RiskLimits
from ffe.domain.strategies import StrategyParams
from ffe.steps.batch import ASL_RETRY, BatchStages, decide_batch
from ffe.steps.fetch import fetch_market_data
from ffe.steps.gate import gate_risk
from ffe.steps.infer import infer_outcomes
from ffe.steps.record import lambda_error_message
from ffe.steps.regime import detect_regimes
from ffe.steps.staleness import check_staleness
from tests.conftest import ROOT
from tests.fakes.market_data import hourly
from tests.fakes.venue import MemoryBroker, MemoryReservations
from tests.unit.steps.test_experiment_arms import CONTROL_BUNDLE, TREATMENT_BUNDLE, Endpoint, load, models

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:ffe-dev-decision-cycle:c-1"
CHAMPION = {"champion": CONTROL_BUNDLE.version}
VOTES = {CONTROL_BUNDLE.version: "BUY", TREATMENT_BUNDLE.version: "SELL"}
ASL = json.loads((ROOT / "state_machines" / "decision_cycle.asl.json").read_text())
INLINE = ASL["States"]["Decide each asset"]["ItemProcessor"]["States"]


def _closes(n: int) -> list[float]:
    return [100 * (1 + 0.01 * math.sin(i / 5)) + i * 0.05 for i in range(n)]


class Provider:
    """Replay for the built-in assets; ``extra`` serves a series of its own per symbol (another's bars, bad bars)."""

    name = "replay"

    def __init__(self, extra: dict[str, FetchedSeries] | None = None) -> None:
        self.replay = ReplayProvider()
        self.extra = extra or {}

    def fetch(
        self, asset: str, timeframe: Timeframe, as_of: datetime, lookback: int, asset_class: AssetClass | None = None
    ) -> FetchedSeries:
        if asset in self.extra:
            return self.extra[asset]
        return self.replay.fetch(asset, timeframe, as_of, lookback)


BTC = ReplayProvider().fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
SERIES = {
    "SOLUSD": replace(BTC, dataset="test:SOLUSD"),  # a universe-file asset the built-in table does not know
    "ALTUSD": replace(BTC, dataset="test:ALTUSD"),
    "OLDBARS": FetchedSeries(hourly(_closes(120), AS_OF - timedelta(days=3)), "test:old", False, True),
    "FEWBARS": FetchedSeries(hourly(_closes(20), AS_OF - timedelta(hours=1)), "test:few", False, True),
    "NANBARS": FetchedSeries(
        [*hourly(_closes(119), AS_OF - timedelta(hours=2)), *hourly([math.nan], AS_OF - timedelta(hours=1))],
        "test:nan",
        False,
        True,
    ),
}
CLASSES = {"SOLUSD": "crypto", "ALTUSD": "crypto", "OLDBARS": "crypto", "FEWBARS": "crypto", "NANBARS": "crypto"}


def stages(
    endpoint: Any = None, *, fresh_venue: bool = False, **swap: Callable[..., Any]
) -> tuple[BatchStages, list[Any]]:
    """The five steps for real on fakes, and the list the endpoint's requests land in. ``fresh_venue``: each gate
    on an account of its own (so a decision never depends on the batch's other reservations)."""
    client = endpoint if endpoint is not None else Endpoint(VOTES)
    provider, broker, reservations = Provider(SERIES), MemoryBroker(), MemoryReservations()

    def gate(inp: GateRiskInput) -> DecisionRecord:
        venue, book = (MemoryBroker(), MemoryReservations()) if fresh_venue else (broker, reservations)
        return gate_risk(inp, venue, RiskLimits(), lambda asset, broken: None, book)

    built = BatchStages(
        fetch=lambda task: fetch_market_data(task, provider, 120),
        staleness=lambda data: check_staleness(
            data, clock=lambda: AS_OF, params=StrategyParams(), features=FeatureParams(), roll_bars=24
        ),
        regime=lambda inp: detect_regimes(inp, load, FeatureParams()),
        infer_many=lambda inps: infer_outcomes(inps, client, StrategyParams(), 0.15, llm=True),
        gate=gate,
    )
    return replace(built, **swap), getattr(client, "requests", [])


def batch(assets: Sequence[Any], cycle_models: dict[str, Any] | None = None, **ctx: Any) -> DecideBatchInput:
    items = [
        {"asset": a, "item": 100 + i, **({"asset_class": CLASSES[a]} if a in CLASSES else {})}
        for i, a in enumerate(assets)
    ]
    context = {
        "cycle_id": "c-1",
        "as_of": "2019-06-15T12:01:00Z",
        "timeframe": "1h",
        "execution_id": EXECUTION,
        "models": cycle_models if cycle_models is not None else CHAMPION,
        **ctx,
    }
    return DecideBatchInput.model_validate({"Items": items, "BatchInput": context})


def decided(records: Sequence[DecisionRecord | FailureRecord]) -> dict[str, DecisionRecord | FailureRecord]:
    return {str(r.asset): r for r in records}


# --- the ASL's Pass states, evaluated -----------------------------------------------------------------------------


def _path(state: dict[str, Any], path: str, context: dict[str, Any]) -> Any:
    root, _, rest = (context, "", path[3:]) if path.startswith("$$.") else (state, "", path[2:])
    value: Any = root
    for key in rest.split("."):
        value = value[key]
    return value


def pass_state(name: str, state: dict[str, Any], execution_id: str = EXECUTION) -> dict[str, Any]:
    """The inline Map's Pass state ``name``: its Parameters over ``state`` (``$.x.y`` and ``$$.Execution.Id``)."""
    context = {"Execution": {"Id": execution_id}}
    return {
        (key[:-2] if key.endswith(".$") else key): (_path(state, value, context) if key.endswith(".$") else value)
        for key, value in INLINE[name]["Parameters"].items()
    }


def lambda_error(exc: Exception) -> dict[str, str]:
    """What Step Functions catches at ``$.error`` when a Lambda task raises ``exc``."""
    return {
        "Error": type(exc).__name__,
        "Cause": json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}),
    }


# --- tests ----------------------------------------------------------------------------------------------------------


def test_every_asset_is_decided_in_the_batchs_order() -> None:
    assets = ["ETHUSD", "BTCUSD", "SOLUSD", "EURUSD", "GBPUSD"]
    built, requests = stages()
    result = decide_batch(batch(assets), built)
    assert [r.asset for r in result.records] == assets
    assert all(isinstance(r, DecisionRecord) for r in result.records)
    assert all(r.execution_id == EXECUTION and str(r.cycle_id) == "c-1" for r in result.records)
    assert len(requests) == 1  # one endpoint call for the batch
    # the fresh assets' instances, in the batch's order, one per asset
    fresh = [r.asset for r in result.records if isinstance(r, DecisionRecord) and not r.stale]
    assert [i.asset for i in requests[0].instances] == fresh
    DecideBatchResult.model_validate(result.model_dump(mode="json", by_alias=True))  # what Step Functions gets


def test_a_universe_file_asset_unknown_to_the_built_in_table_decides() -> None:
    built, _ = stages()
    (record,) = decide_batch(batch(["SOLUSD"]), built).records
    assert isinstance(record, DecisionRecord) and not record.stale and record.action is Action.BUY
    assert record.risk is not None and record.risk.approved and record.size
    assert record.regime is not None  # the crypto mixture, by the class the universe file gave


def test_one_bad_asset_fails_alone_naming_its_step() -> None:
    def regime_fails_for_eth(inp: DetectRegimeInput) -> RegimeResult:
        if inp.asset == "ETHUSD":
            raise ValueError("the mixture blew up")
        return detect_regimes(inp, load, FeatureParams())

    built, _ = stages()
    gate = built.gate

    def gate_fails_for_alt(inp: GateRiskInput) -> DecisionRecord:
        if inp.asset == "ALTUSD":
            raise TypeError("the broker answered nonsense")
        return gate(inp)

    built = replace(built, regime=regime_fails_for_eth, gate=gate_fails_for_alt)
    assets = ["XAUUSD", "BTCUSD", "NANBARS", "ETHUSD", "ALTUSD", "btc", "SOLUSD", "EURUSD"]
    records = decide_batch(batch(assets), built).records
    failures = {str(r.asset): (r.error, r.step, r.item) for r in records if isinstance(r, FailureRecord)}
    assert failures == {
        "XAUUSD": ("InvalidInputError", "fetch", 100),  # unknown, and no class given
        "NANBARS": ("InvalidInputError", "fetch", 102),  # bad bars never pass the fetch
        "ETHUSD": ("ValueError", "regime", None),
        "ALTUSD": ("TypeError", "gate", None),
        "btc": ("InvalidInputError", "fetch", 105),  # not a symbol at all
    }
    by_asset = decided(records)
    assert "unknown asset 'XAUUSD'" in lambda_error_message(by_asset["XAUUSD"].cause)  # type: ignore[union-attr]
    assert "is not a finite number (nan)" in lambda_error_message(by_asset["NANBARS"].cause)  # type: ignore[union-attr]
    assert lambda_error_message(by_asset["ETHUSD"].cause) == "the mixture blew up"  # type: ignore[union-attr]
    for asset in ("BTCUSD", "SOLUSD"):
        record = by_asset[asset]
        assert isinstance(record, DecisionRecord) and record.action is Action.BUY and record.size
    assert isinstance(by_asset["EURUSD"], DecisionRecord) and by_asset["EURUSD"].stale  # its bundled bars end in 2017


@pytest.mark.parametrize(
    ("asset", "step", "broken"),
    [("XAUUSD", "fetch", "Build fetch failure record"), ("ETHUSD", "regime", "Build regime failure record")],
)
def test_a_failure_record_is_what_the_asls_pass_state_builds(asset: str, step: str, broken: str) -> None:
    error = ValueError("the mixture blew up")

    def regime(inp: DetectRegimeInput) -> RegimeResult:
        raise error

    built, _ = stages(regime=regime)
    (record,) = decide_batch(batch([asset], as_of="2019-06-15T12:01:00+00:00"), built).records
    task = {
        "cycle_id": "c-1",
        "as_of": "2019-06-15T12:01:00+00:00",  # as given: the fetch's failure carries the Map item's own
        "timeframe": "1h",
        "asset": asset,
        "execution_id": EXECUTION,
        "item": 100,
        "models": CHAMPION,
    }
    if step == "fetch":
        exc: Exception = InvalidInputError("")
        try:
            fetch_market_data(AssetTask.model_validate(task), ReplayProvider(), 120)
        except InvalidInputError as raised:
            exc = raised
        state = {**task, "error": lambda_error(exc)}
    else:  # after the fetch, the ASL's state is the fetch's output (its as_of as the contract writes it)
        state = {**fetch_market_data(AssetTask.model_validate(task), ReplayProvider(), 120).model_dump(mode="json")}
        state["error"] = lambda_error(error)
    assert record == FailureRecord.model_validate(pass_state(broken, state))
    assert record.step == step


@pytest.mark.parametrize("asset", ["OLDBARS", "FEWBARS"])
def test_the_stale_hold_is_what_the_asls_pass_state_builds(asset: str) -> None:
    built, requests = stages()
    (record,) = decide_batch(batch([asset]), built).records
    # the inline Map's state at "Hold on stale data": the fetch's output, the staleness result at $.staleness
    task = AssetTask.model_validate(
        {
            "cycle_id": "c-1",
            "as_of": AS_OF,
            "timeframe": "1h",
            "asset": asset,
            "execution_id": EXECUTION,
            "item": 100,
            "models": CHAMPION,
            "asset_class": CLASSES[asset],
        }
    )
    data = fetch_market_data(task, Provider(SERIES), 120)
    staleness = built.staleness(data)
    state = {**data.model_dump(mode="json"), "staleness": staleness.model_dump(mode="json")}
    assert isinstance(record, DecisionRecord) and record.stale and record.action is Action.HOLD
    assert record == DecisionRecord.model_validate(pass_state("Hold on stale data", state))
    assert not requests  # nothing fresh: no endpoint call at all


def test_one_endpoint_call_serves_both_arms_of_every_asset_at_the_right_indices() -> None:
    built, requests = stages()
    assets = ["BTCUSD", "OLDBARS", "ETHUSD", "SOLUSD"]
    records = decide_batch(batch(assets, models()), built).records
    (request,) = requests
    served = ["BTCUSD", "ETHUSD", "SOLUSD"]  # OLDBARS is stale: never sent
    assert [i.asset for i in request.instances] == [a for a in served for _ in range(2)]
    for k in range(len(served)):
        control, treatment = request.instances[2 * k], request.instances[2 * k + 1]
        assert (control.model_version, control.llm_vote_from) == (CONTROL_BUNDLE.version, None)
        assert (treatment.model_version, treatment.llm_vote_from) == (TREATMENT_BUNDLE.version, 2 * k)
    for record in records:
        assert isinstance(record, DecisionRecord)
        if not record.stale:
            assert record.action is Action.BUY and record.experiment_id == "exp-1"
            assert record.arms["treatment"].action is Action.SELL and record.arms["control"].action is Action.BUY


def test_inference_down_holds_every_fresh_asset() -> None:
    class Down:
        def __init__(self) -> None:
            self.requests: list[InferenceRequest] = []

        def infer(self, request: InferenceRequest, trace_header: str | None = None) -> InferenceResponse:
            self.requests.append(request)
            raise InferenceUnavailableError("ffe-dev-inference: ReadTimeoutError")

    built, requests = stages(Down())
    records = decide_batch(batch(["BTCUSD", "OLDBARS", "ETHUSD"]), built).records
    assert len(requests) == 1
    fresh = [r for r in records if isinstance(r, DecisionRecord) and not r.stale]
    assert [r.asset for r in fresh] == ["BTCUSD", "ETHUSD"]
    for record in fresh:
        assert record.action is Action.HOLD and record.model_version == "unavailable"
        assert record.reason == "inference_unavailable: ffe-dev-inference: ReadTimeoutError"


def test_a_short_answer_holds_every_asset_of_the_call() -> None:
    class Short(Endpoint):
        def infer(self, request: InferenceRequest, trace_header: str | None = None) -> InferenceResponse:
            answer = super().infer(request, trace_header)
            return answer.model_copy(update={"predictions": answer.predictions[:-1]})

    built, _ = stages(Short(VOTES))
    records = decide_batch(batch(["BTCUSD", "ETHUSD"]), built).records
    assert {r.reason for r in records if isinstance(r, DecisionRecord)} == {
        "inference_unavailable: the endpoint answered 1 predictions for 2 instances"
    }


def test_an_error_of_the_inference_call_itself_fails_every_asset_it_asked_for_at_infer() -> None:
    class Broken:
        def infer(self, request: InferenceRequest, trace_header: str | None = None) -> InferenceResponse:
            raise KeyError("client bug")

    built, _ = stages(Broken())
    records = decide(["BTCUSD", "OLDBARS", "ETHUSD"], built)
    assert isinstance(records["OLDBARS"], DecisionRecord)  # stale: decided without the endpoint
    for asset in ("BTCUSD", "ETHUSD"):
        failure = records[asset]
        assert isinstance(failure, FailureRecord) and (failure.error, failure.step) == ("KeyError", "infer")


def decide(assets: list[str], built: BatchStages, **kwargs: Any) -> dict[str, DecisionRecord | FailureRecord]:
    return decided(decide_batch(batch(assets), built, **kwargs).records)


def test_the_retry_policy_is_the_asls() -> None:
    retry = next(r for r in INLINE["Fetch market data"]["Retry"] if "TransientError" in r["ErrorEquals"])
    assert "RateLimitedError" in retry["ErrorEquals"] and retry["JitterStrategy"] == "FULL"
    assert (ASL_RETRY.retries, ASL_RETRY.interval_s, ASL_RETRY.backoff, ASL_RETRY.max_delay_s) == (
        retry["MaxAttempts"],
        retry["IntervalSeconds"],
        retry["BackoffRate"],
        retry["MaxDelaySeconds"],
    )


class Flaky:
    """A step that raises ``errors`` for ``asset`` (one per call, in order), then calls ``step``."""

    def __init__(self, step: Callable[[Any], Any], asset: str, errors: list[Exception]) -> None:
        self.step, self.asset, self.errors, self.calls = step, asset, list(errors), 0

    def __call__(self, arg: Any) -> Any:
        asset = arg.asset if not isinstance(arg, list) else arg[0].asset
        if asset == self.asset:
            self.calls += 1
            if self.errors:
                raise self.errors.pop(0)
        return self.step(arg)


def test_a_transient_error_is_retried_for_that_asset_then_it_decides() -> None:
    built, _ = stages()
    flaky = Flaky(built.fetch, "ETHUSD", [RateLimitedError("429 from coinbase"), TransientError("timeout")])
    slept: list[float] = []
    records = decide(["BTCUSD", "ETHUSD"], replace(built, fetch=flaky), sleep=slept.append, rng=lambda: 1.0)
    assert flaky.calls == 3 and slept == [1.0, 2.0]  # full jitter at its top: 1 s, then 2 s
    assert all(isinstance(r, DecisionRecord) and r.action is Action.BUY for r in records.values())


@pytest.mark.parametrize("stage", ["fetch", "staleness", "regime", "gate"])
def test_a_transient_error_that_persists_is_that_assets_failure_after_three_retries(stage: str) -> None:
    built, _ = stages()
    flaky = Flaky(getattr(built, stage), "ETHUSD", [TransientError("database unreachable")] * 4)
    slept: list[float] = []
    records = decide(["BTCUSD", "ETHUSD"], replace(built, **{stage: flaky}), sleep=slept.append, rng=lambda: 1.0)
    assert flaky.calls == 4 and slept == [1.0, 2.0, 4.0]
    failure = records["ETHUSD"]
    assert isinstance(failure, FailureRecord) and (failure.error, failure.step) == ("TransientError", stage)
    assert lambda_error_message(failure.cause) == "database unreachable"
    assert isinstance(records["BTCUSD"], DecisionRecord)


def test_the_whole_inference_call_is_retried_on_a_transient_error() -> None:
    built, requests = stages()
    flaky = Flaky(built.infer_many, "BTCUSD", [TransientError("endpoint hiccup")])
    slept: list[float] = []
    records = decide(["BTCUSD", "ETHUSD"], replace(built, infer_many=flaky), sleep=slept.append, rng=lambda: 0.5)
    assert flaky.calls == 2 and slept == [0.5] and len(requests) == 1
    assert all(isinstance(r, DecisionRecord) and r.action is Action.BUY for r in records.values())


def test_no_retry_when_the_invocation_has_no_time_left_for_it() -> None:
    built, _ = stages()
    flaky = Flaky(built.fetch, "ETHUSD", [TransientError("timeout")])
    slept: list[float] = []
    records = decide(
        ["ETHUSD"], replace(built, fetch=flaky), sleep=slept.append, rng=lambda: 1.0, remaining_ms=lambda: 10_500
    )
    assert flaky.calls == 1 and slept == []  # a 1 s wait would leave under the 10 s reserve
    assert isinstance(records["ETHUSD"], FailureRecord) and records["ETHUSD"].step == "fetch"


def test_a_bad_batch_context_fails_every_asset_with_its_reason() -> None:
    built, requests = stages()
    records = decide_batch(batch(["BTCUSD", "ETHUSD"], timeframe="7m"), built).records
    assert [(r.kind, getattr(r, "step", None), getattr(r, "item", None)) for r in records] == [
        ("failure", "fetch", 100),
        ("failure", "fetch", 101),
    ]
    assert all("timeframe" in lambda_error_message(r.cause) for r in records if isinstance(r, FailureRecord))
    assert not requests


# --- property: any mix of good and bad items --------------------------------------------------------------------

GOOD = ["BTCUSD", "ETHUSD", "EURUSD", "SOLUSD", "OLDBARS"]
BAD = ["XAUUSD", "NANBARS", "btc", None, 42, "FEWBARS"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(GOOD + BAD), min_size=1, max_size=8), st.sampled_from([CHAMPION, models()]))
def test_any_mix_one_record_per_item_in_order_each_as_if_decided_alone(
    assets: list[Any], cycle_models: dict[str, Any]
) -> None:
    built, _ = stages(fresh_venue=True)
    inp = batch(assets, cycle_models)
    records = decide_batch(inp, built).records
    assert len(records) == len(assets)
    for item, record in zip(inp.items, records, strict=True):
        named = item.asset if isinstance(item.asset, str) else None
        if item.asset is None:
            named = f"(null, item {item.item})"
        elif not isinstance(item.asset, str):
            named = json.dumps(item.asset)
        assert record.asset == named
        if item.asset in GOOD:
            alone = decide_batch(inp.model_copy(update={"items": [item]}), stages(fresh_venue=True)[0]).records
            assert alone == [record]


def test_staleness_result_and_market_data_are_what_the_steps_return() -> None:
    """The batch hands each step what the inline Map would parse from JSON: the same values."""
    seen: dict[str, Any] = {}
    built, _ = stages()

    def staleness(data: MarketData) -> CheckStalenessResult:
        seen["data"] = data
        return built.staleness(data)

    def infer_many(inps: Sequence[DecideInput]) -> Sequence[DecisionRecord | Exception]:
        seen["decide"] = inps[0]
        return built.infer_many(inps)

    decide_batch(batch(["BTCUSD"]), replace(built, staleness=staleness, infer_many=infer_many))
    data, inp = seen["data"], seen["decide"]
    assert MarketData.model_validate_json(data.model_dump_json()) == data
    assert DecideInput.model_validate_json(inp.model_dump_json()) == inp
    assert inp.execution_id == EXECUTION and inp.models is not None and inp.asset_class is None
