"""The scheduled checkpoint cleanup in the translated template: a daily rule starts a STANDARD state machine that
runs ``ffe models cleanup --apply --stage <stage>`` as a SageMaker training job (script mode), only when
TrainingImageUri is set (never offline, where it is empty)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from ffe.local.template import load_sam, translate
from ffe.training.cleanup import add_cleanup_arguments

ROOT = Path(__file__).resolve().parents[2]
ON = {
    "TrainingImageUri": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312",
    "TrainingSourceS3Uri": "s3://ffe-prod-models-123456789012/training-source/sourcedir.tar.gz",
    "MlflowTrackingUriSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ffe/prod/mlflow-AbCdEf",
}
CLEANUP = {
    "CheckpointCleanupStateMachine",
    "CheckpointCleanupStateMachineLogGroup",
    "CheckpointCleanupStateMachineRole",
    "CheckpointCleanupJobRole",
    "CheckpointCleanupSchedule",
    "CheckpointCleanupScheduleRole",
}


@pytest.fixture(scope="module")
def on() -> dict[str, Any]:
    return translate(ROOT, {"Stage": "prod", "DatabaseSecretArn": "", **ON}).cloudformation


def _holds(condition: Any, cfn: dict[str, Any], parameters: dict[str, str]) -> bool:
    """Evaluate a CloudFormation condition the way CloudFormation does, parameters defaulted from the template."""
    if isinstance(condition, str):
        return _holds(cfn["Conditions"][condition], cfn, parameters)
    [(fn, args)] = condition.items()
    if fn == "Condition":
        return _holds(args, cfn, parameters)
    if fn == "Fn::Not":
        return not _holds(args[0], cfn, parameters)
    if fn == "Fn::And":
        return all(_holds(a, cfn, parameters) for a in args)
    if fn == "Fn::Or":
        return any(_holds(a, cfn, parameters) for a in args)
    assert fn == "Fn::Equals", fn

    def value(v: Any) -> str:
        if isinstance(v, dict):
            name = v["Ref"]
            return parameters.get(name, str(cfn["Parameters"][name].get("Default", "")))
        return str(v)

    return value(args[0]) == value(args[1])


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in role["Properties"]["Policies"]:
        if "Fn::If" in policy:  # a conditional policy: its "then" branch
            policy = policy["Fn::If"][1]
        for statement in policy["PolicyDocument"]["Statement"]:
            found.append(statement["Fn::If"][1] if "Fn::If" in statement else statement)
    return found


def _allowing(role: dict[str, Any], action: str) -> list[str]:
    """The resources (as JSON text) ``role`` allows ``action`` on."""
    out = []
    for s in _statements(role):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if action in actions:
            out.append(json.dumps(s["Resource"]))
    return out


def test_the_state_machine_runs_one_training_job_named_for_the_stage(on) -> None:
    machine = on["Resources"]["CheckpointCleanupStateMachine"]["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["StateMachineName"] == {"Fn::Sub": "ffe-${Stage}-checkpoint-cleanup"}
    [(name, task)] = machine["Definition"]["States"].items()
    assert machine["Definition"]["StartAt"] == name and task["Type"] == "Task" and task["End"] is True
    assert task["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:states:::sagemaker:createTrainingJob.sync"}
    job = task["Parameters"]
    # unique per run, and starting ffe-<stage>- so that the training-failed EventBridge rule reports a failure
    assert job["TrainingJobName.$"] == {"Fn::Sub": "States.Format('ffe-${Stage}-cleanup-{}', States.UUID())"}
    assert len("ffe-staging-cleanup-") + 36 <= 63  # a UUID fits SageMaker's job-name limit in every stage
    alarms = yaml_parse((ROOT / "iac/alarms.yaml").read_text())["Resources"]
    pattern = alarms["TrainingJobFailedRule"]["Properties"]["EventPattern"]["detail"]
    assert pattern["TrainingJobName"] == [{"prefix": {"Fn::Sub": "ffe-${Stage}-"}}]
    assert job["AlgorithmSpecification"]["TrainingImage"] == {"Ref": "TrainingImageUri"}
    assert job["RoleArn"] == {"Fn::GetAtt": ["CheckpointCleanupJobRole", "Arn"]}
    assert job["Environment"]["MLFLOW_TRACKING_URI_SECRET_ARN"] == {"Ref": "MlflowTrackingUriSecretArn"}
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] <= 3600


def test_the_job_runs_the_cleanup_with_apply_for_its_stage_in_script_mode(on) -> None:
    task = next(iter(on["Resources"]["CheckpointCleanupStateMachine"]["Properties"]["Definition"]["States"].values()))
    hyper = task["Parameters"]["HyperParameters"]
    assert hyper["sagemaker_submit_directory"] == {"Ref": "TrainingSourceS3Uri"}
    # `make training-source` copies layers/core/ffe to build/training/ffe: the program is in the source tarball
    program = hyper["sagemaker_program"]
    assert program == "ffe/training/cleanup_job.py" and (ROOT / "layers/core" / program).is_file()
    assert "cp -r layers/core/ffe build/training/ffe" in (ROOT / "Makefile").read_text()
    user = {k: v for k, v in hyper.items() if not k.startswith("sagemaker_")}
    assert user == {"apply": "true", "stage": {"Ref": "Stage"}}
    # script mode passes the others as --key value ("true", or "True" where the toolkit decodes JSON first)
    parser = argparse.ArgumentParser()
    add_cleanup_arguments(parser)
    for apply in ("true", "True"):
        args = parser.parse_args(["--apply", apply, "--stage", "prod"])
        assert args.apply is True and args.stage == ["prod"]


def test_the_job_joins_the_database_s_network_only_when_the_stack_creates_it(on) -> None:
    task = next(iter(on["Resources"]["CheckpointCleanupStateMachine"]["Properties"]["Definition"]["States"].values()))
    condition, vpc, otherwise = task["Parameters"]["VpcConfig"]["Fn::If"]
    assert condition == "CheckpointCleanupInVpc" and otherwise == {"Ref": "AWS::NoValue"}
    assert vpc["Subnets"] == {"Fn::Split": [",", {"Fn::GetAtt": ["NetworkStack", "Outputs.PrivateSubnetIds"]}]}
    assert vpc["SecurityGroupIds"] == [{"Fn::GetAtt": ["NetworkStack", "Outputs.LambdaSecurityGroupId"]}]
    assert _holds(condition, on, {**ON, "DatabaseSecretArn": ""})
    assert not _holds(condition, on, {**ON, "DatabaseSecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:db"})
    ec2 = _allowing(on["Resources"]["CheckpointCleanupJobRole"], "ec2:CreateNetworkInterface")
    assert ec2 == ['"*"']


def test_a_daily_rule_starts_it_with_the_schedule_dead_letter_queue(on) -> None:
    rule = on["Resources"]["CheckpointCleanupSchedule"]["Properties"]
    assert rule["Name"] == {"Fn::Sub": "ffe-${Stage}-checkpoint-cleanup-daily"}
    assert rule["ScheduleExpression"].startswith("cron(") and rule["ScheduleExpression"].endswith(" * * ? *)")
    assert rule["State"] == {"Fn::If": ["SchedulesOn", "ENABLED", "DISABLED"]}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Ref": "CheckpointCleanupStateMachine"}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}}
    assert target["RoleArn"] == {"Fn::GetAtt": ["CheckpointCleanupScheduleRole", "Arn"]}
    start = _allowing(on["Resources"]["CheckpointCleanupScheduleRole"], "states:StartExecution")
    assert start == ['{"Ref": "CheckpointCleanupStateMachine"}']
    # its failed invocations page like every schedule's, with the alarm only where the rule exists
    passed = on["Resources"]["AlarmsStack"]["Properties"]["Parameters"]
    assert passed["CheckpointCleanupRuleName"] == rule["Name"]
    assert passed["CheckpointCleanupScheduled"] == {"Fn::If": ["CheckpointCleanupOn", "true", "false"]}
    alarms = yaml_parse((ROOT / "iac/alarms.yaml").read_text())
    alarm = alarms["Resources"]["ScheduleFailedCheckpointCleanupAlarm"]
    assert alarm["Condition"] == "CheckpointCleanupOn"
    assert alarms["Conditions"]["CheckpointCleanupOn"] == {
        "Fn::Equals": [{"Ref": "CheckpointCleanupScheduled"}, "true"]
    }
    assert alarm["Properties"]["MetricName"] == "FailedInvocations"
    assert alarm["Properties"]["Dimensions"] == [{"Name": "RuleName", "Value": {"Ref": "CheckpointCleanupRuleName"}}]


def test_the_roles_allow_what_the_cleanup_does_and_deletes_only_mlflow_artifacts(on) -> None:
    job = on["Resources"]["CheckpointCleanupJobRole"]
    assert "sagemaker.amazonaws.com" in json.dumps(job["Properties"]["AssumeRolePolicyDocument"])
    assert _allowing(job, "secretsmanager:GetSecretValue") == ['{"Ref": "MlflowTrackingUriSecretArn"}']
    assert _allowing(job, "s3:DeleteObject") == ['{"Fn::Sub": "${ModelBucket.Arn}/mlflow/*"}']
    assert any("ModelBucket" in r for r in _allowing(job, "s3:GetObject"))
    assert any("TrainingSourceS3Uri" in r for r in _allowing(job, "s3:GetObject"))
    # serving_bundles: the stack's outputs, then the endpoint's model data
    assert _allowing(job, "cloudformation:DescribeStacks") == [
        '{"Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/ffe-${Stage}/*"}'
    ]
    for action in ("sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"):
        assert "endpoint/ffe-${Stage}-inference" in _allowing(job, action)[0]
    metrics = next(s for s in _statements(job) if s["Action"] == "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "FFE"}}
    assert "/aws/sagemaker/TrainingJobs" in _allowing(job, "logs:PutLogEvents")[0]
    machine = on["Resources"]["CheckpointCleanupStateMachineRole"]
    created = _allowing(machine, "sagemaker:CreateTrainingJob")
    assert created == [
        '{"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:training-job/ffe-${Stage}-cleanup-*"}'
    ]
    assert _allowing(machine, "iam:PassRole") == ['{"Fn::GetAtt": ["CheckpointCleanupJobRole", "Arn"]}']


@pytest.mark.parametrize("stage", ["dev", "staging", "prod"])
def test_none_of_it_exists_without_a_training_image(stage: str) -> None:
    cfn = translate(ROOT, {"Stage": stage, "DatabaseSecretArn": ""}).cloudformation
    conditional = {lid for lid, r in cfn["Resources"].items() if r.get("Condition") in ("CheckpointCleanupOn",)}
    assert conditional == CLEANUP
    assert cfn["Outputs"]["CheckpointCleanupStateMachineArn"]["Condition"] == "CheckpointCleanupOn"
    assert not _holds("CheckpointCleanupOn", cfn, {})  # the default, and the offline runtime's
    assert _holds("CheckpointCleanupOn", cfn, ON)
    # nothing that exists without it refers to it (CloudFormation would refuse the template)
    for lid, resource in cfn["Resources"].items():
        if lid not in CLEANUP:
            text = json.dumps(resource)
            assert not any(f'"{name}"' in text or "${" + name in text for name in CLEANUP), lid
    rules = load_sam(ROOT)["Rules"]["CheckpointCleanupNeedsSourceAndRegistry"]
    needed = json.dumps(rules["Assertions"])
    assert "TrainingSourceS3Uri" in needed and "MlflowTrackingUriSecretArn" in needed


def test_the_offline_runtime_leaves_the_training_image_empty() -> None:
    deploy = (ROOT / "layers/core/ffe/local/aws.py").read_text()
    assert "TrainingImageUri" not in deploy
