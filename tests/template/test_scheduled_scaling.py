"""iac/inference.yaml scales the endpoint ahead of the cycles: scheduled actions on the ScalableTarget raise the
floor 5 minutes before each 15m tick and set it back 5 minutes after, per stage (StageConfig), and ``ffe cost``
counts a raised floor (it never scales in between: target tracking's scale-in needs 15 minutes of low load)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ffe.cost.model import estimate
from ffe.cost.template_facts import STAGES, load_yaml, read
from tests.unit.cost.test_cost_model import MEASURED

ROOT = Path(__file__).resolve().parents[2]
STACK = load_yaml(ROOT / "iac" / "inference.yaml")
TEMPLATE = load_yaml(ROOT / "template.yaml")


def _minutes(cron: str) -> set[int]:
    match = re.fullmatch(r"cron\(([\d,]+) \* \* \* \? \*\)", cron)
    assert match, cron
    return {int(m) for m in match[1].split(",")}


def _actions() -> list[dict]:
    target = STACK["Resources"]["ScalableTarget"]["Properties"]
    condition, actions, otherwise = target["ScheduledActions"]["Fn::If"]
    assert condition == "HasBurstScaling" and otherwise == {"Ref": "AWS::NoValue"}
    assert STACK["Conditions"]["HasBurstScaling"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BurstMinCapacity"}, 0]}]}
    return actions


def test_the_floor_rises_before_each_15m_tick_and_returns_after() -> None:
    ticks = _minutes(TEMPLATE["Resources"]["DecisionCycle15mSchedule"]["Properties"]["ScheduleExpression"])
    up, down = _actions()
    assert _minutes(up["Schedule"]) == {(t - 5) % 60 for t in ticks}
    assert _minutes(down["Schedule"]) == {(t + 5) % 60 for t in ticks}
    assert up["ScalableTargetAction"] == {
        "MinCapacity": {"Ref": "BurstMinCapacity"},
        "MaxCapacity": {"Ref": "MaxCapacity"},
    }
    assert down["ScalableTargetAction"] == {
        "MinCapacity": {"Ref": "MinCapacity"},
        "MaxCapacity": {"Ref": "MaxCapacity"},
    }
    assert {a["ScheduledActionName"]["Fn::Sub"] for a in (up, down)} == {
        "ffe-${Stage}-inference-before-cycle",
        "ffe-${Stage}-inference-after-cycle",
    }


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_sets_its_burst_floor_within_its_bounds(stage: str) -> None:
    row = TEMPLATE["Mappings"]["StageConfig"][stage]
    burst = row["InferenceBurstMinCapacity"]
    assert burst == 0 or row["InferenceMinCapacity"] <= burst <= row["InferenceMaxCapacity"]
    passed = TEMPLATE["Resources"]["InferenceStack"]["Properties"]["Parameters"]["BurstMinCapacity"]
    assert passed == {"Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "InferenceBurstMinCapacity"]}


def _project(root: Path, burst: int) -> Path:
    root.mkdir()
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("iac", "state_machines"):
        shutil.copytree(ROOT / folder, root / folder)
    template = root / "template.yaml"
    head, sep, tail = template.read_text().rpartition("      InferenceBurstMinCapacity: 0")  # prod's row is last
    template.write_text(head + sep.replace("0", str(burst)) + tail)
    return root


def test_ffe_cost_counts_a_raised_floor_all_month_and_no_scale_down(tmp_path: Path) -> None:
    off, on = read(_project(tmp_path / "off", 0), "prod"), read(_project(tmp_path / "on", 3), "prod")
    assert on.endpoint_source == "stack" and (off.instance_min, on.instance_min) == (2, 3)
    assert not off.scheduled_scale_down and not on.scheduled_scale_down
    assert any("from 2 to 3 around every quarter-hour cycle" in n for n in on.notes)
    assert not any("quarter-hour" in n for n in off.notes)
    hours = [
        next(x for x in estimate(f, 20, ("15m",), llm=False, measured=MEASURED).lines if "SageMaker" in x.component)
        for f in (off, on)
    ]
    assert [h.quantity for h in hours] == [2 * 730, 3 * 730]
