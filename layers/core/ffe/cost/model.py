"""A stage's monthly cost, per component: quantities from the template (``template_facts``), the measured handler
durations (``durations.json``, bench/bench_durations.py) and the stated assumptions (``assumptions``), times the
price table (``prices``). Pure arithmetic; the month is AWS's 730 hours. Free tiers are not subtracted.

A cycle of at most ``INLINE_MAX_ASSETS`` assets is priced on the inline Map (the default universe, one iteration
per asset); a larger one on the Distributed Map (a universe file: one child execution per ItemBatcher batch), as
"Open the cycle" chooses (ffe/steps/record.py ``_open``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffe.cost.assumptions import ASSUMED
from ffe.cost.prices import (
    EXPRESS_DURATION_STEP_MS,
    EXPRESS_FIRST_TIER_GB_SECONDS,
    EXPRESS_MEMORY_CHUNK_MB,
    SFN_TRANSITIONS_PAGE,
    Price,
    price,
)
from ffe.cost.template_facts import DAYS_PER_MONTH, HOURS_PER_MONTH, TIMEFRAMES, DistributedPath, StageFacts

DURATIONS = Path(__file__).with_name("durations.json")
GB = 1024**3
PROXY_MIN_ACU = 8  # RDS Proxy bills a Serverless v2 target at 8 ACUs at least (prices.py, proxy.acu_hour)
CYCLE_WINDOW_S = {"15m": 900.0, "1h": 3600.0, "1d": 86400.0}  # the time a cycle's decisions must fit in
BATCH = ".batch"  # durations.json's key suffix for a function's invocation on a whole batch (record_decision.batch)
# S3 requests of a distributed cycle besides the ResultWriter's result files: "Open the cycle" PUTs the universe
# snapshot (CycleFiles.write_snapshot), the Map's ItemReader GETs it, the ResultWriter PUTs its manifest and
# "Close the distributed cycle" GETs it back with each result file (CycleFiles.read_results)
SNAPSHOT_AND_MANIFEST_PUTS = 2
SNAPSHOT_AND_MANIFEST_GETS = 2
UNIVERSE_FILE_GETS = 1  # every scheduled cycle names no assets: Open reads the universe file (UniverseStore.read)


@dataclass(frozen=True)
class Line:
    component: str
    quantity: float
    unit: str
    price: Price
    note: str = ""

    @property
    def monthly(self) -> float:
        return self.quantity * self.price.usd


@dataclass(frozen=True)
class Estimate:
    stage: str
    assets: int
    cadence: tuple[str, ...]
    llm: bool
    cycles: float  # a month's
    lines: tuple[Line, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> float:
        return sum(line.monthly for line in self.lines)

    def document(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "assets": self.assets,
            "cadence": list(self.cadence),
            "llm": self.llm,
            "cycles_per_month": self.cycles,
            "currency": "USD",
            "lines": [
                {
                    "component": line.component,
                    "quantity": line.quantity,
                    "unit": line.unit,
                    "unit_price": line.price.usd,
                    "monthly": round(line.monthly, 2),
                    "price": {"key": line.price.key, "url": line.price.url, "read": line.price.read},
                    "note": line.note,
                }
                for line in self.lines
            ],
            "total": round(self.total, 2),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class _Month:
    """What one month of the stage does: the inputs every component's quantity derives from."""

    facts: StageFacts
    assets: int
    cadence: tuple[str, ...]
    llm: bool
    measured: dict[str, Any]
    notes: list[str]

    @property
    def cycles(self) -> float:
        return sum(self.facts.schedules[tf].runs_per_day for tf in self.cadence) * DAYS_PER_MONTH

    @property
    def decisions(self) -> float:
        return self.cycles * self.assets

    @property
    def live(self) -> bool:
        return self.facts.parameters.get("MarketDataProvider") == "live"

    @property
    def distributed(self) -> DistributedPath | None:
        """The Distributed Map branch when this many assets take it (more than INLINE_MAX_ASSETS), else None."""
        if self.assets > self.facts.inline_max_assets:
            return self.facts.distributed
        return None

    @property
    def batches(self) -> int:
        """Child executions per cycle: ItemBatcher batches of MaxItemsPerBatch (0 on the inline Map)."""
        d = self.distributed
        return math.ceil(self.assets / d.batch_size) if d else 0

    def invocations(self) -> dict[str, float]:
        """Invocations a month per durations key (the handler folder; ``<folder>.batch`` for a batch path's
        invocation measured apart): the cycle's own, each asset's or each batch's, the daily schedules'."""
        d = self.distributed
        paths = (
            [
                (d.cycle_path.invocations, self.cycles),
                (tuple(self.batch_key(c) for c in d.batch_path.invocations), self.cycles * self.batches),
            ]
            if d
            else [(self.facts.cycle_path.invocations, self.cycles), (self.facts.asset_path.invocations, self.decisions)]
        )
        out: dict[str, float] = {}
        for codes, count in (*paths, (self.facts.daily_functions, DAYS_PER_MONTH)):
            for code in codes:
                out[code] = out.get(code, 0) + count
        return out

    def batch_key(self, code: str) -> str:
        """The durations key of ``code`` invoked on a batch: ``<code>.batch`` when the bench measured it apart."""
        return code + BATCH if code + BATCH in self.measured["functions"] else code

    def milliseconds(self, key: str) -> float:
        """One invocation's billed wall time: its offline p50 (the daily functions: assumed), plus the LLM voter's
        wait where the function waits on the endpoint (per asset: InferDecision; per batch: DecideBatch)."""
        measured = self.measured["functions"]
        if key in measured:
            ms = float(measured[key]["p50_ms"])
        elif key in self.facts.daily_functions:
            ms = ASSUMED["daily_function_ms"].value
        else:
            raise KeyError(f"{key}: no offline duration in {DURATIONS.name} (run bench/bench_durations.py --write)")
        if self.llm and key in ("infer_decision", "decide_batch"):
            # one request per batch; the endpoint's LLM voter votes its instances in turn (gpu_inference/predictor.py
            # _llm_votes), so DecideBatch waits the LLM's seconds of every asset in its batch
            per_call = self.assets / self.batches if key == "decide_batch" else 1
            ms += ASSUMED["llm_seconds"].value * 1000 * per_call
        return ms


def durations(path: Path = DURATIONS) -> dict[str, Any]:
    measured: dict[str, Any] = json.loads(path.read_text())
    return measured


def estimate(
    facts: StageFacts,
    assets: int,
    cadence: tuple[str, ...] | None = None,
    llm: bool | None = None,
    measured: dict[str, Any] | None = None,
) -> Estimate:
    """The month of ``facts``' stage deciding ``assets`` assets on the ``cadence`` rules (default: those it enables)."""
    if assets < 1:
        raise ValueError(f"--assets {assets}: at least 1")
    if cadence is None:
        cadence = tuple(tf for tf in TIMEFRAMES if tf in facts.schedules and facts.schedules[tf].enabled)
    month = _Month(
        facts, assets, cadence, facts.llm_default if llm is None else llm, measured or durations(), list(facts.notes)
    )
    if not cadence:
        month.notes.append(
            "the stage's decision-cycle schedules are disabled (SchedulesEnabled): no scheduled cycles; "
            "pass --cadence to price one"
        )
    d = month.distributed
    month.notes.insert(
        0,
        f"a universe file: Distributed Map, batches of {d.batch_size}, {d.execution_type.title()} children "
        f"({month.batches:,} per cycle)"
        if d
        else "the default universe, inline Map",
    )
    if facts.distributed is None and assets > facts.inline_max_assets:
        month.notes.append(f"the ASL has no Distributed Map: {assets:,} assets priced on the inline Map")
    lines = [
        *_workflow(month),
        *_express(month),
        *_lambda(month),
        *_endpoint(month),
        *_database(month),
        *_network(month),
        *_queues_and_tables(month),
        *_monitoring(month),
        *_storage_and_keys(month),
    ]
    month.notes.append(
        "assumed (ffe/cost/assumptions.py): "
        + ", ".join(f"{key}={a.value:g} {a.unit}" for key, a in sorted(ASSUMED.items()))
    )
    month.notes.append(
        f"durations: offline p50s of commit {month.measured['commit'][:10]} ({month.measured['measured']})"
    )
    return Estimate(facts.stage, assets, cadence, month.llm, month.cycles, tuple(lines), tuple(month.notes))


def _workflow(m: _Month) -> list[Line]:
    f, d = m.facts, m.distributed
    if f.workflow_type != "STANDARD":
        return [Line("Step Functions requests (Express)", m.cycles, "requests", price("sfn.express.request"))]
    if d:  # AWS bills one transition per child execution the Map starts (SFN_TRANSITIONS_PAGE)
        child = d.batch_path.transitions if d.execution_type == "STANDARD" else 0
        transitions = m.cycles * (d.cycle_path.transitions + m.batches * (1 + child))
        inside = f" + {child} inside" if child else ""
        note = f"{d.cycle_path.transitions}/cycle + 1/batch of {d.batch_size}{inside} (the child's start)"
        m.notes.append(f"a Distributed Map's transition per child execution: {SFN_TRANSITIONS_PAGE}")
    else:
        transitions = m.cycles * (f.cycle_path.transitions + m.assets * f.asset_path.transitions)
        note = f"{f.cycle_path.transitions}/cycle + {f.asset_path.transitions}/asset (ASL happy path)"
    return [
        Line(
            "Step Functions transitions (Standard)", transitions, "transitions", price("sfn.standard.transition"), note
        )
    ]


def _express(m: _Month) -> list[Line]:
    """A distributed cycle's Express children: one request each and their duration (DecideBatch + RecordDecision
    back to back, the LLM wait included) at the billed memory, rounded up to 100 ms."""
    d = m.distributed
    if d is None or d.execution_type != "EXPRESS":
        return []
    children = m.cycles * m.batches
    ms = sum(m.milliseconds(m.batch_key(code)) for code in d.batch_path.invocations)
    billed_s = math.ceil(ms / EXPRESS_DURATION_STEP_MS) * EXPRESS_DURATION_STEP_MS / 1000
    memory_mb = math.ceil(ASSUMED["express_memory_mb"].value / EXPRESS_MEMORY_CHUNK_MB) * EXPRESS_MEMORY_CHUNK_MB
    gb_seconds = children * memory_mb / 1024 * billed_s
    if gb_seconds > EXPRESS_FIRST_TIER_GB_SECONDS:
        m.notes.append("Express duration past its first price tier (1,000 GB-hours): priced at the first tier's")
    return [
        Line(
            "Step Functions requests (Express)",
            children,
            "requests",
            price("sfn.express.request"),
            f"1 child execution/batch of {d.batch_size}",
        ),
        Line(
            "Step Functions duration (Express)",
            gb_seconds,
            "GB-seconds",
            price("sfn.express.gb_second"),
            f"{memory_mb} MB x {billed_s:g} s/child",
        ),
    ]


def _lambda(m: _Month) -> list[Line]:
    invocations = m.invocations()
    gb_seconds = 0.0
    for key, count in invocations.items():
        memory_mb = m.facts.functions[key.removesuffix(BATCH)].memory_mb
        gb_seconds += count * memory_mb / 1024 * math.ceil(m.milliseconds(key)) / 1000  # billed per ms
    arch = next(iter({f.architecture for f in m.facts.functions.values()}))
    d = m.distributed
    per = (
        f"{len(d.batch_path.invocations)}/batch + {len(d.cycle_path.invocations)}/cycle"
        if d
        else f"{len(m.facts.asset_path.invocations)}/asset + {len(m.facts.cycle_path.invocations)}/cycle"
    )
    wait = " + LLM wait" if m.llm else ""
    return [
        Line("Lambda requests", sum(invocations.values()), "requests", price("lambda.request"), per),
        Line(
            "Lambda duration",
            gb_seconds,
            "GB-seconds",
            price(f"lambda.gb_second.{arch}"),
            f"memory x offline p50{wait}",
        ),
    ]


def _endpoint(m: _Month) -> list[Line]:
    f = m.facts
    instance = price(f"sagemaker.{f.instance_type}")
    component = f"SageMaker endpoint ({f.instance_type})"
    if f.endpoint_source == "none":
        floor = f.instance_min * HOURS_PER_MONTH * instance.usd
        m.notes.append(
            f"no endpoint in this stage's samconfig (InferenceEndpointSource=none); one at the template's floor "
            f"({f.instance_min} x {f.instance_type}) would add {floor:,.2f} a month"
        )
        return [Line(component, 0, "instance-hours", instance, "InferenceEndpointSource=none")]
    window = min(CYCLE_WINDOW_S[tf] for tf in m.cadence) if m.cadence else CYCLE_WINDOW_S["15m"]
    seconds = m.assets * (ASSUMED["llm_seconds"].value if m.llm else 0.0)
    needed = max(f.instance_min, math.ceil(seconds / window))
    running = min(needed, f.instance_max)  # target tracking holds what a continuous load needs, up to the max
    if needed > f.instance_max:
        m.notes.append(
            f"the LLM voter needs about {needed} instances to decide {m.assets:,} assets within {window:.0f} s; "
            f"the stage scales to {f.instance_max}"
        )
    scale = "scheduled scale-down" if f.scheduled_scale_down else "no scheduled scale-down"
    requests = f"1 request/batch ({m.batches:,}/cycle)" if m.distributed else "1 request/asset"
    note = f"{running} all month, {scale}; {requests}"
    return [Line(component, running * HOURS_PER_MONTH, "instance-hours", instance, note)]


def _database(m: _Month) -> list[Line]:
    f = m.facts
    if not f.database:
        return []
    kept = m.decisions / DAYS_PER_MONTH * (f.retention_days + 31)
    lines = [
        Line(
            "Aurora Serverless v2 capacity",
            f.aurora_instances * f.aurora_min_acu * HOURS_PER_MONTH,
            "ACU-hours",
            price("aurora.acu_hour"),
            f"{f.aurora_instances} x {f.aurora_min_acu:g}-ACU floor (max {f.aurora_max_acu:g})",
        ),
        Line(
            "Aurora storage",
            kept * ASSUMED["decision_row_bytes"].value / GB,
            "GB-months",
            price("aurora.storage"),
            f"{f.retention_days}+31 days of decisions",
        ),
        Line("Aurora I/O", m.decisions * ASSUMED["io_per_decision"].value, "I/Os", price("aurora.io")),
    ]
    if f.proxy:
        proxy_acu = max(PROXY_MIN_ACU, f.aurora_instances * f.aurora_min_acu)
        lines.append(
            Line(
                "RDS Proxy",
                proxy_acu * HOURS_PER_MONTH,
                "ACU-hours",
                price("proxy.acu_hour"),
                f"{PROXY_MIN_ACU}-ACU minimum",
            )
        )
    return lines


def _network(m: _Month) -> list[Line]:
    f = m.facts
    fetch_gb = m.decisions * ASSUMED["fetch_bytes"].value / GB if m.live else 0.0
    inference_gb = m.decisions * ASSUMED["inference_bytes"].value / GB if f.endpoint_source != "none" else 0.0
    private = "sagemaker.runtime" in f.interface_endpoints
    lines = []
    if f.nat_gateways:
        lines += [
            Line(
                "NAT gateway hours",
                f.nat_gateways * HOURS_PER_MONTH,
                "gateway-hours",
                price("nat.hour"),
                f"{f.nat_gateways} gateway(s)",
            ),
            Line(
                "NAT data processed",
                fetch_gb + (0 if private else inference_gb),
                "GB",
                price("nat.gb"),
                "live bars" + ("" if private else " + endpoint calls"),
            ),
        ]
    if f.interface_endpoints:
        hours = len(f.interface_endpoints) * f.endpoint_azs * HOURS_PER_MONTH
        lines += [
            Line(
                "Interface VPC endpoints",
                hours,
                "AZ-hours",
                price("endpoint.az_hour"),
                f"{len(f.interface_endpoints)} x {f.endpoint_azs} AZs",
            ),
            Line("Interface endpoint data", inference_gb if private else 0.0, "GB", price("endpoint.gb")),
        ]
    return lines


def _queues_and_tables(m: _Month) -> list[Line]:
    fetches = m.decisions if m.live else 0.0
    return [
        Line(
            "DynamoDB reads",
            fetches * ASSUMED["dynamodb_reads_per_fetch"].value,
            "RRU",
            price("dynamodb.rru"),
            "live fetches" if m.live else "replay provider",
        ),
        Line("DynamoDB writes", fetches * ASSUMED["dynamodb_writes_per_fetch"].value, "WRU", price("dynamodb.wru")),
        Line("SQS requests", 0, "requests", price("sqs.request"), f"{m.facts.queues} queues, failures only"),
    ]


def _monitoring(m: _Month) -> list[Line]:
    f = m.facts
    measured = m.measured["functions"]
    log_bytes = sum(count * measured[c]["log_bytes_p50"] for c, count in m.invocations().items() if c in measured)
    if f.flow_logs:
        log_bytes += m.decisions * ASSUMED["flow_log_bytes"].value
    ingest_gb = log_bytes / GB
    flow = " + flow logs" if f.flow_logs else ""
    return [
        Line(
            "CloudWatch custom metrics",
            m.measured["custom_metric_series"],
            "metrics",
            price("cloudwatch.metric"),
            "series seen offline",
        ),
        Line("CloudWatch alarms", f.alarms, "alarms", price("cloudwatch.alarm")),
        Line("CloudWatch dashboards", f.dashboards, "dashboards", price("cloudwatch.dashboard")),
        Line("Logs ingested", ingest_gb, "GB", price("logs.ingest"), f"offline log bytes{flow}"),
        Line(
            "Logs stored",
            ingest_gb * f.log_retention_days / DAYS_PER_MONTH,
            "GB-months",
            price("logs.storage"),
            f"{f.log_retention_days} days, uncompressed",
        ),
        Line("X-Ray traces", m.cycles, "traces", price("xray.trace"), "one per execution"),
    ]


def _storage_and_keys(m: _Month) -> list[Line]:
    f = m.facts
    lines = []
    if f.archive:
        lines.append(
            Line(
                "S3 archive storage",
                m.decisions * ASSUMED["decision_row_bytes"].value / GB,
                "GB-months",
                price("s3.storage"),
                "a month's export (accumulates)",
            )
        )
    bucket = f.parameters.get("ModelSource") == "bucket"
    gets = UNIVERSE_FILE_GETS + (ASSUMED["s3_gets_per_cycle"].value if bucket else 0.0)
    what = ["universe file"] + ["model bundle"] * bucket
    puts = 0.0
    if m.distributed:
        files = ASSUMED["result_files_per_cycle"].value if m.distributed.result_writer else 0.0
        puts = SNAPSHOT_AND_MANIFEST_PUTS + files
        gets += SNAPSHOT_AND_MANIFEST_GETS + files
        what.append("snapshot, Map Run results")
    lines.append(Line("S3 GET requests", m.cycles * gets, "GET", price("s3.get"), f"{gets:g}/cycle: {', '.join(what)}"))
    if m.distributed:
        lines.append(
            Line(
                "S3 PUT requests",
                m.cycles * puts,
                "PUT",
                price("s3.put"),
                f"{puts:g}/cycle: snapshot, Map Run manifest + results",
            )
        )
    if f.kms_keys:
        lines.append(Line("KMS keys", f.kms_keys, "keys", price("kms.key"), "requests not modelled"))
    lines += [
        Line(
            "Secrets Manager secrets",
            f.stack_secrets,
            "secrets",
            price("secrets.secret"),
            "the database stack's",
        ),
        Line(
            "Secrets Manager calls", m.cycles * ASSUMED["secret_calls_per_cycle"].value, "calls", price("secrets.call")
        ),
    ]
    return lines
