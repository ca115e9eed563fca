"""The decision cycle's Lambda handlers, timed one invocation at a time offline: writes their p50 durations and log
bytes to layers/core/ffe/cost/durations.json (the commit it measured, the date), which ``ffe cost`` prices.

OFFLINE MEASUREMENTS: the real handlers run in-process against moto, the embedded PostgreSQL, the replay provider and
the local inference server (RL voter; the LLM voter is not reached offline), warm, on this machine; ``--write``
rewrites the data file, without it the bench only prints. A deployed
function adds the Lambda runtime's overhead, network round trips (RDS Proxy, DynamoDB, the endpoint) and a live
provider's latency. Prints each function's p50 beside the whole cycle's wall time per asset measured in the same run
(the reference) and the ratio; asserts nothing. Usage: .venv/bin/python bench/bench_durations.py [--write] [cycles]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ffe.local.aws import LocalCloud
from ffe.local.postgres import EmbeddedPostgres
from ffe.local.runner import DEFAULT_AS_OF, LocalState, run_cycle
from ffe.local.template import project_root

ROOT = project_root()
OUT = ROOT / "layers/core/ffe/cost/durations.json"
WRITE = "--write" in sys.argv[1:]
_numbers = [a for a in sys.argv[1:] if a.isdigit()]
CYCLES = int(_numbers[0]) if _numbers else 7
ASSETS = ["BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"]

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
            t0 = time.perf_counter()
            result = invoke(fn, event)
            durations[code].append((time.perf_counter() - t0) * 1000)
            log_bytes[code].append(len(result[2].encode()))
            return result

        cloud.lambdas.invoke = timed  # type: ignore[method-assign]
        cycle_ms = []
        for i in range(CYCLES + 1):
            t0 = time.perf_counter()
            cycle = cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", DEFAULT_AS_OF))
            cycle["cycle_id"] = f"bench-durations-{i}"
            cloud.wait(cloud.start_execution(cycle))
            if i == 0:  # the first cycle warms each handler's module: dropped
                durations.clear()
                log_bytes.clear()
                continue
            cycle_ms.append((time.perf_counter() - t0) * 1000 / len(cycle["assets"]))
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
commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout
print(f"decision-cycle handlers, offline, warm, {CYCLES} cycles x {len(ASSETS)} assets (1h), medians")
print(f"  reference: whole cycle per asset (moto state machine, all handlers)  {reference:8.1f} ms")
table: dict[str, dict[str, Any]] = {}
for code in sorted(durations):
    p50 = statistics.median(durations[code])
    table[code] = {
        "p50_ms": round(p50, 2),
        "log_bytes_p50": int(statistics.median(log_bytes[code])),
        "invocations": len(durations[code]),
    }
    print(
        f"  {code:<18} p50 {p50:8.2f} ms   ratio to reference {p50 / reference:5.2f}   "
        f"log {table[code]['log_bytes_p50']} B"
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
            "assets": ASSETS,
            "cycle_ms_per_asset_p50": round(reference, 2),
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
