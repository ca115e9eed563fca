"""Every CloudWatch alarm in the templates links a runbook page that exists: docs/runbooks/<slug>.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.conftest import ROOT

TEMPLATES = [ROOT / "template.yaml", *sorted((ROOT / "iac").glob("*.yaml"))]
LINK = re.compile(r"\$\{RunbookBaseUrl\}/docs/runbooks/([a-z0-9-]+)\.md")


def _alarms(path: Path) -> dict[str, dict[str, Any]]:
    resources = yaml_parse(path.read_text()).get("Resources", {})
    return {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


ALARMS = [(path.name, lid, props) for path in TEMPLATES for lid, props in _alarms(path).items()]


def test_the_templates_hold_alarms() -> None:
    assert {name for name, _, _ in ALARMS} >= {"alarms.yaml", "inference.yaml", "database.yaml"}


@pytest.mark.parametrize(("template", "alarm", "props"), ALARMS, ids=[f"{t}:{a}" for t, a, _ in ALARMS])
def test_each_alarm_description_links_an_existing_runbook(template: str, alarm: str, props: dict[str, Any]) -> None:
    description = json.dumps(props.get("AlarmDescription", ""))
    slugs = LINK.findall(description)
    assert len(slugs) == 1, f"{template} {alarm}: its AlarmDescription must link one ${{RunbookBaseUrl}} runbook"
    page = ROOT / "docs" / "runbooks" / f"{slugs[0]}.md"
    assert page.is_file(), f"{template} {alarm} links {page.relative_to(ROOT)}, which does not exist"
