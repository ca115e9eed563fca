"""The decision cycle's Lambda handlers, timed one invocation at a time offline: writes their p50 durations and log
bytes to layers/core/ffe/cost/durations.json (the commit it measured, the date), which ``ffe cost`` prices.

Two paths, as ``ffe cost`` prices them: the inline Map (the default universe, 4 assets, one invocation per asset and
step) and the Distributed Map (a universe file of 20 synthetic crypto assets, ffe.local.synthetic_universe, served
from a scenario: one full batch a cycle, so that no two children share this machine's cores and GIL, as deployed
children never share a Lambda; the offline Map runs up to MaxConcurrency children on threads). A function invoked
on a whole batch is recorded apart: ``decide_batch`` and ``record_decision.batch`` (RecordDecision storing a
batch), beside the per-asset ``record_decision``.

OFFLINE MEASUREMENTS: the real handlers run in-process against moto, the embedded PostgreSQL, the replay provider and
the local inference server (RL voter; the LLM voter is not reached offline), warm, on this machine; ``--write``
rewrites the data file, without it the bench only prints. A deployed
function adds the Lambda runtime's overhead, network round trips (RDS Proxy, DynamoDB, the endpoint) and a live
provider's latency. Prints each function's p50 beside the whole cycle's wall time per asset measured in the same run
(the reference) and the ratio; asserts nothing. Usage: .venv/bin/python bench/bench_durations.py [--write] [cycles]
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ffe.adapters.scenario import parse_scenario
from ffe.contracts import MAX_BATCH_ASSETS
from ffe.local.aws import LocalCloud
from ffe.local.postgres import EmbeddedPostgres
from ffe.local.runner import DEFAULT_AS_OF, LocalState, run_cycle
from ffe.local.synthetic_universe import scenario_csv, universe_csv
from ffe.local.template import project_root
from ffe.universe_file import parse_universe

ROOT = project_root()
OUT = ROOT / "layers/core/ffe/cost/durations.json"
WRITE = "--write" in sys.argv[1:]
_numbers = [a for a in sys.argv[1:] if a.isdigit()]
CYCLES = int(_numbers[0]) if _numbers else 7
DISTRIBUTED_CYCLES = 9  # one batch each: 9 invocations of each batch function after the warm-up cycle
UNIVERSE = MAX_BATCH_ASSETS  # synthetic crypto assets in the universe file (a file always runs distributed)
UNIVERSE_AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)  # a minute after the scenario's last 1h bar closed

durations: dict[str, list[float]] = defaultdict(list)
log_bytes: dict[str, list[int]] = defaultdict(list)

with tempfile.TemporaryDirectory() as tmp:
    state = LocalState(Path(tmp) / "state")
    run_cycle(state)  # initdb, migrations: outside the measurement
    emf = Path(tmp) / "emf.jsonl"
    with EmbeddedPostgres(state.pgdata) as pg, LocalCloud(ROOT, pg.url, emf_file=emf) as cloud:
        invoke = cloud.lambdas.invoke

        def timed(fn: Any, event: Any) -> tuple[str, bool, str]:
            code = cloud.lambdas.functions[fn.function_name].code_dir.name
            body = json.loads(event or "{}") if isinstance(event, str) else event
            if isinstance(body, dict) and body.get("kind") == "batch":
                code += ".batch"  # RecordDecision storing a Distributed Map batch
            t0 = time.perf_counter()
            result = invoke(fn, event)
            durations[code].append((time.perf_counter() - t0) * 1000)
            log_bytes[code].append(len(result[2].encode()))
            return result

        cloud.lambdas.invoke = timed  # type: ignore[method-assign]
        assets = json.loads(cloud.function_environment("record-decision")["DEFAULT_ASSETS"])
        cycle_ms = []
        for i in range(CYCLES + 1):
            t0 = time.perf_counter()
            cycle = cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", DEFAULT_AS_OF))
            cycle["cycle_id"] = f"bench-durations-{i}"
            desc = cloud.wait(cloud.start_execution(cycle))
            if desc["status"] != "SUCCEEDED":
                sys.exit(f"inline cycle {i}: {desc['status']} {desc.get('cause', '')}")
            if i == 0:  # the first cycle warms each handler's module: dropped
                durations.clear()
                log_bytes.clear()
                continue
            cycle_ms.append((time.perf_counter() - t0) * 1000 / len(assets))
        inline = {code: list(values) for code, values in durations.items()}
        inline_logs = {code: list(values) for code, values in log_bytes.items()}
        # the Distributed Map: the stage's universe file for 1h, its bars from a scenario (DecideBatch fetches them)
        cloud.put_universe("1h", parse_universe(universe_csv(UNIVERSE), "universe.csv"))
        cloud.serve_scenario(parse_scenario({"bars.csv": scenario_csv(UNIVERSE, UNIVERSE_AS_OF)}, name="bench").files)
        batch_ms = []
        for i in range(DISTRIBUTED_CYCLES + 1):
            durations.clear()
            log_bytes.clear()
            as_of = UNIVERSE_AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ")
            t0 = time.perf_counter()
            desc = cloud.wait(
                cloud.start_execution({"cycle_id": f"bench-distributed-{i}", "as_of": as_of, "timeframe": "1h"}),
                timeout_s=900,
            )
            if desc["status"] != "SUCCEEDED":
                sys.exit(f"distributed cycle {i}: {desc['status']} {desc.get('cause', '')}")
            if i == 0:  # warms DecideBatch and the batch record (the scenario's configuration made them cold)
                continue
            batch_ms.append((time.perf_counter() - t0) * 1000 / math.ceil(UNIVERSE / MAX_BATCH_ASSETS))
            for code in ("decide_batch", "record_decision.batch"):
                inline.setdefault(code, []).extend(durations[code])
                inline_logs.setdefault(code, []).extend(log_bytes[code])
        durations.clear()
        log_bytes.clear()
        durations.update(inline)
        log_bytes.update(inline_logs)
    series = set()  # (namespace, metric, dimension values): what CloudWatch bills as one custom metric each
    for line in emf.read_text().splitlines() if emf.exists() else ():
        document = json.loads(line)
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for dimensions in directive.get("Dimensions", []):
                values = tuple((d, str(document.get(d))) for d in dimensions)
                for metric in directive.get("Metrics", []):
                    series.add((directive.get("Namespace"), metric["Name"], values))
    state.reset()

reference = statistics.median(cycle_ms)
batch_reference = statistics.median(batch_ms)
commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout
print(f"decision-cycle handlers, offline, warm, {CYCLES} cycles x {len(assets)} assets (1h, inline Map), medians")
print(f"  reference: whole cycle per asset (moto state machine, all handlers)  {reference:8.1f} ms")
print(
    f"  {DISTRIBUTED_CYCLES} cycles x {UNIVERSE} assets (1h, Distributed Map, batches of {MAX_BATCH_ASSETS}): "
    f"reference for the batch functions: whole cycle per batch  {batch_reference:8.1f} ms"
)
table: dict[str, dict[str, Any]] = {}
for code in sorted(durations):
    p50 = statistics.median(durations[code])
    ref = batch_reference if code in ("decide_batch", "record_decision.batch") else reference
    table[code] = {
        "p50_ms": round(p50, 2),
        "log_bytes_p50": int(statistics.median(log_bytes[code])),
        "invocations": len(durations[code]),
    }
    print(
        f"  {code:<21} p50 {p50:8.2f} ms   ratio to reference {p50 / ref:5.2f}   log {table[code]['log_bytes_p50']} B"
    )
document = (
    json.dumps(
        {
            "what": "p50 wall time of each handler invocation, offline (bench/bench_durations.py): in-process against "
            "moto, embedded PostgreSQL, replay bars, the local inference server (RL voter only), warm; not a "
            "deployed Lambda's billed duration",
            "commit": commit.strip(),
            "measured": datetime.now(UTC).date().isoformat(),
            "cycles": CYCLES,
            "assets": assets,
            "cycle_ms_per_asset_p50": round(reference, 2),
            "distributed": {
                "cycles": DISTRIBUTED_CYCLES,
                "assets": UNIVERSE,
                "batch_assets": MAX_BATCH_ASSETS,
                "cycle_ms_per_batch_p50": round(batch_reference, 2),
                "what": "decide_batch and record_decision.batch: one invocation on a full batch of synthetic crypto "
                "assets (ffe.local.synthetic_universe) from a scenario",
            },
            "functions": table,
            "custom_metric_series": len(series),
        },
        indent=2,
    )
    + "\n"
)
print(f"  custom metric series emitted (namespace, name, dimension values): {len(series)}")
if WRITE:
    OUT.write_text(document)
    print(f"wrote {OUT.relative_to(ROOT)}")
