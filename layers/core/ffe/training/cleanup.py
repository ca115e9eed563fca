"""Checkpoint cleanup (``ffe models cleanup``): which registered versions to keep, and deleting the others.

Per registered model and experiment (``ffe train`` registers ``ffe-meta-controller`` in its own experiment), a
version is **kept** when any of these holds, checked in this order (the first that holds is the reason shown):

1. it has a registry alias: ``champion``, ``challenger``, ``previous_champion`` (any alias counts);
2. it is serving: its MLflow stage is ``Staging`` or ``Production``, or its bundle version (the run's
   ``ffe.bundle_version`` tag) is one in use (``serving``: locally the embedded Postgres' champion and the
   versions of its running or paused experiments; for each stage every version published to its model store
   ``models/<version>/``, which the champion and any experiment may name, and its endpoint's model data);
3. it was registered within the last ``days`` days (default 30);
4. it is among the best ``keep`` versions (default 10) by the ranking metric, counted over all versions.

Everything else is deleted: the registry version, then the artifacts its ``source`` points at (the bundle:
checkpoint, numpy export, regime models). The run itself stays, so its parameters and metrics remain in the
experiment's history.

Ranking metric. The default, ``holdout_sharpe``, is the mean over the holdout series of the meta-controller's
Sharpe ratio as ``ffe train`` logs it (``holdout.<symbol>.meta_controller.sharpe``: the last part of every
series, never trained on). ``metric`` names one logged metric instead; higher is better either way. A version
whose run lacks the metric ranks after every version that has it.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # a SageMaker job in script mode runs this file directly from source_dir/ffe/training
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

HOLDOUT_SHARPE = "holdout_sharpe"
SERVING_STAGES = frozenset({"Staging", "Production"})
BUNDLE_TAG = "ffe.bundle_version"


@dataclass(frozen=True)
class Verdict:
    model: str
    version: str
    experiment_id: str
    created: datetime
    bundle_version: str | None
    score: float | None
    keep: bool
    reason: str
    source: str


def ranking_score(metrics: dict[str, float], metric: str = HOLDOUT_SHARPE) -> float | None:
    """The version's ranking value from its run's metrics (see the module); None when the run lacks it."""
    if metric != HOLDOUT_SHARPE:
        return metrics.get(metric)
    sharpes = [v for k, v in metrics.items() if k.startswith("holdout.") and k.endswith(".meta_controller.sharpe")]
    return statistics.fmean(sharpes) if sharpes else None


def plan_cleanup(
    client: Any,
    model_name: str,
    *,
    keep: int = 10,
    days: int = 30,
    metric: str = HOLDOUT_SHARPE,
    serving: Collection[str] = (),
    now: datetime | None = None,
) -> list[Verdict]:
    """A verdict for every version of ``model_name`` in ``client``'s registry (an ``MlflowClient``), oldest first."""
    versions = list(client.search_model_versions(f"name = '{model_name}'"))
    if not versions:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(model_name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    rows = []
    for mv in versions:
        run = client.get_run(mv.run_id) if mv.run_id else None
        metrics = dict(run.data.metrics) if run else {}
        rows.append(
            (
                mv,
                run.info.experiment_id if run else "",
                run.data.tags.get(BUNDLE_TAG) if run else None,
                ranking_score(metrics, metric),
                datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
            )
        )
    best: set[str] = set()
    for experiment in {r[1] for r in rows}:
        scored = [(r[3], int(r[0].version)) for r in rows if r[1] == experiment and r[3] is not None]
        best |= {str(version) for _, version in sorted(scored, key=lambda sv: (-sv[0], -sv[1]))[:keep]}
    verdicts = []
    for mv, experiment, bundle, score, created in rows:
        version = str(mv.version)
        if version in aliases:
            keep_it, reason = True, f"alias {', '.join(sorted(aliases[version]))}"
        elif getattr(mv, "current_stage", None) in SERVING_STAGES:
            keep_it, reason = True, f"serving: MLflow stage {mv.current_stage}"
        elif bundle is not None and bundle in serving:
            keep_it, reason = True, f"serving: bundle {bundle}"
        elif created >= since:
            keep_it, reason = True, f"registered within {days} days ({created:%Y-%m-%d})"
        elif version in best:
            keep_it, reason = True, f"among the best {keep} by {metric} ({score:.3f})"
        else:
            score_text = "no value" if score is None else f"{score:.3f}"
            keep_it, reason = False, f"older than {days} days, not among the best {keep} by {metric} ({score_text})"
        verdicts.append(
            Verdict(model_name, version, experiment, created, bundle, score, keep_it, reason, mv.source or "")
        )
    return sorted(verdicts, key=lambda v: int(v.version))


def delete_versions(client: Any, verdicts: Iterable[Verdict], log: Any) -> list[Verdict]:
    """Delete each verdict marked not kept: the registry version, then its artifacts; every deletion is logged."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    deleted = []
    for verdict in verdicts:
        if verdict.keep:
            continue
        client.delete_model_version(verdict.model, verdict.version)
        extra = {"model": verdict.model, "version": verdict.version, "bundle_version": verdict.bundle_version}
        log.info("model version deleted", extra={**extra, "reason": verdict.reason})
        if verdict.source and not verdict.source.startswith(("models:/", "runs:/")):
            try:
                get_artifact_repository(verdict.source).delete_artifacts()
                log.info("model version artifacts deleted", extra={**extra, "artifacts": verdict.source})
            except Exception as exc:  # the registry entry is gone; artifacts left behind are named, not fatal
                log.warning("artifacts not deleted", extra={**extra, "artifacts": verdict.source, "error": str(exc)})
        deleted.append(verdict)
    return deleted


def versions_in_use(store: Any) -> set[str]:
    """What an experiment store (``ffe.domain.ports.ExperimentStore``) says is in use: the champion, the one it
    replaced (a rollback's target), and both arms of every running or paused experiment."""
    from ffe.domain.experiments import ExperimentStatus

    champion = store.champion()
    used = {champion.version} | ({champion.previous_version} if champion.previous_version else set())
    for status in (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED):
        for experiment in store.list(status=status):
            used |= {experiment.control_version, experiment.treatment_version}
    return used


def serving_bundles(local: Iterable[str], stages: Iterable[str], region: str | None = None) -> set[str]:
    """The bundle versions in service: ``local`` (``versions_in_use`` of the embedded Postgres) and, for each
    stage, every version published to its model store (``models/<version>/``: its champion and experiments name
    versions from there) and the one its endpoint's model data names. A stage that cannot be read raises:
    nothing is deleted on a guess."""
    serving = set(local)
    for stage in stages:
        import boto3

        outputs = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=f"ffe-{stage}")
        named = {o["OutputKey"]: o["OutputValue"] for o in outputs["Stacks"][0].get("Outputs", [])}
        pages = (
            boto3.client("s3", region_name=region)
            .get_paginator("list_objects_v2")
            .paginate(Bucket=named["ModelBucketName"], Prefix="models/")
        )
        for page in pages:
            for obj in page.get("Contents", []):
                found = re.fullmatch(r"models/([^/]+)/manifest\.json", str(obj["Key"]))
                if found:
                    serving.add(found.group(1))
        endpoint = named.get("InferenceEndpointName")
        if endpoint:
            sagemaker = boto3.client("sagemaker", region_name=region)
            config = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
            for variant in sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]:
                model = sagemaker.describe_model(ModelName=variant["ModelName"])
                found = re.search(r"/endpoint/([^/]+)/model\.tar\.gz$", model["PrimaryContainer"]["ModelDataUrl"])
                if found:  # ``ffe models publish`` writes endpoint/<bundle version>/model.tar.gz
                    serving.add(found.group(1))
    return serving


def add_cleanup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply",
        nargs="?",
        const=True,
        default=False,
        type=_flag,
        help="delete; without it, only print what would go and why (`--apply true` too: SageMaker hyperparameters)",
    )
    parser.add_argument(
        "--keep", type=_not_negative, default=10, help="the best N versions by --metric stay (default 10)"
    )
    parser.add_argument(
        "--days", type=_not_negative, default=30, help="versions registered within N days stay (default 30)"
    )
    parser.add_argument(
        "--metric", default=HOLDOUT_SHARPE, help="ranking metric, higher is better (default: mean holdout Sharpe)"
    )
    parser.add_argument(
        "--stage", action="append", default=[], help="also keep what this deployed stage serves (repeatable)"
    )
    parser.add_argument("--region", default=None)


def _not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _flag(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def run_cleanup(client: Any, args: argparse.Namespace, serving: Collection[str]) -> int:
    """Print every version's verdict; with ``args.apply`` delete the others and emit ``models_cleaned``."""
    from ffe.observability import emit, logger
    from ffe.terminal import Column, show, table
    from ffe.training.pipeline import MODEL_NAME

    verdicts = plan_cleanup(client, MODEL_NAME, keep=args.keep, days=args.days, metric=args.metric, serving=serving)
    if not verdicts:
        print(f"no versions of {MODEL_NAME} yet: nothing to clean up")
        return 0
    rows = [
        [
            f"v{v.version}",
            v.bundle_version or "?",
            f"{v.created:%Y-%m-%d}",
            "" if v.score is None else f"{v.score:.3f}",
            "keep" if v.keep else "delete",
            v.reason,
        ]
        for v in verdicts
    ]
    columns = [Column("version"), Column("bundle"), Column("registered"), Column(args.metric, "right")]
    show(table([*columns, Column("verdict"), Column("why", free_text=True)], rows))
    doomed = [v for v in verdicts if not v.keep]
    if not args.apply:
        print(f"\ndry run: {len(doomed)} of {len(verdicts)} versions would be deleted; --apply deletes them")
        return 0
    deleted = delete_versions(client, doomed, logger)
    emit("models_cleaned", len(deleted))
    print(f"\ndeleted {len(deleted)} of {len(verdicts)} versions (registry entries and their artifacts)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The scheduled job's entry point: the registry at ``MLFLOW_TRACKING_URI`` (no embedded cluster)."""
    parser = argparse.ArgumentParser(description="ffe checkpoint cleanup against MLFLOW_TRACKING_URI")
    add_cleanup_arguments(parser)
    args = parser.parse_args(argv)
    from ffe.training.tracking import Tracker, quiet_mlflow_logging, tracking_uri

    quiet_mlflow_logging()
    from ffe.training.pipeline import EXPERIMENT

    tracker = Tracker(tracking_uri(), EXPERIMENT)
    return run_cleanup(tracker.client, args, serving_bundles((), args.stage, args.region))


if __name__ == "__main__":
    sys.exit(main())
