"""`ffe run --bars` as a user types it: the scenario's cycle runs and prints, and the replay clock stays put."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ffe.cli import main
from ffe.local.runner import DEFAULT_AS_OF, LocalState
from tests.conftest import ROOT
from tests.database import own_database


def test_ffe_run_bars_runs_the_scenario_at_its_as_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, postgres: str
) -> None:
    # a database of its own: the paper account it prints must hold no other test's positions
    monkeypatch.setenv("DATABASE_URL", own_database(postgres, "scenario_cli"))
    monkeypatch.chdir(ROOT)
    state = tmp_path / "state"
    assert main(["--state-dir", str(state), "run", "--bars", "examples/btcusd-5m-stale.json"]) == 0
    out = capsys.readouterr().out
    assert "DecisionCycle 5m as of 2020-01-15T12:51:00Z  (schedule (scenario examples/btcusd-5m-stale.json)" in out
    row = next(line for line in out.splitlines() if re.match(r"\s*\d+  BTCUSD ", line))  # the id, then the asset
    assert re.match(r"\s*\d+  BTCUSD\s+2020-01-15 11:55\s+51 min\s+HOLD\s+1\.00\s+-\s+scenario\s+stale data", row), row
    assert LocalState(state).next_as_of("1h") == DEFAULT_AS_OF  # a what-if does not move the replay clock

    # a directory of CSV files runs at --as-of, and --assets picks among the scenario's assets
    argv = ["run", "--bars", "examples/daily", "--as-of", "2019-06-15T00:05:00Z", "--assets", "ETHUSD"]
    assert main(["--state-dir", str(state), *argv]) == 0
    out = capsys.readouterr().out
    assert "DecisionCycle 1d as of 2019-06-15T00:05:00Z" in out
    assert re.search(r"^\s*\d+  ETHUSD\s+2019-06-14 00:00\s+5 min\s+", out, re.M), out
    assert not re.search(r"^\s*\d+  BTCUSD ", out, re.M), out
