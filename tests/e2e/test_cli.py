"""`ffe` as a user types it: state persists in the state dir, commands share it, a mistake gets one clear line."""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from moto import mock_aws

from ffe.cli import main
from ffe.local.errors import StateInUseError
from ffe.local.postgres import EmbeddedPostgres
from tests.conftest import ROOT


@pytest.fixture
def own_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state dir with its own embedded cluster, outside tmp_path: every new pytest session makes tmp_path's
    root private again (0700), which would cut the ``postgres`` user off from a cluster made there."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    root = Path(tempfile.mkdtemp(prefix="ffe-test-cli-"))
    yield root / "state"
    with contextlib.suppress(StateInUseError), EmbeddedPostgres(root / "state" / "pgdata").stopped():
        pass  # a failed test leaves no server behind
    shutil.rmtree(root, ignore_errors=True)


def test_run_then_decisions_then_reset(own_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = own_state  # the CLI's own embedded cluster, in the state dir

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


# --- a user's mistake: one line naming the problem, exit code 2, nothing started or lost ----------------------


def ffe(*argv: str) -> int:
    """``ffe ARGV`` as the shell runs it: argparse's errors exit (SystemExit), the rest return the exit code."""
    try:
        return main(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)


def the_error(err: str) -> str:
    """The one error line (argparse prints its usage lines before it), with no traceback anywhere."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["run", "--timeframe", "2h"],
            "ffe run: error: --timeframe 2h: template.yaml has no such schedule; use 15m, 1h or 1d",
        ),
        (
            ["run", "--timeframe", "5m"],
            "--timeframe 5m: template.yaml has no such schedule; use 15m, 1h or 1d, or --bars",
        ),
        (["run", "--input", "not json"], "ffe run: error: argument --input: not JSON (Expecting value"),
        (
            ["run", "--as-of", "garbage"],
            "argument --as-of: 'garbage' is not an ISO-8601 time such as 2019-06-15T12:01:00Z",
        ),
        (["run", "--assets", ","], "ffe run: error: argument --assets: ',' names no symbol; give e.g. BTCUSD,ETHUSD"),
        (["run", "--assets", "BTCUSD, ETHUSD,BTCUSD"], "argument --assets: BTCUSD given more than once"),
        (["decisions", "--limit", "-1"], "ffe decisions: error: argument --limit: -1 is not 1 or more"),
        (
            ["api", "--port", "70000"],
            "ffe api: error: argument --port: 70000 is not a TCP port (0-65535; 0 picks a free one)",
        ),
    ],
)
def test_bad_input_is_one_clear_line(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    state = tmp_path / "state"
    assert ffe("--state-dir", str(state), *argv) == 2
    assert expected in the_error(capsys.readouterr().err)
    assert not state.exists()  # refused before anything started


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    assert ffe("--state-dir", str(notes), "decisions") == 2
    assert f"argument --state-dir: {notes} is a file, not a folder" in the_error(capsys.readouterr().err)
    assert ffe("--state-dir", str(notes / "state"), "reset") == 2
    assert f"is inside {notes}, which is a file" in the_error(capsys.readouterr().err)
    assert notes.read_text() == "mine\n"


def test_reset_leaves_a_folder_that_is_not_ffe_state_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `ffe --state-dir . reset` in a project folder must not delete the project
    (tmp_path / "template.yaml").write_text("mine\n")
    (tmp_path / "runs").mkdir()
    assert ffe("--state-dir", str(tmp_path), "reset") == 2
    assert "which ffe did not make" in the_error(capsys.readouterr().err)
    assert (tmp_path / "template.yaml").read_text() == "mine\n" and (tmp_path / "runs").is_dir()


def test_a_busy_port_is_a_clear_error_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    state = tmp_path / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert ffe("--state-dir", str(state), "api", "--port", str(port)) == 2
    assert f"ffe api: error: cannot serve on 127.0.0.1:{port}: in use; pick another --port" in the_error(
        capsys.readouterr().err
    )
    assert not (state / "pgdata").exists()


def test_outside_the_project_folder_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert ffe("--state-dir", str(tmp_path / "state"), "run") == 2
    assert "template.yaml not found in the working directory or its parents: run ffe from the project folder" in (
        the_error(capsys.readouterr().err)
    )


def test_dlq_replay_of_a_stage_that_is_not_deployed_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():  # an AWS account with no ffe stage in it
        assert ffe("--state-dir", str(tmp_path), "dlq", "replay", "--stage", "nope", "--region", "us-east-1") == 2
    error = the_error(capsys.readouterr().err)
    assert error.startswith("ffe dlq: error: stage 'nope' in AWS: ") and "GetQueueUrl" in error, error


# --- the real stack --------------------------------------------------------------------------------------------


def test_preflight_on_a_fresh_state_dir_checks_the_paper_account(
    own_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--state-dir", str(own_state), "preflight"])  # not healthy: providers are unreachable in tests
    out = capsys.readouterr().out
    assert "UndefinedTable" not in out and "relation" not in out, out
    assert re.search(r"^paper\s+ok\s+\d+ ms\s+100000 USD", out, re.M), out


def test_replay_says_up_front_it_has_no_15m_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    assert ffe("--state-dir", str(tmp_path / "state"), "run", "--timeframe", "15m") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "note: replay has no 15m bars for BTCUSD, ETHUSD, EURUSD (bundled at 1h): they will HOLD on 'no bars'; "
        "use a coarser --timeframe, or --bars with your own bars"
    )
    btc = next(line for line in out.splitlines() if line.startswith("BTCUSD "))
    assert " HOLD " in btc and "no bars" in btc, out


def test_api_keeps_its_database_while_run_comes_and_goes_and_sigterm_stops_it(
    own_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    api = subprocess.Popen(  # this interpreter, the ffe CLI
        [sys.executable, "-m", "ffe.cli", "--state-dir", str(own_state), "api", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert api.stdout is not None
        first = api.stdout.readline()
        found = re.match(r"ffe API on (http://127\.0\.0\.1:\d+) ", first)
        assert found, first + api.communicate(timeout=60)[1]
        # When `ffe run` uses the cluster the API started, and finishes
        assert main(["--state-dir", str(own_state), "run"]) == 0
        capsys.readouterr()
        # Then the API still answers from the database, with what the run recorded
        response = httpx.get(f"{found[1]}/decisions", timeout=30)
        assert response.status_code == 200, response.text
        assert "BTCUSD" in response.text
        # And `ffe reset` refuses while the API uses the state, deleting nothing
        assert ffe("--state-dir", str(own_state), "reset") == 2
        assert "is in use by another ffe command" in the_error(capsys.readouterr().err)
        assert (own_state / "pgdata" / "PG_VERSION").exists()
        # And SIGTERM stops the API and, as the last user, the cluster
        api.send_signal(signal.SIGTERM)
        out, err = api.communicate(timeout=120)
        assert api.returncode == 0 and "stopped" in out and "Traceback" not in err, err
        assert not EmbeddedPostgres(own_state / "pgdata").running()
    finally:
        if api.poll() is None:
            api.kill()
