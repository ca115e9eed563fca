"""Experiments and the stage's champion on PostgreSQL (``experiments``, ``experiment_transitions``,
``model_champions``; migrations 0006 and 0007).

Every change is one transaction: the experiment's row is locked (``FOR UPDATE``), ``ffe.domain.experiments``
decides whether the change is allowed, and the row and its transition are written together, so a refused
change writes nothing. A start (to ``running``) first takes one advisory lock shared by every start, then
refuses when another running or paused experiment shares an asset: two starts on overlapping assets never
both succeed, across containers.

The champion is the newest ``model_champions`` row (none: the bundle shipped in the layer). Promoting an
experiment appends the treatment as champion in the same transaction as the transition; rolling a promotion
back appends its control again (when the treatment is still the champion). ``cycle_models`` reads the champion
and the running experiments in one snapshot, once per cycle ("Open the cycle").
"""

from __future__ import annotations

import builtins
import json
from dataclasses import replace
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ffe.adapters.database import DEFAULT_STATEMENT_TIMEOUT_MS, Conninfo, Database, configured
from ffe.containers import container_cached
from ffe.contracts import CycleModels, ExperimentRoute
from ffe.domain.errors import ConflictError, InvalidTransitionError, UnknownExperimentError
from ffe.domain.experiments import (
    HOLDS_ASSETS,
    Champion,
    Experiment,
    ExperimentStatus,
    Mode,
    Transition,
    Trigger,
    check_transition,
    first_conflict,
    guardrails_from_json,
    guardrails_to_json,
    next_step,
    plan_from_json,
    plan_to_json,
)
from ffe.settings import DatabaseSettings, get_settings
from ffe.store.migrate import migrate_offline

_CHAMPION_COLUMNS = "version, previous_version, set_at, actor, reason, experiment_id"
_CURRENT_CHAMPION = f"SELECT {_CHAMPION_COLUMNS} FROM model_champions ORDER BY id DESC LIMIT 1"  # noqa: S608
_INSERT_CHAMPION = (
    "INSERT INTO model_champions (version, previous_version, actor, reason, experiment_id)"  # noqa: S608
    f" VALUES (%s, %s, %s, %s, %s) RETURNING {_CHAMPION_COLUMNS}"
)
_COLUMNS = "id, control_version, treatment_version, mode, assets, plan, step, guardrails, status, created_at"
_START_LOCK = "ffe-experiments:start"  # held by every start, so overlap checks never interleave


class PostgresExperiments:
    """One connection per container (``ffe.adapters.database``); the schema is migrated on every new one,
    offline only (``migrate_offline``: in AWS MigrateDatabase alone migrates)."""

    def __init__(
        self,
        conninfo: Conninfo,
        lock_timeout_ms: int = 10_000,
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    ) -> None:
        self.database = Database(
            conninfo,
            row_factory=dict_row,
            name="experiment store",
            statement_timeout_ms=statement_timeout_ms,
            lock_timeout_ms=lock_timeout_ms,
            on_connect=migrate_offline,
        )

    def create(self, experiment: Experiment) -> Experiment:
        """Store a new draft (``experiment.status`` must be draft, at step 0)."""
        if experiment.status is not ExperimentStatus.DRAFT or experiment.step != 0:
            raise InvalidTransitionError(
                "a new experiment starts as a draft at step 0,"
                f" not {experiment.status.value} at step {experiment.step}",
                experiment=experiment.id,
            )
        with self.database.transaction() as conn:
            row = conn.execute(
                f"INSERT INTO experiments ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"  # noqa: S608
                f" ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}",
                (
                    experiment.id,
                    experiment.control_version,
                    experiment.treatment_version,
                    experiment.mode.value,
                    sorted(experiment.assets) if experiment.assets is not None else None,
                    Jsonb(plan_to_json(experiment.plan)),
                    experiment.step,
                    Jsonb(guardrails_to_json(experiment.guardrails)),
                    experiment.status.value,
                    experiment.created_at,
                ),
            ).fetchone()
        if row is None:
            raise ConflictError(f"an experiment with id {experiment.id!r} exists", experiment=experiment.id)
        return _experiment(row)

    def get(self, experiment_id: str) -> Experiment | None:
        with self.database.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM experiments WHERE id = %s", (experiment_id,)).fetchone()  # noqa: S608
        return _experiment(row) if row else None

    def list(self, status: ExperimentStatus | None = None) -> builtins.list[Experiment]:
        with self.database.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM experiments WHERE %(status)s::text IS NULL OR status = %(status)s"  # noqa: S608
                " ORDER BY created_at, id",
                {"status": status.value if status else None},
            ).fetchall()
        return [_experiment(r) for r in rows]

    def transition(
        self,
        experiment_id: str,
        to: ExperimentStatus,
        actor: str,
        trigger: Trigger,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
    ) -> Experiment:
        _check_actor(actor)
        with self.database.transaction() as conn:
            if to is ExperimentStatus.RUNNING:
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_START_LOCK,))
            current = _locked(conn, experiment_id)
            check_transition(current, to)
            if to is ExperimentStatus.RUNNING:
                holders = conn.execute(
                    f"SELECT {_COLUMNS} FROM experiments WHERE status = ANY(%s) AND id <> %s ORDER BY created_at",  # noqa: S608
                    ([s.value for s in HOLDS_ASSETS], experiment_id),
                ).fetchall()
                other = first_conflict(current, (_experiment(r) for r in holders))
                if other is not None:
                    raise InvalidTransitionError(
                        f"experiment {other.id} ({other.status.value}) already serves some of these assets",
                        experiment=experiment_id,
                        conflicting=other.id,
                    )
            changed = replace(current, status=to)
            _write(conn, current, changed, actor, trigger, reason, evidence)
            if to is ExperimentStatus.PROMOTED:
                _set_champion(conn, current.treatment_version, actor, f"experiment promoted: {reason}", current.id)
            elif current.status is ExperimentStatus.PROMOTED and _champion(conn).version == current.treatment_version:
                _set_champion(
                    conn, current.control_version, actor, f"experiment's promotion rolled back: {reason}", current.id
                )
        return changed

    def champion(self) -> Champion:
        """The stage's champion now (the bundled one while none was ever set)."""
        with self.database.connection() as conn:
            return _champion(conn)

    def set_champion(self, version: str, actor: str, reason: str = "") -> Champion:
        """Make ``version`` the champion (``ffe models promote``); the one it replaces becomes the previous."""
        _check_actor(actor)
        with self.database.transaction() as conn:
            return _set_champion(conn, version, actor, reason, None)

    def champions(self, limit: int = 50) -> builtins.list[Champion]:
        """The champion's history, newest first."""
        with self.database.connection() as conn:
            rows = conn.execute(
                f"SELECT {_CHAMPION_COLUMNS} FROM model_champions ORDER BY id DESC LIMIT %s",  # noqa: S608
                (limit,),
            ).fetchall()
        return [_champion_of(r) for r in rows]

    def cycle_models(self) -> CycleModels:
        """The champion and the running experiments, read in one snapshot: what a cycle serves."""
        with self.database.transaction() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            champion = _champion(conn)
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM experiments WHERE status = 'running' ORDER BY created_at, id"  # noqa: S608
            ).fetchall()
        running = [_experiment(r) for r in rows]
        return CycleModels(
            champion=champion.version,
            experiments=[
                ExperimentRoute(
                    id=e.id,
                    mode=e.mode.value,
                    control_version=e.control_version,
                    treatment_version=e.treatment_version,
                    share=e.share,
                    assets=sorted(e.assets) if e.assets is not None else None,
                )
                for e in running
            ],
        )

    def advance(
        self,
        experiment_id: str,
        actor: str,
        trigger: Trigger,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
        expected_step: int | None = None,
    ) -> Experiment:
        _check_actor(actor)
        with self.database.transaction() as conn:
            current = _locked(conn, experiment_id)
            if expected_step is not None and current.step != expected_step:
                raise InvalidTransitionError(
                    f"the canary is at step {current.step}, not {expected_step}: someone moved it meanwhile",
                    experiment=experiment_id,
                )
            changed = replace(current, step=next_step(current))
            _write(conn, current, changed, actor, trigger, reason, evidence)
        return changed

    def transitions(self, experiment_id: str) -> builtins.list[Transition]:
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT experiment_id, from_status, to_status, from_step, to_step, at, actor, trigger, reason, evidence"
                " FROM experiment_transitions WHERE experiment_id = %s ORDER BY at, id",
                (experiment_id,),
            ).fetchall()
        return [
            Transition(
                experiment_id=r["experiment_id"],
                from_status=ExperimentStatus(r["from_status"]),
                to_status=ExperimentStatus(r["to_status"]),
                from_step=r["from_step"],
                to_step=r["to_step"],
                at=r["at"],
                actor=r["actor"],
                trigger=Trigger(r["trigger"]),
                reason=r["reason"],
                evidence=_json(r["evidence"]),
            )
            for r in rows
        ]

    def close(self) -> None:
        self.database.close()


@container_cached
def get_experiments() -> PostgresExperiments:
    """The container's experiment store, built once so a warm start reuses its connection."""
    settings = get_settings(DatabaseSettings).for_experiments()  # the API: role ffe_experiments, not ffe_api
    return PostgresExperiments(configured(settings), statement_timeout_ms=settings.db_statement_timeout_ms)


def _check_actor(actor: str) -> None:
    if not actor:
        raise InvalidTransitionError("a transition needs an actor (who or what made it)")


def _locked(conn: psycopg.Connection[dict[str, Any]], experiment_id: str) -> Experiment:
    row = conn.execute(f"SELECT {_COLUMNS} FROM experiments WHERE id = %s FOR UPDATE", (experiment_id,)).fetchone()  # noqa: S608
    if row is None:
        raise UnknownExperimentError(f"no experiment {experiment_id!r}", experiment=experiment_id)
    return _experiment(row)


def _write(
    conn: psycopg.Connection[dict[str, Any]],
    before: Experiment,
    after: Experiment,
    actor: str,
    trigger: Trigger,
    reason: str,
    evidence: dict[str, Any] | None,
) -> None:
    conn.execute(
        "UPDATE experiments SET status = %s, step = %s, updated_at = now() WHERE id = %s",
        (after.status.value, after.step, after.id),
    )
    conn.execute(
        "INSERT INTO experiment_transitions"
        " (experiment_id, from_status, to_status, from_step, to_step, actor, trigger, reason, evidence)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            after.id,
            before.status.value,
            after.status.value,
            before.step,
            after.step,
            actor,
            trigger.value,
            reason,
            Jsonb(evidence or {}),
        ),
    )


def _champion(conn: psycopg.Connection[dict[str, Any]]) -> Champion:
    # imported here: the model store needs numpy, which RecordDecision loads only when it opens a cycle
    from ffe.adapters.models import bundled_version

    row = conn.execute(_CURRENT_CHAMPION).fetchone()
    return _champion_of(row) if row else Champion(bundled_version())


def _set_champion(
    conn: psycopg.Connection[dict[str, Any]], version: str, actor: str, reason: str, experiment_id: str | None
) -> Champion:
    conn.execute("LOCK TABLE model_champions IN SHARE ROW EXCLUSIVE MODE")  # one writer: a linear history
    previous = _champion(conn).version
    row = conn.execute(
        _INSERT_CHAMPION,
        (version, previous if previous != version else None, actor, reason, experiment_id),
    ).fetchone()
    assert row is not None
    return _champion_of(row)


def _champion_of(row: dict[str, Any]) -> Champion:
    return Champion(
        row["version"], row["previous_version"], row["set_at"], row["actor"], row["reason"], row["experiment_id"]
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _experiment(row: dict[str, Any]) -> Experiment:
    return Experiment(
        id=row["id"],
        control_version=row["control_version"],
        treatment_version=row["treatment_version"],
        mode=Mode(row["mode"]),
        created_at=row["created_at"],
        assets=frozenset(row["assets"]) if row["assets"] is not None else None,
        plan=plan_from_json(_json(row["plan"])),
        step=row["step"],
        guardrails=guardrails_from_json(_json(row["guardrails"])),
        status=ExperimentStatus(row["status"]),
    )
