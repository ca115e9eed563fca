"""What `ffe experiments` and `ffe run` print about experiments: the tables say what the figures are."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ffe import views
from ffe.domain.experiments import Experiment, ExperimentStatus, Mode, Transition, Trigger

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _piped(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def experiment(**changes: Any) -> Experiment:
    fields: dict[str, Any] = {
        "id": "exp-a",
        "control_version": "ffe-control",
        "treatment_version": "ffe-treatment",
        "mode": Mode.SPLIT,
        "created_at": NOW,
        "assets": frozenset({"ETHUSD", "BTCUSD"}),
        "step": 1,
        "status": ExperimentStatus.RUNNING,
    }
    return Experiment(**{**fields, **changes})


def test_the_list_shows_each_experiment_with_its_share(capsys: pytest.CaptureFixture[str]) -> None:
    views.show_experiments([experiment(), experiment(id="exp-b", mode=Mode.SHADOW, assets=None, step=0)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "status", "mode", "control", "treatment", "share", "assets", "created"]
    assert lines[2].split()[:7] == ["exp-a", "running", "split", "ffe-control", "ffe-treatment", "25%", "BTCUSD,ETHUSD"]
    assert lines[3].split()[:7] == ["exp-b", "running", "shadow", "ffe-control", "ffe-treatment", "0%", "all"]


def test_no_experiments_says_how_to_make_one(capsys: pytest.CaptureFixture[str]) -> None:
    views.show_experiments([])
    assert "ffe experiments create" in capsys.readouterr().out


def test_one_experiment_marks_its_canary_step_and_lists_its_transitions(capsys: pytest.CaptureFixture[str]) -> None:
    moved = Transition("exp-a", ExperimentStatus.RUNNING, ExperimentStatus.RUNNING, 0, 1, NOW, "cli:me", Trigger.CANARY)
    views.show_experiment(experiment(), [moved])
    out = capsys.readouterr().out
    assert "25% (50 decisions, 6 h 0 min) <- now" in out and "5% (50 decisions, 6 h 0 min)," in out
    assert "0>1" in out and "canary" in out and "cli:me" in out


def test_results_put_the_arms_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    arm = {
        "decisions": 4,
        "acted": 4,
        "actions": {"BUY": 3, "HOLD": 1},
        "hold_reasons": {"stale data": 1},
        "confidence_mean": 0.5,
        "latency_p50_ms": 10.0,
        "latency_p95_ms": 20.0,
        "path_latency_p95_ms": 100.0,
        "signal_pnl": 0.01,
        "sharpe": 1.5,
        "max_drawdown": 0.02,
        "turnover": 0.25,
        "paper_pnl": None,
        "risk_blocks": 1,
        "violations_not_blocked": 0,
    }
    document = {
        "experiment_id": "exp-a",
        "since": None,
        "until": None,
        "decisions": 4,
        "agreement_rate": 0.75,
        "confidence_delta": -0.05,
        "latency_p50_delta_ms": 2.0,
        "latency_p95_delta_ms": None,
        "control": arm,
        "treatment": {**arm, "acted": 0, "sharpe": None},
    }
    views.show_experiment_results(document)
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["agreement", "rate", "75.0%"] for line in lines)
    assert any(line.split() == ["confidence", "delta", "-0.050"] for line in lines)
    assert any(line.split() == ["latency", "delta", "p50", "+2.0", "ms,", "p95", "-"] for line in lines)
    assert any(line.split() == ["acted", "4", "0"] for line in lines)
    assert any(line.split() == ["Sharpe", "1.50", "-"] for line in lines)
    assert any(line.split() == ["actions", "BUY", "3", "HOLD", "1", "BUY", "3", "HOLD", "1"] for line in lines)
    assert any(line.split() == ["control", "holds", "stale", "data", "(1)"] for line in lines)


def test_a_run_shows_both_arms_and_their_agreement(capsys: pytest.CaptureFixture[str]) -> None:
    def arms(control: str | None, treatment: str | None) -> dict[str, Any]:
        return {
            "control": {"action": control, "confidence": 0.5, "latency_ms": 12.0},
            "treatment": {"action": treatment, "confidence": 0.25, "latency_ms": 3.0},
        }

    decisions: list[dict[str, Any]] = [
        {"asset": "BTCUSD", "experiment_id": "exp-a", "arm": "control", "arms": arms("BUY", "BUY")},
        {"asset": "ETHUSD", "experiment_id": "exp-a", "arm": "treatment", "arms": arms("BUY", "SELL")},
        {"asset": "SPY", "experiment_id": "exp-a", "arm": "control", "arms": arms("HOLD", None)},
        {"asset": "EURUSD", "experiment_id": None, "arm": None, "arms": None},
    ]
    assert views._show_arms(decisions)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "both arms (agreement 1/2 (50%))"  # SPY's treatment could not decide: not counted
    assert lines[3].split() == ["BTCUSD", "exp-a", "control", "BUY", "0.50", "12", "ms", "BUY", "0.25", "3", "ms"]
    assert lines[4].split()[:3] == ["ETHUSD", "exp-a", "treatment"]
    assert lines[5].split()[7] == "-" and len(lines) == 6


def test_a_run_without_experiments_prints_no_arms(capsys: pytest.CaptureFixture[str]) -> None:
    assert not views._show_arms([{"asset": "BTCUSD", "arms": None}])
    assert capsys.readouterr().out == ""
