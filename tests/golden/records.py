"""The golden walk as records: each asset's state outputs, each stored row, and the tables written.

A record is ``{"key": ..., "data": ...}``; the key says which decision or row it is (``step <cycle> <asset>``,
``<table> <natural key>``), so a mismatch names it. Values that legitimately vary run to run are left out:
``rows.EXCLUDED`` (columns) and ``rows.EXCLUDED_KEYS`` (fields, wherever they appear), each with its reason.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from tests.golden.rows import plain, stored_rows, table_counts
from tests.golden.walk import Cycle, Step

Record = dict[str, Any]
# The regime path (24 rows of features and of posteriors per arm) is kept as a digest of its exact JSON: the
# file stays small, and a change of any value in it still shows (the decision's own fields are kept whole).
PATHS = ("path_features", "path_posteriors")


def digest(value: Any) -> str:
    """SHA-256 (first 16 hex digits) of ``value``'s canonical JSON: floats as Python writes them, exactly."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _regime(regime: dict[str, Any]) -> dict[str, Any]:
    out = {k: (f"{len(v)} rows, sha256 {digest(v)}" if k in PATHS else v) for k, v in regime.items()}
    if isinstance(regime.get("other"), dict):
        out["other"] = _regime(regime["other"])
    return out


def _fetched(fetched: dict[str, Any]) -> dict[str, Any]:
    """The fetch's output, its bars summed up: how many, the first and last open time (``bars_sha256`` is kept)."""
    bars = fetched.get("bars")
    if isinstance(bars, dict) and isinstance(bars.get("time"), list):  # columns (BarColumns): read the time column
        micro = bars.get("microsecond") or [0] * len(bars["time"])
        times = [_iso(s, us) for s, us in zip(bars["time"], micro, strict=True)]
        first, last = (times[0], times[-1]) if times else (None, None)
        return {**fetched, "bars": {"count": len(times), "first": first, "last": last}}
    if not isinstance(bars, list):
        return fetched  # bars carried some other way: compared as they are (adapt this to read them, if so)
    first, last = (bars[0].get("time"), bars[-1].get("time")) if bars else (None, None)
    return {**fetched, "bars": {"count": len(bars), "first": first, "last": last}}


def _iso(seconds: int, microsecond: int) -> str:
    """A bar's open time from its column, written as the bar objects wrote it (pydantic's JSON: ``...Z``)."""
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=microsecond)
    return str(TypeAdapter(datetime).dump_python(when, mode="json"))


def step_record(cycle: Cycle, step: Step) -> Record:
    """One asset's iteration: each state's output as the next state received it (ids of stored rows left out)."""
    out = dict(step.outputs)
    if "fetched" in out:
        out["fetched"] = _fetched(out["fetched"])
    if "regime" in out:
        out["regime"] = _regime(out["regime"])
    for name in ("recorded", "order_failure_recorded"):
        if name in out:
            out[name] = {k: v for k, v in out[name].items() if k != "id"}  # the row's id: rows.EXCLUDED
    if "execution" in out:
        out["execution"] = {k: v for k, v in out["execution"].items() if k != "decision_id"}
    return {"key": f"step {cycle.cycle_id} {step.asset}", "data": plain(out)}


def walk_records(steps: list[tuple[Cycle, Step]], database_url: str) -> list[Record]:
    """Every record of a walk that ran on ``database_url``: the steps in order, then the rows table by table."""
    records = [step_record(cycle, step) for cycle, step in steps]
    records += [{"key": f"{table} {key}", "data": row} for table, key, row in stored_rows(database_url)]
    records.append({"key": "tables", "data": table_counts(database_url)})
    return records
