"""DecideBatch decides each asset exactly as the five per-asset functions do: the same cycles run through the real
handlers, in process, each run on a fresh database of its own: once as the inline Map chains them (Fetch market
data -> Check staleness -> Hold on stale data | Detect regime -> Infer decision -> Gate risk; tests/golden/walk.py),
once with every cycle's assets as one batch through functions/decide_batch. Both record every record and place every
approved order the same way (RecordDecision, ExecuteOrder), so the next cycle's gate sees the same account.

Compared, exactly: each asset's record, and every stored row of the tables a cycle writes. Left out, as the golden
walk leaves them out (tests/golden/rows.py): what is measured on the wall clock (``fetch_started_at``,
``latency_ms``, the row timestamps). A failure's ``cause`` is compared by its message (``lambda_error_message``):
Lambda's own cause also carries a ``stackTrace``, the batch's record does not (the traceback goes to the log).

The inference endpoint is the container's own server on loopback (bundled champion, CPU, LLM off), as ``ffe run``
and the golden walk use it, run two ways for the batch: rolling each instance on its own (``rolled="alone"``: what
every inline request is, one instance per version) and as shipped (``rolled="batched"``: a version's instances as
one float32 batch, whose rows' last bits depend on the batch's size). Rolled alone, everything is equal. As shipped,
everything is equal but the RL voter's own floats (its blend weights, its confidence and what is derived from them in
the voters' records), which may differ in their last float32 bits (~1e-8 seen): they are held within 1e-5, the
predictor's own tolerance (gpu_inference tests), and the action, confidence, size and every stored column but those
must still be equal (docs/scaling.md#decidebatch).
"""

from __future__ import annotations

import importlib.util
import io
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from ffe import containers
from ffe.contracts import AssetRecord
from ffe.steps.record import lambda_error_message
from tests.conftest import ROOT
from tests.database import own_database
from tests.golden.rows import EXCLUDED_KEYS, stored_rows
from tests.golden.walk import STATE_MACHINE, Cycle, Handler, Walk, endpoint, environ, environment, invoke, load_handlers

H = timedelta(hours=1)
CRYPTO = ("BTCUSD", "ETHUSD", "GBPUSD")
# Every symbol of the built-in table at once (a batch of 9, 7 of them fresh), on a weekday in US trading hours.
EVERY = ("BTCUSD", "ETHUSD", "EURUSD", "GBPUSD", "USDJPY", "SPY", "AAPL", "MSFT", "SPX")
CYCLES = [
    Cycle("crypto", "1h", datetime(2019, 2, 9, 19, 1, tzinfo=UTC), CRYPTO),  # BTCUSD too few bars: HOLD
    *(Cycle("crypto", "1h", datetime(2019, 6, 12, 1, 1, tzinfo=UTC) + i * 4 * H, CRYPTO) for i in range(8)),
    Cycle("crypto", "1h", datetime(2019, 6, 17, 9, 1, tzinfo=UTC), CRYPTO),
    Cycle("crypto", "1h", datetime(2019, 6, 17, 9, 31, tzinfo=UTC), CRYPTO),  # the same bar: already_ordered
    Cycle("crypto", "15m", datetime(2019, 6, 17, 10, 1, tzinfo=UTC), ("BTCUSD",)),  # no 15m bars: HOLD
    *(Cycle("tight", "1h", datetime(2019, 7, 3, 0, 1, tzinfo=UTC) + i * 3 * H, ("BTCUSD", "ETHUSD")) for i in range(6)),
    Cycle("fx", "1h", datetime(2017, 3, 8, 0, 1, tzinfo=UTC), ("EURUSD", "XAUUSD")),  # XAUUSD: a fetch failure
    *(Cycle("equity", "1d", datetime(2018, 11, 5, 0, 1, tzinfo=UTC) + i * 24 * H, ("SPX", "EURUSD")) for i in range(3)),
    Cycle("wide", "1h", datetime(2019, 6, 12, 15, 1, tzinfo=UTC), EVERY),
    Cycle("wide", "1h", datetime(2019, 6, 13, 15, 1, tzinfo=UTC), EVERY),
]


def load_decide_batch() -> Handler:
    path = ROOT / "functions" / "decide_batch" / "handler.py"
    spec = importlib.util.spec_from_file_location("parity_functions.decide_batch", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = module.lambda_handler
    return handler


class BatchWalk(Walk):
    """The same cycles, each cycle's assets decided as one batch by DecideBatch, then recorded and ordered one by
    one as the inline walk records and orders them."""

    def __init__(self, handlers: dict[str, Handler], decide_batch: Handler) -> None:
        super().__init__(handlers)
        self.decide_batch = decide_batch
        self.records: dict[tuple[str, str], dict[str, Any]] = {}

    def cycle(self, cycle: Cycle) -> None:
        execution_id = f"{STATE_MACHINE}:{cycle.cycle_id}"
        as_of = cycle.as_of.isoformat().replace("+00:00", "Z")
        given = {"cycle_id": cycle.cycle_id, "as_of": as_of, "timeframe": cycle.timeframe, "assets": list(cycle.assets)}
        opened = self._task("record_decision", {"kind": "cycle_opened", "cycle": given, "execution_id": execution_id})
        event = {
            "Items": [{"asset": asset, "item": i} for i, asset in enumerate(cycle.assets)],
            "BatchInput": {
                "cycle_id": cycle.cycle_id,
                "as_of": as_of,
                "timeframe": cycle.timeframe,
                "execution_id": execution_id,
                "models": opened["models"],
            },
        }
        result = invoke(self.decide_batch, "decide_batch", event)
        outcomes = []
        for asset, record in zip(cycle.assets, result["records"], strict=True):
            self.records[(cycle.cycle_id, asset)] = record
            recorded = self._task("record_decision", record)
            if recorded["execute"]:
                self._task("execute_order", {**record, "recorded": recorded})
            outcomes.append({"asset": asset, "outcome": "recorded"})
        closing = {
            "kind": "cycle_closed",
            "cycle_id": cycle.cycle_id,
            "execution_id": execution_id,
            "status": "SUCCEEDED",
            "outcomes": outcomes,
            "timeframe": opened["timeframe"],
        }
        self._task("record_decision", closing)


def run(walk: Walk, database_url: str, url: str) -> Counter[str]:
    """``walk`` through ``CYCLES``; the metrics the functions emitted (their EMF documents on stdout), less those that
    time something and the per-state latency (five states inline, one for a batch)."""
    stage: str | None = None
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            for cycle in CYCLES:
                if cycle.stage != stage:
                    containers.reset()  # a new stage (or database): new settings, clients and connections
                    stage = cycle.stage
                with environ(environment(database_url, cycle.stage, url)):
                    walk.cycle(cycle)
    finally:
        containers.reset()
    documents = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith('{"_aws"')]
    timed = {"state_latency_ms", "decision_latency_ms", "llm_latency_ms", "experiment_latency_ms"}
    return Counter(
        json.dumps({k: v for k, v in doc.items() if k != "_aws"}, sort_keys=True)
        for doc in documents
        if not timed & doc.keys()
    )


@dataclass(frozen=True)
class Ran:
    walk: Walk
    database_url: str
    metrics: Counter[str]


def as_stored(record: dict[str, Any]) -> Any:
    """A record as RecordDecision reads it (a Pass state's output leaves the defaults out), without the wall clock."""
    return comparable(TypeAdapter(AssetRecord).validate_python(record).model_dump(mode="json"))


def comparable(value: Any) -> Any:
    """``value`` without what the wall clock measures; a failure's cause as its message."""
    if isinstance(value, dict):
        out = {k: comparable(v) for k, v in value.items() if k not in EXCLUDED_KEYS}
        if value.get("kind") == "failure" and isinstance(value.get("cause"), str):
            out["cause"] = lambda_error_message(value["cause"])
        return out
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def differences(a: Any, b: Any, at: str = "", close: bool = False) -> list[str]:
    """Where ``a`` and ``b`` differ: ``path: a != b`` per leaf; with ``close``, the RL voter's floats (under
    ``weights`` or ``voters``) may differ by 1e-5, everything else must be equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(a.keys() | b.keys())
        return [d for k in keys for d in differences(a.get(k), b.get(k), f"{at}.{k}", close)]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{at}[{i}]", close)]
    rl_float = isinstance(a, float) and isinstance(b, float) and (".weights." in at or ".voters[" in at)
    if close and rl_float and abs(a - b) <= 1e-5:
        return []
    return [] if a == b else [f"{at}: {a!r} != {b!r}"]


@contextmanager
def rolling_alone() -> Iterator[None]:
    """The endpoint's policy rolls each instance of a batch on its own (a batch of one each, as inline requests)."""
    from gpu_inference.predictor import Policy

    batched = Policy.rollout

    def alone(self: Policy, instances: list[Any]) -> Any:
        import numpy as np

        return np.concatenate([batched(self, [inst]) for inst in instances]) if instances else batched(self, [])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Policy, "rollout", alone)
        yield


@pytest.fixture(scope="module")
def inline(postgres: str) -> Ran:
    """The cycles through the five per-asset functions (every request one instance per version)."""
    url = own_database(postgres, "ffe_parity_inline")
    walk = Walk(load_handlers(ROOT))
    with endpoint() as endpoint_url:
        return Ran(walk, url, run(walk, url, endpoint_url))


@pytest.fixture(scope="module", params=["alone", "batched"])
def batched(request: pytest.FixtureRequest, postgres: str) -> Ran:
    """The same cycles, one batch per cycle through DecideBatch, the endpoint rolling as ``request.param`` says."""
    url = own_database(postgres, f"ffe_parity_batch_{request.param}")
    walk = BatchWalk(load_handlers(ROOT), load_decide_batch())
    with rolling_alone() if request.param == "alone" else nullcontext(), endpoint() as endpoint_url:
        return Ran(walk, url, run(walk, url, endpoint_url))


def rolled_in_one_batch(request: pytest.FixtureRequest) -> bool:
    """The endpoint as shipped: the RL voter's floats may differ in their last float32 bits (module docstring)."""
    return bool(request.node.callspec.params["batched"] == "batched")


def test_each_asset_gets_the_record_the_per_asset_functions_give(
    request: pytest.FixtureRequest, inline: Ran, batched: Ran
) -> None:
    close = rolled_in_one_batch(request)
    expected = {(cycle.cycle_id, step.asset): step.outputs["record"] for cycle, step in inline.walk.steps}
    assert isinstance(batched.walk, BatchWalk)
    got = batched.walk.records
    assert set(expected) == set(got)
    differ = [key for key, record in expected.items() if differences(as_stored(record), as_stored(got[key]), "", close)]
    assert not differ, f"{len(differ)} of {len(expected)} differ, e.g. {differ[:3]}: " + "; ".join(
        differences(as_stored(expected[differ[0]]), as_stored(got[differ[0]]), "", close)
    )


def test_every_stored_row_is_the_same(request: pytest.FixtureRequest, inline: Ran, batched: Ran) -> None:
    close = rolled_in_one_batch(request)
    expected, got = rows(inline.database_url), rows(batched.database_url)
    assert expected.keys() == got.keys()
    differ = [key for key in expected if differences(expected[key], got[key], "", close)]
    assert not differ, f"{len(differ)} rows differ, e.g. {differ[:3]}: " + "; ".join(
        differences(expected[differ[0]], got[differ[0]], "", close)
    )


def test_each_asset_emits_the_metrics_the_per_asset_functions_emit(inline: Ran, batched: Ran) -> None:
    assert sum(inline.metrics.values()) > 500
    missing, extra = inline.metrics - batched.metrics, batched.metrics - inline.metrics
    assert not missing and not extra, f"missing {list(missing)[:3]}, extra {list(extra)[:3]}"


def test_the_walk_covers_fresh_stale_blocked_and_failed_assets(batched: Ran) -> None:
    assert isinstance(batched.walk, BatchWalk)
    records = list(batched.walk.records.values())
    decisions = [r for r in records if r["kind"] == "decision"]
    assert {r["step"] for r in records if r["kind"] == "failure"} == {"fetch"}
    assert any(r["stale"] for r in decisions) and any(r.get("size") for r in decisions)
    assert any(r.get("risk") and not r["risk"]["approved"] for r in decisions)
    assert sum(1 for r in decisions if r["cycle_id"].startswith("golden-wide-") and not r["stale"]) >= 10


def rows(database_url: str) -> dict[tuple[str, str], Any]:
    """Every stored row by table and natural key; a failure's cause as its message (Lambda's adds a stackTrace)."""
    out = {}
    for table, key, row in stored_rows(database_url):
        row = comparable(row)
        if table == "failures":
            row["cause"] = (row.get("cause") or {}).get("errorMessage")
        out[(table, key)] = row
    return out
