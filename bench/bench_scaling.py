"""Seconds per 1,000 assets as a universe grows: one cycle of a synthetic universe file (ffe.local.synthetic_universe)
through the real Distributed Map, offline, at each size; beside it, the inline Map's cycle of the four default
assets (replay bars) measured in the same run, per asset, as the reference.

OFFLINE MEASUREMENTS: the offline runtime runs every Lambda in-process, one invocation at a time (its invocations
share one lock), so the figures are the engine's own work per asset (fetch, staleness, regime, one endpoint request
per batch of 20, the risk gate, the batch's one transaction, the paper orders) plus moto's interpretation of the
ASL; a deployed stage runs up to 40 child executions at once (the Map's MaxConcurrency) and adds network round
trips. Prints figures and ratios; asserts nothing.

Usage: .venv/bin/python bench/bench_scaling.py [sizes, default 10 100 1000 10000]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from ffe.adapters.scenario import parse_scenario
from ffe.local.aws import LocalCloud
from ffe.local.postgres import EmbeddedPostgres
from ffe.local.runner import DEFAULT_AS_OF, LocalState, run_cycle
from ffe.local.synthetic_universe import scenario_csv, universe_csv
from ffe.local.template import project_root
from ffe.universe_file import parse_universe

ROOT = project_root()
SIZES = [int(a) for a in sys.argv[1:] if a.isdigit()] or [10, 100, 1000, 10000]
AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)


def decided(url: str, arn: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM decisions WHERE execution_id = %s", (arn,)).fetchone()
    return int(row[0]) if row else 0


with tempfile.TemporaryDirectory() as tmp:
    state = LocalState(Path(tmp) / "state")
    run_cycle(state)  # initdb, migrations: outside the measurement
    t0 = time.perf_counter()
    scenario = parse_scenario({"bars.csv": scenario_csv(max(SIZES), AS_OF)}, name="synthetic-universe")
    print(f"scenario of {max(SIZES)} assets x 130 bars parsed in {time.perf_counter() - t0:.1f} s (not counted)")
    with EmbeddedPostgres(state.pgdata) as pg, LocalCloud(ROOT, pg.url) as cloud:
        inline = []
        for i in range(3):  # the reference: the inline Map, the default universe (4 assets), replay bars
            cycle = cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", DEFAULT_AS_OF))
            cycle |= {"cycle_id": f"bench-inline-{i}", "assets": ["BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"]}
            t0 = time.perf_counter()
            cloud.wait(cloud.start_execution(cycle), timeout_s=600)
            inline.append((time.perf_counter() - t0) / 4)
        reference = statistics.median(inline)
        print(f"reference: inline Map, 4 assets: {reference * 1000:.0f} s per 1,000 assets (median of 3)\n")
        cloud.serve_scenario(scenario.files)
        # warm-up, not counted: DecideBatch's first invocation reads and checks the whole scenario (a user's
        # own bars, here every size's), once per container
        cloud.put_universe("1h", parse_universe(universe_csv(1), "universe.csv"))
        warm = {"cycle_id": "bench-scaling-warm", "as_of": AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ"), "timeframe": "1h"}
        cloud.wait(cloud.start_execution(warm), timeout_s=600)
        print(f"{'assets':>7} {'cycle s':>9} {'s per 1,000':>12} {'vs inline':>10} {'vs 10 assets':>13} {'decided':>8}")
        first = None
        for n in SIZES:
            cloud.put_universe("1h", parse_universe(universe_csv(n), "universe.csv"))
            cycle = {"cycle_id": f"bench-scaling-{n}", "as_of": AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ"), "timeframe": "1h"}
            t0 = time.perf_counter()
            arn = cloud.start_execution(cycle)
            desc = cloud.wait(arn, timeout_s=7200)
            seconds = time.perf_counter() - t0
            per_1000 = seconds / n * 1000
            first = first or per_1000
            print(
                f"{n:>7} {seconds:>9.1f} {per_1000:>12.1f} {per_1000 / (reference * 1000):>9.2f}x "
                f"{per_1000 / first:>12.2f}x {decided(pg.url, arn):>8}  {desc['status']}"
            )
