"""The comparison views (migration 0008) and the review over a real PostgreSQL, with decisions written through the
real decision store: figures per arm, the window, paper fills, a guardrail rollback, and two reviews racing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from ffe import utc
from ffe.adapters.experiment_results import PostgresExperimentResults
from ffe.adapters.experiments import PostgresExperiments
from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import ArmOutput, DataSource, DecisionRecord, RiskAssessment
from ffe.domain.errors import InvalidInputError, UnknownExperimentError
from ffe.domain.experiments import CanaryPlan, CanaryStep, Experiment, ExperimentStatus, Mode, Trigger
from ffe.domain.models import Action, Timeframe
from ffe.experiment_review import review_experiments
from ffe.settings import ExperimentSettings
from tests.database import own_database

AS_OF = datetime(2026, 11, 2, 10, tzinfo=UTC)
RECORDED = datetime(2026, 11, 2, 10, 0, 5, tzinfo=UTC)  # the store's clock when it writes (path latency)
PLAN = CanaryPlan((CanaryStep(0.5, 4, timedelta(0)), CanaryStep(1.0, 4, timedelta(0))))


@pytest.fixture(name="url")
def fixture_url(postgres: str) -> str:
    return own_database(postgres, "experiment_results")


@pytest.fixture(name="stores")
def fixture_stores(
    url: str,
) -> Iterator[tuple[PostgresExperiments, PostgresDecisionStore, PostgresExperimentResults]]:
    experiments, decisions, results = (
        PostgresExperiments(url),
        PostgresDecisionStore(url),
        PostgresExperimentResults(url),
    )
    yield experiments, decisions, results
    for store in (experiments, decisions, results):
        store.close()


def start(experiments: PostgresExperiments, experiment_id: str, mode: Mode, assets: set[str]) -> Experiment:
    experiments.create(Experiment(experiment_id, "v1", "v2", mode, AS_OF, frozenset(assets), PLAN))
    return experiments.transition(experiment_id, ExperimentStatus.RUNNING, "alice", Trigger.MANUAL)


def record(
    store: PostgresDecisionStore,
    monkeypatch: pytest.MonkeyPatch,
    experiment_id: str,
    hour: int,
    close: float,
    control: str,
    treatment: str,
    *,
    asset: str = "BTCUSD",
    acting: str = "control",
    path_ms: float = 50.0,
    latency: tuple[float, float] = (10.0, 30.0),
    blocked: bool = False,
) -> int:
    """One decision the experiment covered, written by the real store; its path latency is exactly ``path_ms``."""
    as_of = AS_OF + timedelta(hours=hour)
    acted = control if acting == "control" else treatment
    risk = None
    if blocked:
        risk = RiskAssessment(
            approved=False,
            side="BUY",
            quantity=Decimal(0),
            reasons=["position_cap"],
            broker="paper",
            original_action=Action(acted),
        )
    decision = DecisionRecord(
        cycle_id=f"cycle-{hour}",
        as_of=as_of,
        timeframe=Timeframe.H1,
        asset=asset,
        bar_time=as_of - timedelta(hours=1),
        action=Action.HOLD if blocked else Action(acted),
        confidence=0.6,
        stale=False,
        reason="risk_blocked: position_cap" if blocked else ("no_signal: flat" if acted == "HOLD" else "decided"),
        data_age_seconds=60.0,
        staleness_threshold_seconds=7200,
        model="ensemble",
        model_version="v1" if acting == "control" else "v2",
        source=DataSource(
            provider="replay",
            dataset="test",
            synthetic=True,
            simulated_clock=True,
            fetch_started_at=RECORDED - timedelta(milliseconds=path_ms),
        ),
        input_sha256="0" * 64,
        risk=risk,
        bar_close=close,
        experiment_id=experiment_id,
        arm=acting,
        arms={
            "control": ArmOutput(model_version="v1", action=Action(control), confidence=0.6, latency_ms=latency[0]),
            "treatment": ArmOutput(model_version="v2", action=Action(treatment), confidence=0.8, latency_ms=latency[1]),
        },
    )
    with monkeypatch.context() as patch:
        patch.setattr(utc, "now", lambda: RECORDED)
        return store.record_decision(decision).id


def test_both_arms_are_compared_on_the_same_bars_through_the_views(stores, monkeypatch, url: str) -> None:
    experiments, decisions, results = stores
    start(experiments, "shadow-1", Mode.SHADOW, {"BTCUSD", "ETHUSD"})
    # BTCUSD closes 100 -> 110 -> 99: next-bar returns +10 %, -10 %, none for the last.
    record(decisions, monkeypatch, "shadow-1", 0, 100.0, "BUY", "SELL", path_ms=40.0)
    record(decisions, monkeypatch, "shadow-1", 1, 110.0, "BUY", "BUY", path_ms=60.0, blocked=True)
    record(decisions, monkeypatch, "shadow-1", 2, 99.0, "HOLD", "SELL", path_ms=80.0)
    # ETHUSD closes 50 -> 40: -20 % for its first decision.
    record(decisions, monkeypatch, "shadow-1", 0, 50.0, "SELL", "SELL", asset="ETHUSD", path_ms=100.0)
    record(decisions, monkeypatch, "shadow-1", 1, 40.0, "HOLD", "HOLD", asset="ETHUSD", path_ms=120.0)

    c = results.compare("shadow-1")
    assert c.decisions == 5
    assert c.agreement_rate == pytest.approx(3 / 5)  # decisions 2 (BUY/BUY), 4 (SELL/SELL), 5 (HOLD/HOLD)
    # Control: BUY +10 %, BUY -10 %, SELL on -20 % = +0.2. Treatment: SELL +10 %, BUY -10 %, SELL -20 %.
    assert c.control.signal_pnl == pytest.approx(0.1 - 0.1 + 0.2)
    assert c.treatment.signal_pnl == pytest.approx(-0.1 - 0.1 + 0.2)
    assert c.control.returns == c.treatment.returns == 3
    assert c.control.actions == {"BUY": 2, "SELL": 1, "HOLD": 2}
    assert c.treatment.actions == {"BUY": 1, "SELL": 3, "HOLD": 1}
    assert c.control.hold_reasons == {"risk_blocked": 1, "no_signal": 2}
    assert (c.control.risk_blocks, c.treatment.risk_blocks) == (1, 0)  # the treatment never met the gate
    assert c.confidence_delta == pytest.approx(0.2)
    assert c.latency_p50_delta_ms == pytest.approx(20.0)
    # Shadow: the treatment runs inside every covered decision's path, so both see all five latencies.
    assert c.control.path_latency_p95_ms == pytest.approx(116.0)  # numpy's p95 of 40, 60, 80, 100, 120
    assert c.treatment.path_latency_p95_ms == pytest.approx(116.0)
    assert c.treatment.paper_pnl is None

    # A window on as_of keeps the next-bar return computed over the whole history.
    late = results.compare("shadow-1", since=AS_OF + timedelta(hours=1))
    assert late.decisions == 3 and late.control.returns == 1
    assert late.control.signal_pnl == pytest.approx(-0.1)
    # The last two cycles by as_of: hour 1 (60 and 120 ms) and hour 2 (80 ms).
    assert results.cycle_latency_p95("shadow-1", 2) == [pytest.approx(117.0), pytest.approx(80.0)]


def test_the_paper_fills_of_the_acting_arm_make_its_paper_pnl(stores, monkeypatch, url: str) -> None:
    experiments, decisions, results = stores
    start(experiments, "split-1", Mode.SPLIT, {"ETHUSD"})
    first = record(decisions, monkeypatch, "split-1", 0, 100.0, "BUY", "BUY", asset="ETHUSD", acting="treatment")
    record(decisions, monkeypatch, "split-1", 1, 120.0, "HOLD", "HOLD", asset="ETHUSD", acting="treatment")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO paper_accounts (id, currency, cash) VALUES ('paper-test', 'USD', 1000)")
        conn.execute(
            "INSERT INTO paper_orders (client_order_id, account_id, asset, side, quantity, placed_at, status,"
            " fill_price, fee) VALUES ('o-1', 'paper-test', 'ETHUSD', 'BUY', 2, %s, 'FILLED', 101, 0.5)",
            (AS_OF,),
        )
        conn.execute(
            "INSERT INTO executions (decision_id, as_of, venue, mode, client_order_id, side, quantity, status)"
            " VALUES (%s, %s, 'paper', 'paper', 'o-1', 'BUY', 2, 'FILLED')",
            (first, AS_OF),
        )
    c = results.compare("split-1")
    assert c.treatment.paper_pnl == pytest.approx(-202.5 + 2 * 120.0)
    assert c.control.paper_pnl == 0.0
    assert (c.treatment.acted, c.control.acted) == (2, 0)


def test_unknown_experiments_and_bad_windows_are_refused(stores) -> None:
    _, _, results = stores
    with pytest.raises(UnknownExperimentError):
        results.compare("nope")
    with pytest.raises(InvalidInputError, match="is after until"):
        results.compare("nope", since=AS_OF + timedelta(seconds=1), until=AS_OF)
    with pytest.raises(InvalidInputError, match="timezone"):
        results.compare("nope", since=datetime(2026, 1, 1))  # naive: the input under test


def test_a_slow_treatment_is_rolled_back_by_the_review_with_its_evidence(stores, monkeypatch, capsys) -> None:
    experiments, decisions, results = stores
    start(experiments, "slow", Mode.SHADOW, {"BTCUSD"})
    for hour in range(3):
        record(decisions, monkeypatch, "slow", hour, 100.0 + hour, "HOLD", "HOLD", path_ms=450.0)
    [outcome] = review_experiments(experiments, results, utc.now(), "guardrail:test", ExperimentSettings())
    assert outcome.kind == "rollback" and outcome.evidence["guardrail"] == "latency"
    assert experiments.get("slow").status is ExperimentStatus.ROLLED_BACK
    last = experiments.transitions("slow")[-1]
    assert (last.trigger, last.actor) == (Trigger.GUARDRAIL, "guardrail:test")
    assert last.evidence["cycles_p95_ms"] == [450.0, 450.0, 450.0]
    assert last.evidence["comparison"]["treatment"]["path_latency_p95_ms"] == 450.0
    assert '"experiment_rollbacks"' in capsys.readouterr().out
    # The next cycle's models leave the experiment out: every asset is the champion's.
    assert experiments.cycle_models().experiments == []


def test_two_reviews_at_once_advance_a_step_exactly_once(stores, monkeypatch, url: str) -> None:
    experiments, decisions, _ = stores
    start(experiments, "canary", Mode.SPLIT, {"BTCUSD", "ETHUSD"})
    for hour in range(2):
        for asset in ("BTCUSD", "ETHUSD"):
            record(decisions, monkeypatch, "canary", hour, 100.0 + hour, "HOLD", "HOLD", asset=asset)
    both_read = threading.Barrier(2, timeout=30)

    class Racing(PostgresExperimentResults):
        def cycle_latency_p95(self, experiment_id: str, cycles: int) -> list[float]:
            figures = super().cycle_latency_p95(experiment_id, cycles)
            both_read.wait()  # both reviews have read step 0 before either advances
            return figures

    outcomes: list[str] = []

    def review() -> None:
        store, results = PostgresExperiments(url), Racing(url)
        try:
            [outcome] = review_experiments(store, results, utc.now(), "guardrail:race", ExperimentSettings())
            outcomes.append(outcome.kind)
        finally:
            store.close()
            results.close()

    threads = [threading.Thread(target=review) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["advance", "skipped"]
    assert experiments.get("canary").step == 1
    advances = [t for t in experiments.transitions("canary") if t.trigger is Trigger.CANARY]
    assert [(t.from_step, t.to_step) for t in advances] == [(0, 1)]


def test_a_treatment_with_a_violation_not_blocked_is_rolled_back(stores, monkeypatch, url: str) -> None:
    experiments, decisions, results = stores
    start(experiments, "violating", Mode.SPLIT, {"BTCUSD"})
    control_id = record(decisions, monkeypatch, "violating", 0, 100.0, "BUY", "BUY", acting="control")
    treated_id = record(decisions, monkeypatch, "violating", 1, 101.0, "BUY", "BUY", acting="treatment")
    with psycopg.connect(url, autocommit=True) as conn:  # as GateRisk records its alarm, on each arm's decision
        for decision_id, hour in ((control_id, 0), (treated_id, 1)):
            conn.execute(
                "INSERT INTO risk_events (decision_id, as_of, cycle_id, asset, rule, blocked)"
                " VALUES (%s, %s, %s, 'BTCUSD', 'violation_not_blocked', false)",
                (decision_id, AS_OF + timedelta(hours=hour), f"cycle-{hour}"),
            )
    c = results.compare("violating")
    assert (c.control.violations_not_blocked, c.treatment.violations_not_blocked) == (1, 1)
    [outcome] = review_experiments(experiments, results, utc.now(), "guardrail:test", ExperimentSettings())
    assert outcome.kind == "rollback" and outcome.evidence["guardrail"] == "violation_not_blocked"


def test_a_losing_treatment_is_rolled_back_once_the_sample_is_large_enough(stores, monkeypatch) -> None:
    experiments, decisions, results = stores
    start(experiments, "losing", Mode.SHADOW, {"BTCUSD"})
    closes = [100.0, 102.0, 101.0, 104.0, 103.0, 107.0]  # the control follows the market, the treatment fades it
    for hour, close in enumerate(closes[:4]):
        up = closes[hour + 1] > close
        record(decisions, monkeypatch, "losing", hour, close, "BUY" if up else "SELL", "SELL" if up else "BUY")
    settings = ExperimentSettings()
    # Three next-bar returns per arm: under the step's minimum sample of 4, performance is not judged yet.
    [early] = review_experiments(experiments, results, utc.now(), "guardrail:test", settings)
    assert early.kind == "wait" and early.evidence["treatment_returns"] == 3
    for hour in (4, 5):
        close = closes[hour]
        up = hour + 1 < len(closes) and closes[hour + 1] > close
        record(decisions, monkeypatch, "losing", hour, close, "BUY" if up else "SELL", "SELL" if up else "BUY")
    [late] = review_experiments(experiments, results, utc.now(), "guardrail:test", settings)
    assert late.kind == "rollback" and late.evidence["guardrail"] == "performance"
    assert late.evidence["treatment"] < 0 < late.evidence["control"]
