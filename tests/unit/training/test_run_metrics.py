"""A training run's EMF lines: training_runs by result and, once trained, the EWC update's degradation."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from ffe.training.run_metrics import run_metrics


def outcome(degradation: float) -> Any:
    """The TrainOutcome fields run_metrics reads (ffe.training.pipeline imports MLflow's store, hence psycopg)."""
    return SimpleNamespace(version="v1", registered_version="3", seed=7, ewc={"degradation_pct": degradation})


def test_a_run_that_trained_counts_as_succeeded_with_its_degradation() -> None:
    runs, ewc = (json.loads(line) for line in run_metrics(outcome(12.5)))
    assert runs["training_runs"] == [1.0] and runs["result"] == "succeeded" and runs["version"] == "v1"
    assert runs["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "result"]]
    assert (
        ewc["ewc_degradation_pct"] == [12.5] and ewc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Percent"
    )


def test_a_run_that_raised_counts_as_failed_and_nothing_else() -> None:
    [runs] = (json.loads(line) for line in run_metrics(None))
    assert (runs["training_runs"], runs["result"]) == ([1.0], "failed")
