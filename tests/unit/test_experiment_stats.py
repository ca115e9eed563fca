"""The comparison maths (ffe.domain.experiment_stats) against hand-computed examples."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from ffe.domain.experiment_stats import ArmDecision, ArmStats, PaperFill, agreement_rate, compare, paper_pnl, turnover
from ffe.domain.experiments import Mode

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def row(
    decision_id: int,
    arm: str,
    action: str | None,
    *,
    asset: str = "BTCUSD",
    hour: int | None = None,
    acted: bool | None = None,
    confidence: float | None = 0.5,
    latency_ms: float | None = 10.0,
    next_return: float | None = None,
    path_ms: float | None = None,
    decision_action: str = "HOLD",
    reason: str = "",
    bar_close: float | None = 100.0,
    risk_blocks: int = 0,
    violations: int = 0,
) -> ArmDecision:
    at = T0 + timedelta(hours=decision_id if hour is None else hour)
    return ArmDecision(
        decision_id=decision_id,
        asset=asset,
        timeframe="1h",
        as_of=at,
        bar_time=at,
        arm=arm,  # type: ignore[arg-type]
        acted=(arm == "control") if acted is None else acted,
        action=action,
        confidence=confidence,
        latency_ms=latency_ms,
        decision_action=decision_action,
        decision_reason=reason,
        decision_latency_ms=path_ms,
        bar_close=bar_close,
        next_return=next_return,
        risk_blocks=risk_blocks,
        violations_not_blocked=violations,
    )


def test_signal_return_is_the_actions_direction_times_the_next_bar_return() -> None:
    assert row(1, "control", "BUY", next_return=0.02).signal_return == pytest.approx(0.02)
    assert row(1, "control", "SELL", next_return=0.02).signal_return == pytest.approx(-0.02)
    assert row(1, "control", "HOLD", next_return=0.02).signal_return == 0.0
    assert row(1, "control", None, next_return=0.02).signal_return is None
    assert row(1, "control", "BUY", next_return=None).signal_return is None


def test_both_arms_are_scored_on_the_same_bars_and_the_pnl_sharpe_drawdown_match_hand_figures() -> None:
    returns = [0.01, -0.02, 0.03]
    rows = []
    for i, r in enumerate(returns, start=1):
        rows.append(row(i, "control", "BUY", next_return=r))
        rows.append(row(i, "treatment", "SELL", next_return=r))
    c = compare("e1", Mode.SHADOW, rows)
    assert c.decisions == 3
    assert c.control.signal_pnl == pytest.approx(0.02)
    assert c.treatment.signal_pnl == pytest.approx(-0.02)
    # Sharpe: mean 0.02/3, sample sd of (0.01, -0.02, 0.03), annualised by crypto 1h bars per year (24 * 365).
    mean = 0.02 / 3
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / 2)
    assert c.control.sharpe == pytest.approx(mean / sd * math.sqrt(24 * 365))
    assert c.treatment.sharpe == pytest.approx(-mean / sd * math.sqrt(24 * 365))
    # Equity 1 -> 1.01 -> 0.99 -> 1.02: the fall from 1.01 to 0.99 is 0.02 / 1.01.
    assert c.control.max_drawdown == pytest.approx(0.02 / 1.01)
    # The treatment: 1 -> 0.99 -> 1.01 -> 0.98: from 1.01 to 0.98.
    assert c.treatment.max_drawdown == pytest.approx(0.03 / 1.01)
    assert c.agreement_rate == 0.0
    assert c.control.returns == c.treatment.returns == 3


def test_sharpe_needs_two_returns() -> None:
    c = compare("e1", Mode.SHADOW, [row(1, "control", "BUY", next_return=0.01), row(2, "control", "BUY")])
    assert c.control.returns == 1 and c.control.sharpe is None
    assert c.treatment == ArmStats(decisions=0, paper_pnl=None)


def test_agreement_counts_only_decisions_where_both_arms_decided() -> None:
    control = [row(1, "control", "BUY"), row(2, "control", "HOLD"), row(3, "control", "SELL"), row(4, "control", "BUY")]
    treatment = [row(1, "treatment", "BUY"), row(2, "treatment", "BUY"), row(3, "treatment", None)]
    assert agreement_rate(control, treatment) == pytest.approx(1 / 2)
    assert agreement_rate(control, []) is None


def test_confidence_and_latency_deltas_and_percentiles() -> None:
    rows = [row(i, "control", "HOLD", confidence=0.5, latency_ms=float(i)) for i in range(1, 11)]
    rows += [row(i, "treatment", "HOLD", confidence=0.7, latency_ms=float(10 * i)) for i in range(1, 11)]
    c = compare("e1", Mode.SHADOW, rows)
    assert c.confidence_delta == pytest.approx(0.2)
    # numpy's linear percentile of 1..10: p50 = 5.5, p95 = 9.55; of 10..100: 55 and 95.5.
    assert c.control.latency_p50_ms == pytest.approx(5.5) and c.control.latency_p95_ms == pytest.approx(9.55)
    assert c.latency_p50_delta_ms == pytest.approx(55 - 5.5)
    assert c.latency_p95_delta_ms == pytest.approx(95.5 - 9.55)


def test_path_latency_is_the_acting_arms_or_every_decision_for_a_shadow_treatment() -> None:
    rows = [
        row(1, "control", "HOLD", acted=True, path_ms=100.0),
        row(1, "treatment", "HOLD", acted=False, path_ms=100.0),
        row(2, "control", "HOLD", acted=False, path_ms=300.0),
        row(2, "treatment", "HOLD", acted=True, path_ms=300.0),
    ]
    split = compare("e1", Mode.SPLIT, rows)
    assert split.control.path_latency_p95_ms == 100.0
    assert split.treatment.path_latency_p95_ms == 300.0
    shadow_rows = [r for r in rows if r.decision_id == 1] + [
        row(2, "control", "HOLD", acted=True, path_ms=300.0),
        row(2, "treatment", "HOLD", acted=False, path_ms=300.0),
    ]
    shadow = compare("e1", Mode.SHADOW, shadow_rows)
    assert shadow.treatment.acted == 0
    assert shadow.treatment.path_latency_p95_ms == pytest.approx(290.0)  # p95 of (100, 300)


def test_action_mix_hold_reasons_and_risk_are_the_acting_arms() -> None:
    rows = [
        row(
            1,
            "control",
            "BUY",
            decision_action="HOLD",
            reason="risk gate blocked BUY: var_limit; model: RL BUY",
            risk_blocks=1,
        ),
        row(1, "treatment", "BUY", acted=False, risk_blocks=0),
        row(2, "control", "HOLD", decision_action="HOLD", reason="RL HOLD 0.01 (meta-controller blend +0.01)"),
        row(2, "treatment", "SELL", acted=False),
        row(4, "control", "BUY", decision_action="HOLD", reason="inference_unavailable: timeout"),
        row(4, "treatment", None, acted=False),
        row(5, "control", "HOLD", decision_action="HOLD", reason="RL HOLD 0.02"),
        row(5, "treatment", "HOLD", acted=False),
        row(3, "control", "SELL", decision_action="SELL", violations=1),
        row(3, "treatment", "SELL", acted=False),
    ]
    c = compare("e1", Mode.SHADOW, rows)
    assert c.control.actions == {"BUY": 2, "SELL": 1, "HOLD": 2}
    assert c.treatment.actions == {"BUY": 1, "SELL": 2, "HOLD": 1}
    # The acting arm's holds by what made them; the other arm's by its own output
    assert c.control.hold_reasons == {"risk_blocked": 1, "no_signal": 2, "inference_unavailable": 1}
    assert c.treatment.hold_reasons == {"unavailable": 1, "no_signal": 1}
    assert (c.control.risk_blocks, c.control.violations_not_blocked) == (1, 1)
    assert (c.treatment.risk_blocks, c.treatment.violations_not_blocked) == (0, 0)


def test_turnover_is_per_asset_over_consecutive_decisions() -> None:
    rows = [
        row(1, "control", "BUY", asset="BTCUSD"),
        row(2, "control", "BUY", asset="ETHUSD"),
        row(3, "control", "SELL", asset="BTCUSD"),
        row(4, "control", "BUY", asset="ETHUSD"),
        row(5, "control", "SELL", asset="BTCUSD"),
    ]
    # BTCUSD: BUY->SELL (change), SELL->SELL; ETHUSD: BUY->BUY. 1 change in 3 pairs.
    assert turnover(rows) == pytest.approx(1 / 3)
    assert turnover(rows[:1]) is None


def test_paper_pnl_marks_the_net_position_at_the_latest_close_and_is_none_in_shadow() -> None:
    fills = [
        PaperFill("control", "BTCUSD", "BUY", 2.0, 100.0, fee=0.5),
        PaperFill("control", "BTCUSD", "SELL", 1.0, 110.0, fee=0.5),
    ]
    # -200 - 0.5 + 110 - 0.5 + 1 * 120 = 29
    assert paper_pnl(fills, {"BTCUSD": 120.0}) == pytest.approx(29.0)
    assert paper_pnl(fills, {}) == pytest.approx(-200.5 + 109.5 + 110.0)  # no close: the latest fill's price
    rows = [row(1, "control", "BUY", bar_close=100.0), row(2, "control", "HOLD", bar_close=120.0)]
    assert compare("e1", Mode.SPLIT, rows, fills).control.paper_pnl == pytest.approx(29.0)
    assert compare("e1", Mode.SPLIT, rows, fills).treatment.paper_pnl == 0.0
    assert compare("e1", Mode.SHADOW, rows, fills).control.paper_pnl is None


def test_to_json_is_json_safe() -> None:
    rows = [row(1, "control", "BUY", next_return=0.01), row(1, "treatment", "SELL", next_return=0.01)]
    data = compare("e1", Mode.SHADOW, rows, since=T0, until=T0 + timedelta(days=1)).to_json()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["since"] == T0.isoformat() and data["control"]["sharpe"] is None
    assert data["control"]["actions"] == {"BUY": 1, "SELL": 0, "HOLD": 0}
