"""The inference endpoint's ensemble rule: the RL meta-controller decides, the LLM can only hold it back.

Two voters answer for each decision. The RL voter's vote is the meta-controller's thresholded blend
(``ffe.domain.ensemble.weighted_blend``); the LLM voter reads a text summary of the same inputs. The rule:

* **RL unavailable** (any status but ``voted``): HOLD with confidence 1.0, rule ``rl_unavailable``. The LLM
  alone never trades, and no decision is made up.
* **LLM absent** (``abstained``, ``unavailable`` or ``skipped``): the RL action with its confidence × 0.8,
  rule ``rl_only_llm_<status>``; the reason names the status and the LLM's reason.
* **Veto**: the LLM votes the opposite direction (BUY against SELL or SELL against BUY) with confidence
  >= 0.6: HOLD, rule ``llm_veto``, with the LLM's confidence (how sure the veto is).
* **Confirm**: the LLM votes the RL action: that action with the mean of both confidences, rule
  ``rl_confirmed``.
* **Doubt**: any other disagreement (the LLM says HOLD against a trade, an opposite vote below the veto
  confidence, or a trade against the RL voter's HOLD): the RL action with its confidence × 0.75, rule
  ``llm_doubts``. The LLM can hold the RL voter back, never push it into a trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ffe.domain.models import Action

VETO_CONFIDENCE = 0.6
DOUBT_FACTOR = 0.75
ALONE_FACTOR = 0.8


class VoteStatus(StrEnum):
    VOTED = "voted"
    ABSTAINED = "abstained"
    UNAVAILABLE = "unavailable"
    SKIPPED = "skipped"


class Rule(StrEnum):
    RL_UNAVAILABLE = "rl_unavailable"
    LLM_VETO = "llm_veto"
    RL_CONFIRMED = "rl_confirmed"
    LLM_DOUBTS = "llm_doubts"
    RL_ONLY_LLM_ABSTAINED = "rl_only_llm_abstained"
    RL_ONLY_LLM_UNAVAILABLE = "rl_only_llm_unavailable"
    RL_ONLY_LLM_SKIPPED = "rl_only_llm_skipped"


@dataclass(frozen=True, slots=True)
class Vote:
    """One voter's say: an action and a confidence when ``voted``, else only why not."""

    status: VoteStatus
    action: Action | None = None
    confidence: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status is VoteStatus.VOTED:
            if self.action is None or self.confidence is None or not 0.0 <= self.confidence <= 1.0:
                raise ValueError(f"a vote needs an action and a confidence in [0, 1], got {self}")
        elif self.action is not None:
            raise ValueError(f"a voter that {self.status} has no action")


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    confidence: float
    rule: Rule
    reason: str


def combine(rl: Vote, llm: Vote) -> Verdict:
    """The ensemble decision from the RL and LLM votes (the rule is in the module docstring)."""
    if rl.status is not VoteStatus.VOTED or rl.action is None or rl.confidence is None:
        return Verdict(Action.HOLD, 1.0, Rule.RL_UNAVAILABLE, f"RL voter {rl.status}: {rl.reason or 'no reason'}")
    rl_part = (
        f"RL {rl.action} {rl.confidence:.2f} ({rl.reason})" if rl.reason else f"RL {rl.action} {rl.confidence:.2f}"
    )
    if llm.status is not VoteStatus.VOTED or llm.action is None or llm.confidence is None:
        return Verdict(
            rl.action,
            _round(rl.confidence * ALONE_FACTOR),
            Rule(f"rl_only_llm_{llm.status}"),
            f"{rl_part}; LLM {llm.status} ({llm.reason or 'no reason'}), RL alone at ×{ALONE_FACTOR}",
        )
    llm_part = f"LLM {llm.action} {llm.confidence:.2f}" + (f" ({llm.reason})" if llm.reason else "")
    if llm.action == rl.action:
        return Verdict(
            rl.action, _round((rl.confidence + llm.confidence) / 2), Rule.RL_CONFIRMED, f"{rl_part}; {llm_part} agrees"
        )
    if _opposite(rl.action, llm.action) and llm.confidence >= VETO_CONFIDENCE:
        return Verdict(
            Action.HOLD,
            _round(llm.confidence),
            Rule.LLM_VETO,
            f"{rl_part}; {llm_part} vetoes (opposite direction at >= {VETO_CONFIDENCE})",
        )
    return Verdict(
        rl.action,
        _round(rl.confidence * DOUBT_FACTOR),
        Rule.LLM_DOUBTS,
        f"{rl_part}; {llm_part} doubts it, RL at ×{DOUBT_FACTOR}",
    )


def _opposite(a: Action, b: Action) -> bool:
    return {a, b} == {Action.BUY, Action.SELL}


def _round(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 6)
