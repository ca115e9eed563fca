"""`ffe` as a user types it: state persists in the state dir, commands share it, a mistake gets one clear line."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from decimal import Decimal
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


@pytest.fixture(autouse=True)
def _piped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output as a pipe or file gets it: no COLUMNS, no colour forced or refused."""
    for name in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def fits(out: str) -> list[str]:
    """Every line within 120 columns and no escape codes (capsys is a pipe, not a terminal); the lines."""
    lines = out.splitlines()
    assert "\x1b" not in out, out
    assert all(len(line) <= 120 for line in lines), "\n".join(line for line in lines if len(line) > 120)
    return lines


def table_rows(lines: list[str], header: str) -> list[list[str]]:
    """The rows of the table whose header line starts with ``header``, split on runs of spaces."""
    first = next(i for i, line in enumerate(lines) if line.lstrip().startswith(header)) + 2  # the header, the rule
    rows = []
    for line in lines[first:]:
        if not re.match(r"\s*(\d+|-)  ", line):  # every row starts with a decision's id ("-" for a failure)
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_run_then_decisions_then_reset(own_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = own_state  # the CLI's own embedded cluster, in the state dir
    ffe_ = ["--state-dir", str(state)]

    # When a user runs one cycle
    assert main([*ffe_, "run"]) == 0
    out = capsys.readouterr().out
    lines = fits(out)  # the cycle, the paper account and the history fit 120 columns: reasons are cut to fit
    # Then the table shows fresh decisions and stale HOLDs, and the console-style history follows
    assert "SUCCEEDED" in out and "DecisionCycle 1h as of 2019-06-15T12:01:00Z" in out, out
    rows = {row[1]: row for row in table_rows(lines, "id  asset") if row[1] != "-"}
    assert set(rows) == {"BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"}, out
    assert rows["GBPUSD"][4] == "HOLD" and rows["GBPUSD"][-1].startswith("stale data: last bar closed"), out
    assert rows["BTCUSD"][-1].startswith("RL ") and rows["BTCUSD"][-1].endswith("…"), out
    assert "--wide shows them whole, `ffe decisions --id N` one decision in full" in out
    assert re.search(r"^  inference  http://127\.0\.0\.1:\d+ serves ffe-[0-9a-f]{12} on ", out, re.M), out
    assert "(unreachable, so the RL voter decides alone and says so)" in " ".join(out.split())
    assert "Execution history" in out and "Hold on stale data" in out and "Record decision" in out
    assert (state / "pgdata" / "PG_VERSION").exists() and list((state / "runs").glob("*.json"))
    assert "paper account paper-dev" in out and "order(s) waiting for the next bar" in out

    # And the next run, for a script, is one JSON document: one bar later, with the first run's orders filled
    assert main([*ffe_, "run", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)  # nothing but the document on stdout
    assert second["status"] == "SUCCEEDED" and second["cycle_input"]["as_of"] == "2019-06-15T13:01:00Z"
    decided = {d["asset"]: d for d in second["decisions"]}
    assert set(decided) == {"BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"}
    btc = decided["BTCUSD"]
    assert "meta-controller blend" in btc["reason"]  # the shipped champion decided, on the inference server
    assert "[rule rl_only_llm_unavailable; " in btc["reason"]  # no Ollama in tests: the reason says so
    held = {p["asset"]: p for p in second["portfolio"]["positions"]}
    assert Decimal(held["BTCUSD"]["quantity"]) > 0  # the positions carried over

    # And the paper account reads the same as text and as JSON
    assert main([*ffe_, "portfolio"]) == 0
    book = fits(capsys.readouterr().out)
    assert any(re.match(r"BTCUSD\s+\d+\.\d+\s", line) for line in book), book
    assert main([*ffe_, "portfolio", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"portfolio": second["portfolio"]}

    # And `ffe decisions` lists what was stored; --json holds the same decisions the table shows
    assert main([*ffe_, "decisions"]) == 0
    listed = capsys.readouterr().out
    shown = [(int(r[0]), r[2], r[5]) for r in table_rows(fits(listed), "id  recorded")]
    for asset in ("BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"):
        assert asset in {a for _, a, _ in shown}, f"{asset} missing from `ffe decisions`:\n{listed}"
    assert main([*ffe_, "decisions", "--json"]) == 0
    documented = json.loads(capsys.readouterr().out)["decisions"]
    assert [(d["id"], d["asset"], d["action"]) for d in documented] == shown
    assert {d["id"] for d in second["decisions"]} <= {d["id"] for d in documented}

    # And --wide shows every reason whole, still within 120 columns
    assert main([*ffe_, "decisions", "--wide"]) == 0
    assert "".join(btc["reason"].split()) in "".join("".join(fits(capsys.readouterr().out)).split())

    # And --id shows one decision in full: every field, the whole reason
    assert main([*ffe_, "decisions", "--id", str(btc["id"])]) == 0
    one = capsys.readouterr().out
    fits(one)
    assert one.startswith(f"decision {btc['id']}\n")
    assert "".join(btc["reason"].split()) in "".join(one.split())
    whole = next(d for d in documented if d["id"] == btc["id"])
    assert all(re.search(rf"^  {name}  ", one, re.M) for name in whole), one
    assert main([*ffe_, "decisions", "--id", str(btc["id"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"decisions": [whole]}

    # And an id that is not there is one line naming it
    assert ffe(*ffe_, "decisions", "--id", "999999") == 2
    assert the_error(capsys.readouterr().err) == (
        "ffe decisions: error: --id 999999: no decision with that id; `ffe decisions` lists the recorded ones"
    )

    # And through a real pipe the output is plain text at 120 columns
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COLUMNS", "NO_COLOR", "FORCE_COLOR")}
    piped = subprocess.run(
        [sys.executable, "-m", "ffe.cli", *ffe_, "decisions"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert piped.returncode == 0 and piped.stdout == listed, piped.stderr

    # And colour appears only where the output is a terminal, and never with NO_COLOR
    with pytest.MonkeyPatch.context() as env_:
        env_.setenv("FORCE_COLOR", "1")  # rich's way to treat any stream as a terminal
        assert main([*ffe_, "decisions", "--limit", "1"]) == 0
        assert "\x1b[" in capsys.readouterr().out
        env_.setenv("NO_COLOR", "1")
        assert main([*ffe_, "decisions", "--limit", "1"]) == 0
        assert "\x1b" not in capsys.readouterr().out

    # And reset wipes it
    assert main([*ffe_, "reset"]) == 0
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
        (["run", "--universe", "/nonexistent/u.csv"], "ffe run: error: --universe /nonexistent/u.csv: No such file"),
        (["run", "--universe", str(ROOT / "README.md")], "README.md: a universe file is .csv or .json"),
        (
            ["run", "--universe", str(ROOT / "examples/universe/crypto-fx.csv"), "--assets", "BTCUSD"],
            "ffe run: error: --universe takes the place of --input and --assets: use one of them",
        ),
        (["decisions", "--limit", "-1"], "ffe decisions: error: argument --limit: -1 is not 1 or more"),
        (["decisions", "--id", "x"], "ffe decisions: error: argument --id: 'x' is not a whole number"),
        (["decisions", "--id", "3", "--asset", "BTCUSD"], "ffe decisions: error: --id shows one decision: leave out"),
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
    fits(out)
    assert " ".join(out.split()).startswith(
        "note: replay has no 15m bars for BTCUSD, ETHUSD, EURUSD (bundled at 1h): they will HOLD on 'no bars'; "
        "use a coarser --timeframe, or --bars with your own bars"
    )
    btc = next(line for line in out.splitlines() if re.match(r"\s*\d+  BTCUSD ", line))
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


def test_run_universe_decides_the_file_on_the_distributed_map(
    own_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = ROOT / "examples/universe/crypto-fx.csv"  # 7 enabled rows, LTCUSD disabled
    assert ffe("--state-dir", str(own_state), "run", "--universe", str(example), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "SUCCEEDED" and "assets" not in report["cycle_input"]
    visited = {visit["name"] for visit in report["visits"]}
    assert "Decide the universe" in visited and "Decide each asset" not in visited
    decided = {d["asset"] for d in report["decisions"]}
    failed = {f["asset"]: f for f in report["failures"]}
    assert decided == {"BTCUSD", "ETHUSD", "EURUSD", "GBPUSD", "USDJPY"}
    # the universe file knows SOLUSD and AUDUSD; replay has no bars for them: each fails alone, saying so
    assert set(failed) == {"SOLUSD", "AUDUSD"}
    assert all("replay has no bars for" in f["message"] for f in failed.values())
