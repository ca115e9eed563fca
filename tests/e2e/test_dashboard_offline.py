"""`ffe run` then `ffe dashboard`: the page holds every widget, drawn from the EMF the run kept and the store."""

import json
import re
from pathlib import Path

import pytest

from ffe.cli import main
from ffe.monitoring.dashboards import widgets
from tests.conftest import ROOT
from tests.database import own_database


@pytest.fixture
def state(postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATABASE_URL", own_database(postgres, "ffe_dashboard"))
    monkeypatch.chdir(ROOT)
    return tmp_path / "state"


def test_run_then_dashboard_renders_every_widget(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--state-dir", str(state), "run", "--json"]) == 0
    emf = state / "metrics" / "emf.jsonl"
    lines = [json.loads(line) for line in emf.read_text().splitlines()]
    assert lines and all("CloudWatchMetrics" in line["_aws"] for line in lines)
    capsys.readouterr()

    out = state.parent / "page.html"
    assert main(["--state-dir", str(state), "dashboard", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(out.resolve())
    html = out.read_text()
    for widget in widgets():
        section = re.search(rf"<section class='widget' id='w-{widget.id}'.*?</section>", html, re.S)
        assert section, widget.id
        assert re.search("<svg|<table|no data recorded", section.group(0)), widget.id
    drawn = re.findall(r"<section class='widget' id='w-([a-z-]+)'[^>]*><h3>[^<]*</h3><svg", html)
    assert "action-mix" in drawn and "cycle-duration" in drawn, drawn  # the run's decisions and its cycle
    assert "source: EMF" in html

    assert main(["--state-dir", str(state), "dashboard"]) == 0  # the default: in the state dir, which reset deletes
    assert capsys.readouterr().out.strip() == str((state / "dashboard.html").resolve())
    assert main(["--state-dir", str(state), "reset"]) == 0
    assert not state.exists()


@pytest.mark.parametrize("where", ["missing-folder/page.html", "."])
def test_a_bad_out_path_is_one_line_and_exit_2(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--state-dir", str(tmp_path / "state"), "dashboard", "--out", where]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ffe dashboard: error: --out ") and err.count("\n") == 1, err
