"""`ffe run`, `ffe decisions` and `ffe reset`, as a user types them: state persists in the state dir."""

import re
from pathlib import Path

import pytest

from ffe.cli import main


def test_run_then_decisions_then_reset(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DATABASE_URL", raising=False)  # the CLI's own embedded cluster, in the state dir
    state = tmp_path / "state"

    # When a user runs one cycle
    assert main(["--state-dir", str(state), "run"]) == 0
    out = capsys.readouterr().out
    # Then the table shows fresh decisions and stale HOLDs, and the console-style history follows
    assert "SUCCEEDED" in out and "DecisionCycle 1h as of 2019-06-15T12:01:00Z" in out, out
    rows = {line.split()[0]: line for line in out.splitlines() if line[:6] in ("BTCUSD", "ETHUSD", "EURUSD", "GBPUSD")}
    assert "stale data: last bar closed" in rows["GBPUSD"] and " HOLD " in rows["GBPUSD"]
    assert "meta-controller blend" in rows["BTCUSD"]  # the shipped champion decided, on the inference server
    assert "[rule rl_only_llm_unavailable; " in rows["BTCUSD"]  # no Ollama in tests: the reason says so
    assert re.search(r"^inference: http://127\.0\.0\.1:\d+ serves ffe-[0-9a-f]{12} on ", out, re.M), out
    assert "(unreachable, so the RL voter decides alone and says so)" in out
    assert "Execution history" in out and "Hold on stale data" in out and "Record decision" in out
    assert (state / "pgdata" / "PG_VERSION").exists() and list((state / "runs").glob("*.json"))

    assert "paper account paper-dev" in out and "order(s) waiting for the next bar" in out

    # And the next run is one bar later, with the first run's orders filled and the positions carried over
    assert main(["--state-dir", str(state), "run"]) == 0
    second = capsys.readouterr().out
    assert "as of 2019-06-15T13:01:00Z" in second
    # the position table: BTCUSD with a quantity (the decisions table has a bar time there)
    assert any(re.match(r"BTCUSD  \d+\.\d+ ", line) for line in second.splitlines()), second
    assert main(["--state-dir", str(state), "portfolio"]) == 0
    assert "BTCUSD" in capsys.readouterr().out

    # And a later command finds what was stored
    assert main(["--state-dir", str(state), "decisions"]) == 0
    listed = capsys.readouterr().out
    for asset in ("BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"):
        assert asset in listed, f"{asset} missing from `ffe decisions`:\n{listed}\n--- ffe run printed:\n{out}"

    # And reset wipes it
    assert main(["--state-dir", str(state), "reset"]) == 0
    assert not state.exists()
