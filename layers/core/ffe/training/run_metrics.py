"""The EMF lines a training run prints: ``training_runs{result}`` and, when it trained, ``ewc_degradation_pct``.

A Lambda's log stream turns such lines into metrics by itself; anywhere else (the SageMaker training job's
log group, a terminal) they are only log lines until something reads them as EMF (the local dashboard does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ffe.observability import emf_document

if TYPE_CHECKING:
    from ffe.training.pipeline import TrainOutcome


def run_metrics(outcome: TrainOutcome | None) -> list[str]:
    """One line per metric: a run that raised (``outcome`` None) counts as failed and has no degradation."""
    if outcome is None:
        return [_line("training_runs", 1, {}, result="failed")]
    run = {"version": outcome.version, "registered_version": outcome.registered_version, "seed": outcome.seed}
    lines = [_line("training_runs", 1, run, result="succeeded")]
    if "degradation_pct" in outcome.ewc:
        lines.append(_line("ewc_degradation_pct", float(outcome.ewc["degradation_pct"]), run))
    return lines


def _line(name: str, value: float, properties: Mapping[str, object], **dimensions: str) -> str:
    return json.dumps(emf_document(name, value, properties, **dimensions), separators=(",", ":"), default=str)
