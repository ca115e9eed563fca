"""A decision's row in the ``decisions`` table, and the statements that write it, rendered once.

``decision_row`` reads the record's fields directly and serializes its JSON columns (``reasons``, ``source``,
``arms``) with pydantic-core in one call each, instead of a full ``model_dump`` followed by ``json.dumps``. The
stored ``jsonb`` is the same: both serializers print a float's shortest round-trip digits and differ only in how
they write an exponent (``1e-05`` / ``0.00001``), which ``jsonb`` stores as the same numeric
(tests/integration/test_store_rows.py compares every column with a plain INSERT and a plain COPY of the
``model_dump``). The scalar columns keep their Python types, so psycopg sends each one as before.
Figures: bench/bench_store.py.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from pydantic_core import to_json

from ffe import utc
from ffe.contracts import DecisionRecord

DECISION_COLUMNS = (
    "cycle_id",
    "execution_id",
    "stage",
    "asset",
    "timeframe",
    "as_of",
    "bar_time",
    "action",
    "confidence",
    "size",
    "stale",
    "reason",
    "reasons",
    "data_age_seconds",
    "staleness_threshold_seconds",
    "model",
    "model_version",
    "regime",
    "source",
    "input_sha256",
    "bar_close",
    "decision_latency_ms",
    "experiment_id",
    "arm",
    "arms",
)
_SOURCE_EXCLUDE = {"fetch_started_at"}  # the fetch's wall-clock start is for the latency metric, not provenance


def _render(template: str, **parts: sql.Composable) -> str:
    return sql.SQL(template).format(**parts).as_string()


_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, DECISION_COLUMNS))

# One round trip for a decision and its risk events (one row per rule, in the verdict's order), in the one
# transaction of the statement. No row comes back when the decision is stored already: see FIND_DECISION.
INSERT_DECISION = _render(
    """
WITH decision AS (
    INSERT INTO decisions ({columns}) VALUES ({values})
    ON CONFLICT ON CONSTRAINT decisions_natural_key DO NOTHING
    RETURNING id, as_of, cycle_id, asset
), risk AS (
    INSERT INTO risk_events (decision_id, as_of, cycle_id, asset, rule, blocked, detail)
    SELECT decision.id, decision.as_of, decision.cycle_id, decision.asset, rules.rule, %s, %s::jsonb
    FROM decision, unnest(%s::text[]) WITH ORDINALITY AS rules (rule, n) ORDER BY rules.n
    ON CONFLICT (decision_id, rule) DO NOTHING
)
SELECT id FROM decision""",
    columns=_COLUMNS,
    values=sql.SQL(", ").join(sql.Placeholder() for _ in DECISION_COLUMNS),
)
FIND_DECISION = """
SELECT id, input_sha256 FROM decisions
WHERE as_of = %s AND cycle_id = %s AND asset = %s AND bar_time IS NOT DISTINCT FROM %s
"""
# A retried record's risk events, under the decision an earlier attempt stored (idempotent per rule).
INSERT_RISK_EVENTS = """
INSERT INTO risk_events (decision_id, as_of, cycle_id, asset, rule, blocked, detail)
SELECT %s, %s, %s, %s, rules.rule, %s, %s::jsonb
FROM unnest(%s::text[]) WITH ORDINALITY AS rules (rule, n) ORDER BY rules.n
ON CONFLICT (decision_id, rule) DO NOTHING
"""
COPY_DECISIONS = _render("COPY decisions ({columns}) FROM STDIN", columns=_COLUMNS)
BACKFILL_TABLE = _render(
    "CREATE TEMP TABLE backfill_decisions ON COMMIT DROP AS SELECT {columns} FROM decisions WITH NO DATA",
    columns=_COLUMNS,
)
COPY_BACKFILL = _render("COPY backfill_decisions ({columns}) FROM STDIN", columns=_COLUMNS)
BACKFILL_INSERT = _render(
    "INSERT INTO decisions ({columns}) SELECT {columns} FROM backfill_decisions"
    " ON CONFLICT ON CONSTRAINT decisions_natural_key DO NOTHING",
    columns=_COLUMNS,
)


def decision_row(record: DecisionRecord, stage: str) -> tuple[Any, ...]:
    """The record's values in ``DECISION_COLUMNS`` order; the ``jsonb`` columns as JSON text."""
    reasons: dict[str, Any] = {"signals": record.signals}
    if record.weights:  # the models' view, when they decided
        reasons["weights"] = record.weights
    if record.regime_probabilities:
        reasons["regime_probabilities"] = record.regime_probabilities
    if record.voters:
        reasons["voters"] = record.voters
    if record.risk is not None:
        reasons["risk"] = record.risk
    return (
        record.cycle_id,
        record.execution_id,
        stage,
        record.asset,
        record.timeframe.value,
        record.as_of,
        record.bar_time,
        record.action.value,
        record.confidence,
        record.size,
        record.stale,
        record.reason,
        to_json(reasons).decode(),
        record.data_age_seconds,
        record.staleness_threshold_seconds,
        record.model,
        record.model_version,
        record.regime,
        record.source.model_dump_json(exclude=_SOURCE_EXCLUDE),
        record.input_sha256,
        record.bar_close,
        record.path_latency_ms(utc.now()),
        record.experiment_id,
        record.arm,
        to_json(record.arms).decode() if record.arms else None,
    )


def risk_params(record: DecisionRecord) -> tuple[bool, str | None, list[str]]:
    """The risk events' values: blocked, the detail (JSON text) and the rules, one event each (none without)."""
    risk = record.risk
    if risk is None or not risk.reasons:
        return False, None, []
    detail = to_json({**risk.detail, "original_action": str(risk.original_action)}).decode()
    return not risk.approved, detail, risk.reasons
