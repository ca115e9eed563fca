"""One endpoint, several bundle versions per request: grouping, bit-for-bit arms, LLM reuse, unknown versions."""

from __future__ import annotations

import json
import shutil
import threading
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import torch

from ffe.contracts import InferenceInstance, InferenceRequest
from gpu_inference.gpu import LLAMA_1B_Q4, LLAMA_3B_Q4, LlmPlan
from gpu_inference.llm import LlmVoter
from gpu_inference.predictor import Predictor
from tests.fakes import ollama_server as fake
from tests.fakes.ollama_server import FakeOllama

PLAN = LlmPlan(LLAMA_3B_Q4, LLAMA_1B_Q4, "cuda", "test")
TREATMENT = "ffe-7ea7000000a1"


def publish_variant(store: Path, version: str, scale: float) -> Path:
    """The bundled meta-controller with its first layer's weights scaled, filed as ``version`` in ``store``."""
    shipped = Path(str(resources.files("ffe.data.models")))
    folder = store / version
    shutil.copytree(shipped, folder, ignore=shutil.ignore_patterns("__init__.py", "__pycache__", "*.md"))
    with warnings.catch_warnings():  # torch deprecates TorchScript; the artifact stays TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(shipped / "meta-controller.pt"), map_location="cpu")
        with torch.no_grad():
            dict(module.named_parameters())["layers.0.weight"].mul_(scale)
        torch.jit.save(module, str(folder / "meta-controller.pt"))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "version": version}))
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    publish_variant(root, TREATMENT, scale=-3.0)
    return root


@pytest.fixture(scope="module")
def predictor(store: Path) -> Predictor:
    return Predictor.load("bundled", device="cpu", store=str(store))


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with fake.running() as server:
        yield server


def arms(make_instance, predictor: Predictor, offset: int = 0) -> tuple[InferenceInstance, InferenceInstance]:
    control = make_instance(offset=offset).model_copy(update={"regime_model_version": predictor.version})
    treatment = control.model_copy(update={"model_version": TREATMENT, "regime_model_version": TREATMENT})
    return control, treatment


def test_each_instance_is_served_by_the_version_it_names(predictor: Predictor, make_instance) -> None:
    control, treatment = arms(make_instance, predictor)
    response = predictor.predict(InferenceRequest(instances=[control, treatment], llm=False))
    rl = [p.voters[0] for p in response.predictions]
    # Then each RL vote carries the version that served it, and the two policies really differ
    assert [v.model_version for v in rl] == [predictor.version, TREATMENT]
    assert [v.status for v in rl] == ["voted", "voted"]
    assert rl[0].weights != rl[1].weights
    assert response.model_version == predictor.version  # the endpoint's default version


def test_control_is_bit_for_bit_the_same_with_or_without_a_treatment_beside_it(
    predictor: Predictor, make_instance
) -> None:
    controls = [arms(make_instance, predictor, offset)[0] for offset in range(4)]
    treatments = [arms(make_instance, predictor, offset)[1] for offset in range(4)]
    alone = predictor.predict(InferenceRequest(instances=controls, llm=False)).predictions
    mixed = predictor.predict(
        InferenceRequest(instances=[x for pair in zip(controls, treatments, strict=True) for x in pair], llm=False)
    ).predictions
    # Then every control prediction is identical (weights to the last bit), latency aside
    for a, m in zip(alone, mixed[0::2], strict=True):
        assert a.model_dump(exclude={"voters"}) == m.model_dump(exclude={"voters"})
        assert a.voters[0].model_dump(exclude={"latency_ms"}) == m.voters[0].model_dump(exclude={"latency_ms"})


def test_the_versions_take_turns_at_running_first_and_the_outputs_never_change(
    predictor: Predictor, make_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first group of a request runs on a cold cache: the arms take turns at it, so their latencies compare
    control, treatment = arms(make_instance, predictor)
    request = InferenceRequest(instances=[control, treatment], llm=False)
    served: list[str] = []
    group_votes = Predictor._group_votes

    def spy(self: Predictor, version: str, *args: object) -> object:
        served.append(version)
        return group_votes(self, version, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Predictor, "_group_votes", spy)
    answers = [predictor.predict(request) for _ in range(4)]
    firsts = served[0::2]
    assert sorted(firsts) == sorted([predictor.version, TREATMENT] * 2) and firsts[0] != firsts[1]
    # And whichever ran first, each instance's prediction is the same
    for answer in answers[1:]:
        for a, b in zip(answers[0].predictions, answer.predictions, strict=True):
            assert a.voters[0].model_dump(exclude={"latency_ms"}) == b.voters[0].model_dump(exclude={"latency_ms"})


def test_an_unknown_version_is_unavailable_for_its_instances_only(predictor: Predictor, make_instance) -> None:
    control, _ = arms(make_instance, predictor)
    missing = control.model_copy(update={"model_version": "ffe-0000000dead0", "regime_model_version": None})
    pred = predictor.predict(InferenceRequest(instances=[control, missing], llm=False)).predictions
    assert pred[0].voters[0].status == "voted"
    assert (pred[1].action, pred[1].rule) == ("HOLD", "rl_unavailable")
    assert pred[1].voters[0].model_version == "ffe-0000000dead0"
    assert "model ffe-0000000dead0 is not in" in pred[1].reason and "ffe models publish" in pred[1].reason


def test_no_store_serves_the_loaded_version_and_says_why_not_others(make_instance) -> None:
    alone = Predictor.load("bundled", device="cpu")
    other = make_instance().model_copy(update={"model_version": TREATMENT})
    pred = alone.predict(InferenceRequest(instances=[other], llm=False)).predictions[0]
    assert pred.rule == "rl_unavailable" and "no model store (FFE_MODEL_STORE)" in pred.reason


def test_the_regime_path_must_come_from_the_serving_version(predictor: Predictor, make_instance) -> None:
    control, treatment = arms(make_instance, predictor)
    crossed = treatment.model_copy(update={"regime_model_version": predictor.version})
    pred = predictor.predict(InferenceRequest(instances=[control, crossed], llm=False)).predictions
    assert pred[0].voters[0].status == "voted"
    assert pred[1].rule == "rl_unavailable"
    assert f"came from model {predictor.version}" in pred[1].reason and TREATMENT in pred[1].reason


def test_the_other_arm_reuses_the_llm_vote(ollama: FakeOllama, store: Path, make_instance) -> None:
    predictor = Predictor.load(
        "bundled", device="cpu", store=str(store), llm=LlmVoter(PLAN, host=ollama.host, timeout_s=2.0)
    )
    control, treatment = arms(make_instance, predictor)
    ollama.script(LLAMA_3B_Q4, fake.answer(action="SELL", confidence=0.9))
    asked = len(ollama.chats_for(LLAMA_3B_Q4))
    pred = predictor.predict(
        InferenceRequest(instances=[control, treatment.model_copy(update={"llm_vote_from": 0})])
    ).predictions
    # Then the LLM was asked once, and the treatment's LLM voter is the control's, saying it was reused
    assert len(ollama.chats_for(LLAMA_3B_Q4)) - asked == 1
    llm_control, llm_treatment = pred[0].voters[1], pred[1].voters[1]
    assert (llm_treatment.action, llm_treatment.confidence) == (llm_control.action, llm_control.confidence)
    assert llm_treatment.reasoning.startswith("reused from instance 0:")
    assert pred[1].voters[0].model_version == TREATMENT


def test_concurrent_requests_load_a_version_once(store: Path, make_instance, monkeypatch) -> None:
    from gpu_inference import predictor as module

    fresh = Predictor.load("bundled", device="cpu", store=str(store))
    loads: list[str] = []
    real = module.Policy.load

    def counting(root: Path, device: torch.device, expected_version: str | None = None) -> module.Policy:
        loads.append(str(expected_version))
        return real(root, device, expected_version)

    monkeypatch.setattr(module.Policy, "load", staticmethod(counting))
    _, treatment = arms(make_instance, fresh)
    threads = [
        threading.Thread(target=fresh.predict, args=(InferenceRequest(instances=[treatment], llm=False),))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [TREATMENT]


def test_a_missing_version_is_looked_for_once_a_minute_however_many_ask(store: Path) -> None:
    from gpu_inference.predictor import ModelLoadError, Policy, PolicyStore

    now = [0.0]
    policies = PolicyStore(str(store), torch.device("cpu"), failure_seconds=60, clock=lambda: now[0])
    looked: list[str] = []
    real = policies._load

    def counting(version: str) -> Policy:
        looked.append(version)
        return real(version)

    policies._load = counting  # type: ignore[method-assign]
    errors: list[str] = []

    def ask() -> None:
        try:
            policies.get("ffe-00000000f00d")
        except ModelLoadError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert looked == ["ffe-00000000f00d"] and len(errors) == 6 and len(set(errors)) == 1
    now[0] = 60.0
    ask()
    assert looked == ["ffe-00000000f00d"] * 2  # a minute later it is looked for again (it may be published now)
