"""The managed MLflow server (iac/mlflow.yaml): created only with MlflowServer=managed (never offline), its artifacts
where ffe.training.tracking and the cleanup job expect them, and its ARN wired as the cleanup's tracking URI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from ffe.local.template import load_sam, translate
from tests.template.test_cleanup_job import ON, _holds

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "iac" / "mlflow.yaml"


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return yaml_parse(STACK.read_text())


def unguarded(node: Any, guarded: bool = False) -> list[str]:
    """Every reference to MlflowStack that is not inside an Fn::If on MlflowManaged."""
    if isinstance(node, list):
        return [found for item in node for found in unguarded(item, guarded)]
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        if key == "Fn::If" and value[0] == "MlflowManaged":
            found += unguarded(value[1], True) + unguarded(value[2], guarded)
        elif key == "Fn::GetAtt" and value[0] == "MlflowStack" and not guarded:
            found.append(".".join(value))
        else:
            found += unguarded(value, guarded)
    return found


@pytest.mark.parametrize("stage", ["dev", "staging", "prod"])
def test_the_server_exists_only_when_asked_for_and_nothing_else_needs_it(stage: str) -> None:
    cfn = translate(ROOT, {"Stage": stage, "DatabaseSecretArn": ""}).cloudformation
    assert cfn["Resources"]["MlflowStack"]["Condition"] == "MlflowManaged"
    assert cfn["Resources"]["MlflowStack"]["Properties"]["TemplateURL"].endswith("iac/mlflow.yaml")
    assert not _holds("MlflowManaged", cfn, {})  # the default, and so the offline runtime's (moto has no MLflow)
    assert _holds("MlflowManaged", cfn, {"MlflowServer": "managed"})
    for name, resource in cfn["Resources"].items():
        if name != "MlflowStack":
            assert unguarded(resource) == [], name
    outputs = {name: o for name, o in cfn["Outputs"].items() if "MlflowStack" in json.dumps(o)}
    assert set(outputs) == {"MlflowTrackingUri", "MlflowClientPolicyArn"}
    assert {o["Condition"] for o in outputs.values()} == {"MlflowManaged"}


def test_the_offline_runtime_never_asks_for_a_server() -> None:
    assert "MlflowServer" not in (ROOT / "layers/core/ffe/local/aws.py").read_text()


def test_the_template_reads_only_outputs_the_nested_stack_has(stack: dict[str, Any]) -> None:
    text = (ROOT / "template.yaml").read_text()
    used = set(re.findall(r"MlflowStack\.Outputs\.(\w+)", text))
    assert used == {"TrackingServerArn", "ClientPolicyArn"} and used <= set(stack["Outputs"])
    passed = load_sam(ROOT)["Resources"]["MlflowStack"]["Properties"]["Parameters"]
    required = {name for name, p in stack["Parameters"].items() if "Default" not in p}
    assert required <= set(passed)


def test_artifacts_live_under_mlflow_in_the_model_bucket_where_the_cleanup_may_delete_them(
    stack: dict[str, Any],
) -> None:
    server = stack["Resources"]["TrackingServer"]["Properties"]
    assert server["ArtifactStoreUri"] == {"Fn::Sub": "s3://${ArtifactBucketName}/mlflow"}
    assert server["TrackingServerName"] == {"Fn::Sub": "ffe-${Stage}-mlflow"}
    assert server["AutomaticModelRegistration"] is False  # ffe.training.tracking registers and aliases itself
    cleanup = load_sam(ROOT)["Resources"]["CheckpointCleanupJobRole"]["Properties"]["Policies"][0]
    deletes = next(s for s in cleanup["PolicyDocument"]["Statement"] if s.get("Sid") == "DeleteMlflowArtifacts")
    assert deletes["Resource"] == {"Fn::Sub": "${ModelBucket.Arn}/mlflow/*"}
    # the server's own role reaches only that prefix of that bucket
    role = stack["Resources"]["TrackingServerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert {json.dumps(s["Resource"]) for s in role} == {
        json.dumps({"Fn::Sub": "arn:${AWS::Partition}:s3:::${ArtifactBucketName}/mlflow/*"}),
        json.dumps({"Fn::Sub": "arn:${AWS::Partition}:s3:::${ArtifactBucketName}"}),
    }


def test_clients_may_use_this_server_only(stack: dict[str, Any]) -> None:
    statements = stack["Resources"]["ClientPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    api = next(s for s in statements if "sagemaker-mlflow:*" in s["Action"])
    assert api["Resource"] == {"Fn::GetAtt": ["TrackingServer", "TrackingServerArn"]}
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["mlflow/*", "mlflow"]}}


def test_the_cleanup_job_tracks_on_the_managed_server_without_a_secret() -> None:
    managed = {key: value for key, value in ON.items() if key != "MlflowTrackingUriSecretArn"}
    cfn = translate(
        ROOT, {"Stage": "prod", "DatabaseSecretArn": "", "MlflowServer": "managed", **managed}
    ).cloudformation
    job = cfn["Resources"]["CheckpointCleanupStateMachine"]["Properties"]["Definition"]["States"]["RunCleanupJob"]
    assert job["Parameters"]["Environment"]["MLFLOW_TRACKING_URI"] == {
        "Fn::If": [
            "MlflowManaged",
            {"Fn::GetAtt": ["MlflowStack", "Outputs.TrackingServerArn"]},
            {"Ref": "AWS::NoValue"},
        ]
    }
    role = cfn["Resources"]["CheckpointCleanupJobRole"]["Properties"]
    assert role["ManagedPolicyArns"]["Fn::If"][1] == [{"Fn::GetAtt": ["MlflowStack", "Outputs.ClientPolicyArn"]}]
    # the rule asks for a registry: the secret, or the managed server
    [registry] = [
        a
        for a in load_sam(ROOT)["Rules"]["CheckpointCleanupNeedsSourceAndRegistry"]["Assertions"]
        if "Fn::Or" in a["Assert"]
    ]
    text = json.dumps(registry["Assert"])
    assert "MlflowTrackingUriSecretArn" in text and '"MlflowServer"' in text and '"managed"' in text


def test_the_training_job_and_the_cli_can_read_a_server_arn() -> None:
    # MLFLOW_TRACKING_URI=<server ARN> needs the sagemaker-mlflow plugin wherever MLflow runs against it
    requirements = (ROOT / "layers/core/requirements-training.txt").read_text()
    assert re.search(r"^sagemaker-mlflow", requirements, re.M)
    assert "sagemaker-mlflow" in (ROOT / "pyproject.toml").read_text()
