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
}
