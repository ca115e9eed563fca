"""Disk growth per stage at the default cadence, from real row, payload and log sizes. Prints figures; asserts nothing.

How each size is measured:

- one real local decision cycle (``ffe.local``: the real state machine in moto, the in-process Lambdas, the
  local inference server, the embedded PostgreSQL) on the stage's default 1h universe;
- decisions: the cycle's real rows, copied 500 times over (new cycle ids) in their month partition, then
  ``pg_total_relation_size`` (heap, TOAST and the four indexes) over the row count; cycles likewise;
- failures: 500 real failure records (a fetch failure as the state machine builds it), through the store;
- data capture: the InvokeEndpoint request and response bodies of the cycle, base64-encoded (SageMaker's
  capture does that for JSON) plus a capture record's JSON envelope, measured on one record;
- logs: what the in-process Lambdas wrote per invocation (Powertools JSON logs and EMF lines), plus Lambda's own
  START/END/REPORT lines (about 350 bytes per invocation, not produced offline);
- models: one published version (``models/<version>/`` files plus ``endpoint/<version>/model.tar.gz``), counted per
  publication, not per day.

Cadence: the template's three schedules (15m, 1h, 1d; every timeframe runs the stage's whole universe), one
Preflight a day. Universe sizes per stage come from samconfig.toml (AssetUniverseJson), else the template's
default. Run: ``.venv/bin/python bench/disk_growth.py`` (about a minute; a throwaway state directory).
"""

from __future__ import annotations

import base64
import io
import json
import re
import tempfile
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from samtranslator.yaml_helper import yaml_parse

from ffe.adapters.decision_archive import GzipStream
from ffe.adapters.inference import SageMakerInference
from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import FailureRecord
from ffe.local import lambdas
from ffe.local.runner import LocalState, run_cycle
from ffe.local.template import project_root
from ffe.training.cli import model_tarball

ROOT = project_root()
COPIES = 500
LAMBDA_PLATFORM_LINES = 350  # START, END and REPORT lines per invocation (CloudWatch Logs, not offline)
STAGES = ("dev", "staging", "prod")


def per_day(cron: str) -> int:
    """Runs a day of an EventBridge ``cron(min hour * * ? *)`` expression (lists and ``*`` only)."""
    minutes, hours = cron.removeprefix("cron(").split()[:2]
    return len(minutes.split(",")) * (24 if hours == "*" else len(hours.split(",")))


def cadence() -> dict[str, int]:
    template = yaml_parse((ROOT / "template.yaml").read_text())
    runs = {}
    for name, resource in template["Resources"].items():
        found = re.fullmatch(r"DecisionCycle(\w+)Schedule", name)
        if found and resource["Type"] == "AWS::Events::Rule":
            runs[found.group(1)] = per_day(resource["Properties"]["ScheduleExpression"])
    return runs


def universes() -> dict[str, list[str]]:
    template = yaml_parse((ROOT / "template.yaml").read_text())
    default = json.loads(template["Parameters"]["AssetUniverseJson"]["Default"])
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    out = {}
    for stage in STAGES:
        overrides = config.get(stage, {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
        text = overrides if isinstance(overrides, str) else " ".join(overrides)
        found = re.search(r"AssetUniverseJson=(?:'|\")?(\[[^\]]*\])", text)
        out[stage] = json.loads(found.group(1).replace('\\"', '"')) if found else default
    return out


def schedules_enabled() -> dict[str, bool]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    out = {}
    for stage in STAGES:
        overrides = config.get(stage, {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
        text = overrides if isinstance(overrides, str) else " ".join(overrides)
        out[stage] = "SchedulesEnabled=false" not in text
    return out


def measure_cycle(state: LocalState, assets: list[str]) -> dict[str, Any]:
    """One real 1h cycle; the bodies sent to and from the endpoint and the logs each function wrote."""
    bodies: list[tuple[int, int]] = []
    logs: dict[str, list[int]] = defaultdict(list)
    real_infer, real_invoke = SageMakerInference.infer, lambdas.InProcessLambdas.invoke

    def infer(self: SageMakerInference, request: Any, trace_header: str | None = None) -> Any:
        response = real_infer(self, request, trace_header)
        bodies.append((len(request.model_dump_json().encode()), len(response.model_dump_json().encode())))
        return response

    def invoke(self: Any, fn: Any, event: Any) -> tuple[str, bool, str]:
        result, errored, text = real_invoke(self, fn, event)
        logs[fn.function_name].append(len(text.encode()))
        return result, errored, text

    SageMakerInference.infer, lambdas.InProcessLambdas.invoke = infer, invoke  # type: ignore[method-assign]
    try:
        report = run_cycle(state, assets=assets)
    finally:
        SageMakerInference.infer, lambdas.InProcessLambdas.invoke = real_infer, real_invoke  # type: ignore[method-assign]
    invocations = sum(len(v) for v in logs.values())
    return {
        "status": report.status,
        "decisions": len(report.decisions),
        "bodies": bodies,
        "log_bytes_per_asset": (sum(sum(v) for v in logs.values()) + invocations * LAMBDA_PLATFORM_LINES) / len(assets),
    }


def table_bytes_per_row(conn: psycopg.Connection, table: str, copy_sql: str) -> float:
    for n in range(COPIES):
        conn.execute(copy_sql, {"suffix": f"-copy{n}"})
    rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    conn.execute(f"VACUUM ANALYZE {table}")
    size = conn.execute(
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.oid = %s::regclass"
        " OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)",
        (table, table),
    ).fetchone()[0]  # type: ignore[index]
    return float(size) / rows


def measure_rows(url: str) -> dict[str, float]:
    columns = (
        "cycle_id, execution_id, stage, asset, timeframe, as_of, bar_time, action, confidence, size, stale, reason,"
        " reasons, data_age_seconds, staleness_threshold_seconds, model, model_version, regime, source, input_sha256"
    )
    store = PostgresDecisionStore(url, stage="bench")
    cause = json.dumps(
        {
            "errorType": "TransientError",
            "errorMessage": "coinbase: HTTP 503 from https://api.exchange.coinbase.com/products/BTC-USD/candles"
            " (provider=coinbase, asset=BTCUSD, timeframe=1h, status=503, request_id=1f0c2a7e-5d1b-4c3e)",
            "trace": ["Traceback (most recent call last):", '  File "/var/task/handler.py", line 41, in handler'],
        }
    )
    for n in range(COPIES):
        record = FailureRecord(
            cycle_id=f"bench-{n}",
            as_of="2026-06-01T12:01:00Z",
            timeframe="1h",
            asset="BTCUSD",
            execution_id=f"arn:aws:states:us-east-1:123456789012:execution:ffe-prod-decision-cycle:{n}",
            error="TransientError",
            cause=cause,
            item=0,
            step="fetch",
        )
        store.record_failure(record, "FetchMarketData failed: TransientError")
    store.database.close()
    with psycopg.connect(url, autocommit=True) as conn:
        archived = archived_bytes_per_row(conn)
        return {
            "decision": table_bytes_per_row(
                conn,
                "decisions",
                f"INSERT INTO decisions ({columns}) SELECT {columns.replace('cycle_id,', 'cycle_id || %(suffix)s,', 1)}"
                " FROM decisions WHERE cycle_id NOT LIKE '%%-copy%%'",
            ),
            "cycle": table_bytes_per_row(
                conn,
                "cycles",
                "INSERT INTO cycles (id, execution_arn, stage, timeframe, as_of, assets, status, started_at,"
                " finished_at) SELECT id || %(suffix)s, execution_arn, stage, timeframe, as_of, assets, status,"
                " started_at, finished_at FROM cycles WHERE id NOT LIKE '%%-copy%%'",
            ),
            "failure": table_bytes_per_row(conn, "failures", "SELECT %(suffix)s"),  # already 500 real rows
            "archived decision": archived,
        }


def archived_bytes_per_row(conn: psycopg.Connection) -> float:
    """What RetainDecisions' export (gzipped CSV of every column, header included) takes per decision, on the
    cycle's own rows only (copies would compress unrealistically well): an upper bound, gzip gains on more rows."""
    real = "FROM decisions WHERE cycle_id NOT LIKE '%-copy%'"
    rows = conn.execute(f"SELECT count(*) {real}").fetchone()[0]  # type: ignore[index]

    def chunks() -> Iterator[bytes]:
        with conn.cursor().copy(f"COPY (SELECT * {real}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            yield from (bytes(chunk) for chunk in copy)

    return len(io.BufferedReader(GzipStream(chunks())).read()) / rows


def capture_record_bytes(request: int, response: int) -> int:
    """One SageMaker data-capture JSON line for a request/response of these sizes (JSON bodies are base64)."""
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "application/json",
                "mode": "INPUT",
                "data": "",
                "encoding": "BASE64",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": "",
                "encoding": "BASE64",
            },
        },
        "eventMetadata": {"eventId": "5f8a7d0e-3c1b-4f6e-9a2d-7b1c0e4d2f9a", "inferenceTime": "2026-06-01T12:01:07Z"},
        "eventVersion": "0",
    }
    envelope = len(json.dumps(record).encode()) + 1  # one line each
    return envelope + len(base64.b64encode(b"x" * request)) + len(base64.b64encode(b"x" * response))


def model_bytes() -> int:
    champion = ROOT / "layers/core/ffe/data/models"
    with tempfile.TemporaryDirectory() as tmp:
        tarball = model_tarball(champion, Path(tmp) / "model.tar.gz")
        files = sum(f.stat().st_size for f in champion.iterdir() if f.is_file() and f.suffix in (".json", ".pt"))
        return files + tarball.stat().st_size


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    raise AssertionError


def main() -> None:
    runs = cadence()
    stages = universes()
    with tempfile.TemporaryDirectory() as tmp:
        state = LocalState(Path(tmp) / "state")
        cycle = measure_cycle(state, stages["dev"])
        with state.postgres() as pg:
            rows = measure_rows(pg.url)
        state.reset()
    request, response = (sum(b[i] for b in cycle["bodies"]) / max(len(cycle["bodies"]), 1) for i in (0, 1))
    capture = capture_record_bytes(int(request), int(response))
    per_decision_logs = cycle["log_bytes_per_asset"]
    model = model_bytes()
    cycles_a_day = sum(runs.values())
    print(
        f"measured: one real 1h cycle on {len(stages['dev'])} assets"
        f" ({cycle['status']}, {cycle['decisions']} decisions)"
    )
    print(
        f"  decision row {rows['decision']:.0f} B, cycle row {rows['cycle']:.0f} B, failure row {rows['failure']:.0f} B"
        f" (with TOAST and indexes), {rows['archived decision']:.0f} B archived (gzipped CSV);"
        f" capture record {capture} B (request {request:.0f} B, response {response:.0f} B);"
    )
    print(
        f"  logs {per_decision_logs:.0f} B per decided asset; a published model {human(model)};"
        f" cycles a day: {', '.join(f'{k} {v}' for k, v in runs.items())}"
    )
    print()
    template = yaml_parse((ROOT / "template.yaml").read_text())
    decision_days = int(template["Parameters"]["DecisionRetentionDays"]["Default"]) + 31  # whole months go
    capture_days = int(template["Parameters"]["DataCaptureRetentionDays"]["Default"])
    schedules_on = schedules_enabled()
    header = (
        "stage",
        "assets",
        "decisions/day",
        "database/day",
        "capture/day",
        "logs/day",
        f"database kept (≤{decision_days} d)",
        f"capture kept ({capture_days} d)",
        "logs kept",
        "failures/year",
        "archive/year",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for stage, assets in [*((s, len(stages[s])) for s in STAGES), ("prod, 50 assets", 50)]:
        name = stage.split(",")[0]
        log_days = int(template["Mappings"]["StageConfig"][name]["LogRetentionDays"])
        decisions = assets * cycles_a_day
        db = decisions * rows["decision"] + cycles_a_day * rows["cycle"]
        failures = decisions * 0.01 * rows["failure"]  # 1 % of assets failing: a pessimistic steady state
        cap = decisions * capture  # every decision counted as reaching the endpoint: an upper bound
        logs = decisions * per_decision_logs
        label = stage if schedules_on.get(name, True) else f"{stage} (schedules off: by hand only)"
        cells = (label, assets, decisions, human(db), human(cap), human(logs))
        kept = (human(db * decision_days), human(cap * capture_days), f"{human(logs * log_days)} ({log_days} d)")
        archive = decisions * rows["archived decision"]  # RetainDecisions' export, kept
        print(" | ".join(str(c) for c in (*cells, *kept, human(365 * failures), human(365 * archive))))
    print()
    print(f"models: {human(model)} per published version (plus MLflow's copy of the bundle per training run)")


if __name__ == "__main__":
    main()
