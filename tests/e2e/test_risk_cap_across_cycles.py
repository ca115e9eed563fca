"""The issue's repro, as a user types it: cycles that decide the same asset before the first order fills share
one position cap. Before the fix, BTCUSD ended at 25.7 % of equity against a 10 % cap."""

import re
from pathlib import Path

import psycopg
import pytest

from ffe.cli import main
from ffe.local.postgres import EmbeddedPostgres


def test_three_cycles_before_a_fill_never_take_an_asset_past_its_cap(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)  # the CLI's own embedded cluster, in the state dir
    ffe = ["--state-dir", str(tmp_path / "state")]
    # Given `ffe run --assets BTCUSD` (12:01, the 11:00 bar), and two more cycles deciding that bar before it fills
    assert main([*ffe, "run", "--assets", "BTCUSD"]) == 0
    for cycle in ("a1", "a2"):
        event = f'{{"cycle_id":"{cycle}","as_of":"2019-06-15T12:01:00Z","timeframe":"1h","assets":["BTCUSD"]}}'
        assert main([*ffe, "run", "--input", event]) == 0
    # When the next hour's cycle runs (the first order fills at the 12:00 open, then the gate sizes)
    assert main([*ffe, "run", "--as-of", "2019-06-15T13:01:00Z", "--assets", "BTCUSD"]) == 0
    capsys.readouterr()
    assert main([*ffe, "portfolio"]) == 0
    portfolio = capsys.readouterr().out
    # Then BTCUSD is within its 10 % cap (the bar after the fill may move it a little either way)
    exposure = float(re.search(r"exposure (\d+\.\d)%", portfolio).group(1))  # type: ignore[union-attr]
    assert 5.0 < exposure <= 10.5, portfolio
    # And the two extra cycles were recorded as HOLDs that say why: that bar already had its order
    with EmbeddedPostgres(tmp_path / "state" / "pgdata") as pg, psycopg.connect(pg.url) as conn:
        held = conn.execute(
            "SELECT cycle_id, action, reason FROM decisions WHERE cycle_id IN ('a1', 'a2') ORDER BY cycle_id"
        ).fetchall()
        orders = conn.execute("SELECT count(*) FROM paper_orders").fetchone()[0]  # type: ignore[index]
    assert [(c, a) for c, a, _ in held] == [("a1", "HOLD"), ("a2", "HOLD")]
    assert all(reason.startswith("risk gate blocked BUY: already_ordered") for _, _, reason in held), held
    assert orders <= 2  # the 12:01 order, and at most a top-up from the 13:01 cycle


@pytest.fixture(autouse=True)
def _stop_the_cluster(tmp_path: Path):
    yield
    main(["--state-dir", str(tmp_path / "state"), "reset"])
