"""Write the example scenario files in this folder: ``.venv/bin/python examples/make_scenarios.py``.

The 5m BTCUSD bars are ffe's seeded synthetic series (``ffe.adapters.synthetic``), the same 120 bars in
each 5m file, only ``as_of`` differs. The daily BTCUSD and ETHUSD bars are the bundled real hourly history
(``layers/core/ffe/data/bars/SOURCES.md``) aggregated to UTC days.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ffe.adapters.replay import datasets, load_bars
from ffe.adapters.synthetic import synthetic_bars
from ffe.domain.models import Bar, Timeframe
from ffe.domain.resample import resample

HERE = Path(__file__).resolve().parent
BARS = 120  # LOOKBACK_BARS: what FetchMarketData asks for
FIVE_MINUTE_CLOSE = datetime(2020, 1, 15, 12, 0, tzinfo=UTC)  # the last 5m bar closes here
FIVE_MINUTE_AS_OF = {"stale": 51, "just-stale": 16, "fresh": 14}  # minutes after that close; the 5m limit is 15
DAILY_AS_OF = datetime(2019, 6, 15, 0, 5, tzinfo=UTC)  # five minutes after the 14 June bar closed


def row(asset: str, timeframe: Timeframe, bar: Bar) -> dict[str, object]:
    return {
        "asset": asset,
        "timeframe": str(timeframe),
        "time": bar.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **{name: round(getattr(bar, name), 2) for name in ("open", "high", "low", "close", "volume")},
    }


def write_json(path: Path, as_of: datetime, rows: list[dict[str, object]]) -> None:
    lines = ",\n".join(f"    {json.dumps(r)}" for r in rows)
    path.write_text(f'{{\n  "as_of": "{as_of.strftime("%Y-%m-%dT%H:%M:%SZ")}",\n  "bars": [\n{lines}\n  ]\n}}\n')


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    lines = [",".join(rows[0])] + [",".join(str(v) for v in r.values()) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    five = synthetic_bars("BTCUSD", Timeframe.M5, FIVE_MINUTE_CLOSE, BARS)
    rows = [row("BTCUSD", Timeframe.M5, bar) for bar in five]
    for name, minutes in FIVE_MINUTE_AS_OF.items():
        write_json(HERE / f"btcusd-5m-{name}.json", FIVE_MINUTE_CLOSE + timedelta(minutes=minutes), rows)
    (HERE / "daily").mkdir(exist_ok=True)
    for asset in ("BTCUSD", "ETHUSD"):
        hourly = [b for b in load_bars(datasets()[asset].file) if b.time < DAILY_AS_OF]
        daily = resample(hourly, Timeframe.D1, DAILY_AS_OF)[-BARS:]
        write_csv(HERE / "daily" / f"{asset}.csv", [row(asset, Timeframe.D1, bar) for bar in daily])


if __name__ == "__main__":
    main()
