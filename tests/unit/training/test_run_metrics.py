"""A training run's EMF lines: training_runs by result and, once trained, the EWC update's degradation."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from ffe.training.run_metrics import put_metrics, run_metrics


def outcome(degradation: float) -> Any:
    """The TrainOutcome fields run_metrics reads (ffe.training.pipeline imports MLflow's store, hence psycopg)."""
    figures = {"total_return": 0.1, "sharpe": 1.0, "churn_rate": 0.2, "max_disruption": 0.3}
    holdout = {"BTCUSD": {"meta_controller": figures}, "ETHUSD": {"meta_controller": {**figures, "sharpe": 2.0}}}
    return SimpleNamespace(version="v1", registered_version="3", holdout=holdout, ewc={"degradation_pct": degradation})


def test_a_run_that_trained_counts_as_succeeded_with_its_degradation() -> None:
    runs, ewc = (json.loads(line) for line in run_metrics(outcome(12.5)))
    assert runs["training_runs"] == [1.0] and runs["result"] == "succeeded" and runs["model_version"] == "v1"
    assert runs["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "result"]]
    assert (
        ewc["ewc_degradation_pct"] == [12.5] and ewc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Percent"
    )


def test_a_run_that_raised_counts_as_failed_and_nothing_else() -> None:
    [runs] = (json.loads(line) for line in run_metrics(None))
    assert (runs["training_runs"], runs["result"]) == ([1.0], "failed")


def test_the_succeeded_line_carries_the_mean_holdout_figures_the_runs_widget_lists() -> None:
    runs = json.loads(run_metrics(outcome(1.0))[0])
    assert (runs["total_return"], runs["sharpe"], runs["churn"], runs["disruption"]) == (0.1, 1.5, 0.2, 0.3)


class FakeCloudWatch:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def put_metric_data(self, **request: Any) -> None:
        self.sent.append(request)


def test_put_metrics_sends_what_the_emf_lines_say() -> None:
    cloudwatch = FakeCloudWatch()
    put_metrics(run_metrics(outcome(12.5)), cloudwatch)
    runs = {"Name": "service", "Value": "ffe"}, {"Name": "result", "Value": "succeeded"}
    assert cloudwatch.sent == [
        {
            "Namespace": "FFE",
            "MetricData": [{"MetricName": "training_runs", "Dimensions": list(runs), "Value": 1.0, "Unit": "Count"}],
        },
        {
            "Namespace": "FFE",
            "MetricData": [
                {"MetricName": "ewc_degradation_pct", "Dimensions": [runs[0]], "Value": 12.5, "Unit": "Percent"}
            ],
        },
    ]
