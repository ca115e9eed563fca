"""A synthetic universe for offline runs at scale: ``n`` crypto symbols (SYN0000, SYN0001, ...) as a universe file,
and their hourly bars as a scenario file (a seeded random walk per asset: the same bytes on every machine).

What tests/e2e/test_distributed_cycle.py and bench/bench_scaling.py run through the Distributed Map. The assets are
labelled synthetic by their names only: the scenario provider serves them as a user's own bars would be.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Collection
from datetime import datetime, timedelta


def symbol(i: int) -> str:
    return f"SYN{i:04d}"


def universe_csv(n: int, disabled: Collection[str] = ()) -> bytes:
    """A universe file of ``n`` crypto assets, then each of ``disabled`` as a disabled row."""
    rows = ["asset,class,enabled", *(f"{symbol(i)},crypto,true" for i in range(n))]
    rows += [f"{asset},crypto,false" for asset in disabled]
    return ("\n".join(rows) + "\n").encode()


def scenario_csv(n: int, as_of: datetime, bars: int = 130, without: Collection[str] = ()) -> bytes:
    """Each asset's last ``bars`` hourly bars closed by ``as_of`` (none for the assets in ``without``)."""
    out = io.StringIO()
    out.write("asset,timeframe,time,open,high,low,close,volume\n")
    last_open = as_of.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    first = last_open - timedelta(hours=bars - 1)
    for i in range(n):
        if symbol(i) in without:
            continue
        rng = random.Random(i)  # noqa: S311 - market data, not a secret
        price = 10.0 + i % 90
        drift = (i % 7 - 3) * 0.002
        for k in range(bars):
            opened = price
            price = opened * math.exp(drift + rng.gauss(0.0, 0.01))
            high, low = max(opened, price) * 1.002, min(opened, price) * 0.998
            when = (first + timedelta(hours=k)).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(f"{symbol(i)},1h,{when},{opened:.6f},{high:.6f},{low:.6f},{price:.6f},1000\n")
    return out.getvalue().encode()
