"""manifest.json describes the bundled files exactly: rows, first and last bar, class, and a SOURCES.md row each."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from ffe.adapters.replay import DATA_PACKAGE, datasets, load_bars
from ffe.domain.models import AssetClass, Timeframe
from ffe.domain.performance import periods_per_year
from ffe.domain.universe import asset_class_of

MANIFEST = json.loads(resources.files(DATA_PACKAGE).joinpath("manifest.json").read_text())
SOURCES = resources.files(DATA_PACKAGE).joinpath("SOURCES.md").read_text()


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["symbol"] for e in MANIFEST])
def test_each_manifest_entry_is_its_file(entry: dict[str, object]) -> None:
    bars = load_bars(str(entry["file"]))
    assert len(bars) == entry["rows"]
    assert f"{bars[0].time:%Y-%m-%dT%H:%M:%SZ}" == entry["first"]
    assert f"{bars[-1].time:%Y-%m-%dT%H:%M:%SZ}" == entry["last"]
    assert entry["file"] == f"{entry['symbol']}_{entry['timeframe']}.csv.gz"
    assert asset_class_of(str(entry["symbol"])) == AssetClass(str(entry["asset_class"]))
    assert periods_per_year(AssetClass(str(entry["asset_class"])), Timeframe(str(entry["timeframe"]))) > 0
    assert entry["synthetic"] is False
    row = f"| `{entry['file']}` | {entry['symbol']} | {entry['timeframe']} | {entry['rows']} | {entry['first']} |"
    assert row in SOURCES  # the provenance table names the same file and span


def test_every_bundled_file_is_in_the_manifest() -> None:
    files = {p.name for p in resources.files(DATA_PACKAGE).iterdir() if p.name.endswith(".csv.gz")}
    assert files == {d.file for d in datasets().values()}
