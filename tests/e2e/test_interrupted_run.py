"""A run killed mid-cycle leaves its cycle RUNNING; the next `ffe run` of that timeframe closes it as ABORTED with
the reason instead of leaving it running forever (or skipping every later cycle)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from ffe.cli import main
from ffe.local.postgres import EmbeddedPostgres
from tests.conftest import ROOT


def test_a_cycle_killed_mid_way_is_closed_aborted_by_the_next_run(capsys, monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    state = Path(tempfile.mkdtemp(prefix="ffe-interrupted-")) / "state"  # not under pytest's 0700 tmp root
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers/core'}{os.pathsep}{ROOT}"}
    env.pop("DATABASE_URL", None)
    # Given `ffe run` killed once its cycle is open (the harshest interruption: nothing gets to close it)
    run = subprocess.Popen(
        [sys.executable, "-m", "ffe.cli", "--state-dir", str(state), "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = wait_for_running_cycle(state, run)
    finally:
        run.kill()
        run.wait()
    # When the next run of that timeframe starts
    assert main(["--state-dir", str(state), "run"]) == 0
    out = capsys.readouterr().out
    # Then it decides as usual, and the killed cycle is ABORTED with the reason
    assert "SUCCEEDED" in out
    assert f"closed the earlier cycle {first} as ABORTED (its run ended without closing it)" in out
    with EmbeddedPostgres(state / "pgdata") as pg, psycopg.connect(pg.url) as conn:
        status, reason = conn.execute("SELECT status, reason FROM cycles WHERE id = %s", (first,)).fetchone()  # type: ignore[misc]
        running = conn.execute("SELECT count(*) FROM cycles WHERE status = 'RUNNING'").fetchone()
    assert status == "ABORTED" and running == (0,)
    assert reason.endswith("its execution no longer exists (the run was interrupted before it closed the cycle)")
    main(["--state-dir", str(state), "reset"])


def wait_for_running_cycle(state: Path, run: subprocess.Popen[bytes]) -> str:
    """The id of the cycle the run opened, once it is RUNNING (polls the run's own embedded database)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert run.poll() is None, "the run ended before its cycle was seen running"
        if (state / "pgdata" / "PG_VERSION").exists():
            try:
                with EmbeddedPostgres(state / "pgdata") as pg, psycopg.connect(pg.url) as conn:
                    exists = conn.execute("SELECT to_regclass('cycles') IS NOT NULL").fetchone()
                    running = "SELECT id FROM cycles WHERE status = 'RUNNING'"
                    row = conn.execute(running).fetchone() if exists and exists[0] else None
                if row:
                    return str(row[0])
            except psycopg.OperationalError:
                pass  # the run is still starting its cluster
        time.sleep(0.05)
    raise AssertionError("no cycle was seen running")
