"""checkov over the templates: no failed check; each finding is fixed or skipped inline with its reason.

It scans template.yaml and iac/*.yaml as written, and template.yaml as aws-sam-translator turns it into plain
CloudFormation. checkov reads AWS::Serverless::Function/Api only in part: the IAM roles, Lambda permissions, API
stage and deployment that SAM generates exist only in the translated template, so they are checked there. SAM
carries a resource's Metadata (its skips) onto the resource it becomes, but an Api's only onto the RestApi: the
stage it generates takes the Api's skips here (they are the Api's own properties, e.g. caching).

checkov runs from its own venv (.venv/checkov, the Makefile's CHECKOV_STAMP: it pins boto3 and packaging at
versions .venv's tools can't take), offline: no download, no update check, no platform key. docs/development.md
says how to run it and how to skip a check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ffe.local.template import parse_template, translate
from tests.conftest import ROOT

CHECKOV_VENV = ROOT / ".venv" / "checkov"
TEMPLATES = sorted([ROOT / "template.yaml", *(ROOT / "iac").glob("*.yaml")])
TRANSLATED_STAGE = "prod"  # the stage with the most resources switched on (the stage key, the reader, retention)


def _checkov_version() -> str:
    match = re.search(r"^CHECKOV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile pins CHECKOV_VERSION"
    return match.group(1)


def _checkov() -> Path:
    stamp = CHECKOV_VENV / f".installed-{_checkov_version()}"
    if not stamp.exists():
        pytest.fail(
            f"checkov {_checkov_version()} is not installed in {CHECKOV_VENV}: run `make checkov` (make test does)"
        )
    return CHECKOV_VENV / "bin" / "checkov"


def _translated(directory: Path) -> Path:
    cfn = translate(ROOT, {"Stage": TRANSLATED_STAGE, "DatabaseSecretArn": ""}).cloudformation
    resources = cfn["Resources"]
    for resource in resources.values():
        if resource["Type"] == "AWS::ApiGateway::Stage":
            api = resources.get(resource["Properties"].get("RestApiId", {}).get("Ref", ""), {})
            if "Metadata" in api:
                resource["Metadata"] = api["Metadata"]
    path = directory / f"template.translated.{TRANSLATED_STAGE}.json"
    path.write_text(json.dumps(cfn, indent=1))  # indented: checkov reports lines
    return path


def _run(checkov: Path, files: list[Path]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_", "CHECKOV_"))}
    env |= {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE", "LOG_LEVEL": "WARNING"}
    command = [str(checkov), "--framework", "cloudformation", "--skip-download", "--quiet", "--output", "json"]
    for path in files:
        command += ["--file", str(path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov exited {result.returncode} without a JSON report:\n{result.stdout}\n{result.stderr}")
    reports = report if isinstance(report, list) else [report]
    assert [r.get("check_type") for r in reports] == ["cloudformation"], result.stderr
    return reports[0]


def test_checkov_finds_no_failed_check(tmp_path: Path) -> None:
    checkov = _checkov()
    translated = _translated(tmp_path)
    report = _run(checkov, [*TEMPLATES, translated])
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, report.get("results", {}).get("parsing_errors")
    assert summary["resource_count"] > 0 and summary["passed"] > 0, summary
    failed = report.get("results", {}).get("failed_checks", [])

    def where(f: dict[str, Any]) -> str:
        name = f"template.yaml translated ({TRANSLATED_STAGE})" if f["file_path"].endswith(translated.name) else None
        return f"{name or f['file_path'].lstrip('/')}:{f['file_line_range'][0]}"

    lines = [f"{f['check_id']} {f['resource']} {where(f)} {f['check_name']}" for f in failed]
    assert not failed, (
        f"{len(failed)} failed checkov checks (fix each, or skip it in the resource's Metadata with a one-line "
        "reason: docs/development.md):\n" + "\n".join(sorted(lines))
    )


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.name for p in TEMPLATES])
def test_every_checkov_skip_says_why(path: Path) -> None:
    resources = parse_template(path.read_text())["Resources"]
    for logical_id, resource in resources.items():
        skips = (resource.get("Metadata") or {}).get("checkov", {}).get("skip", [])
        for skip in skips:
            assert re.fullmatch(r"CKV_AWS_\d+", skip.get("id", "")), (logical_id, skip)
            comment = skip.get("comment", "")
            assert isinstance(comment, str) and len(comment.split()) >= 4 and "\n" not in comment, (logical_id, skip)
