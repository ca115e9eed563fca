"""`ffe experiments` as a user types it, against the embedded Postgres of the state dir: the lifecycle, its tables
and JSON, and one clear line (exit 2) for every mistake."""

from __future__ import annotations

import contextlib
import getpass
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ffe.adapters.models import bundled_version
from ffe.cli import main
from ffe.local.errors import StateInUseError
from ffe.local.postgres import EmbeddedPostgres

CHALLENGER = "ffe-challenger01"


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    """One state dir (and embedded cluster) for the module, with a challenger bundle in its model store."""
    root = Path(tempfile.mkdtemp(prefix="ffe-test-experiments-"))
    state = root / "state"
    (state / "models" / CHALLENGER).mkdir(parents=True)
    (state / "models" / CHALLENGER / "manifest.json").write_text(json.dumps({"version": CHALLENGER}))
    yield state
    with contextlib.suppress(StateInUseError), EmbeddedPostgres(state / "pgdata").stopped():
        pass
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for name in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def ffe(state: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(["--state-dir", str(state), "experiments", *args])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def document(state: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = ffe(state, capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_the_lifecycle_through_the_command(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Create a shadow experiment on the challenger: the control is the champion (the bundled one)
    code, out, err = ffe(state_dir, capsys, "create", "--treatment", CHALLENGER, "--id", "exp-shadow")
    assert code == 0, err
    assert "exp-shadow" in out and "draft" in out and bundled_version() in out and "shadow" in out
    # offline the latency guardrail defaults to 5 s: a local decision path runs through moto
    shown = document(state_dir, capsys, "show", "exp-shadow")
    assert shown["experiment"]["guardrails"]["latency_p95_ms"] == 5000.0
    # A split canary on two assets
    created = document(
        state_dir,
        capsys,
        "create",
        "--treatment",
        CHALLENGER,
        "--mode",
        "split",
        "--assets",
        "BTCUSD,ETHUSD",
        "--plan",
        "0.5:0:0s,1.0:0:0s",
        "--latency-p95-ms",
        "900",
        "--metric",
        "pnl",
    )["experiment"]
    rails = {"latency_p95_ms": 900.0, "max_degradation": 0.3, "metric": "pnl", "sustained_cycles": 3}
    assert created["guardrails"] == rails
    split = created["id"]
    assert split.startswith("exp-") and created["assets"] == ["BTCUSD", "ETHUSD"] and created["share"] == 0.5
    assert [s["share"] for s in created["plan"]] == [0.5, 1.0]
    # list shows both, as a table and as JSON
    code, out, _ = ffe(state_dir, capsys, "list")
    assert code == 0 and "exp-shadow" in out and split in out
    assert [e["id"] for e in document(state_dir, capsys, "list")["experiments"]] == ["exp-shadow", split]
    # start, pause, resume, stop the shadow one; each transition carries the reason and who made it
    for action in ("start", "pause", "start", "stop"):
        code, _, err = ffe(state_dir, capsys, action, "exp-shadow", "--why", f"{action} it")
        assert code == 0, err
    shown = document(state_dir, capsys, "show", "exp-shadow")["experiment"]
    assert shown["status"] == "stopped"
    assert [(t["to_status"], t["reason"]) for t in shown["transitions"]] == [
        ("running", "start it"),
        ("paused", "pause it"),
        ("running", "start it"),
        ("stopped", "stop it"),
    ]
    assert {t["actor"] for t in shown["transitions"]} == {f"cli:{getpass.getuser()}"}
    code, out, _ = ffe(state_dir, capsys, "show", "exp-shadow")
    assert code == 0 and "transitions" in out and "stop it" in out
    # the split canary: start, advance by hand, promote; the treatment is the champion
    for action in ("start", "advance"):
        code, _, err = ffe(state_dir, capsys, action, split, "--why", "fine")
        assert code == 0, err
    # its treatment was not trained with MLflow tracking, so no evidence shows it beats anything: refused, as the
    # API refuses it, until --force overrules the gate with the reason recorded
    code, _, err = ffe(state_dir, capsys, "promote", split, "--why", "fine")
    assert code == 1 and "promotion gate refused: the treatment" in err and "--force --why" in err
    assert document(state_dir, capsys, "show", split)["experiment"]["status"] == "running"
    code, _, err = ffe(state_dir, capsys, "promote", split, "--why", "fine", "--force")
    assert code == 0 and "promoted under --force" in err, err
    assert document(state_dir, capsys, "show", split)["experiment"]["status"] == "promoted"
    # results: the comparison, readable and as JSON
    code, out, err = ffe(state_dir, capsys, "results", split)
    assert code == 0, err
    assert "agreement rate" in out and "control" in out and "treatment" in out and "signal P&L" in out
    results = document(state_dir, capsys, "results", split)
    assert results["experiment_id"] == split and results["decisions"] == 0
    # the control of a new experiment defaults to the new champion: the challenger; same version is refused
    code, _, err = ffe(state_dir, capsys, "create", "--treatment", CHALLENGER)
    assert code == 2 and "same version" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["create", "--treatment", "ffe-nowhere"], ["--treatment", "ffe-nowhere", "local model store"]),
        (["create", "--treatment", CHALLENGER, "--control", "ffe-nowhere"], ["--control", "ffe-nowhere"]),
        (["create", "--treatment", CHALLENGER, "--assets", "NOPE"], ["--assets", "NOPE"]),
        (["create", "--treatment", CHALLENGER, "--assets", "BTCUSD,BTCUSD"], ["--assets", "more than once"]),
        (["create", "--treatment", CHALLENGER, "--plan", "0.5:1"], ["--plan", "SHARE:MIN_DECISIONS"]),
        (["create", "--treatment", CHALLENGER, "--plan", "1.5:0:0s"], ["--plan", "share"]),
        (["create", "--treatment", CHALLENGER, "--plan", "0.5:0:0s"], ["--plan", "1.0"]),
        (["create", "--treatment", CHALLENGER, "--plan", "1.0:0:soon"], ["--plan", "duration"]),
        (
            ["create", "--treatment", CHALLENGER, "--plan", "1.0:many:1h"],
            ["--plan", "MIN_DECISIONS 'many' is not a whole number"],
        ),
        (["create", "--treatment", CHALLENGER, "--mode", "yolo"], ["--mode"]),
        (["create", "--treatment", CHALLENGER, "--latency-p95-ms", "0"], ["--latency-p95-ms"]),
        (["create", "--treatment", CHALLENGER, "--latency-p95-ms", "nan"], ["--latency-p95-ms"]),
        (["create", "--treatment", CHALLENGER, "--max-degradation", "1.5"], ["--max-degradation"]),
        (["create", "--treatment", CHALLENGER, "--sustained-cycles", "x"], ["--sustained-cycles"]),
        (["create", "--treatment", CHALLENGER, "--metric", "vibes"], ["--metric"]),
        (["create", "--treatment", CHALLENGER, "--id", "a b"], ["--id", "experiment id"]),
        (["create"], ["--treatment"]),
        (["show", "exp-missing"], ["exp-missing"]),
        (["start", "exp-missing"], ["exp-missing"]),
        (["show", "../x"], ["experiment id"]),
        (["results", "exp-x", "--since", "yesterday"], ["--since", "ISO-8601"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    state_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], mentions: list[str]
) -> None:
    code, out, err = ffe(state_dir, capsys, *args)
    assert code == 2, (out, err)
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith(("ffe experiments: error:", "ffe experiments ")), err
    for mention in mentions:
        assert mention in last, (mention, last)


def test_an_invalid_transition_is_one_line_naming_the_reason(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ffe(state_dir, capsys, "create", "--treatment", CHALLENGER, "--id", "exp-draft", "--control",
               bundled_version())[0] == 0  # fmt: skip
    code, _, err = ffe(state_dir, capsys, "promote", "exp-draft")
    assert code == 2 and "draft" in err and len(err.strip().splitlines()) == 1
