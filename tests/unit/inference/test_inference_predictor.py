"""The predictor on CPU with the real bundled TorchScript meta-controller."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from ffe.contracts import InferenceRequest
from ffe.domain.ensemble import weighted_blend
from ffe.domain.meta import OPTIONS, latest_weights
from gpu_inference.gpu import LLAMA_1B_Q4, LLAMA_3B_Q4, LlmPlan
from gpu_inference.llm import LlmVoter
from gpu_inference.predictor import ModelLoadError, Predictor
from tests.fakes import ollama_server as fake
from tests.fakes.ollama_server import FakeOllama

PLAN = LlmPlan(LLAMA_3B_Q4, LLAMA_1B_Q4, "cuda", "test")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load("bundled", device="cpu")


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with fake.running() as server:
        yield server


def test_load_is_ready_with_the_manifest_version(predictor: Predictor, bundle) -> None:
    assert predictor.ready is True
    assert predictor.version == bundle.version and predictor.roll_bars == bundle.meta.roll_bars
    assert predictor.device_name == "cpu"


def test_load_missing_model_dir_fails_loudly(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match=r"manifest\.json"):
        Predictor.load(tmp_path, device="cpu")


def test_rl_weights_match_the_numpy_policy_and_the_blend(predictor: Predictor, bundle, make_instance) -> None:
    # Given a real decision (the path longer than roll_bars: only the last rows count)
    instance = make_instance(path_len=40)
    response = predictor.predict(InferenceRequest(instances=[instance], llm=False))
    rl = response.predictions[0].voters[0]
    # Then the torch weights equal latest_weights on the numpy export
    expected = latest_weights(bundle.meta, np.array(instance.path_features), np.array(instance.path_posteriors))
    got = np.array([rl.weights[str(o)] for o in OPTIONS])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # And the RL action is weighted_blend's
    blend = weighted_blend(instance.scores, dict(zip([str(o) for o in OPTIONS], expected, strict=True)), 0.15)
    assert (rl.status, rl.action) == ("voted", blend.action)
    assert rl.confidence == pytest.approx(blend.confidence, abs=1e-4)
    assert rl.model_version == bundle.version and rl.latency_ms > 0


def test_batch_64_matches_one_by_one(predictor: Predictor, bundle, make_instance) -> None:
    instances = [make_instance(offset=i, entry_threshold=0.05) for i in range(64)]
    response = predictor.predict(InferenceRequest(instances=instances, llm=False))
    assert len(response.predictions) == 64
    for inst, pred in zip(instances, response.predictions, strict=True):
        expected = latest_weights(bundle.meta, np.array(inst.path_features), np.array(inst.path_posteriors))
        got = np.array([pred.voters[0].weights[str(o)] for o in OPTIONS])
        np.testing.assert_allclose(got, expected, atol=1e-5)
    # And each batched prediction is the one the instance gets alone
    for inst, batched in zip(instances, response.predictions, strict=True):
        alone = predictor.predict(InferenceRequest(instances=[inst], llm=False)).predictions[0]
        assert (batched.action, batched.rule) == (alone.action, alone.rule)
        assert batched.confidence == pytest.approx(alone.confidence, abs=1e-5)
    # Over a batch that mixes actions (the low entry threshold sees to it), so a row mixed up would show
    assert len({p.action for p in response.predictions}) > 1


def test_llm_skipped_by_request_is_rl_only_skipped(predictor: Predictor, make_instance) -> None:
    pred = predictor.predict(InferenceRequest(instances=[make_instance()], llm=False)).predictions[0]
    assert pred.rule == "rl_only_llm_skipped" and pred.voters[1].status == "skipped"
    rl = pred.voters[0]
    assert pred.action == rl.action and rl.confidence is not None
    assert pred.confidence == pytest.approx(rl.confidence * 0.8, abs=1e-6)


def test_no_llm_configured_is_rl_only_unavailable(predictor: Predictor, make_instance) -> None:
    pred = predictor.predict(InferenceRequest(instances=[make_instance()], llm=True)).predictions[0]
    assert pred.rule == "rl_only_llm_unavailable" and pred.voters[1].status == "unavailable"


def test_llm_unreachable_is_rl_only_unavailable(make_instance) -> None:
    with fake.running() as server:
        host = server.host
    predictor = Predictor.load("bundled", llm=LlmVoter(PLAN, host=host, timeout_s=1.0), device="cpu")
    pred = predictor.predict(InferenceRequest(instances=[make_instance()])).predictions[0]
    assert pred.rule == "rl_only_llm_unavailable"
    assert "unreachable" in pred.voters[1].reasoning


def test_llm_vote_combines_with_rl(ollama: FakeOllama, make_instance) -> None:
    predictor = Predictor.load("bundled", llm=LlmVoter(PLAN, host=ollama.host, timeout_s=2.0), device="cpu")
    instance = make_instance()
    rl = predictor.rl_votes([instance])[0]
    assert rl.action == "BUY"  # the bundled decision trades
    # Given the LLM disagrees strongly
    ollama.script(LLAMA_3B_Q4, fake.answer(action="SELL", confidence=0.9))
    pred = predictor.predict(InferenceRequest(instances=[instance])).predictions[0]
    # Then it vetoes, and both voters are reported
    assert (pred.action, pred.rule) == ("HOLD", "llm_veto")
    assert [v.voter for v in pred.voters] == ["rl", "llm"] and pred.voters[1].model == LLAMA_3B_Q4


def test_short_path_makes_the_rl_voter_unavailable_and_holds(predictor: Predictor, make_instance) -> None:
    instance = make_instance(path_len=5)
    pred = predictor.predict(InferenceRequest(instances=[instance, make_instance()], llm=False)).predictions
    assert (pred[0].action, pred[0].confidence, pred[0].rule) == ("HOLD", 1.0, "rl_unavailable")
    assert "needs 24 path rows" in pred[0].reason
    assert pred[1].voters[0].status == "voted"  # the other instance is unaffected


def test_regime_from_another_bundle_holds_rather_than_misread(predictor: Predictor, make_instance) -> None:
    # Given one instance whose regime path came from the endpoint's bundle and one from an older bundle
    same = make_instance().model_copy(update={"regime_model_version": predictor.version})
    other = make_instance().model_copy(update={"regime_model_version": "ffe-000000000000"})
    # When both are predicted
    pred = predictor.predict(InferenceRequest(instances=[same, other], llm=False)).predictions
    # Then the matching one is voted on and the mismatched one holds, naming both versions
    assert pred[0].voters[0].status == "voted"
    assert (pred[1].action, pred[1].rule) == ("HOLD", "rl_unavailable")
    assert "ffe-000000000000" in pred[1].reason and predictor.version in pred[1].reason
