"""``ffe evaluate``'s walk-forward driver on real bundled series: 2 folds, 1 seed, the quick training config
(a smoke of the real pipeline and backtester, not a model anyone trades)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ffe.adapters.models import ModelStore
from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.engine import ALL_STRATEGIES, BarArrays
from ffe.cli import main
from ffe.evaluation.gate_config import GateConfig
from ffe.evaluation.walk_forward import SCHEMA, EvaluationReport, evaluate, format_table, quick_plan
from ffe.local.runner import LocalState
from ffe.training import cli as training_cli
from ffe.training import pipeline
from ffe.training.data import TrainingSeries
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.pipeline import EXPERIMENT, MODEL_NAME
from ffe.training.promotion import verdict_for
from ffe.training.tracking import Tracker, tracking_uri

SYMBOL, OTHER, TEST_BARS = "SPX", "EURUSD", 240


def _run(symbols: Sequence[str] = (SYMBOL,), **kwargs: Any) -> EvaluationReport:
    return evaluate(symbols, 2, [3], quick_plan, test_bars=TEST_BARS, n_boot=200, **kwargs)


def test_every_row_is_reported_and_no_test_bar_is_trained_on(monkeypatch: pytest.MonkeyPatch) -> None:
    trained_on: list[dict[str, np.datetime64]] = []
    real_train = pipeline._train

    def spy(plan: pipeline.TrainPlan, series: Sequence[TrainingSeries], *args: Any) -> pipeline.TrainOutcome:
        trained_on.append({s.symbol: s.times[-1] for s in series})
        return real_train(plan, series, *args)

    monkeypatch.setattr(pipeline, "_train", spy)
    report = _run((SYMBOL, OTHER))
    # One joint bundle per fold, as production trains: both series in it, cut before their own test windows
    assert len(trained_on) == 2 and all(set(t) == {SYMBOL, OTHER} for t in trained_on)
    assert len(report.bundle_versions) == 2
    for series in report.series:
        assert len(series.folds) == 2 and len(series.runs) == 2
        assert series.folds[-1].test_hi == series.bars and series.folds[0].test_lo == series.bars - TEST_BARS
        for run, last_trained in zip(series.runs, trained_on, strict=True):
            assert last_trained[series.symbol] < np.datetime64(run.test_start.removesuffix("Z"))
            assert run.bundle_version == report.bundle_versions[run.fold]
        assert sum(r.test_bars for r in series.runs) == TEST_BARS
        # Every strategy row, with its means, intervals and the meta-controller's comparisons
        assert set(series.rows) == {str(s) for s in ALL_STRATEGIES}
        for row in series.rows.values():
            assert row.intervals["sharpe"].low <= row.intervals["sharpe"].high
            assert set(row.metrics) >= {"total_return", "sharpe", "churn_rate", "max_disruption"}
            assert len(row.sharpe_by_fold) == 2 and all(i.low <= i.estimate <= i.high for i in row.sharpe_by_fold)
        assert series.p_meta_beats_naive is not None and 0.0 <= series.p_meta_beats_naive <= 1.0
        assert series.p_meta_beats_buy_and_hold is not None and 0.0 <= series.p_meta_beats_buy_and_hold <= 1.0
    # The paths the promotion gate pairs: every row of every series, one value per test bar
    arrays = report.arrays()
    for series in report.series:
        for name in series.rows:
            assert arrays[f"{series.symbol}/{name}"].shape == (TEST_BARS,)
        assert arrays[f"{series.symbol}/meta_controller/seed3"].shape == (TEST_BARS,)
    assert report.training_config["symbols"] == [SYMBOL, OTHER] and "train_end" not in report.training_config
    table = format_table(report)
    assert all(str(s) in table for s in ALL_STRATEGIES) and "P(meta Sharpe > naive router)" in table


def test_the_same_seed_gives_the_same_report_one_job_or_several() -> None:
    first, second = _run().as_dict(), _run(jobs=2).as_dict()  # two folds trained at once, in two processes
    assert first == second and first["schema"] == SCHEMA
    json.dumps(first, allow_nan=False)  # the JSON holds no NaN


def test_ffe_evaluate_writes_the_json_and_refuses_a_bad_symbol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--state-dir",
            str(tmp_path / ".ffe"),
            "evaluate",
            "--no-mlflow",
            "--symbols",
            SYMBOL,
            "--folds",
            "2",
            "--seeds",
            "3",
            "--quick",
            "--test-bars",
            str(TEST_BARS),
            "--n-boot",
            "100",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document["series"][SYMBOL]["rows"]) == {str(s) for s in ALL_STRATEGIES}
    assert json.loads((tmp_path / "evaluation.json").read_text()) == document
    bundled = BarArrays.from_bars(load_bars(datasets()[SYMBOL].file))
    assert document["series"][SYMBOL]["bars_sha256"] == bundled.digest()  # what the promotion gate pairs on
    with np.load(tmp_path / "paths.npz") as paths:
        assert paths[f"{SYMBOL}/meta_controller"].shape == (TEST_BARS,)
        assert set(paths.files) >= {f"{SYMBOL}/{s}" for s in ALL_STRATEGIES}
    assert {"fold_sharpe.png", "equity.png"} <= {p.name for p in tmp_path.iterdir()}
    card = (tmp_path / "report.md").read_text()  # the model card's tables, a page with its contents
    assert (
        card.startswith("# Walk-forward evaluation\n") and "\n## Summary\n" in card and "\n## Every strategy\n" in card
    )
    assert f"| {SYMBOL} 1d | " in card and all(f"| {s} |" in card for s in ALL_STRATEGIES)
    assert not (tmp_path / ".ffe").exists()  # --no-mlflow: no embedded Postgres was started
    assert main(["evaluate", "--symbols", "NOPE", "--quick", "--no-mlflow"]) == 2
    assert "NOPE" in capsys.readouterr().err
    assert main(["evaluate", "--version", "3", "--no-mlflow"]) == 2
    assert "--version evaluates the version's recorded config" in capsys.readouterr().err
    for flag in ("--test-bars", "--jobs", "--folds", "--n-boot"):
        assert main(["evaluate", "--quick", "--no-mlflow", flag, "0"]) == 2
        assert ">= 1" in capsys.readouterr().err
    assert main(["evaluate", "--quick", "--no-mlflow", "--version", "3"]) == 2
    assert "--version evaluates the version's recorded config" in capsys.readouterr().err
    # Refused before any training: a seed twice, an --out that is a file or holds another run's files, test
    # windows longer than the series, and --version with anything that would evaluate another model
    quick = ["evaluate", "--quick", "--no-mlflow", "--symbols", SYMBOL, "--folds", "2", "--n-boot", "50"]
    assert main([*quick, "--seeds", "1,2,1"]) == 2
    assert "a seed given twice would count its path twice" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    assert main([*quick, "--out", str(tmp_path / "a-file")]) == 2
    assert f"--out {tmp_path / 'a-file'}: cannot use it" in capsys.readouterr().err
    assert main([*quick, "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is not empty" in capsys.readouterr().err
    assert main([*quick, "--test-bars", "100000", "--out", str(tmp_path / "long")]) == 2
    assert "SPX: 100000 test bars leave none of its 5031 bars to train on" in capsys.readouterr().err
    for extra in (["--set", "meta.epochs=9"], ["--symbols", SYMBOL], ["--bars", str(tmp_path / "a-file")]):
        assert main(["--state-dir", str(tmp_path / "st"), "evaluate", "--version", "3", *extra]) == 2
        assert "as it was trained (its recorded config, on its own series)" in (err := capsys.readouterr().err)
        assert f"drop {extra[0]}" in err
    assert not (tmp_path / "st").exists()  # nothing was started to answer that
    # A fold that cannot train on what its window leaves (31 bars) names the fold and the bars, no traceback
    assert main([*quick, "--seeds", "3", "--test-bars", "5000", "--out", str(tmp_path / "short")]) == 2
    assert "fold 1 seed 3, training on the bars before each test window (SPX 31): " in capsys.readouterr().err


@pytest.fixture
def tracker(postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tracker:
    """A fresh MLflow on the test cluster, served to ``ffe evaluate`` as the local one."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri(postgres, database=f"mlflow_{uuid.uuid4().hex[:12]}")
    made = Tracker(uri, EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())

    @contextmanager
    def local_tracker(state: Any) -> Iterator[Tracker]:
        yield made

    monkeypatch.setattr(training_cli, "local_tracker", local_tracker)
    return made


def evaluate_cli(tmp_path: Path, *extra: str) -> int:
    args = ["--folds", "2", "--seeds", "3", "--test-bars", str(TEST_BARS), "--n-boot", "100"]
    return main(["--state-dir", str(tmp_path / ".ffe"), "evaluate", *args, "--out", str(tmp_path / "report"), *extra])


def test_a_registered_versions_config_is_evaluated_and_the_report_is_its_evidence(
    tracker: Tracker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = pipeline.TrainPlan(seed=11, symbols=(SYMBOL,), meta=MetaTrainConfig.quick(seed=11, epochs=3))
    registered = pipeline.train(replace(recorded, progress=False), tmp_path / "bundle", tracker)
    assert registered.registered_version is not None
    assert tracker.download_evidence(MODEL_NAME, registered.registered_version, tmp_path / "none") is None
    local = LocalState(tmp_path / ".ffe")  # the bundle in the local model store, as `ffe train` leaves it
    shutil.copytree(registered.bundle_dir, local.model_dir(registered.version))
    # By bundle version: the recorded config (3 epochs, not --quick's 4), the folds' seeds and cuts
    assert evaluate_cli(tmp_path, "--version", registered.version) == 0
    assert f"evidence of registered version {registered.registered_version}" in capsys.readouterr().out
    evidence = tracker.download_evidence(MODEL_NAME, registered.registered_version, tmp_path / "evidence")
    assert evidence is not None
    document = json.loads((evidence / "evaluation.json").read_text())
    assert document["model"]["registered_version"] == registered.registered_version
    assert document["model"]["training_config"]["meta"]["epochs"] == 3
    assert document["model"]["training_config"]["symbols"] == [SYMBOL] and list(document["series"]) == [SYMBOL]
    assert {"paths.npz", "fold_sharpe.png", "equity.png"} <= {p.name for p in evidence.iterdir()}
    # ...and beside the bundle in the local store, where `ffe api`'s promotion gate reads it
    here = ModelStore(str(local.models)).evidence(registered.version, tmp_path / "local-evidence")
    assert here is not None and (here / "paths.npz").read_bytes() == (evidence / "paths.npz").read_bytes()
    run = tracker.client.get_run(str(registered.run_id))
    sharpe = document["series"][SYMBOL]["rows"]["meta_controller"]["interval"]["sharpe"]["estimate"]
    assert run.data.metrics[f"evaluation.{SYMBOL}.meta_controller.sharpe"] == pytest.approx(sharpe)
    # The gate takes this evidence as the version's (it was made with the recorded config) and refuses evidence of
    # another config attached to it, naming the settings that differ
    number = str(registered.registered_version)
    compared = verdict_for(tracker, MODEL_NAME, number, None, GateConfig(), tmp_path / "gate")
    assert compared.comparisons[0].probability is not None
    tampered = json.loads((evidence / "evaluation.json").read_text())
    tampered["model"]["training_config"]["meta"]["epochs"] = 9
    (evidence / "evaluation.json").write_text(json.dumps(tampered))
    tracker.attach_evidence(MODEL_NAME, number, evidence)
    refused = verdict_for(tracker, MODEL_NAME, number, None, GateConfig(), tmp_path / "gate2").comparisons[0]
    assert not refused.passed and "another training config than it was trained with (meta.epochs)" in refused.reason
    # An unknown version is one line and exit 2, nothing run
    assert evaluate_cli(tmp_path, "--version", "v99") == 2
    assert "no registered version v99" in capsys.readouterr().err


def test_an_evaluation_of_the_code_is_a_run_of_its_own(tracker: Tracker, tmp_path: Path) -> None:
    assert evaluate_cli(tmp_path, "--symbols", SYMBOL, "--quick", "--json") == 0
    (run,) = tracker.client.search_runs([tracker.experiment_id], "tags.`ffe.kind` = 'evaluation'")
    assert f"evaluation.{SYMBOL}.naive_router.sharpe" in run.data.metrics
    assert run.data.params["symbols"] == SYMBOL and run.data.params["n_folds"] == "2"
    names = {a.path for a in tracker.client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/evaluation.json", "evaluation/paths.npz"} <= names


def test_your_own_bars_are_trained_on_and_evaluated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trained: list[dict[str, int]] = []
    real_train = pipeline._train

    def spy(plan: pipeline.TrainPlan, series: Sequence[TrainingSeries], *args: Any) -> pipeline.TrainOutcome:
        trained.append({s.symbol: s.offset + len(s) for s in series})
        return real_train(plan, series, *args)

    monkeypatch.setattr(pipeline, "_train", spy)
    bars = load_bars(datasets()["ETHUSD"].file)[:2000]  # a user's 2,000 hourly ETHUSD bars, in the scenario format
    own = tmp_path / "eth.csv"
    own.write_text(
        "asset,timeframe,time,open,high,low,close,volume\n"
        + "".join(
            f"ETHUSD,1h,{b.time:%Y-%m-%dT%H:%M:%SZ},{b.open},{b.high},{b.low},{b.close},{b.volume}\n" for b in bars
        )
    )
    monkeypatch.chdir(tmp_path)  # named relative to where the user stands, recorded whole (--reproduce from anywhere)
    args = ["--symbols", "ETHUSD", "--bars", "eth.csv", "--quick", "--no-mlflow", "--json", "--set", "meta.epochs=3"]
    assert evaluate_cli(tmp_path, *args) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["series"]["ETHUSD"]["bars"] == 2000  # the file's bars, not the bundled 6,000
    assert document["config"]["own_data"]["ETHUSD"]["file"] == str(own.resolve())
    assert document["model"]["training_config"]["data_files"] == {"ETHUSD": str(own.resolve())}
    assert document["model"]["training_config"]["meta"]["epochs"] == 3  # --set reached every fold's plan
    assert [t["ETHUSD"] for t in trained] == [2000 - TEST_BARS, 2000 - TEST_BARS // 2]  # cut before each window
    # A file the loader refuses, an unknown setting: one line each, exit 2, nothing trained
    bad = tmp_path / "bad.csv"
    bad.write_text("asset,timeframe,time,open,high,low,close\nETHUSD,1h,yesterday,1,1,1,1\n")
    trained.clear()
    assert evaluate_cli(tmp_path, "--bars", str(bad), "--quick", "--no-mlflow") == 2
    assert "bad.csv" in capsys.readouterr().err
    assert evaluate_cli(tmp_path, "--quick", "--no-mlflow", "--set", "meta.nope=1") == 2
    assert "no such setting" in capsys.readouterr().err and not trained


def test_a_symbol_outside_the_table_is_evaluated_with_the_class_its_file_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bars = load_bars(datasets()["ETHUSD"].file)[:1500]  # a user's hourly bars of a pair ffe has no entry for
    rows = "".join(f"SOLUSD,1h,{b.time:%Y-%m-%dT%H:%M:%SZ},{b.open},{b.high},{b.low},{b.close}\n" for b in bars)
    unclassed = tmp_path / "sol.csv"
    unclassed.write_text("asset,timeframe,time,open,high,low,close\n" + rows)
    assert evaluate_cli(tmp_path, "--bars", str(unclassed), "--symbols", "SOLUSD", "--quick", "--no-mlflow") == 2
    assert "unknown asset 'SOLUSD'" in (err := capsys.readouterr().err) and "asset_class column" in err
    classed = tmp_path / "sol-crypto.csv"
    classed.write_text("asset,timeframe,time,open,high,low,close,asset_class\n" + rows.replace("\n", ",crypto\n"))
    args = ["--bars", str(classed), "--symbols", "SOLUSD", "--quick", "--no-mlflow", "--json", "--set", "meta.epochs=2"]
    assert evaluate_cli(tmp_path, *args) == 0
    series = json.loads(capsys.readouterr().out)["series"]["SOLUSD"]
    assert series["bars"] == 1500 and series["periods_per_year"] == 24 * 365  # crypto trades every hour
    assert set(series["rows"]) == {str(s) for s in ALL_STRATEGIES}
