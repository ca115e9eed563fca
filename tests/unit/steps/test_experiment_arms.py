"""The cycle's steps under an experiment: DetectRegime computes both arms' regime paths, InferDecision serves both
arms in one endpoint call and records them beside the decision, which is the acting arm's alone."""

from __future__ import annotations

from typing import Any

import pytest

from ffe.adapters.inference import InferenceUnavailableError
from ffe.adapters.models import ModelBundle, ModelUnavailableError
from ffe.contracts import (
    CycleModels,
    DecideInput,
    DetectRegimeInput,
    InferencePrediction,
    InferenceRequest,
    InferenceResponse,
    VoterOutput,
)
from ffe.domain.experiments import CONTROL, TREATMENT, assign
from ffe.domain.features import FeatureParams
from ffe.domain.models import Action
from ffe.domain.strategies import StrategyParams
from ffe.steps.infer import infer_decision
from ffe.steps.regime import detect_regimes
from tests.fakes.models import random_bundle
from tests.unit.steps.test_regime_and_decide import market

CONTROL_BUNDLE = random_bundle(seed=3, version="ffe-control00001")
TREATMENT_BUNDLE = random_bundle(seed=9, version="ffe-treatment001")
BUNDLES = {b.version: b for b in (CONTROL_BUNDLE, TREATMENT_BUNDLE)}


def models(mode: str = "shadow", share: float = 0.0, assets: list[str] | None = None) -> dict[str, Any]:
    experiment = {
        "id": "exp-1",
        "mode": mode,
        "control_version": CONTROL_BUNDLE.version,
        "treatment_version": TREATMENT_BUNDLE.version,
        "share": share,
        "assets": assets,
    }
    return {"champion": CONTROL_BUNDLE.version, "experiments": [experiment]}


def load(version: str) -> ModelBundle | ModelUnavailableError:
    return BUNDLES.get(version) or ModelUnavailableError(f"model {version} is not in the store")


def decide_input(cycle_models: dict[str, Any] | None, asset: str = "BTCUSD") -> DecideInput:
    payload = {**market(asset), "models": cycle_models}
    regime = detect_regimes(DetectRegimeInput.model_validate(payload), load, FeatureParams())
    return DecideInput.model_validate({**payload, "regime": regime.model_dump(mode="json")})


class Endpoint:
    """The endpoint's contract: one prediction per instance, the RL voter naming the version that served it.
    Each version votes its own way, so the arms are told apart; a version in ``down`` cannot be served."""

    def __init__(self, votes: dict[str, str], down: frozenset[str] = frozenset()) -> None:
        self.votes = votes
        self.down = down
        self.requests: list[InferenceRequest] = []

    def infer(self, request: InferenceRequest, trace_header: str | None = None) -> InferenceResponse:
        self.requests.append(request)
        predictions = []
        for inst in request.instances:
            version = inst.model_version or "default"
            if version in self.down:
                rl = VoterOutput(voter="rl", status="unavailable", reasoning=f"cannot load {version}")
                predictions.append(
                    InferencePrediction(
                        action=Action.HOLD, confidence=1.0, reason="RL down", rule="rl_down", voters=[rl]
                    )
                )
                continue
            action = Action(self.votes[version])
            rl = VoterOutput(
                voter="rl", status="voted", action=action, confidence=0.6, model_version=version, latency_ms=1.5
            )
            predictions.append(
                InferencePrediction(
                    action=action, confidence=0.6, reason=f"{version} says {action}", rule="rl_alone", voters=[rl]
                )
            )
        return InferenceResponse(predictions=predictions, model_version="default", device="cpu")


def decide(inp: DecideInput, endpoint: Endpoint) -> Any:
    return infer_decision(inp, endpoint, StrategyParams(), entry_threshold=0.15, llm=True)


def test_detect_regime_computes_the_other_arm_through_its_own_mixture() -> None:
    inp = decide_input(models())
    assert inp.regime is not None and inp.regime.other is not None
    assert inp.regime.model_version == CONTROL_BUNDLE.version
    assert inp.regime.other.model_version == TREATMENT_BUNDLE.version
    assert inp.regime.path_posteriors != inp.regime.other.path_posteriors  # two mixtures, two posteriors
    assert inp.regime.other.other is None


def test_without_an_experiment_one_instance_of_the_champion_and_no_arms() -> None:
    endpoint = Endpoint({CONTROL_BUNDLE.version: "BUY"})
    record = decide(decide_input({"champion": CONTROL_BUNDLE.version}), endpoint)
    (request,) = endpoint.requests
    assert [i.model_version for i in request.instances] == [CONTROL_BUNDLE.version]
    assert record.experiment_id is None and record.arm is None and record.arms == {}
    assert record.model_version == CONTROL_BUNDLE.version and record.action is Action.BUY
    assert record.bar_close == market()["bars"]["close"][-1]


def test_shadow_serves_both_arms_in_one_call_and_acts_on_the_control_only() -> None:
    endpoint = Endpoint({CONTROL_BUNDLE.version: "BUY", TREATMENT_BUNDLE.version: "SELL"})
    record = decide(decide_input(models()), endpoint)
    (request,) = endpoint.requests  # one call for both arms
    control, treatment = request.instances
    assert (control.model_version, control.llm_vote_from) == (CONTROL_BUNDLE.version, None)
    assert (treatment.model_version, treatment.llm_vote_from) == (TREATMENT_BUNDLE.version, 0)  # no second LLM call
    assert control.regime_model_version == CONTROL_BUNDLE.version
    assert treatment.regime_model_version == TREATMENT_BUNDLE.version
    # The decision is the control's; both arms are recorded beside it
    assert record.action is Action.BUY and record.model_version == CONTROL_BUNDLE.version
    assert (record.experiment_id, record.arm) == ("exp-1", CONTROL)
    assert record.arms[CONTROL].action is Action.BUY and record.arms[TREATMENT].action is Action.SELL
    assert record.arms[TREATMENT].model_version == TREATMENT_BUNDLE.version
    assert record.arms[TREATMENT].latency_ms == 1.5


def test_the_shadow_decision_is_the_control_decision_bit_for_bit() -> None:
    votes = {CONTROL_BUNDLE.version: "BUY", TREATMENT_BUNDLE.version: "SELL"}
    alone = decide(decide_input({"champion": CONTROL_BUNDLE.version}), Endpoint(votes))
    shadowed = decide(decide_input(models()), Endpoint(votes))
    experiment_fields = {"experiment_id", "arm", "arms"}
    assert shadowed.model_dump(exclude=experiment_fields) == alone.model_dump(exclude=experiment_fields)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("asset", ["BTCUSD", "ETHUSD"])
def test_split_acts_with_the_arm_the_asset_is_assigned(asset: str, share: float) -> None:
    endpoint = Endpoint({CONTROL_BUNDLE.version: "BUY", TREATMENT_BUNDLE.version: "SELL"})
    record = decide(decide_input(models("split", share), asset), endpoint)
    arm = assign("exp-1", asset, share)
    acting = CONTROL_BUNDLE if arm == CONTROL else TREATMENT_BUNDLE
    assert record.arm == arm and record.model_version == acting.version
    assert record.action is (Action.BUY if arm == CONTROL else Action.SELL)
    assert endpoint.requests[0].instances[0].model_version == acting.version
    assert set(record.arms) == {CONTROL, TREATMENT}


def test_an_asset_outside_the_experiment_is_the_champions_alone() -> None:
    endpoint = Endpoint({CONTROL_BUNDLE.version: "BUY"})
    record = decide(decide_input(models(assets=["ETHUSD"])), endpoint)
    assert record.experiment_id is None and len(endpoint.requests[0].instances) == 1


def test_an_unservable_treatment_is_recorded_as_such_and_the_control_still_decides() -> None:
    endpoint = Endpoint({CONTROL_BUNDLE.version: "BUY"}, down=frozenset({TREATMENT_BUNDLE.version}))
    record = decide(decide_input(models()), endpoint)
    assert record.action is Action.BUY
    assert record.arms[TREATMENT].action is None and "cannot load" in record.arms[TREATMENT].reason


def test_a_treatment_missing_from_the_store_never_reaches_the_endpoint() -> None:
    missing = models()
    missing["experiments"][0]["treatment_version"] = "ffe-notpublished"
    endpoint = Endpoint({CONTROL_BUNDLE.version: "HOLD"})
    record = decide(decide_input(missing), endpoint)
    assert len(endpoint.requests[0].instances) == 1
    assert record.arms[TREATMENT].action is None and "not in the store" in record.arms[TREATMENT].reason
    assert record.action is Action.HOLD and record.arms[CONTROL].action is Action.HOLD


def test_an_endpoint_failure_holds_and_records_neither_arm_as_deciding() -> None:
    class Down:
        def infer(self, request: InferenceRequest, trace_header: str | None = None) -> InferenceResponse:
            raise InferenceUnavailableError("timeout")

    record = decide(decide_input(models()), Down())  # type: ignore[arg-type]
    assert record.action is Action.HOLD and record.reason.startswith("inference_unavailable")
    assert record.arm == CONTROL and {a.action for a in record.arms.values()} == {None}


def test_cycle_models_route_an_asset_once_for_every_step() -> None:
    split = CycleModels.model_validate(models("split", 0.25))
    for asset in ["BTCUSD", "ETHUSD", "EURUSD", "SPX"]:
        route = split.route(asset)
        assert route.acting_arm == assign("exp-1", asset, 0.25)
        assert set(route.versions) == {CONTROL_BUNDLE.version, TREATMENT_BUNDLE.version}
