"""The LLM voter against a fake Ollama on loopback, through the official ``ollama`` client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from gpu_inference import llm
from gpu_inference.gpu import LLAMA_1B_Q4, LLAMA_3B_Q4, LlmPlan
from gpu_inference.llm import ANSWER_SCHEMA, LlmAnswer, LlmVoter, build_prompt, parse_answer
from tests.fakes import ollama_server as fake
from tests.fakes.ollama_server import FakeOllama

PLAN = LlmPlan(LLAMA_3B_Q4, LLAMA_1B_Q4, "cuda", "test")


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with fake.running() as server:
        yield server


@pytest.fixture
def voter(ollama: FakeOllama) -> LlmVoter:
    return LlmVoter(PLAN, host=ollama.host, timeout_s=2.0)


def test_prompt_contains_summary_features_regime_and_scores(make_instance) -> None:
    instance = make_instance()
    prompt = build_prompt(instance)
    assert prompt == build_prompt(instance)  # deterministic
    assert "BTCUSD (1h)" in prompt or "BTCUSD" in prompt
    assert f"{instance.summary.last_close:.6g}" in prompt and f"{instance.summary.change_pct:+.2f}%" in prompt
    assert f"Regime: {instance.regime_label}" in prompt
    for name, p in instance.regime_probabilities.items():
        assert f"{name} {p:.2f}" in prompt
    for name, value in instance.features.items():
        assert f"{name} {value:+.4f}" in prompt
    for name, score in instance.scores.items():
        assert f"{name} {score:+.3f}" in prompt


def test_vote_good_answer_is_a_vote_with_model_and_latency(voter: LlmVoter, ollama: FakeOllama, make_instance) -> None:
    out = voter.vote(make_instance())
    assert (out.voter, out.status, out.action, out.confidence) == ("llm", "voted", "BUY", 0.7)
    assert out.model == LLAMA_3B_Q4 and out.latency_ms > 0
    assert out.reasoning == fake.GOOD_ANSWER["reasoning"]
    # The client sent what the voter promised: non-streaming, schema-constrained, temperature 0
    sent = ollama.requests[0]
    assert sent["stream"] is False and sent["format"] == ANSWER_SCHEMA and sent["options"]["temperature"] == 0
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


@pytest.mark.parametrize("bad", [fake.MALFORMED, fake.PARTIAL, fake.REFUSING], ids=["malformed", "partial", "refusal"])
def test_vote_one_bad_answer_is_retried(voter: LlmVoter, ollama: FakeOllama, make_instance, bad: fake.Reply) -> None:
    ollama.script(LLAMA_3B_Q4, bad, fake.answer(action="SELL", confidence=0.65))
    out = voter.vote(make_instance())
    assert (out.status, out.action, out.confidence, out.model) == ("voted", "SELL", 0.65, LLAMA_3B_Q4)
    assert len(ollama.chats_for(LLAMA_3B_Q4)) == 2
    # The retry shows the model its bad answer and asks again
    assert ollama.chats_for(LLAMA_3B_Q4)[1]["messages"][-1]["role"] == "user"


@pytest.mark.parametrize(
    ("bad", "why"),
    [(fake.MALFORMED, "not JSON"), (fake.PARTIAL, "confidence"), (fake.REFUSING, "refused")],
    ids=["malformed", "partial", "refusal"],
)
def test_vote_two_bad_answers_abstain_with_the_reason(
    voter: LlmVoter, ollama: FakeOllama, make_instance, bad: fake.Reply, why: str
) -> None:
    ollama.script(LLAMA_3B_Q4, bad, bad)
    out = voter.vote(make_instance())
    assert (out.status, out.action, out.confidence) == ("abstained", None, None)
    assert why in out.reasoning and out.model == LLAMA_3B_Q4
    assert ollama.chats_for(LLAMA_1B_Q4) == []  # a bad answer is not a load failure


def test_vote_primary_not_pulled_falls_back_and_says_so(make_instance) -> None:
    with fake.running(models=(LLAMA_1B_Q4,)) as server:
        out = LlmVoter(PLAN, host=server.host, timeout_s=2.0).vote(make_instance())
    assert (out.status, out.model) == ("voted", LLAMA_1B_Q4)
    assert "fallback model llama3.2:1b-instruct-q4_0 answered" in out.reasoning and "not found" in out.reasoning


def test_vote_primary_out_of_memory_falls_back(voter: LlmVoter, ollama: FakeOllama, make_instance) -> None:
    ollama.script(LLAMA_3B_Q4, fake.out_of_memory())
    out = voter.vote(make_instance())
    assert (out.status, out.model) == ("voted", LLAMA_1B_Q4)
    assert "requires more system memory" in out.reasoning


def test_vote_primary_timeout_falls_back(ollama: FakeOllama, make_instance) -> None:
    ollama.script(LLAMA_3B_Q4, fake.slow(5.0))
    out = LlmVoter(PLAN, host=ollama.host, timeout_s=0.3).vote(make_instance())
    assert (out.status, out.model) == ("voted", LLAMA_1B_Q4)
    assert "timed out" in out.reasoning


def test_vote_every_model_failing_is_unavailable(voter: LlmVoter, ollama: FakeOllama, make_instance) -> None:
    ollama.script(LLAMA_3B_Q4, fake.out_of_memory())
    ollama.script(LLAMA_1B_Q4, fake.Reply(status=500, error=fake.LOAD_FAILED))
    out = voter.vote(make_instance())
    assert (out.status, out.action) == ("unavailable", None)
    assert LLAMA_3B_Q4 in out.reasoning and LLAMA_1B_Q4 in out.reasoning


def test_vote_ollama_unreachable_is_unavailable_never_a_vote(make_instance) -> None:
    with fake.running() as server:
        host = server.host
    voter = LlmVoter(PLAN, host=host, timeout_s=1.0)
    assert voter.available() is False
    out = voter.vote(make_instance())
    assert (out.status, out.action, out.confidence) == ("unavailable", None, None)
    assert "unreachable" in out.reasoning


def test_available_reads_api_tags(voter: LlmVoter) -> None:
    assert voter.available() is True


def test_parse_answer_rejects_out_of_range_and_long_reasoning() -> None:
    with pytest.raises(ValueError, match="confidence"):
        parse_answer(json.dumps({"action": "BUY", "confidence": 1.5, "reasoning": "x"}))
    with pytest.raises(ValueError, match="reasoning"):
        parse_answer(json.dumps({"action": "BUY", "confidence": 0.5, "reasoning": "x" * 501}))
    with pytest.raises(ValueError, match="action"):
        parse_answer(json.dumps({"action": "STRONG_BUY", "confidence": 0.5, "reasoning": "x"}))
    assert parse_answer(json.dumps(fake.GOOD_ANSWER)) == LlmAnswer(**fake.GOOD_ANSWER)


def test_timeout_from_env_defaults_to_the_one_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FFE_LLM_TIMEOUT_S", raising=False)
    assert llm.timeout_from_env() == llm.DEFAULT_TIMEOUT_S == 5.0
    monkeypatch.setenv("FFE_LLM_TIMEOUT_S", "")
    assert llm.timeout_from_env() == 5.0


def test_timeout_from_env_reads_ffe_llm_timeout_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FFE_LLM_TIMEOUT_S", " 7.5 ")
    assert llm.timeout_from_env() == 7.5


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "inf", "nan"])
def test_timeout_from_env_rejects_anything_but_a_positive_number(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FFE_LLM_TIMEOUT_S", raw)
    with pytest.raises(ValueError, match="FFE_LLM_TIMEOUT_S must be a positive number"):
        llm.timeout_from_env()
