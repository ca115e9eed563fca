"""``ffe train`` and ``ffe models``: train and register locally (or in a SageMaker training job), promote,
publish the champion to a stage's model bucket.

Locally MLflow tracks into the embedded Postgres in ``.ffe/`` (database ``mlflow``) with artifacts in
``.ffe/mlartifacts``; ``MLFLOW_TRACKING_URI`` points it anywhere else (Aurora, SageMaker managed MLflow).
Every trained bundle is kept in the local model store ``.ffe/models/<version>/`` (``ffe run`` serves them all);
the champion is the newest ``model_champions`` row of the embedded Postgres, as in a stage.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
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
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one training hyper-parameter (repeatable), as `ffe evaluate --set` does: docs/evaluation.md",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-mlflow", action="store_true", help="train and export without tracking or registering")
    parser.add_argument(
        "--reproduce",
        metavar="VERSION",
        default=None,
        help="retrain a version (ffe-..., or a registry number) from its recorded plan, without registering, and"
        " say whether the bundle matches bit for bit (exit 1 when not): docs/models.md",
    )
    parser.add_argument(
        "--bundle", type=Path, default=None, help="with --reproduce: the recorded bundle folder (no model store)"
    )


def train_command(args: argparse.Namespace, state: Any) -> int:
    from ffe.training.meta_config import MetaTrainConfig
    from ffe.training.pipeline import TrainPlan, UnloadableBundleError, recipe, summary, train

    if getattr(args, "reproduce", None) is not None:  # getattr: callers may build the Namespace themselves
        return reproduce_command(args.reproduce, args.bundle, args.out, state)
    if getattr(args, "bundle", None) is not None:
        print("--bundle names the recorded bundle of --reproduce VERSION")
        return 2
    try:  # every setting is checked here, before any training (MetaTrainConfig, TrainPlan, --set)
        meta = MetaTrainConfig.quick(seed=args.seed) if args.quick else recipe(seed=args.seed)
        if args.epochs is not None:
            meta = replace(meta, epochs=args.epochs)
        symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
        plan = TrainPlan(seed=args.seed, symbols=symbols, meta=meta, progress=not args.no_progress)
        if getattr(args, "set", None):
            from ffe.training.overrides import apply_overrides

            plan = apply_overrides(plan, args.set)
    except ValueError as exc:
        print(f"ffe train: error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        try:
            if args.no_mlflow:
                outcome = train(plan, bundle)
            else:
                with local_tracker(state) as tracker:
                    outcome = train(plan, bundle, tracker)
        except UnloadableBundleError as exc:  # nothing registered (the run failed), kept or made the champion
            _keep_run_metrics(state, None)
            print(f"ffe train: error: {exc}", file=sys.stderr)
            return 1
        except Exception:
            _keep_run_metrics(state, None)
            raise
        _keep_run_metrics(state, outcome)
        if args.out is not None:
            _copy(bundle, args.out)
        _copy(bundle, state.model_dir(outcome.version))  # champion or challenger: any version can be served
        print(summary(outcome))
    where = state.model_dir(outcome.version)
    if outcome.alias == CHAMPION or args.no_mlflow:
        set_local_champion(state, outcome.version, "ffe train")
        print(f"\nchampion {outcome.version} in {where}/: `ffe run` decides with it, `ffe backtest` tests it")
    else:
        print(
            f"\nregistered as challenger (bundle in {where}/): `ffe models promote {outcome.registered_version}` makes"
            f" it the champion, `ffe experiments create --treatment {outcome.version}` compares it first"
        )
    return 0


def reproduce_command(version: str, bundle: Path | None, out: Path | None, state: Any) -> int:
    """``ffe train --reproduce VERSION``: exit 0 when the retrained bundle matches the recorded one bit for bit."""
    from ffe.training.pipeline import UnloadableBundleError
    from ffe.training.reproduce import check_data, read_manifest, reproduce

    with tempfile.TemporaryDirectory() as tmp:
        recorded = bundle if bundle is not None else _recorded_bundle(version, state, Path(tmp) / "recorded")
        if recorded is None:
            print(f"no bundle {version}: not in {state.models}/ nor registered; name its folder with --bundle DIR")
            return 1
        manifest = read_manifest(recorded)
        if version != manifest.get("version") and not _registry_number(version):
            print(f"{recorded}/ holds bundle {manifest.get('version')}, not {version}")
            return 1
        problems = check_data(manifest)
        if problems:
            print(f"cannot reproduce {manifest.get('version')}: the training data changed", *problems, sep="\n  ")
            return 1
        print(
            f"retraining {manifest.get('version')} (seed {manifest.get('seed')}, code {manifest.get('code_version')})"
        )
        try:
            comparison = reproduce(recorded, Path(tmp) / "retrained")
        except (ValueError, UnloadableBundleError) as exc:
            print(f"cannot reproduce: {exc}")
            return 1
        if out is not None:
            _copy(Path(tmp) / "retrained", out)
        print(*comparison.lines(), sep="\n")
    return 0 if comparison.matches else 1


def _registry_number(version: str) -> bool:
    return version.removeprefix("v").isdigit()


def _recorded_bundle(version: str, state: Any, dst: Path) -> Path | None:
    """The local store's ``.ffe/models/<version>/``, else the registered version's bundle artifacts (MLflow: a
    registry number, or the run tagged with that bundle version) downloaded into ``dst``."""
    local = state.model_dir(version)
    if not _registry_number(version) and (local / "manifest.json").is_file():
        return Path(local)
    from ffe.training.pipeline import BUNDLE_ARTIFACT_PATH, MODEL_NAME

    with local_tracker(state) as tracker:
        client = tracker.client
        versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
        for mv in versions:
            tag = client.get_run(mv.run_id).data.tags.get("ffe.bundle_version")
            if str(mv.version) == version.removeprefix("v") or tag == version:
                dst.mkdir(parents=True, exist_ok=True)
                return Path(client.download_artifacts(mv.run_id, BUNDLE_ARTIFACT_PATH, str(dst)))
    return None


def set_local_champion(state: Any, version: str, reason: str) -> None:
    """Record ``version`` as the champion in the embedded Postgres (``model_champions``), as the API does."""
    from ffe.adapters.experiments import PostgresExperiments

    with state.postgres() as pg:
        store = PostgresExperiments(pg.url)
        try:
            if store.champion().version != version:
                store.set_champion(version, actor="ffe-cli", reason=reason)
        finally:
            store.close()


def local_champion(state: Any) -> str | None:
    """The local champion version (embedded Postgres); None when there is no local state yet."""
    if not state.pgdata.exists():
        return None
    from ffe.adapters.experiments import PostgresExperiments

    with state.postgres() as pg:
        store = PostgresExperiments(pg.url)
        try:
            return store.champion().version
        finally:
            store.close()


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
    promote = actions.add_parser(
        "promote",
        help="make a registered version the champion (old one: previous_champion) if its walk-forward evidence beats"
        " the champion and the naive router: docs/models.md, Promotion gate",
    )
    add_promote_arguments(promote)
    publish = actions.add_parser("publish", help="copy a bundle to a deployed stage's model store (models/<version>/)")
    publish.add_argument("--stage", required=True)
    publish.add_argument(
        "--version", default=None, help="a bundle version in .ffe/models/ (default: the local champion)"
    )
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
    from ffe.training.pipeline import MODEL_NAME

    if args.models_action == "publish":
        return _publish(state, args.stage, args.bucket, args.region, args.version)
    if args.models_action == "cleanup":
        return _cleanup(args, state)
    if args.models_action == "promote":
        return promote_command(args, state)
    with local_tracker(state) as tracker:
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


def add_promote_arguments(parser: argparse.ArgumentParser) -> None:
    from ffe.evaluation.gate_config import CONFIDENCE_ENV, DEFAULT_CONFIDENCE, DEFAULT_METRIC, METRIC_ENV, METRICS

    parser.add_argument("version", help="the registry number (3 or v3)")
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default=None,
        help=f"what the evidence must win on (default: ${METRIC_ENV}, else {DEFAULT_METRIC})",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=None,
        help=f"the bootstrap probability of winning it needs, in (0, 1) (default: ${CONFIDENCE_ENV}, else"
        f" {DEFAULT_CONFIDENCE})",
    )
    parser.add_argument("--force", action="store_true", help="promote even when the gate refuses (needs --reason)")
    parser.add_argument("--reason", default=None, help="with --force: why, recorded on the model version")


def promote_command(args: argparse.Namespace, state: Any) -> int:
    """``ffe models promote VERSION``: the promotion gate, then the champion alias; 1 refused, 2 a usage mistake."""
    from ffe.evaluation.gate import GateConfig
    from ffe.training.pipeline import BUNDLE_ARTIFACT_PATH, MODEL_NAME
    from ffe.training.promotion import promotion_tags, verdict_for
    from ffe.training.tracking import ModelNotFoundError

    force, reason = getattr(args, "force", False), (getattr(args, "reason", None) or "").strip() or None
    if force and reason is None:
        return _promote_error("--force needs --reason TEXT: why the gate is overruled is recorded on the version")
    if reason is not None and not force:
        return _promote_error("--reason goes with --force")
    try:
        config = GateConfig.from_env(metric=getattr(args, "metric", None), confidence=getattr(args, "confidence", None))
    except ValueError as exc:
        return _promote_error(str(exc))
    number = str(args.version).removeprefix("v")
    if not number.isdigit():
        return _promote_error(f"{args.version!r} is not a registry number (3 or v3): `ffe models list` shows them")
    with local_tracker(state) as tracker:
        try:
            tracker.model_version(MODEL_NAME, number)
        except ModelNotFoundError as exc:
            return _promote_error(f"{exc}: `ffe models list` shows the registered versions")
        champion = tracker.version_for_alias(MODEL_NAME, CHAMPION)
        if champion != number:
            with tempfile.TemporaryDirectory() as tmp:
                verdict = verdict_for(tracker, MODEL_NAME, number, champion, config, Path(tmp))
            lines = verdict.lines()
            if not verdict.passed and not force:
                print(*lines, sep="\n", file=sys.stderr)
                print(
                    f"v{number} stays where it is; `ffe models promote {number} --force --reason TEXT` overrules the"
                    " gate (recorded on the version)",
                    file=sys.stderr,
                )
                return 1
            print(*lines, sep="\n")
            if not verdict.passed:
                print(f"forced: {reason}")
            tracker.promote(MODEL_NAME, number)
            tags = promotion_tags(verdict, forced=force, reason=reason, champion=champion)
            tracker.set_model_version_tags(MODEL_NAME, number, tags)
        version = _download_champion(tracker, state, MODEL_NAME, BUNDLE_ARTIFACT_PATH)
        # its evidence beside it (model_dir/evidence/), where `ffe api`'s promotion gate reads the champion's
        tracker.download_evidence(MODEL_NAME, number, state.model_dir(version))
    why = f"ffe models promote {number}" + (f" (forced: {reason})" if force else "")
    set_local_champion(state, version, why)
    where = state.model_dir(version)
    print(f"{MODEL_NAME} v{number} ({version}) is the champion; its bundle is in {where}/")
    return 0


def _promote_error(message: str) -> int:
    print(f"ffe models promote: error: {message}", file=sys.stderr)
    return 2


@contextmanager
def local_tracker(state: Any) -> Iterator[Any]:
    """The MLflow tracker: MLFLOW_TRACKING_URI, else the embedded cluster in ``.ffe/``."""
    from ffe.training.pipeline import EXPERIMENT
    from ffe.training.tracking import Tracker, artifact_root, quiet_mlflow_logging, tracking_uri

    quiet_mlflow_logging()
    with state.postgres() as pg:
        uri = tracking_uri(pg.url)
        yield Tracker(uri, EXPERIMENT, artifact_location=f"{artifact_root(state.root / 'mlartifacts')}/{EXPERIMENT}")


def _download_champion(tracker: Any, state: Any, model_name: str, artifact_path: str) -> str:
    """The champion alias's bundle into the local store; returns its bundle version."""
    from ffe.adapters.models import load_bundle

    with tempfile.TemporaryDirectory() as tmp:
        got = tracker.download(model_name, CHAMPION, tmp)
        bundle = got / artifact_path if (got / artifact_path / "manifest.json").exists() else got
        version = load_bundle(str(bundle)).version  # never store what the runtime could not load
        _copy(bundle, state.model_dir(version))
    return version


def _publish(state: Any, stage: str, bucket: str | None, region: str | None, version: str | None) -> int:
    import boto3

    from ffe.adapters.models import EVIDENCE, EVIDENCE_FILES, ModelUnavailableError, load_bundle

    if state.model_store() is None:
        print(f"no bundle in {state.models}/: run `ffe train` (or `ffe models promote VERSION`) first")
        return 1
    have = ", ".join(sorted(p.parent.name for p in state.models.glob("*/manifest.json")))
    version = version or local_champion(state)
    if not version or not (state.model_dir(version) / "manifest.json").is_file():
        what = f"no bundle {version} in {state.models}/" if version else "no local champion"
        print(f"{what}: name the version to publish with --version ({state.models}/ holds {have})")
        return 1
    folder = state.model_dir(version)
    try:
        bundle = load_bundle(str(folder))  # never publish what the Lambdas could not load
    except ModelUnavailableError as exc:
        print(f"not publishing: {exc}")
        return 1
    if bundle.version != version:
        print(f"not publishing: {folder}/ holds version {bundle.version}, not {version}")
        return 1
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
    prefix = f"models/{bundle.version}"
    for f in sorted(folder.iterdir()):
        if f != manifest and f.is_file():
            s3.upload_file(str(f), bucket, f"{prefix}/{f.name}")
    with tempfile.TemporaryDirectory() as tmp:
        evidence, which = _evidence_for(state, bundle.manifest, Path(tmp))
        if evidence is not None:  # before the manifest too: a reader that finds the version finds its evidence
            for name in EVIDENCE_FILES:
                s3.upload_file(str(evidence / name), bucket, f"{prefix}/{EVIDENCE}/{name}")
    s3.upload_file(str(manifest), bucket, f"{prefix}/manifest.json")  # last: readers never see a half bundle
    print(f"published {bundle.version} to s3://{bucket}/{prefix}/: DetectRegime, CheckStaleness and the endpoint")
    if evidence is not None:
        print(f"  with the walk-forward evidence of {which} ({prefix}/{EVIDENCE}/): the API's promotion gate reads it")
    else:
        print(f"  no walk-forward evidence: {which}; the API's promotion gate will refuse it unless forced")
    print("  read any published version from there (ModelSource=bucket); no redeploy is needed.")
    print(
        f'Next: make it the champion (PUT /models/champion with {{"version": "{bundle.version}"}}) or compare it first'
    )
    print(f"  (ffe experiments create --treatment {bundle.version} --mode shadow). The endpoint's start-up model data,")
    print(f"  if you (re)deploy it: s3://{bucket}/{model_data}")
    return 0


def _evidence_for(state: Any, manifest: Mapping[str, Any], dst: Path) -> tuple[Path | None, str]:
    """The walk-forward evidence of the registered version whose run trained this bundle (the manifest's
    ``mlflow_run_id``), downloaded into ``dst`` and checked as the gate reads it; else None and why there is none.

    Returns the folder and the registered version (``v3``), or None and the reason.
    """
    import os

    run_id = manifest.get("mlflow_run_id")
    if not run_id:
        return None, "the bundle names no MLflow run"
    if not os.environ.get("MLFLOW_TRACKING_URI") and not state.pgdata.exists():
        return None, f"no MLflow to ask (MLFLOW_TRACKING_URI is unset and {state.root}/ has no local cluster)"
    from ffe.training.pipeline import MODEL_NAME
    from ffe.training.promotion import evidence_of
    from ffe.training.tracking import EVIDENCE_TAG

    try:
        with local_tracker(state) as tracker:
            found = tracker.client.search_model_versions(f"name = '{MODEL_NAME}' and run_id = '{run_id}'")
            if not found:
                return None, f"its MLflow run {run_id} is not a registered version of {MODEL_NAME}"
            number = str(max(int(mv.version) for mv in found))
            if EVIDENCE_TAG not in tracker.model_version_tags(MODEL_NAME, number):
                return None, f"v{number} has none (`ffe evaluate --version {number}` attaches it; then publish again)"
            evidence, why_not = evidence_of(tracker, MODEL_NAME, number, dst)  # checked as the gate checks it
    except Exception as exc:  # an unreachable tracker or artifact store: publish the bundle anyway, say why
        return None, f"MLflow could not be asked ({type(exc).__name__}: {exc})"
    if evidence is None:
        return None, str(why_not)
    return evidence.folder, f"v{number}"


def _cleanup(args: argparse.Namespace, state: Any) -> int:
    from ffe.training.cleanup import run_cleanup, serving_bundles

    serving = serving_bundles(_local_in_use(state), args.stage, args.region)
    with local_tracker(state) as tracker:
        return run_cleanup(tracker.client, args, serving)


def _local_in_use(state: Any) -> set[str]:
    """The local champion and the versions of running or paused local experiments (none without local state)."""
    if not state.pgdata.exists():
        return set()
    from ffe.adapters.experiments import PostgresExperiments
    from ffe.training.cleanup import versions_in_use

    with state.postgres() as pg:
        store = PostgresExperiments(pg.url)
        try:
            return versions_in_use(store)
        finally:
            store.close()


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
