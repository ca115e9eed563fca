"""``ffe evaluate`` and MLflow: evaluate a registered version's recorded config, and keep the report with the run.

``registered_plan`` finds a registered version (a registry number, ``v3``, or its bundle version ``ffe-...``) and
the ``TrainPlan`` its bundle's manifest records (``ffe.training.provenance``); ``plan_factory`` makes the fold
plans from it (only the seed and the per-series cuts change). ``keep`` puts a finished report folder in MLflow:
for a registered version, as its run's ``evidence/`` artifacts with the version tagged ``ffe.evidence``
(``Tracker.attach_evidence``, what the promotion gate reads back); otherwise as a run of its own tagged
``ffe.kind=evaluation``. Either way the headline figures are logged as ``evaluation.*`` metrics.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ffe.evaluation.walk_forward import EvaluationReport, PlanFactory
    from ffe.training.pipeline import TrainPlan
    from ffe.training.tracking import Tracker


class VersionNotFoundError(LookupError):
    """No registered version by that number or bundle version."""


def registered_plan(tracker: Tracker, text: str) -> tuple[str, TrainPlan]:
    """``(registry number, recorded plan)`` of the registered version ``text`` names; the plan names the series the
    version was trained on even when it was trained on "every bundled series" (more may be bundled since).

    Raises:
        VersionNotFoundError: no such registered version.
        ValueError: its bundle records no training config (trained before configs were recorded).
    """
    from ffe.training.pipeline import BUNDLE_ARTIFACT_PATH, MODEL_NAME
    from ffe.training.reproduce import read_manifest, recorded_plan

    client = tracker.client
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    wanted = text.removeprefix("v") if text.removeprefix("v").isdigit() else None
    for mv in versions:
        if not mv.run_id:
            continue
        if str(mv.version) == wanted or (
            wanted is None and client.get_run(mv.run_id).data.tags.get("ffe.bundle_version") == text
        ):
            with tempfile.TemporaryDirectory() as tmp:
                manifest = read_manifest(Path(client.download_artifacts(mv.run_id, BUNDLE_ARTIFACT_PATH, tmp)))
            plan = recorded_plan(manifest)
            if not plan.symbols:  # "every bundled series" when it was trained: name those, in training order
                plan = replace(plan, symbols=tuple(manifest.get("data_sha256", {})))
            return str(mv.version), plan
    raise VersionNotFoundError(f"no registered version {text} of {MODEL_NAME} (`ffe models list` shows them)")


def plan_factory(recorded: TrainPlan) -> PlanFactory:
    """Fold plans from a recorded plan: its whole config, with the fold's seed, series and cuts."""

    def make(symbols: tuple[str, ...], seed: int, train_end: dict[str, datetime]) -> TrainPlan:
        return replace(
            recorded,
            seed=seed,
            symbols=symbols,
            meta=replace(recorded.meta, seed=seed),
            train_end=train_end,
            progress=False,
        )

    return make


def keep(tracker: Tracker, report: EvaluationReport, folder: Path) -> str:
    """The report folder in MLflow (see the module docstring); returns the run id it went to."""
    from ffe.training.pipeline import MODEL_NAME

    figures = metrics(report)
    if report.registered_version is not None:
        tracker.attach_evidence(MODEL_NAME, report.registered_version, folder)
        run_id = str(tracker.model_version(MODEL_NAME, report.registered_version).run_id)
        tracker.log_metrics(run_id, figures, step=0)
        return run_id
    params: dict[str, Any] = {
        "n_folds": report.n_folds,
        "seeds": ",".join(map(str, report.seeds)),
        "symbols": ",".join(s.symbol for s in report.series),
        "test_bars": report.config.get("test_bars"),
        "n_boot": report.config.get("n_boot"),
    }
    tags = {"ffe.kind": "evaluation", "ffe.training_config": json.dumps(report.training_config)}
    with tracker.run(run_name="evaluate", params=params, tags=tags) as run_id:
        tracker.log_artifacts(run_id, folder, "evaluation")
        tracker.log_metrics(run_id, figures, step=0)
    return run_id


def metrics(report: EvaluationReport) -> dict[str, float]:
    """``evaluation.<SYMBOL>.<row>.<figure>``: each row's path Sharpe with its interval, return, drawdown; and the
    meta-controller's probabilities and deflated Sharpe (finite values only: MLflow refuses NaN)."""
    import math

    out: dict[str, float] = {}
    for s in report.series:
        for row, summary in s.rows.items():
            sharpe = summary.intervals["sharpe"]
            figures = {
                "sharpe": sharpe.estimate,
                "sharpe_low": sharpe.low,
                "sharpe_high": sharpe.high,
                "total_return": summary.intervals["total_return"].estimate,
                "max_drawdown": summary.intervals["max_drawdown"].estimate,
                "churn_rate": summary.metrics["churn_rate"],
            }
            out.update({f"evaluation.{s.symbol}.{row}.{k}": v for k, v in figures.items()})
        comparisons = {
            "p_meta_above_naive_router": s.p_meta_beats_naive,
            "p_meta_above_buy_and_hold": s.p_meta_beats_buy_and_hold,
            "meta_deflated_sharpe": s.meta_deflated_sharpe,
        }
        out.update({f"evaluation.{s.symbol}.{k}": v for k, v in comparisons.items() if v is not None})
    return {k: float(v) for k, v in out.items() if math.isfinite(v)}


__all__ = ["VersionNotFoundError", "keep", "metrics", "plan_factory", "registered_plan"]
