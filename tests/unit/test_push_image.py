"""scripts/push-image.sh (`make image`), checked without Docker or AWS: `aws` and `docker` are stubs on PATH that
record their arguments, so the commands it would run, in order, and the URI it prints are asserted."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "push-image.sh"
STUB = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $1 $2" in
  "aws sts get-caller-identity") echo 123456789012 ;;
  "aws ecr describe-repositories") [[ -n "${REPO_EXISTS:-}" ]] || exit 254 ;;
  "aws ecr describe-images") [[ -n "${IMAGE_EXISTS:-}" ]] || exit 254 ;;
  "aws ecr get-login-password") echo not-a-real-password ;;
  "docker login "*) cat > /dev/null ;;
esac
"""


def parameter_pattern(template: Path, name: str) -> str:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    pattern: str = yaml.load(template.read_text(), Loader=Loader)["Parameters"][name]["AllowedPattern"]
    return pattern


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("aws", "docker"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    return bin_dir


def push(
    stubs: Path, *args: str, script: Path = SCRIPT, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = stubs.parent / "calls.log"
    log.unlink(missing_ok=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(PATH=f"{stubs}:{os.environ['PATH']}", STUB_LOG=str(log), **env)
    done = subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, env=environment, check=False, timeout=60
    )
    return done, log.read_text().splitlines() if log.exists() else []


def test_dry_run_prints_the_commands_and_a_uri_the_templates_accept(stubs: Path) -> None:
    done, calls = push(
        stubs, "--stage", "dev", "--region", "eu-west-1", "--account", "123456789012", "--tag", "abc123", "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    assert calls == []  # nothing ran
    uri = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ffe-dev-inference:abc123"
    assert done.stdout.splitlines()[-1] == f"InferenceImageUri={uri}"
    assert re.fullmatch(parameter_pattern(ROOT / "template.yaml", "InferenceImageUri"), uri)
    assert re.fullmatch(parameter_pattern(ROOT / "iac" / "inference.yaml", "ImageUri"), uri)
    printed = [line.removeprefix("+ ") for line in done.stderr.splitlines() if line.startswith("+ ")]
    assert [" ".join(line.split()[:3]) for line in printed] == [
        "aws ecr create-repository",
        "docker build --platform",
        "aws ecr get-login-password",
        "docker push 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ffe-dev-inference:abc123",
    ]
    assert f"-f {ROOT}/gpu_inference/Dockerfile -t {uri} {ROOT}" in printed[1]


def test_creates_the_repository_builds_logs_in_and_pushes_in_that_order(stubs: Path) -> None:
    done, calls = push(stubs, "--stage", "prod", "--tag", "0123456789ab", AWS_REGION="us-east-1")
    assert done.returncode == 0, done.stderr
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    uri = f"{registry}/ffe-prod-inference:0123456789ab"
    steps = [" ".join(call.split()[:3]) for call in calls]
    assert steps[:5] == [
        "aws sts get-caller-identity",
        "aws ecr describe-repositories",
        "aws ecr create-repository",
        "aws ecr describe-images",
        "docker build --platform",
    ]
    # the login is one pipeline (its two sides start together), then the push
    assert sorted(steps[5:7]) == ["aws ecr get-login-password", "docker login --username"]
    assert steps[7:] == [f"docker push {uri}"]
    assert f"docker login --username AWS --password-stdin {registry}" in calls
    create = calls[2]
    assert "--repository-name ffe-prod-inference" in create and "--image-tag-mutability IMMUTABLE" in create
    assert "Key=project,Value=ffe Key=stage,Value=prod" in create and "scanOnPush=true" in create
    assert done.stdout.splitlines()[-1] == f"InferenceImageUri={uri}"
    assert "not-a-real-password" not in done.stdout + done.stderr


def test_an_image_already_pushed_is_neither_rebuilt_nor_overwritten(stubs: Path) -> None:
    done, calls = push(
        stubs, "--stage", "dev", "--region", "us-east-1", "--tag", "t1", REPO_EXISTS="1", IMAGE_EXISTS="1"
    )
    assert done.returncode == 0, done.stderr
    assert not any(call.startswith(("docker", "aws ecr create-repository")) for call in calls)
    assert "already in ECR" in done.stderr
    assert done.stdout.splitlines()[-1].endswith("/ffe-dev-inference:t1")


def test_china_regions_use_their_own_registry_domain(stubs: Path) -> None:
    done, _ = push(stubs, "--stage", "dev", "--region", "cn-north-1", "--tag", "t1", "--dry-run")
    uri = done.stdout.splitlines()[-1].removeprefix("InferenceImageUri=")
    assert uri == "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/ffe-dev-inference:t1"
    assert re.fullmatch(parameter_pattern(ROOT / "template.yaml", "InferenceImageUri"), uri)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--stage", "qa"], "--stage must be dev, staging or prod"),
        (["--stage", "dev", "--tag", "a/b"], "--tag may hold letters, digits"),
        (["--stage", "dev", "--tag", "t", "--region", "us-east-1", "--account", "12"], "--account must be 12 digits"),
        (["--stage", "dev", "--tag", "t", "--region", "mars"], "no AWS region"),
        (["--stage", "dev", "--push"], "unknown argument '--push'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(stubs: Path, args: list[str], error: str) -> None:
    done, calls = push(stubs, *args)
    assert done.returncode == 2
    assert done.stderr.startswith("push-image: error: ") and error in done.stderr and done.stderr.count("\n") == 1
    assert not any(call.startswith("docker") for call in calls)


def test_the_tag_is_the_commit_and_a_dirty_tree_is_refused(stubs: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "scripts" / "push-image.sh")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    sha = subprocess.run(
        [*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    script = repo / "scripts" / "push-image.sh"
    done, _ = push(stubs, "--stage", "dev", "--region", "us-east-1", "--dry-run", script=script)
    assert done.stdout.splitlines()[-1].endswith(f"/ffe-dev-inference:{sha}")
    (repo / "scripts" / "push-image.sh").write_text(script.read_text() + "\n# changed\n")
    done, _ = push(stubs, "--stage", "dev", "--region", "us-east-1", "--dry-run", script=script)
    assert done.returncode == 2 and "uncommitted changes" in done.stderr
