"""One full local decision cycle for 4 assets, split into set-up (Postgres, moto stack) and execution.

Prints figures; asserts nothing. Uses a throwaway state directory, so the first Postgres start
includes initdb; then re-runs the cycle on the warm deployment to show the steady state.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ffe.local.aws import LocalCloud
from ffe.local.postgres import EmbeddedPostgres
from ffe.local.runner import DEFAULT_AS_OF, LocalState, run_cycle
from ffe.local.template import project_root

with tempfile.TemporaryDirectory() as tmp:
    state = LocalState(Path(tmp) / "state")
    first = run_cycle(state)
    second = run_cycle(state)
    print("one full local cycle, 4 assets (BTCUSD, ETHUSD, EURUSD, GBPUSD), 1h, real state machine in moto")
    for label, r in (("first run (initdb)", first), ("second run", second)):
        setup = r.setup_postgres_s + r.setup_aws_s
        print(
            f"  {label:<19} set-up {setup:5.2f} s (Postgres {r.setup_postgres_s:.2f} s, moto stack "
            f"{r.setup_aws_s:.2f} s)  execution {r.execution_s:5.2f} s  {r.status}, {len(r.decisions)} decisions"
        )

    # Warm: the stack stays deployed and the handlers stay imported, as warm Lambda containers would.
    with EmbeddedPostgres(state.pgdata) as pg, LocalCloud(project_root(), pg.url) as cloud:
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            cycle = cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", DEFAULT_AS_OF))
            cloud.wait(cloud.start_execution(cycle))
            timings.append(time.perf_counter() - t0)
        print(f"  warm executions     {', '.join(f'{t:.2f}' for t in timings)} s (5 cycles on one deployment)")
    state.reset()
