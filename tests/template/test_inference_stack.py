"""iac/inference.yaml: lint clean, data capture and autoscaling wired to the endpoint, same env as deploy.py."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from gpu_inference import deploy

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "iac" / "inference.yaml"


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return yaml_parse(STACK.read_text())


def resources_of(stack: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in stack["Resources"].values() if r["Type"] == type_]


def only(stack: dict[str, Any], type_: str) -> dict[str, Any]:
    found = resources_of(stack, type_)
    assert len(found) == 1, type_
    return found[0]["Properties"]


def test_cfn_lint_passes_on_the_inference_stack() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(STACK.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_endpoint_is_named_per_stage_with_one_all_traffic_variant(stack) -> None:
    # Given the stack / When reading the endpoint and its config / Then the names match deploy.py's
    endpoint = only(stack, "AWS::SageMaker::Endpoint")
    assert endpoint["EndpointName"] == {"Fn::Sub": "ffe-${Stage}-inference"}
    assert deploy.endpoint_name("dev") == "ffe-dev-inference"
    variants = only(stack, "AWS::SageMaker::EndpointConfig")["ProductionVariants"]
    assert [v["VariantName"] for v in variants] == [deploy.VARIANT_NAME] == ["AllTraffic"]
    assert variants[0]["InstanceType"] == {"Ref": "InstanceType"}
    assert stack["Parameters"]["InstanceType"]["Default"] == deploy.STAGES["prod"].instance_type == "ml.g5.xlarge"
    assert variants[0]["ContainerStartupHealthCheckTimeoutInSeconds"] == deploy.STARTUP_TIMEOUT_S


def test_endpoint_config_captures_input_and_output_as_json(stack) -> None:
    capture = only(stack, "AWS::SageMaker::EndpointConfig")["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}
    assert capture["CaptureContentTypeHeader"]["JsonContentTypes"] == ["application/json"]
    assert capture["InitialSamplingPercentage"] == {"Ref": "DataCaptureSamplingPercentage"}
    assert "${DataCaptureBucket}" in capture["DestinationS3Uri"]["Fn::Sub"]


def test_scalable_target_is_the_endpoint_variant(stack) -> None:
    target = only(stack, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["ServiceNamespace"] == "sagemaker"
    assert target["ResourceId"] == {"Fn::Sub": "endpoint/${Endpoint.EndpointName}/variant/AllTraffic"}
    assert stack["Resources"]["Endpoint"]["Type"] == "AWS::SageMaker::Endpoint"
    assert target["ScalableDimension"] == deploy.SCALABLE_DIMENSION == "sagemaker:variant:DesiredInstanceCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == ({"Ref": "MinCapacity"}, {"Ref": "MaxCapacity"})


def test_scaling_policy_tracks_invocations_per_instance(stack) -> None:
    policy = only(stack, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ScalingTargetId"] == {"Ref": "ScalableTarget"}
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert config["TargetValue"] == {"Ref": "TargetInvocationsPerInstance"}
    # the same cooldowns as the SDK path
    assert (config["ScaleOutCooldown"], config["ScaleInCooldown"]) == (
        deploy.SCALE_OUT_COOLDOWN_S,
        deploy.SCALE_IN_COOLDOWN_S,
    )


def test_container_environment_is_deploy_container_env(stack) -> None:
    # Given the model's container env in the YAML and CONTAINER_ENV in deploy.py
    env = only(stack, "AWS::SageMaker::Model")["PrimaryContainer"]["Environment"]
    parameters = stack["Parameters"]
    # Then the keys are the same and every value resolves to the same default
    assert set(env) == set(deploy.CONTAINER_ENV)
    for key, value in env.items():
        if isinstance(value, dict) and "Ref" in value:
            resolved = "{stage}" if value["Ref"] == "Stage" else str(parameters[value["Ref"]]["Default"])
        elif isinstance(value, dict) and "Fn::Sub" in value:
            resolved = value["Fn::Sub"].replace("${Stage}", "{stage}").replace("${ModelsBucketName}", "{models_bucket}")
        else:
            resolved = str(value)
        assert resolved == deploy.CONTAINER_ENV[key], key
    assert env["OLLAMA_HOST"] == "127.0.0.1:11434"
    assert parameters["OllamaModel"]["Default"] == "llama3.2:3b-instruct-q4_0"
    assert parameters["OllamaFallbackModel"]["Default"] == "llama3.2:1b-instruct-q4_0"


def test_model_serves_the_image_and_bundle_as_its_own_role(stack) -> None:
    model = only(stack, "AWS::SageMaker::Model")
    assert model["PrimaryContainer"]["Image"] == {"Ref": "ImageUri"}
    assert model["PrimaryContainer"]["ModelDataUrl"] == {"Ref": "ModelDataUrl"}
    assert model["ExecutionRoleArn"] == {"Fn::GetAtt": ["ExecutionRole", "Arn"]}


def test_execution_role_reads_only_the_models_bucket(stack) -> None:
    role = stack["Resources"]["ExecutionRole"]["Properties"]
    principal = role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
    assert principal == "sagemaker.amazonaws.com"
    # the unconditional statements (the VPC and key ones are Fn::If: tests/template/test_network.py resolves them)
    statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] if "Sid" in s}
    # the tarball itself, and the store's versions: nothing else in the bucket (tests/template/test_iam.py has more)
    assert statements["ModelDataRead"]["Resource"]["Fn::Sub"][0] == "arn:${AWS::Partition}:s3:::${Path}"
    assert "${ModelsBucketName}/models/*" in statements["ModelStoreRead"]["Resource"]["Fn::Sub"]
    assert "${DataCaptureBucket}/data-capture/${Stage}/*" in statements["DataCaptureWrite"]["Resource"]["Fn::Sub"]
    s3_statements = [s for s in statements.values() if any(str(a).startswith("s3:") for a in _list(s["Action"]))]
    assert all(s["Resource"] != "*" for s in s3_statements)
    assert {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"} <= set(statements["EcrPull"]["Action"])


def test_alarms_cover_latency_p95_and_serving_errors(stack) -> None:
    alarms = {a["Properties"]["MetricName"]: a["Properties"] for a in resources_of(stack, "AWS::CloudWatch::Alarm")}
    assert set(alarms) == {"ModelLatency", "Invocation5XXErrors"}
    assert alarms["ModelLatency"]["ExtendedStatistic"] == "p95"
    for alarm in alarms.values():
        assert alarm["Namespace"] == "AWS/SageMaker"
        dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dims == {"EndpointName": {"Fn::GetAtt": ["Endpoint", "EndpointName"]}, "VariantName": "AllTraffic"}
    assert "model serving down" in alarms["Invocation5XXErrors"]["AlarmDescription"]["Fn::Sub"]


def test_outputs_name_the_endpoint_variant_and_arn(stack) -> None:
    outputs = stack["Outputs"]
    assert {"EndpointName", "VariantName", "EndpointArn"} <= set(outputs)
    assert outputs["VariantName"]["Value"] == deploy.VARIANT_NAME
    assert outputs["EndpointArn"]["Value"] == {"Ref": "Endpoint"}  # Ref of a SageMaker endpoint is its ARN


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- template.yaml: InferDecision and the optional nested stack ------------------------------------


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return yaml_parse((ROOT / "template.yaml").read_text())


def test_infer_decision_calls_the_stage_endpoint_and_only_that(sam) -> None:
    fn = sam["Resources"]["InferDecisionFunction"]["Properties"]
    env = fn["Environment"]["Variables"]
    # the settings InferDecision reads (ffe.settings.InferenceSettings), named as deploy.py names the endpoint
    assert env["INFERENCE_ENDPOINT"] == {"Fn::Sub": "ffe-${Stage}-inference"}
    assert env["INFERENCE_VARIANT"] == deploy.VARIANT_NAME
    assert env["INFERENCE_LLM"] == {"Ref": "InferenceLlmVote"}
    statements = [s for p in fn["Policies"] if isinstance(p, dict) and "Statement" in p for s in p["Statement"]]
    invoke = [s for s in statements if s["Action"] == "sagemaker:InvokeEndpoint"]
    assert [s["Resource"] for s in invoke] == [
        {"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/ffe-${Stage}-inference"}
    ]
    assert "VpcConfig" not in fn  # sagemaker-runtime and DynamoDB are reached without the VPC's NAT


def test_the_read_timeout_covers_the_containers_llm_budget(sam) -> None:
    # Given the container's per-call Ollama timeout, a retry on an invalid answer and one fallback model
    per_call = float(deploy.CONTAINER_ENV["FFE_LLM_TIMEOUT_S"])
    fn = sam["Resources"]["InferDecisionFunction"]["Properties"]
    timeout = fn["Environment"]["Variables"]["INFERENCE_TIMEOUT_S"]["Fn::If"]
    assert timeout[0] == "LlmVoteOn"
    with_llm, rl_only = float(timeout[1]), float(timeout[2])
    # Then InferDecision waits for the worst LLM path, and the Lambda outlives its own read timeout
    assert with_llm >= 3 * per_call + 1
    assert rl_only <= 2
    assert fn["Timeout"] > with_llm + 1  # + the 1 s connect timeout


def test_the_state_machine_decides_through_infer_decision(sam) -> None:
    machine = sam["Resources"]["DecisionCycleStateMachine"]["Properties"]
    assert machine["DefinitionSubstitutions"]["InferDecisionFunctionArn"] == {"Ref": "InferDecisionFunction.Version"}
    invokable = [p["LambdaInvokePolicy"]["FunctionName"] for p in machine["Policies"] if "LambdaInvokePolicy" in p]
    assert {"Ref": "InferDecisionFunction"} in invokable
    assert "DecideFunction" not in sam["Resources"]


def test_nested_inference_stack_is_optional_and_sized_per_stage(sam) -> None:
    nested = sam["Resources"]["InferenceStack"]
    assert nested["Condition"] == "CreateInferenceEndpoint"
    assert sam["Conditions"]["CreateInferenceEndpoint"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "InferenceImageUri"}, ""]}]
    }
    params = nested["Properties"]["Parameters"]
    assert nested["Properties"]["TemplateURL"] == "iac/inference.yaml"
    assert set(params) - set(yaml_parse(STACK.read_text())["Parameters"]) == set()  # every one exists there
    assert params["ModelDataUrl"] == {"Ref": "InferenceModelDataUrl"}
    # stage capacities agree with deploy.py's
    mapping = sam["Mappings"]["StageConfig"]
    assert params["InstanceType"] == {"Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "InferenceInstanceType"]}
    for stage, defaults in deploy.STAGES.items():
        assert (
            mapping[stage]["InferenceMinCapacity"],
            mapping[stage]["InferenceMaxCapacity"],
            mapping[stage]["InferenceInstanceType"],
        ) == (defaults.min_capacity, defaults.max_capacity, defaults.instance_type), stage
    assert mapping["dev"]["InferenceInstanceType"] == "ml.c5.xlarge"  # dev: no GPU (docs/inference.md#instances)
    # an image without model data is refused before anything is created
    rule = sam["Rules"]["InferenceEndpointNeedsModelData"]
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "InferenceModelDataUrl"}, ""]}]}
    output = sam["Outputs"]["InferenceEndpointName"]
    assert output["Condition"] == "CreateInferenceEndpoint"
    assert output["Value"] == {"Fn::GetAtt": ["InferenceStack", "Outputs.EndpointName"]}
