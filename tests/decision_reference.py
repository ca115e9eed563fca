"""A decision written the plain psycopg way: the reference the store's rows are compared with (tests) and timed
against (bench/bench_store.py).

The values are the record's ``model_dump`` with its JSON columns as ``Jsonb`` (``json.dumps``), as the store sent
them before it serialized those columns with pydantic-core (ffe.store.decision_rows): the same columns, the same
Python types, one plain INSERT per decision (risk events after it, one row per rule) or one plain COPY.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from ffe import utc
from ffe.contracts import DecisionRecord
from ffe.store.decision_rows import DECISION_COLUMNS

_NAMES = ", ".join(DECISION_COLUMNS)
PLAIN_INSERT = f"INSERT INTO decisions ({_NAMES}) VALUES ({', '.join(['%s'] * len(DECISION_COLUMNS))}) RETURNING id"
PLAIN_RISK_INSERT = (
    "INSERT INTO risk_events (decision_id, as_of, cycle_id, asset, rule, blocked, detail)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
PLAIN_COPY = f"COPY decisions ({_NAMES}) FROM STDIN"


def plain_row(record: DecisionRecord, stage: str) -> tuple[Any, ...]:
    """The record's values in ``DECISION_COLUMNS`` order: ``model_dump``, the JSON columns as ``Jsonb``."""
    params = record.model_dump(mode="python")
    del params["risk"]
    reasons: dict[str, Any] = {"signals": params.pop("signals")}
    for key in ("weights", "regime_probabilities", "voters"):
        if value := params.pop(key):
            reasons[key] = value
    if record.risk is not None:
        reasons["risk"] = record.risk.model_dump(mode="json")
    arms = params.pop("arms")
    params.update(
        arms=Jsonb({arm: output.model_dump(mode="json") for arm, output in record.arms.items()}) if arms else None,
        decision_latency_ms=record.path_latency_ms(utc.now()),
        reasons=Jsonb(reasons),
        source=Jsonb(record.source.model_dump(mode="json", exclude={"fetch_started_at"})),
        action=record.action.value,
        timeframe=record.timeframe.value,
        stage=stage,
    )
    return tuple(params[c] for c in DECISION_COLUMNS)


def plain_risk_rows(record: DecisionRecord, decision_id: int) -> list[tuple[Any, ...]]:
    """The decision's risk events: one row per rule of the verdict (none without one)."""
    risk = record.risk
    if risk is None:
        return []
    detail = Jsonb({**risk.detail, "original_action": str(risk.original_action)})
    blocked = not risk.approved
    return [(decision_id, record.as_of, record.cycle_id, record.asset, rule, blocked, detail) for rule in risk.reasons]
