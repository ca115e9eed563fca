"""``ffe cost``: the table, the JSON, bad input as one line with exit code 2, and the package kept out of Lambdas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ffe.cli import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _in_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_prints_a_line_per_component_and_the_total(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["--state-dir", str(tmp_path), "cost", "--stage", "prod", "--assets", "500", "--cadence", "15m"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("ffe-prod: 500 assets, 15m (2,920 cycles/month), LLM on; USD per month, us-east-1")
    for component in ("SageMaker endpoint (ml.g5.xlarge)", "Step Functions transitions (Standard)", "RDS Proxy"):
        assert component in out
    assert re.search(r"^total +[\d,]+\.\d\d$", out, re.MULTILINE)


def test_json_matches_the_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    main(["--state-dir", str(tmp_path), "cost", "--stage", "staging", "--assets", "20", "--llm", "off", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert document["stage"] == "staging" and document["llm"] is False
    assert document["cadence"] == ["15m", "1h", "1d"]  # staging enables all three rules
    assert document["total"] == pytest.approx(sum(line["monthly"] for line in document["lines"]), abs=0.05)
    assert all(line["price"]["url"].startswith("https://") for line in document["lines"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--stage (missing): one of dev, staging, prod"),
        (["--stage", "qa"], "--stage qa: one of dev, staging, prod"),
        (["--stage", "dev", "--assets", "0"], "--assets 0: a whole number, 1 or more"),
        (["--stage", "dev", "--assets", "many"], "--assets many: a whole number, 1 or more"),
        (["--stage", "dev", "--cadence", "5m"], "--cadence 5m: one of 15m, 1h, 1d"),
        (["--stage", "dev", "--llm", "maybe"], "--llm maybe: on or off"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--state-dir", str(tmp_path), "cost", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"ffe cost: error: {message}\n"


def test_no_lambda_imports_the_cost_package() -> None:
    importers = [
        path.relative_to(ROOT)
        for path in [*(ROOT / "functions").rglob("*.py"), *(ROOT / "layers/core/ffe").rglob("*.py")]
        if re.search(r"^\s*(from|import) ffe\.cost(_cli)?\b", path.read_text(), re.MULTILINE)
        and "cost" not in path.relative_to(ROOT).parts[-2:][0]
        and path.name not in ("cli.py", "cost_cli.py", "docs.py")
    ]
    assert importers == []
