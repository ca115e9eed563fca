"""Processes sharing one embedded cluster (``ffe api`` running while ``ffe run`` comes and goes), for real.

Each test has its own data dir and real processes (or several users in this one) using it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ffe.local.errors import StateInUseError
from ffe.local.postgres import EmbeddedPostgres, PostgresUnavailableError, find_bindir
from ffe.local.runner import LocalState

pytestmark = pytest.mark.skipif(find_bindir() is None, reason="needs the machine's Postgres server binaries")

# A user of the cluster in its own process: starts, says "ready", then obeys stdin ("query", "leave").
USER = """
import sys
import psycopg
from ffe.local.postgres import EmbeddedPostgres

pg = EmbeddedPostgres(sys.argv[1]).start()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "query":
        with psycopg.connect(pg.url) as conn:
            print(conn.execute("SELECT 'answered'").fetchone()[0], flush=True)
    else:
        break
pg.stop()
print("left", flush=True)
"""

# Waits for the go file, then starts, queries and stops: many of these race on a fresh data dir.
RACER = """
import sys, time, pathlib
import psycopg
from ffe.local.postgres import EmbeddedPostgres

go = pathlib.Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
with EmbeddedPostgres(sys.argv[1]) as pg, psycopg.connect(pg.url) as conn:
    assert conn.execute("SELECT current_database()").fetchone() == ("ffe",)
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}


class User:
    """Another process using the cluster in ``data``."""

    def __init__(self, data: Path) -> None:
        self.proc = subprocess.Popen(  # this interpreter, our own script
            [sys.executable, "-c", USER, str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self.expect("ready")

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != word:
            self.proc.kill()
            raise AssertionError(f"expected {word!r}, got {line!r}; stderr:\n{self.proc.communicate()[1]}")

    def leave(self) -> None:
        self.say("leave")
        self.expect("left")
        assert self.proc.wait(timeout=120) == 0


@pytest.fixture
def data(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state dir's ``pgdata`` in a folder of its own: not under tmp_path, whose root every new pytest session
    makes private again (0700), cutting the ``postgres`` user off from a cluster made there."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    root = Path(tempfile.mkdtemp(prefix="ffe-test-state-"))
    path = root / "state" / "pgdata"
    yield path
    with contextlib.suppress(StateInUseError), EmbeddedPostgres(path).stopped():
        pass  # a failed test leaves no server behind
    shutil.rmtree(root, ignore_errors=True)


def test_concurrent_first_starts_on_a_fresh_data_dir_all_succeed(data: Path, tmp_path: Path) -> None:
    # Given four processes that start the same, not yet created, cluster at the same moment
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(data), str(go)], stderr=subprocess.PIPE, text=True, env=_env()
        )
        for _ in range(4)
    ]
    go.touch()
    # Then every one of them gets the database (one initdb, one CREATE DATABASE, no crash)
    for racer in racers:
        _, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err
    # And the last one out stopped the server
    assert (data / "PG_VERSION").exists()
    assert not EmbeddedPostgres(data).running()


def test_a_user_leaving_does_not_stop_the_server_another_process_uses(data: Path) -> None:
    # Given `ffe run` (here) started the cluster and `ffe api` (another process) joined it
    run = EmbeddedPostgres(data).start()
    api = User(data)
    # When `ffe run` finishes
    run.stop()
    # Then the API's process still gets answers
    api.say("query")
    api.expect("answered")
    assert run.running()
    # And when the API stops too, the server stops: it was the last user
    api.leave()
    assert not run.running()


def test_a_killed_user_leaves_no_reference_behind(data: Path) -> None:
    # Given a process using the cluster is killed with SIGKILL (nothing of its own clean-up runs)
    killed = User(data)
    killed.proc.kill()
    killed.proc.wait(timeout=60)
    pg = EmbeddedPostgres(data)
    assert pg.running()
    # When the next user comes and goes
    with pg, psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # Then it stopped the server: the killed process held no reference any more
    assert not pg.running()


def test_reset_refuses_while_another_process_uses_the_cluster(data: Path) -> None:
    state = LocalState(data.parent)
    api = User(data)
    # When `ffe reset` runs while `ffe api` uses the cluster, it refuses and deletes nothing
    with pytest.raises(StateInUseError, match="in use by another ffe command"):
        state.reset()
    assert (data / "PG_VERSION").exists()
    api.say("query")
    api.expect("answered")
    # And once the API has stopped, reset stops nothing more and deletes the state
    api.leave()
    state.reset()
    assert not data.parent.exists()


def test_an_interrupted_first_creation_is_redone(data: Path) -> None:
    # Given an initdb killed half-way left its staging folder
    staging = data.with_name(f".{data.name}.initdb")
    staging.mkdir(parents=True)
    (staging / "PG_VERSION").write_text("half made\n")
    # Then the next start makes the cluster afresh
    with EmbeddedPostgres(data) as pg, psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("ffe",)
    assert not staging.exists()


def test_a_data_dir_holding_something_else_is_a_clear_error(data: Path) -> None:
    data.mkdir(parents=True)
    (data / "notes.txt").write_text("mine\n")
    with pytest.raises(PostgresUnavailableError, match="exists but holds no Postgres cluster"):
        EmbeddedPostgres(data).start()
    assert (data / "notes.txt").read_text() == "mine\n"
