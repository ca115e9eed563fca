"""The EMF lines a training run prints: ``training_runs{result}`` and, when it trained, ``ewc_degradation_pct``.

A Lambda's log stream turns such lines into metrics by itself; a SageMaker training job's log group does not,
so the job also sends them with PutMetricData (``put_metrics``). Offline, ``ffe train`` keeps them where
``ffe dashboard`` reads them. The succeeded line carries the run's holdout figures (the meta-controller's,
averaged over the held-out series) as properties, for the Logs Insights widget that lists runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import TYPE_CHECKING, Any

from ffe.observability import emf_document

if TYPE_CHECKING:
    from ffe.training.pipeline import TrainOutcome

# property -> the holdout figure it averages (the meta-controller's, per held-out series)
FIGURES = {"total_return": "total_return", "sharpe": "sharpe", "churn": "churn_rate", "disruption": "max_disruption"}


def run_metrics(outcome: TrainOutcome | None) -> list[str]:
    """One line per metric: a run that raised (``outcome`` None) counts as failed and has no degradation."""
    if outcome is None:
        return [_line("training_runs", 1, {}, result="failed")]
    run: dict[str, Any] = {"model_version": outcome.version, "registered_version": outcome.registered_version}
    held = [by_model["meta_controller"] for by_model in outcome.holdout.values() if "meta_controller" in by_model]
    run.update({name: fmean(h[key] for h in held) for name, key in FIGURES.items() if held and key in held[0]})
    lines = [_line("training_runs", 1, run, result="succeeded")]
    if "degradation_pct" in outcome.ewc:
        lines.append(
            _line("ewc_degradation_pct", float(outcome.ewc["degradation_pct"]), {"model_version": outcome.version})
        )
    return lines


def put_metrics(lines: Sequence[str], cloudwatch: Any) -> None:
    """Send EMF lines through PutMetricData (a boto3 CloudWatch client): the same namespace, names, units,
    dimensions and values, for logs CloudWatch does not read as EMF."""
    for line in lines:
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            data = [
                {
                    "MetricName": metric["Name"],
                    "Dimensions": [{"Name": d, "Value": str(document[d])} for d in dimensions],
                    "Value": float(_first(document[metric["Name"]])),
                    "Unit": metric["Unit"],
                }
                for metric in directive["Metrics"]
                for dimensions in directive["Dimensions"]
            ]
            cloudwatch.put_metric_data(Namespace=directive["Namespace"], MetricData=data)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _line(name: str, value: float, properties: Mapping[str, object], **dimensions: str) -> str:
    return json.dumps(emf_document(name, value, properties, **dimensions), separators=(",", ":"), default=str)
