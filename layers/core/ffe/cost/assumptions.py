"""What the template cannot say and nothing offline measures: per-unit-of-work figures ``ffe cost`` assumes.

Each is a guess with its reason, printed in the estimate's notes; none is per resource (those come from the template,
``ffe.cost.template_facts``) and none is a duration the bench measures (``durations.json``). Change one here and the
estimate moves; tests/unit/cost pins the arithmetic, not these values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Assumption:
    value: float
    unit: str
    why: str


ASSUMED: dict[str, Assumption] = {
    "llm_seconds": Assumption(
        1.5,
        "s per decision",
        "the LLM voter's wait in InferDecision (llama3.2 3B q4 on one A10G, short answer); "
        "not measured offline, where the voter is unreachable",
    ),
    "daily_function_ms": Assumption(1000, "ms per run", "Preflight and RetainDecisions: not timed by the bench"),
    "fetch_bytes": Assumption(30_000, "bytes per live fetch", "a provider's JSON for the lookback window, via NAT"),
    "inference_bytes": Assumption(8_000, "bytes per decision", "InvokeEndpoint request and answer"),
    "flow_log_bytes": Assumption(2_000, "bytes per decision", "flow-log records of its connections (prod)"),
    "decision_row_bytes": Assumption(2_000, "bytes per decision", "a decision row with its reasons and indexes"),
    "io_per_decision": Assumption(10, "Aurora I/Os per decision", "the row, its index entries, the WAL"),
    "dynamodb_reads_per_fetch": Assumption(2, "RRU per live fetch", "the breaker's GetItem and the bar cache's Query"),
    "dynamodb_writes_per_fetch": Assumption(1, "WRU per live fetch", "new bars to the bar cache"),
    "secret_calls_per_cycle": Assumption(8, "GetSecretValue per cycle", "one per warm container the Map fans out to"),
    "s3_gets_per_cycle": Assumption(2, "GET per cycle", "the champion's model bundle, when ModelSource=bucket"),
    "express_memory_mb": Assumption(
        64,
        "MB per Express child execution",
        "the memory AWS bills a child workflow for: its definition and one batch's state (at most 256 KB), "
        "so one 64-MB chunk, the smallest; not observable offline",
    ),
    "result_files_per_cycle": Assumption(
        1,
        "ResultWriter result file per distributed cycle",
        "AWS writes the Map Run's results by status in files of up to 5 GB: a 10,000-asset cycle's child results "
        "are a few MB, so one SUCCEEDED_0.json on the happy path (a FAILED_0.json only when a child fails), "
        "beside the manifest; one PUT each",
    ),
}
