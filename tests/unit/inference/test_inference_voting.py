"""The ensemble rule of the inference endpoint: every branch."""

from __future__ import annotations

import pytest

from ffe.domain.models import Action
from ffe.domain.voting import Rule, Vote, VoteStatus, combine

VOTED = VoteStatus.VOTED


def rl(action: Action, confidence: float) -> Vote:
    return Vote(VOTED, action, confidence, "blend")


def test_combine_rl_unavailable_holds_at_full_confidence_whatever_the_llm_says() -> None:
    # Given an unavailable RL voter and a confident LLM
    verdict = combine(Vote(VoteStatus.UNAVAILABLE, reason="model not loaded"), Vote(VOTED, Action.BUY, 0.99))
    # Then the decision is HOLD at 1.0 and the reason says why
    assert (verdict.action, verdict.confidence, verdict.rule) == (Action.HOLD, 1.0, Rule.RL_UNAVAILABLE)
    assert "model not loaded" in verdict.reason


def test_combine_llm_opposite_and_confident_vetoes() -> None:
    verdict = combine(rl(Action.BUY, 0.5), Vote(VOTED, Action.SELL, 0.7, "overbought"))
    assert (verdict.action, verdict.rule) == (Action.HOLD, Rule.LLM_VETO)
    assert verdict.confidence == pytest.approx(0.7)
    assert "overbought" in verdict.reason


def test_combine_veto_threshold_is_inclusive() -> None:
    assert combine(rl(Action.SELL, 0.4), Vote(VOTED, Action.BUY, 0.6)).rule is Rule.LLM_VETO


def test_combine_llm_opposite_below_veto_confidence_only_doubts() -> None:
    verdict = combine(rl(Action.SELL, 0.4), Vote(VOTED, Action.BUY, 0.59))
    assert (verdict.action, verdict.rule) == (Action.SELL, Rule.LLM_DOUBTS)
    assert verdict.confidence == pytest.approx(0.3)


def test_combine_llm_same_direction_confirms_with_mean_confidence() -> None:
    verdict = combine(rl(Action.BUY, 0.4), Vote(VOTED, Action.BUY, 0.8))
    assert (verdict.action, verdict.rule) == (Action.BUY, Rule.RL_CONFIRMED)
    assert verdict.confidence == pytest.approx(0.6)


def test_combine_llm_hold_doubts_the_trade() -> None:
    verdict = combine(rl(Action.SELL, 0.8), Vote(VOTED, Action.HOLD, 0.9))
    assert (verdict.action, verdict.rule) == (Action.SELL, Rule.LLM_DOUBTS)
    assert verdict.confidence == pytest.approx(0.6)


def test_combine_llm_trade_against_rl_hold_never_pushes_a_trade() -> None:
    verdict = combine(rl(Action.HOLD, 0.8), Vote(VOTED, Action.BUY, 1.0))
    assert (verdict.action, verdict.rule) == (Action.HOLD, Rule.LLM_DOUBTS)


@pytest.mark.parametrize(
    ("status", "rule"),
    [
        (VoteStatus.ABSTAINED, Rule.RL_ONLY_LLM_ABSTAINED),
        (VoteStatus.UNAVAILABLE, Rule.RL_ONLY_LLM_UNAVAILABLE),
        (VoteStatus.SKIPPED, Rule.RL_ONLY_LLM_SKIPPED),
    ],
)
def test_combine_llm_absent_rl_alone_at_reduced_confidence(status: VoteStatus, rule: Rule) -> None:
    verdict = combine(rl(Action.BUY, 0.5), Vote(status, reason="ollama down"))
    assert (verdict.action, verdict.rule) == (Action.BUY, rule)
    assert verdict.confidence == pytest.approx(0.4)
    assert str(status) in verdict.reason and "ollama down" in verdict.reason


def test_vote_voted_without_action_is_rejected() -> None:
    with pytest.raises(ValueError, match="needs an action"):
        Vote(VOTED, None, 0.5)
    with pytest.raises(ValueError, match="has no action"):
        Vote(VoteStatus.ABSTAINED, Action.BUY)
