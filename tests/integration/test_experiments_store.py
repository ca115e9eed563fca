"""The experiment store on a real PostgreSQL: transitions recorded, refusals write nothing, overlapping starts race."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from ffe.adapters.experiments import PostgresExperiments
from ffe.adapters.models import bundled_version
from ffe.domain.errors import ConflictError, InvalidTransitionError, UnknownExperimentError
from ffe.domain.experiments import CanaryPlan, CanaryStep, Experiment, Guardrails, Mode, Trigger
from ffe.domain.experiments import ExperimentStatus as S
from tests.database import own_database

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture(name="url")
def fixture_url(postgres: str) -> str:
    return own_database(postgres, "experiments_store")


@pytest.fixture(name="store")
def fixture_store(url: str) -> Iterator[PostgresExperiments]:
    store = PostgresExperiments(url)
    yield store
    store.close()


def draft(experiment_id: str, assets: set[str] | None = None, mode: Mode = Mode.SPLIT) -> Experiment:
    return Experiment(experiment_id, "v1", "v2", mode, NOW, assets=frozenset(assets) if assets is not None else None)


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_an_experiment_round_trips(store: PostgresExperiments) -> None:
    plan = CanaryPlan((CanaryStep(0.1, 20), CanaryStep(1.0, 40)))
    made = Experiment(
        "e-1", "v1", "v2", Mode.SHADOW, NOW, frozenset({"BTCUSD", "ETHUSD"}), plan, 0, Guardrails(150.0, 0.2, "pnl", 4)
    )
    assert store.create(made) == made
    assert store.get("e-1") == made
    assert store.get("nope") is None
    with pytest.raises(ConflictError, match="exists"):
        store.create(made)


def test_create_start_pause_start_stop_records_every_transition(store: PostgresExperiments, url: str) -> None:
    store.create(draft("e-1", {"BTCUSD"}))
    store.transition("e-1", S.RUNNING, "alice", Trigger.MANUAL, "go")
    store.transition("e-1", S.PAUSED, "alice", Trigger.MANUAL, "lunch")
    store.transition("e-1", S.RUNNING, "alice", Trigger.MANUAL)
    stopped = store.transition("e-1", S.STOPPED, "bob", Trigger.MANUAL, "seen enough", {"agreement": 0.93})

    assert stopped.status is S.STOPPED and store.get("e-1") == stopped
    recorded = store.transitions("e-1")
    assert [(t.from_status, t.to_status) for t in recorded] == [
        (S.DRAFT, S.RUNNING),
        (S.RUNNING, S.PAUSED),
        (S.PAUSED, S.RUNNING),
        (S.RUNNING, S.STOPPED),
    ]
    assert [t.actor for t in recorded] == ["alice", "alice", "alice", "bob"]
    assert recorded[-1].reason == "seen enough" and recorded[-1].evidence == {"agreement": 0.93}
    assert rows(url, "SELECT count(*) FROM experiment_transitions")[0][0] == 4


def test_the_canary_advances_to_promotion_with_each_step_recorded(store: PostgresExperiments) -> None:
    store.create(draft("e-1"))
    store.transition("e-1", S.RUNNING, "alice", Trigger.MANUAL)
    store.advance("e-1", "guardrails", Trigger.CANARY, "step 0 passed", {"decisions": 60})
    assert store.advance("e-1", "guardrails", Trigger.CANARY).share == 1.0
    promoted = store.transition("e-1", S.PROMOTED, "alice", Trigger.MANUAL)
    assert promoted.status is S.PROMOTED and promoted.step == 2
    assert [(t.from_step, t.to_step, t.trigger) for t in store.transitions("e-1")][1:3] == [
        (0, 1, Trigger.CANARY),
        (1, 2, Trigger.CANARY),
    ]


def test_an_invalid_transition_is_refused_and_writes_nothing(store: PostgresExperiments, url: str) -> None:
    store.create(draft("e-1"))
    with pytest.raises(InvalidTransitionError, match="from draft to promoted"):
        store.transition("e-1", S.PROMOTED, "alice", Trigger.MANUAL)
    store.transition("e-1", S.RUNNING, "alice", Trigger.MANUAL)
    with pytest.raises(InvalidTransitionError, match="last step"):
        store.transition("e-1", S.PROMOTED, "alice", Trigger.MANUAL)
    with pytest.raises(UnknownExperimentError):
        store.transition("nope", S.RUNNING, "alice", Trigger.MANUAL)

    assert store.get("e-1").status is S.RUNNING  # type: ignore[union-attr]
    assert rows(url, "SELECT from_status, to_status FROM experiment_transitions") == [("draft", "running")]


def test_a_start_on_assets_another_experiment_holds_is_refused(store: PostgresExperiments) -> None:
    store.create(draft("btc", {"BTCUSD"}))
    store.create(draft("btc-eth", {"BTCUSD", "ETHUSD"}))
    store.create(draft("fx", {"EURUSD"}))
    store.create(draft("all"))
    store.transition("btc", S.RUNNING, "alice", Trigger.MANUAL)
    store.transition("btc", S.PAUSED, "alice", Trigger.MANUAL)  # paused still holds BTCUSD

    with pytest.raises(InvalidTransitionError, match="btc") as refused:
        store.transition("btc-eth", S.RUNNING, "alice", Trigger.MANUAL)
    assert refused.value.context["conflicting"] == "btc"
    store.transition("fx", S.RUNNING, "alice", Trigger.MANUAL)  # disjoint: fine
    with pytest.raises(InvalidTransitionError):
        store.transition("all", S.RUNNING, "alice", Trigger.MANUAL)

    store.transition("btc", S.STOPPED, "alice", Trigger.MANUAL)
    store.transition("btc-eth", S.RUNNING, "alice", Trigger.MANUAL)  # BTCUSD is free again
    assert [e.id for e in store.list(S.RUNNING)] == ["btc-eth", "fx"]


def test_two_concurrent_starts_on_overlapping_assets_one_wins(url: str) -> None:
    setup = PostgresExperiments(url)
    setup.create(draft("a", {"BTCUSD", "ETHUSD"}))
    setup.create(draft("b", {"ETHUSD", "EURUSD"}))
    stores = {name: PostgresExperiments(url) for name in ("a", "b")}
    for store in stores.values():
        store.list()  # connect (and migrate) before the race
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def start(name: str) -> None:
        barrier.wait()
        try:
            stores[name].transition(name, S.RUNNING, "racer", Trigger.MANUAL)
            outcomes[name] = "started"
        except InvalidTransitionError:
            outcomes[name] = "refused"

    for _ in range(5):  # rounds: the winner is put back in draft after each
        threads = [threading.Thread(target=start, args=(name,)) for name in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes.values()) == ["refused", "started"], outcomes
        assert len(setup.list(S.RUNNING)) == 1
        winner = next(name for name, outcome in outcomes.items() if outcome == "started")
        with psycopg.connect(url, autocommit=True) as conn:  # back to draft for the next round
            conn.execute("UPDATE experiments SET status = 'draft' WHERE id = %s", (winner,))
        outcomes.clear()
    for store in [setup, *stores.values()]:
        store.close()


def test_the_champion_is_the_bundled_version_until_one_is_set_then_its_history(store: PostgresExperiments) -> None:
    assert store.champion().version == bundled_version() and store.champion().set_at is None
    store.set_champion("v1", "alice", "trained on 2026-11")
    now = store.set_champion("v2", "bob", "better Sharpe")
    assert (now.version, now.previous_version, now.actor, now.reason) == ("v2", "v1", "bob", "better Sharpe")
    assert store.champion() == now
    assert [c.version for c in store.champions()] == ["v2", "v1"]
    assert store.champions()[1].previous_version == bundled_version()


def test_promoting_an_experiment_makes_its_treatment_champion_in_the_same_transaction(
    store: PostgresExperiments,
) -> None:
    store.set_champion("v1", "alice")
    store.create(Experiment("e-1", "v1", "v2", Mode.SPLIT, NOW, plan=CanaryPlan((CanaryStep(1.0),))))
    store.transition("e-1", S.RUNNING, "alice", Trigger.MANUAL)
    store.transition("e-1", S.PROMOTED, "alice", Trigger.MANUAL, "canary done")
    champion = store.champion()
    assert (champion.version, champion.previous_version, champion.experiment_id) == ("v2", "v1", "e-1")
    # Rolling the promotion back puts the control back, recorded as such
    store.transition("e-1", S.ROLLED_BACK, "bob", Trigger.MANUAL, "live P&L worse")
    back = store.champion()
    assert (back.version, back.previous_version, back.experiment_id, back.actor) == ("v1", "v2", "e-1", "bob")


def test_a_refused_promotion_changes_no_champion(store: PostgresExperiments) -> None:
    store.set_champion("v1", "alice")
    store.create(draft("e-1", {"BTCUSD"}))  # the default plan: promotion waits for the last step
    store.transition("e-1", S.RUNNING, "alice", Trigger.MANUAL)
    with pytest.raises(InvalidTransitionError):
        store.transition("e-1", S.PROMOTED, "alice", Trigger.MANUAL)
    assert store.champion().version == "v1" and len(store.champions()) == 1


def test_cycle_models_are_the_champion_and_the_running_experiments(store: PostgresExperiments) -> None:
    store.set_champion("v1", "alice")
    store.create(draft("run", {"BTCUSD"}))
    store.create(draft("pause", {"ETHUSD"}, Mode.SHADOW))
    store.create(draft("draft", {"EURUSD"}))
    store.transition("run", S.RUNNING, "a", Trigger.MANUAL)
    store.transition("pause", S.RUNNING, "a", Trigger.MANUAL)
    store.transition("pause", S.PAUSED, "a", Trigger.MANUAL)
    models = store.cycle_models()
    assert models.champion == "v1"
    assert [(e.id, e.mode, e.share, e.assets) for e in models.experiments] == [("run", "split", 0.05, ["BTCUSD"])]
    assert models.route("BTCUSD").experiment_id == "run" and models.route("ETHUSD").experiment_id is None


def test_an_advance_from_a_step_the_canary_has_left_is_refused(store: PostgresExperiments) -> None:
    store.create(draft("e-1", {"BTCUSD"}))
    store.transition("e-1", S.RUNNING, "a", Trigger.MANUAL)
    store.advance("e-1", "review-1", Trigger.CANARY, expected_step=0)
    with pytest.raises(InvalidTransitionError, match="not 0"):
        store.advance("e-1", "review-2", Trigger.CANARY, expected_step=0)
    assert store.get("e-1").step == 1  # type: ignore[union-attr]
