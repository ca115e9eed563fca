"""The promotion gate over the MLflow registry: find the evidence, ask the gate, record the promotion on the version.

CLI only (``ffe models promote``; MLflow). The gate itself is ``ffe.evaluation.gate`` (pure); this module
downloads the walk-forward evidence that ``ffe evaluate --version V`` attached to the candidate and to the current
champion (``Tracker.download_evidence``), turns missing or unreadable evidence into a refusal that says how to get
it, and builds the model-version tags a promotion leaves behind. See docs/models.md, "Promotion gate".
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ffe.evaluation.gate import CHAMPION, NAIVE, Evidence, GateConfig, Side, Verdict, judge, load_evidence

GATE_TAG, REASON_TAG = "ffe.promotion.gate", "ffe.promotion.reason"
_TAG_LIMIT = 5000  # MLflow's limit on a tag value


def verdict_for(
    tracker: Any, model_name: str, version: str, champion: str | None, config: GateConfig, workdir: Path
) -> Verdict:
    """The gate's verdict on promoting ``version`` over ``champion`` (None: there is none), evidence from MLflow."""
    candidate, why_not = evidence_of(tracker, model_name, version, workdir / "candidate")
    mine = Side(f"v{version}", candidate, why_not, fix=_how(version))
    if champion is None or str(champion) == str(version):
        return judge(mine, None, config)
    theirs, their_problem = evidence_of(tracker, model_name, champion, workdir / "champion")
    return judge(mine, Side(f"champion v{champion}", theirs, their_problem, fix=_how(str(champion))), config)


def evidence_of(tracker: Any, model_name: str, version: str, dst: Path) -> tuple[Evidence | None, str | None]:
    """The version's evidence downloaded into ``dst`` and loaded, checked to be its own (its registered version and
    training config); else None and why not (``ffe models promote``, ``ffe models publish``)."""
    try:
        folder = tracker.download_evidence(model_name, version, dst)
    except Exception as exc:  # a tag pointing at artifacts that are gone, an unreachable store: refuse, say why
        return None, f"the evidence of v{version} could not be downloaded ({type(exc).__name__}: {exc})"
    if folder is None:
        return None, f"v{version} has no walk-forward evidence"
    try:
        evidence = load_evidence(folder)
    except ValueError as exc:
        return None, f"the evidence of v{version} is unusable ({exc})"
    if evidence.registered_version not in (None, str(version)):
        return None, f"the evidence attached to v{version} evaluates v{evidence.registered_version}"
    differs = _config_differs(tracker, version, evidence)
    if differs:
        return (
            None,
            f"the evidence of v{version} evaluates another training config than it was trained with ({differs})",
        )
    return evidence, None


def _config_differs(tracker: Any, version: str, evidence: Evidence) -> str:
    """The settings in which the evidence's training config differs from the version's recorded one (``meta.epochs,
    symbols``), or "" when they agree or the version recorded none (trained before configs were recorded)."""
    from ffe.evaluation.tracking import VersionNotFoundError, registered_plan
    from ffe.evaluation.walk_forward import evaluated_config

    try:
        _, recorded = registered_plan(tracker, version)
    except (VersionNotFoundError, ValueError):
        return ""
    expected, got = evaluated_config(recorded), dict(evidence.training_config or {})
    keys = sorted(k for k in set(expected) | set(got) if expected.get(k) != got.get(k))
    if "meta" in keys and isinstance(expected.get("meta"), dict) and isinstance(got.get("meta"), dict):
        mine, theirs = expected["meta"], got["meta"]
        keys.remove("meta")
        keys += sorted(f"meta.{k}" for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    return ", ".join(keys)


def _how(version: str) -> str:
    return f"run `ffe evaluate --version {version}`, or promote anyway with --force --reason TEXT"


def promotion_tags(
    verdict: Verdict, *, forced: bool, reason: str | None, champion: str | None, now: datetime | None = None
) -> dict[str, str]:
    """What a promotion records on the promoted model version: the gate's outcome, settings, figures, who and when.

    ``ffe.promotion.gate`` is ``passed`` when the gate passed (even under --force) and ``forced`` otherwise.
    """
    probabilities = verdict.probabilities()
    tags = {
        GATE_TAG: "passed" if verdict.passed else "forced" if forced else "refused",
        "ffe.promotion.metric": verdict.config.metric,
        "ffe.promotion.confidence": f"{verdict.config.confidence:g}",
        "ffe.promotion.p_naive_router": _p(probabilities.get(NAIVE)),
        "ffe.promotion.p_champion": _p(probabilities.get(CHAMPION)) if champion is not None else "no champion",
        "ffe.promotion.previous_champion": champion or "none",
        "ffe.promotion.verdict": "\n".join(verdict.lines())[:_TAG_LIMIT],
        "ffe.promotion.by": _user(),
        "ffe.promotion.at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }
    if reason:
        tags[REASON_TAG] = reason[:_TAG_LIMIT]
    return tags


def _p(probability: float | None) -> str:
    return "not computed" if probability is None else f"{probability:.4f}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "unknown"
