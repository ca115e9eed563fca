"""``ffe train`` and ``ffe models``: train and register locally (or in a SageMaker training job), promote,
publish the champion to a stage's model bucket.

Locally MLflow tracks into the embedded Postgres in ``.ffe/`` (database ``mlflow``) with artifacts in
``.ffe/mlartifacts``; ``MLFLOW_TRACKING_URI`` points it anywhere else (Aurora, SageMaker managed MLflow).
The champion's bundle is also kept in ``.ffe/champion/``, which ``ffe run`` serves.
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

CHAMPION = "champion"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=7, help="every random choice derives from it (default 7)")
    parser.add_argument("--symbols", default="", help="comma-separated bundled series (default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="meta-controller epochs (default: the config's)")
    parser.add_argument("--quick", action="store_true", help="a few seconds of training: a smoke test, not a model")
    parser.add_argument("--out", type=Path, default=None, help="also write the bundle here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-mlflow", action="store_true", help="train and export without tracking or registering")


def train_command(args: argparse.Namespace, state: Any) -> int:
    from ffe.training.meta_config import MetaTrainConfig
    from ffe.training.pipeline import TrainPlan, summary, train

    meta = MetaTrainConfig.quick(seed=args.seed) if args.quick else MetaTrainConfig(seed=args.seed)
    if args.epochs is not None:
        meta = replace(meta, epochs=args.epochs)
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    plan = TrainPlan(seed=args.seed, symbols=symbols, meta=meta, progress=not args.no_progress)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        try:
            if args.no_mlflow:
                outcome = train(plan, bundle)
            else:
                with local_tracker(state) as tracker:
                    outcome = train(plan, bundle, tracker)
        except Exception:
            _keep_run_metrics(state, None)
            raise
        _keep_run_metrics(state, outcome)
        if args.out is not None:
            _copy(bundle, args.out)
        if args.no_mlflow or outcome.alias == CHAMPION:
            _copy(bundle, state.champion)
        print(summary(outcome))
    if outcome.alias == CHAMPION or args.no_mlflow:
        print(f"\nchampion bundle in {state.champion}/: `ffe run` decides with it, `ffe backtest` tests it")
    else:
        print(f"\nregistered as challenger: `ffe models promote {outcome.registered_version}` makes it the champion")
    return 0


def _keep_run_metrics(state: Any, outcome: Any) -> None:
    """training_runs and ewc_degradation_pct as EMF lines in .ffe/metrics/emf.jsonl, where ``ffe dashboard`` reads
    them (the terminal gets the summary table instead)."""
    from ffe.training.run_metrics import run_metrics

    state.emf.parent.mkdir(parents=True, exist_ok=True)
    with state.emf.open("a", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in run_metrics(outcome))


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="models_action", required=True)
    actions.add_parser("list", help="registered versions and their aliases")
    promote = actions.add_parser("promote", help="make a registered version the champion (old one: previous_champion)")
    promote.add_argument("version")
    publish = actions.add_parser("publish", help="copy the champion bundle to a deployed stage's model bucket")
    publish.add_argument("--stage", required=True)
    publish.add_argument("--bucket", default=None, help="default: the stack's ModelBucketName output")
    publish.add_argument("--region", default=None)
    from ffe.training.cleanup import add_cleanup_arguments

    add_cleanup_arguments(
        actions.add_parser(
            "cleanup",
            help="delete old registered versions and their artifacts (dry run unless --apply): docs/operations.md",
        )
    )


def models_command(args: argparse.Namespace, state: Any) -> int:
    from ffe.training.pipeline import BUNDLE_ARTIFACT_PATH, MODEL_NAME

    if args.models_action == "publish":
        return _publish(state, args.stage, args.bucket, args.region)
    if args.models_action == "cleanup":
        return _cleanup(args, state)
    with local_tracker(state) as tracker:
        if args.models_action == "promote":
            tracker.promote(MODEL_NAME, args.version)
            _download_champion(tracker, state, MODEL_NAME, BUNDLE_ARTIFACT_PATH)
            print(f"{MODEL_NAME} v{args.version} is the champion; its bundle is in {state.champion}/")
            return 0
        client = tracker.client
        versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
        aliases = {v: a for a, v in client.get_registered_model(MODEL_NAME).aliases.items()} if versions else {}
        rows = [
            [
                f"v{v.version}",
                aliases.get(v.version, ""),
                client.get_run(v.run_id).data.tags.get("ffe.bundle_version", "?"),
                v.run_id,
            ]
            for v in sorted(versions, key=lambda mv: int(mv.version))
        ]
    if not rows:
        print(f"no versions of {MODEL_NAME} yet: `ffe train` registers one")
        return 0
    from ffe.terminal import Column, show, table

    show(table([Column("version"), Column("alias"), Column("bundle"), Column("MLflow run")], rows))
    return 0


@contextmanager
def local_tracker(state: Any) -> Iterator[Any]:
    """The MLflow tracker: MLFLOW_TRACKING_URI, else the embedded cluster in ``.ffe/``."""
    from ffe.training.pipeline import EXPERIMENT
    from ffe.training.tracking import Tracker, artifact_root, quiet_mlflow_logging, tracking_uri

    quiet_mlflow_logging()
    with state.postgres() as pg:
        uri = tracking_uri(pg.url)
        yield Tracker(uri, EXPERIMENT, artifact_location=f"{artifact_root(state.root / 'mlartifacts')}/{EXPERIMENT}")


def _download_champion(tracker: Any, state: Any, model_name: str, artifact_path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        got = tracker.download(model_name, CHAMPION, tmp)
        bundle = got / artifact_path if (got / artifact_path / "manifest.json").exists() else got
        _copy(bundle, state.champion)


def _publish(state: Any, stage: str, bucket: str | None, region: str | None) -> int:
    import boto3

    from ffe.adapters.models import load_bundle

    folder = state.champion_dir()
    if folder is None:
        print(f"no champion bundle in {state.champion}/: run `ffe train` (or `ffe models promote VERSION`) first")
        return 1
    bundle = load_bundle(str(folder))  # never publish what the Lambdas could not load
    if bucket is None:
        cfn = boto3.client("cloudformation", region_name=region)
        outputs = cfn.describe_stacks(StackName=f"ffe-{stage}")["Stacks"][0].get("Outputs", [])
        bucket = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "ModelBucketName")
    s3 = boto3.client("s3", region_name=region)
    # The endpoint's model data: the same files as a tarball SageMaker unpacks into /opt/ml/model, under the
    # bundle's version so a deployed endpoint never sees its artifact change underneath it.
    model_data = f"endpoint/{bundle.version}/model.tar.gz"
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "model.tar.gz"
        model_tarball(folder, tarball)
        s3.upload_file(str(tarball), bucket, model_data)
    manifest = folder / "manifest.json"
    for f in sorted(folder.iterdir()):
        if f != manifest:
            s3.upload_file(str(f), bucket, f"champion/{f.name}")
    s3.upload_file(str(manifest), bucket, "champion/manifest.json")  # last: readers never see a half bundle
    url = f"s3://{bucket}/{model_data}"
    print(f"published {bundle.version} to s3://{bucket}/champion/ (DetectRegime reads it with ModelSource=bucket)")
    print(f"and the endpoint's model data to {url}; serve it: in samconfig.toml's [{stage}.deploy.parameters]")
    print(f"  parameter_overrides add InferenceImageUri=<ecr image> InferenceModelDataUrl={url}, then sam deploy,")
    print(f"  or: python gpu_inference/deploy.py --stage {stage} --image-uri <ecr image> --model-data {url}")
    print("Until the endpoint serves the same version, its RL voter refuses the new regime paths: decisions hold.")
    return 0


def _cleanup(args: argparse.Namespace, state: Any) -> int:
    from ffe.training.cleanup import run_cleanup, serving_bundles

    serving = serving_bundles(state.champion_dir(), args.stage, args.region)
    with local_tracker(state) as tracker:
        return run_cleanup(tracker.client, args, serving)


def model_tarball(folder: Path, target: Path) -> Path:
    """``folder``'s files at the root of a gzipped tarball (SageMaker's model.tar.gz layout)."""
    with tarfile.open(target, "w:gz") as tar:
        for f in sorted(folder.iterdir()):
            if f.is_file():
                tar.add(f, arcname=f.name)
    return target


def _copy(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
