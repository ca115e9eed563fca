"""The SageMaker training job's entry point (script mode): the same pipeline as ``ffe train``.

SageMaker runs ``python sagemaker_entry.py --seed 7 --epochs 45`` in a PyTorch training container with
``SM_MODEL_DIR`` (``/opt/ml/model``, tarred to S3 as ``model.tar.gz`` when the job ends) and the job's
environment. MLflow tracking and registration happen when ``MLFLOW_TRACKING_URI`` is set (Aurora's
``mlflow`` database or a SageMaker managed MLflow server ARN); without it the bundle is only written to the
model directory. Launching it (SageMaker Python SDK, outside any Lambda)::

    from sagemaker.pytorch import PyTorch

    # `make training-source` stages build/training/: the ffe package with its bundled data, and a
    # requirements.txt (the layer's plus requirements-training.txt) that script mode pip-installs.
    PyTorch(
        entry_point="ffe/training/sagemaker_entry.py",
        source_dir="build/training",
        role=role, framework_version="2.6", py_version="py312",
        instance_type="ml.m5.xlarge", instance_count=1,
        hyperparameters={"seed": 7},
        environment={"MLFLOW_TRACKING_URI": tracking_server_arn},
    ).fit()
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # script mode runs this file directly from source_dir/ffe/training
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: Sequence[str] | None = None) -> int:
    from ffe.training.pipeline import EXPERIMENT, TrainPlan, recipe, summary, train
    from ffe.training.run_metrics import run_metrics
    from ffe.training.tracking import Tracker, quiet_mlflow_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--symbols", default="")
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", "model")))
    args = parser.parse_args(argv)
    meta = recipe(seed=args.seed)
    if args.epochs is not None:
        meta = replace(meta, epochs=args.epochs)
    plan = TrainPlan(seed=args.seed, symbols=tuple(s for s in args.symbols.split(",") if s), meta=meta, progress=False)
    tracker = None
    if os.environ.get("MLFLOW_TRACKING_URI"):
        quiet_mlflow_logging()
        tracker = Tracker(os.environ["MLFLOW_TRACKING_URI"], EXPERIMENT)
    try:
        outcome = train(plan, args.model_dir / "bundle", tracker)
    except Exception:
        _report(run_metrics(None))  # training_runs{result=failed}
        raise
    print(summary(outcome))
    _report(run_metrics(outcome))
    return 0


def _report(lines: list[str]) -> None:
    """Print the run's EMF lines into the job's log and, in a SageMaker job, send them to CloudWatch (its log group
    is not read as EMF). A metric that cannot be sent is a warning in the log, never the job's failure."""
    from ffe.training.run_metrics import put_metrics

    print(*lines, sep="\n")
    if os.environ.get("TRAINING_JOB_NAME"):  # set by SageMaker in every training job
        try:
            import boto3

            put_metrics(lines, boto3.client("cloudwatch"))
        except Exception as exc:  # no permission, no network: the lines above are still in the log
            print(f"[WARNING] metrics not sent to CloudWatch: {type(exc).__name__}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
