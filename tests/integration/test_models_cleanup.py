"""Checkpoint cleanup on a real MLflow registry (SQLite backend, file artifacts): 25 versions, the right ones kept."""

from __future__ import annotations

import json
import logging
import time
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from ffe.training.cleanup import delete_versions, plan_cleanup, ranking_score, serving_bundles, versions_in_use

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

MODEL = "ffe-meta-controller"
# Sharpe per version: v9..v17 are the old versions' best, v25 (recent) the best of all, so the best ten are
# v25 and v17..v9: v8 (old, 11th best) goes. v7 logged no holdout at all. Everything else is mediocre.
SHARPE = {v: -0.5 + v / 100 for v in range(1, 26)} | {v: 1.0 + v / 100 for v in range(8, 18)} | {25: 5.0}
NO_METRIC = 7
RECENT = range(21, 26)  # registered after the cut-off
ALIASES = {"previous_champion": "2", "champion": "3", "challenger": "4"}
SERVING_BUNDLE = "bundle-6"  # v6's bundle is what a stage serves


@pytest.fixture
def registry(tmp_path: Path) -> tuple[MlflowClient, datetime]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment(MODEL, artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model(MODEL)
    cutoff_at = datetime.now(UTC)
    for v in range(1, 26):
        if v == RECENT[0]:
            time.sleep(0.01)
            cutoff_at = datetime.now(UTC)  # v21..v25 are registered after this instant
            time.sleep(0.01)
        run = client.create_run(experiment, tags={"ffe.bundle_version": f"bundle-{v}"})
        if v != NO_METRIC:
            for symbol, offset in (("BTCUSD", 0.1), ("EURUSD", -0.1)):  # the mean is SHARPE[v]
                client.log_metric(run.info.run_id, f"holdout.{symbol}.meta_controller.sharpe", SHARPE[v] + offset)
                client.log_metric(run.info.run_id, f"holdout.{symbol}.naive_router.sharpe", 9.0)  # never counted
        bundle = tmp_path / "bundle"
        bundle.mkdir(exist_ok=True)
        (bundle / "manifest.json").write_text(json.dumps({"version": f"bundle-{v}"}))
        client.log_artifacts(run.info.run_id, str(bundle), "bundle")
        client.create_model_version(MODEL, f"{run.info.artifact_uri}/bundle", run_id=run.info.run_id)
    for alias, version in ALIASES.items():
        client.set_registered_model_alias(MODEL, alias, version)
    return client, cutoff_at + timedelta(days=30)  # "now": 30 days after the cut-off


def test_25_versions_keep_aliases_serving_recent_and_the_best_ten(registry, caplog) -> None:
    client, now = registry
    verdicts = plan_cleanup(client, MODEL, keep=10, days=30, serving={SERVING_BUNDLE}, now=now)
    by_version = {int(v.version): v for v in verdicts}
    assert len(by_version) == 25
    kept = {v for v, verdict in by_version.items() if verdict.keep}
    assert kept == {2, 3, 4, 6, *range(9, 18), *RECENT}
    assert {v for v in by_version if v not in kept} == {1, 5, 7, 8, 18, 19, 20}
    assert by_version[3].reason == "alias champion" and by_version[2].reason == "alias previous_champion"
    assert by_version[6].reason == "serving: bundle bundle-6"
    assert by_version[25].reason.startswith("registered within 30 days")
    assert by_version[9].reason == "among the best 10 by holdout_sharpe (1.090)"
    assert "no value" in by_version[7].reason and "(1.080)" in by_version[8].reason

    # the dry run deleted nothing; applying deletes exactly the seven, registry entries and artifacts
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 25
    doomed_artifacts = [Path(by_version[v].source.removeprefix("file://")) for v in (1, 8)]
    assert all((p / "manifest.json").exists() for p in doomed_artifacts)
    with caplog.at_level(logging.INFO):
        deleted = delete_versions(client, verdicts, logging.getLogger("cleanup-test"))
    assert sorted(int(v.version) for v in deleted) == [1, 5, 7, 8, 18, 19, 20]
    remaining = {int(mv.version) for mv in client.search_model_versions(f"name = '{MODEL}'")}
    assert remaining == kept
    assert not any(p.exists() and any(p.iterdir()) for p in doomed_artifacts)
    assert (Path(by_version[9].source.removeprefix("file://")) / "manifest.json").exists()
    assert sum(r.getMessage() == "model version deleted" for r in caplog.records) == 7

    # a second run finds nothing more to delete
    again = plan_cleanup(client, MODEL, keep=10, days=30, serving={SERVING_BUNDLE}, now=now)
    assert all(v.keep for v in again) and len(again) == len(kept)


def test_a_named_metric_ranks_by_that_metric_alone() -> None:
    metrics = {"holdout.BTCUSD.meta_controller.sharpe": 1.0, "holdout.SPX.meta_controller.sharpe": 2.0, "x": 3.0}
    assert ranking_score(metrics) == 1.5
    assert ranking_score(metrics, "x") == 3.0 and ranking_score(metrics, "missing") is None


def test_the_champion_and_running_or_paused_experiments_are_in_use(postgres: str) -> None:
    from ffe.adapters.experiments import PostgresExperiments
    from ffe.domain.experiments import Experiment, Mode, Trigger
    from ffe.domain.experiments import ExperimentStatus as S
    from tests.database import own_database

    store = PostgresExperiments(own_database(postgres, "cleanup_in_use"))
    try:
        # Given a champion that replaced another, a running, a paused, a stopped and a draft experiment
        store.set_champion("ffe-champion0", actor="test")
        store.set_champion("ffe-champion1", actor="test")
        now = datetime(2026, 12, 1, tzinfo=UTC)
        for name, to, asset in (
            ("run", S.RUNNING, "BTCUSD"),
            ("pause", S.PAUSED, "ETHUSD"),
            ("stop", S.STOPPED, "EURUSD"),
            ("draft", None, "SPY"),
        ):
            store.create(Experiment(f"e-{name}", "ffe-champion1", f"ffe-{name}", Mode.SHADOW, now, frozenset({asset})))
            if to is not None:
                store.transition(f"e-{name}", S.RUNNING, "test", Trigger.MANUAL)
            if to in (S.PAUSED, S.STOPPED):
                store.transition(f"e-{name}", to, "test", Trigger.MANUAL)
        # Then the cleanup keeps the champion, its predecessor, and both arms of the running and paused ones
        in_use = versions_in_use(store)
    finally:
        store.close()
    assert in_use == {"ffe-champion1", "ffe-champion0", "ffe-run", "ffe-pause"}
    assert serving_bundles(in_use, []) == in_use


class _State:
    """What ``ffe models`` needs of the CLI's state: the (unused) embedded cluster, no local experiment state."""

    def __init__(self, root: Path) -> None:
        self.root, self.pgdata = root, root / "pgdata"

    @contextmanager
    def postgres(self) -> Iterator[SimpleNamespace]:
        yield SimpleNamespace(url=None)  # MLFLOW_TRACKING_URI wins


def test_ffe_models_cleanup_is_a_dry_run_unless_applied(
    registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ffe.training.cli import models_command

    client, _ = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    args = Namespace(
        models_action="cleanup", apply=False, keep=3, days=30, metric="holdout_sharpe", stage=[], region=None
    )
    assert models_command(args, _State(tmp_path)) == 0
    out = capsys.readouterr().out
    # every version was registered moments ago: all within 30 days, nothing would go
    assert "dry run: 0 of 25 versions would be deleted" in out and "alias champion" in out
    assert models_command(Namespace(**{**vars(args), "days": 0}), _State(tmp_path)) == 0
    # with no recent window: the three aliased versions and the best three (v25, v17, v16) stay
    assert "dry run: 19 of 25 versions would be deleted" in capsys.readouterr().out
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 25
    assert models_command(Namespace(**{**vars(args), "days": 0, "apply": True}), _State(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "deleted 19 of 25 versions" in out and '"models_cleaned"' in out
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 6


def test_the_scheduled_job_entry_point_reads_mlflow_tracking_uri(
    registry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ffe.training.cleanup import main

    client, _ = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    assert main(["--keep", "3", "--days", "0"]) == 0
    assert "dry run: 19 of 25 versions would be deleted" in capsys.readouterr().out


def test_apply_takes_an_optional_value_as_sagemaker_hyperparameters_pass_it() -> None:
    from argparse import ArgumentParser

    from ffe.training.cleanup import add_cleanup_arguments

    parser = ArgumentParser()
    add_cleanup_arguments(parser)
    assert parser.parse_args([]).apply is False
    assert parser.parse_args(["--apply"]).apply is True
    assert parser.parse_args(["--apply", "true", "--keep", "10"]).apply is True
    assert parser.parse_args(["--apply", "false"]).apply is False
