"""The promotion gate on a deployed stage: ``POST /experiments/{id}/promote`` and ``PUT /models/champion``.

The CLI's gate (``ffe models promote``, ``ffe.training.promotion``) reads the evidence from MLflow; a Lambda cannot
reach MLflow, so here it comes from the stage's model store, where ``ffe models publish`` put it beside the bundle
(``<root>/<version>/evidence/``, ``ModelStore.evidence``). The verdict is ``ffe.evaluation.gate.decide`` on the
candidate against its own naive router and the bar's meta-controller (the current champion, or the experiment's
control). A bar without evidence (the bundled version, one published without it) cannot be shown beaten: refused,
as the CLI does. A refusal is a 409 naming the verdict unless the request forces it with a reason; the outcome goes
into the reason that is recorded anyway. See docs/models.md, "Promotion gate".

numpy is imported only when a promotion asks (the API's cold start stays without it: tests/template/test_template.py).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ffe.api.problems import Conflict

if TYPE_CHECKING:
    from ffe.evaluation.gate import Evidence, GateConfig, Verdict

HOW = (
    "publish it with its evidence (`ffe evaluate --version N`, then `ffe models publish`), or send"
    ' {"force": true, "reason": "..."} to promote anyway'
)


@dataclass(frozen=True)
class Outcome:
    """What a promotion records: the reason (the caller's, with the gate's outcome) and the transition's evidence."""

    reason: str
    evidence: dict[str, Any]


def gate(candidate: str, bar: str, kind: str, *, force: bool, reason: str) -> Outcome:
    """Run the gate on promoting ``candidate`` over ``bar``, the ``kind`` of bar it is (``champion``, ``control``).

    Raises:
        Conflict: the gate refused and ``force`` is not set (the detail is the verdict, line by line).
        TransientError: the model store's S3 failed in a way worth retrying.
    """
    from ffe.evaluation.gate import CHAMPION, NAIVE, GateConfig

    config = _config(GateConfig)
    bar_label = f"{kind} {bar}"
    verdict = verdict_for(candidate, bar, bar_label, config)
    lines = verdict.lines()
    if not verdict.passed and not force:
        raise Conflict("\n".join([*lines, f"{candidate} stays where it is: {HOW}"]))
    probabilities = verdict.probabilities()
    if verdict.passed:
        outcome = f"gate passed: P(naive)={_p(probabilities.get(NAIVE))}, P({kind})={_p(probabilities.get(CHAMPION))}"
        recorded = f"{reason}; {outcome}" if reason else outcome
    else:
        outcome = recorded = f"gate forced: {reason}"
    return Outcome(
        recorded,
        {
            "promotion_gate": {
                "outcome": "passed" if verdict.passed else "forced",
                "metric": config.metric,
                "confidence": config.confidence,
                "p_naive_router": probabilities.get(NAIVE),
                "p_champion": probabilities.get(CHAMPION),
                "bar": bar_label,
                "verdict": lines,
            }
        },
    )


def verdict_for(candidate: str, bar: str, bar_label: str, config: GateConfig) -> Verdict:
    """The gate's verdict, the evidence read from the stage's model store (``ModelStore.evidence``)."""
    from ffe.evaluation.gate import Side, judge

    with tempfile.TemporaryDirectory() as tmp:
        mine, why_not = _evidence(candidate, Path(tmp) / "candidate")
        theirs, their_problem = _evidence(bar, Path(tmp) / "bar")
    return judge(Side(candidate, mine, why_not), Side(bar_label, theirs, their_problem), config)


def _evidence(version: str, dst: Path) -> tuple[Evidence | None, str | None]:
    """``version``'s loaded evidence from the model store, or None and why not."""
    from ffe.adapters.models import get_model_store
    from ffe.evaluation.gate import load_evidence

    store = get_model_store()
    folder = store.evidence(version, dst)
    if folder is None:
        return None, f"{version} has no walk-forward evidence in the model store {store.root}"
    try:
        return load_evidence(folder), None
    except ValueError as exc:
        return None, f"the evidence of {version} is unusable ({exc})"


def _config(cls: type[GateConfig]) -> GateConfig:
    try:
        return cls.from_env()
    except ValueError as exc:  # the stage's FFE_PROMOTION_* are wrong: ours to fix, not the caller's (a 500, logged)
        raise RuntimeError(f"the promotion gate's settings: {exc}") from None


def _p(probability: float | None) -> str:
    return "n/a" if probability is None else f"{probability:.2f}"
