"""``ffe evaluate``'s walk-forward driver on real bundled series: 2 folds, 1 seed, the quick training config
(a smoke of the real pipeline and backtester, not a model anyone trades)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ffe.backtest.engine import ALL_STRATEGIES
from ffe.cli import main
from ffe.evaluation.walk_forward import SCHEMA, EvaluationReport, evaluate, format_table, quick_plan
from ffe.training import pipeline
from ffe.training.data import TrainingSeries

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
        assert series.p_meta_beats_naive is not None and 0.0 <= series.p_meta_beats_naive <= 1.0
        assert series.p_meta_beats_buy_and_hold is not None and 0.0 <= series.p_meta_beats_buy_and_hold <= 1.0
    # The paths the promotion gate pairs: every row of every series, one value per test bar
    arrays = report.arrays()
    for series in report.series:
        for row in series.rows:
            assert arrays[f"{series.symbol}/{row}"].shape == (TEST_BARS,)
        assert arrays[f"{series.symbol}/meta_controller/seed3"].shape == (TEST_BARS,)
    assert report.training_config["symbols"] == [SYMBOL, OTHER] and "train_end" not in report.training_config
    table = format_table(report)
    assert all(str(s) in table for s in ALL_STRATEGIES) and "P(meta Sharpe > naive router)" in table


def test_the_same_seed_gives_the_same_report() -> None:
    first, second = _run().as_dict(), _run().as_dict()
    assert first == second and first["schema"] == SCHEMA
    json.dumps(first, allow_nan=False)  # the JSON holds no NaN


def test_ffe_evaluate_writes_the_json_and_refuses_a_bad_symbol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "evaluate",
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
    with np.load(tmp_path / "paths.npz") as paths:
        assert paths[f"{SYMBOL}/meta_controller"].shape == (TEST_BARS,)
        assert set(paths.files) >= {f"{SYMBOL}/{s}" for s in ALL_STRATEGIES}
    assert main(["evaluate", "--symbols", "NOPE", "--quick"]) == 2
    assert "NOPE" in capsys.readouterr().err
