"""An experiment's comparison figures from PostgreSQL: the ``experiment_arm_decisions`` and
``experiment_paper_fills`` views (migration 0008) read here, the maths in ``ffe.domain.experiment_stats``.

Windows: ``since``/``until`` bound the decisions' ``as_of`` (the cycle's time); ``recorded_since`` bounds when
they were recorded (the database clock, the same clock as the experiment's transitions), which is what the
review uses to count a canary step's decisions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from ffe.adapters.database import DEFAULT_STATEMENT_TIMEOUT_MS, Conninfo, Database, configured
from ffe.containers import container_cached
from ffe.domain.errors import InvalidInputError, UnknownExperimentError
from ffe.domain.experiment_stats import ArmDecision, Comparison, PaperFill, compare
from ffe.domain.experiments import Mode
from ffe.settings import DatabaseSettings, get_settings
from ffe.store.migrate import migrate_offline

_WINDOW = (
    " WHERE experiment_id = %(id)s"
    " AND (%(since)s::timestamptz IS NULL OR as_of >= %(since)s)"
    " AND (%(until)s::timestamptz IS NULL OR as_of < %(until)s)"
    " AND (%(recorded_since)s::timestamptz IS NULL OR recorded_at >= %(recorded_since)s)"
)
_ROWS = (
    "SELECT decision_id, asset, timeframe, as_of, bar_time, arm, acted, action, confidence, latency_ms,"  # noqa: S608
    " decision_action, decision_reason, decision_latency_ms, bar_close, next_return, risk_blocks,"
    " violations_not_blocked FROM experiment_arm_decisions" + _WINDOW
)
_FILLS = "SELECT arm, asset, side, quantity, fill_price, fee FROM experiment_paper_fills" + _WINDOW  # noqa: S608
# The treatment's decision-path latency p95 per cycle, newest cycles (by as_of) first: the decisions it acted
# on, or every covered decision in shadow mode (the shadow runs inside the control's path).
_CYCLES = (
    "SELECT cycle_id, max(as_of) AS at,"
    " percentile_cont(0.95) WITHIN GROUP (ORDER BY decision_latency_ms) AS p95"
    " FROM experiment_arm_decisions"
    " WHERE experiment_id = %(id)s AND arm = 'treatment' AND (acted OR %(shadow)s)"
    " AND decision_latency_ms IS NOT NULL"
    " GROUP BY cycle_id ORDER BY at DESC, cycle_id DESC LIMIT %(limit)s"
)


class PostgresExperimentResults:
    """One connection per container (``ffe.adapters.database``); the schema is migrated on every new one,
    offline only (``migrate_offline``: in AWS MigrateDatabase alone migrates)."""

    def __init__(self, conninfo: Conninfo, statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS) -> None:
        self.database = Database(
            conninfo,
            row_factory=dict_row,
            name="experiment results",
            statement_timeout_ms=statement_timeout_ms,
            on_connect=migrate_offline,
        )

    def compare(
        self,
        experiment_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        recorded_since: datetime | None = None,
    ) -> Comparison:
        """Both arms' figures over the window (default: the experiment's whole life).

        Raises:
            UnknownExperimentError: no experiment ``experiment_id``.
            InvalidInputError: a naive datetime, or ``since`` after ``until`` (equal: an empty window).
        """
        for name, value in (("since", since), ("until", until), ("recorded_since", recorded_since)):
            if value is not None and value.tzinfo is None:
                raise InvalidInputError(f"{name} must be timezone-aware")
        if since is not None and until is not None and since > until:
            raise InvalidInputError(f"since ({since.isoformat()}) is after until ({until.isoformat()})")
        params = {"id": experiment_id, "since": since, "until": until, "recorded_since": recorded_since}
        with self.database.connection() as conn:
            mode = self._mode(conn, experiment_id)
            rows = conn.execute(_ROWS, params).fetchall()
            fills = conn.execute(_FILLS, params).fetchall()
        return compare(
            experiment_id,
            mode,
            [_arm_decision(r) for r in rows],
            [
                PaperFill(
                    r["arm"], r["asset"], r["side"], float(r["quantity"]), float(r["fill_price"]), float(r["fee"])
                )
                for r in fills
            ],
            since=since,
            until=until,
        )

    def cycle_latency_p95(self, experiment_id: str, cycles: int) -> list[float]:
        """The treatment's decision-path latency p95 in each of the last ``cycles`` cycles that had
        treatment-path decisions, oldest first."""
        if cycles < 1:
            raise InvalidInputError(f"cycles must be at least 1, got {cycles}")
        with self.database.connection() as conn:
            mode = self._mode(conn, experiment_id)
            rows = conn.execute(
                _CYCLES, {"id": experiment_id, "shadow": mode is Mode.SHADOW, "limit": cycles}
            ).fetchall()
        return [float(r["p95"]) for r in reversed(rows)]

    @staticmethod
    def _mode(conn: Any, experiment_id: str) -> Mode:
        row = conn.execute("SELECT mode FROM experiments WHERE id = %s", (experiment_id,)).fetchone()
        if row is None:
            raise UnknownExperimentError(f"no experiment {experiment_id!r}", experiment=experiment_id)
        return Mode(row["mode"])

    def close(self) -> None:
        self.database.close()


@container_cached
def get_experiment_results() -> PostgresExperimentResults:
    """The container's results reader, built once so a warm start reuses its connection."""
    settings = get_settings(DatabaseSettings)
    return PostgresExperimentResults(configured(settings), statement_timeout_ms=settings.db_statement_timeout_ms)


def _arm_decision(row: dict[str, Any]) -> ArmDecision:
    return ArmDecision(
        decision_id=row["decision_id"],
        asset=row["asset"],
        timeframe=row["timeframe"],
        as_of=row["as_of"],
        bar_time=row["bar_time"],
        arm=row["arm"],
        acted=row["acted"],
        action=row["action"],
        confidence=row["confidence"],
        latency_ms=row["latency_ms"],
        decision_action=row["decision_action"],
        decision_reason=row["decision_reason"],
        decision_latency_ms=row["decision_latency_ms"],
        bar_close=row["bar_close"],
        next_return=row["next_return"],
        risk_blocks=int(row["risk_blocks"]),
        violations_not_blocked=int(row["violations_not_blocked"]),
    )
