"""gpu_inference/deploy.py: the plan per stage, a dry run without the SDK, clear argument errors, the SDK calls."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gpu_inference import deploy

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ffe-inference:2024.06.1"
MODEL_DATA = "s3://ffe-dev-models/endpoint/ffe-b410f1753260/model.tar.gz"
ROLE = "arn:aws:iam::123456789012:role/ffe-sagemaker"


def argv(stage: str, *extra: str) -> list[str]:
    return ["--stage", stage, "--image-uri", IMAGE, "--model-data", MODEL_DATA, *extra]


def plan_for(stage: str, *extra: str) -> deploy.DeployPlan:
    return deploy.plan(deploy.parse_args(argv(stage, "--dry-run", *extra)))


@pytest.mark.parametrize(
    ("stage", "initial", "maximum", "instance"),
    [("dev", 1, 1, "ml.c5.xlarge"), ("staging", 1, 2, "ml.g5.xlarge"), ("prod", 2, 4, "ml.g5.xlarge")],
)
def test_plan_per_stage_uses_the_stage_defaults(stage: str, initial: int, maximum: int, instance: str) -> None:
    # When planning a stage with no overrides
    p = plan_for(stage)
    # Then names, counts and the autoscaling requests follow the stage table
    name = f"ffe-{stage}-inference"
    resource_id = f"endpoint/{name}/variant/AllTraffic"
    assert (p.endpoint_name, p.variant_name, p.instance_type) == (name, "AllTraffic", instance)
    assert p.initial_instance_count == initial
    assert p.model_name.startswith(f"{name}-") and len(p.model_name) <= 63
    assert p.scalable_target == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource_id,
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": initial,
        "MaxCapacity": maximum,
    }
    assert p.scaling_policy == {
        "PolicyName": f"{name}-invocations",
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource_id,
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 100.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleOutCooldown": 60,
            "ScaleInCooldown": 600,
        },
    }
    assert p.env == {
        "FFE_MODEL_STORE": "s3://ffe-dev-models/models",  # the model data's bucket: every published version
        "OLLAMA_HOST": "127.0.0.1:11434",
        "OLLAMA_MODEL": "llama3.2:3b-instruct-q4_0",
        "OLLAMA_FALLBACK_MODEL": "llama3.2:1b-instruct-q4_0",
        "FFE_LLM_TIMEOUT_S": "5",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "60",
        "STAGE": stage,
        "OTEL_SERVICE_NAME": "ffe-inference",
        "OTEL_RESOURCE_ATTRIBUTES": f"service.namespace=ffe,deployment.environment={stage}",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    assert set(p.env) == set(deploy.CONTAINER_ENV)
    assert p.data_capture == {
        "enable_capture": True,
        "sampling_percentage": 100,
        "destination_s3_uri": f"s3://ffe-dev-models/data-capture/{stage}",
        "capture_options": ["REQUEST", "RESPONSE"],
        "json_content_types": ["application/json"],
    }


def test_plan_overrides_take_precedence_over_the_stage() -> None:
    p = plan_for(
        "staging",
        "--instance-type",
        "ml.g6.xlarge",
        "--min",
        "3",
        "--target-invocations",
        "40",
        "--data-capture-s3",
        "s3://audit-bucket/capture/",
        "--sampling-percentage",
        "25",
        "--ollama-model",
        "llama3.2:1b-instruct-q4_0",
        "--role-arn",
        ROLE,
        "--region",
        "eu-west-1",
    )
    assert p.instance_type == "ml.g6.xlarge" and p.initial_instance_count == 3
    assert (p.scalable_target["MinCapacity"], p.scalable_target["MaxCapacity"]) == (3, 3)  # max follows a higher min
    assert p.scaling_policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 40.0
    assert p.data_capture["destination_s3_uri"] == "s3://audit-bucket/capture"
    assert p.data_capture["sampling_percentage"] == 25
    assert p.env["OLLAMA_MODEL"] == "llama3.2:1b-instruct-q4_0"
    assert (p.role_arn, p.region) == (ROLE, "eu-west-1")


def test_model_name_is_content_addressed() -> None:
    # Same inputs -> same SageMaker model (reused); a new image -> a new model
    assert plan_for("dev").model_name == plan_for("dev").model_name
    other = deploy.plan(
        deploy.parse_args(
            [
                "--stage",
                "dev",
                "--image-uri",
                IMAGE.replace("2024.06.1", "2024.07.0"),
                "--model-data",
                MODEL_DATA,
                "--dry-run",
            ]
        )
    )
    assert other.model_name != plan_for("dev").model_name


def test_dry_run_prints_the_plan_without_importing_the_sdk(monkeypatch, capsys) -> None:
    # Given the SDK and boto3 cannot be imported (None in sys.modules makes `import` raise)
    monkeypatch.setitem(sys.modules, "sagemaker", None)
    monkeypatch.setitem(sys.modules, "boto3", None)
    # When running a dry run
    assert deploy.main(argv("prod", "--dry-run")) == 0
    # Then the plan comes out as JSON
    printed = json.loads(capsys.readouterr().out)
    assert printed["dry_run"] is True
    assert printed["endpoint_name"] == "ffe-prod-inference" and printed["variant_name"] == "AllTraffic"
    assert printed["instance_type"] == "ml.g5.xlarge" and printed["initial_instance_count"] == 2
    assert printed["scaling_policy"]["PolicyType"] == "TargetTrackingScaling"
    assert printed["data_capture"]["enable_capture"] is True
    assert printed["env"]["OLLAMA_MODEL"] == "llama3.2:3b-instruct-q4_0"


def test_dry_run_script_in_a_fresh_interpreter_loads_no_aws_sdk() -> None:
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['deploy.py', *{argv('dev', '--dry-run')!r}]\n"
        "try:\n"
        "    runpy.run_path('gpu_inference/deploy.py', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'sagemaker', 'boto3', 'botocore'}), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout)["endpoint_name"] == "ffe-dev-inference"
    assert out.stderr.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-uri", IMAGE, "--model-data", MODEL_DATA], "the following arguments are required: --stage"),
        (["--stage", "qa", "--image-uri", IMAGE, "--model-data", MODEL_DATA], "invalid choice: 'qa'"),
        (["--stage", "dev", "--image-uri", "nginx:latest", "--model-data", MODEL_DATA], "ECR image URI expected"),
        (["--stage", "dev", "--image-uri", IMAGE, "--model-data", "s3://b/model.zip"], "<key>.tar.gz expected"),
        (argv("dev", "--min", "0"), "at least 1 expected, got 0"),
        (argv("dev", "--min", "two"), "a whole number expected, got 'two'"),
        (argv("prod", "--max", "1"), "--max (1) must be at least --min (2)"),
        (argv("dev", "--sampling-percentage", "101"), "0 to 100 expected"),
        (argv("dev", "--data-capture-s3", "/tmp/capture"), "s3:// URI expected"),
        (argv("dev", "--role-arn", "ffe-role"), "IAM role ARN expected"),
        (argv("dev"), "--role-arn is required unless --dry-run"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        deploy.main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------ the real deployment, against fakes


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, {"args": args, **kwargs}))

        return record


class FakeSageMakerClient:
    exceptions = types.SimpleNamespace(ClientError=ClientError)

    def __init__(self, exists: bool) -> None:
        self.exists = exists

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
        if not self.exists:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "Could not find"}}, "Describe")
        return {"EndpointName": EndpointName}


class FakeBotoSession:
    def __init__(self, exists: bool) -> None:
        self.autoscaling = Recorder()
        self.autoscaling.exceptions = types.SimpleNamespace(ObjectNotFoundException=LookupError)  # type: ignore[attr-defined]
        self.sagemaker = FakeSageMakerClient(exists)

    def client(self, name: str) -> Any:
        return {"application-autoscaling": self.autoscaling, "sagemaker": self.sagemaker}[name]


@pytest.fixture
def fake_sdk(monkeypatch) -> Recorder:
    """A stand-in `sagemaker` package recording what deploy() asks of it."""
    sdk = Recorder()

    class Model:
        def __init__(self, **kwargs: Any) -> None:
            sdk.calls.append(("Model", kwargs))

        def deploy(self, **kwargs: Any) -> None:
            sdk.calls.append(("Model.deploy", kwargs))

        def create(self, **kwargs: Any) -> None:
            sdk.calls.append(("Model.create", kwargs))

    class DataCaptureConfig:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

        def _to_request_dict(self) -> dict[str, Any]:
            return {"EnableCapture": self.kwargs["enable_capture"]}

    class Session:
        def __init__(self, boto_session: Any) -> None:
            self.boto_session = boto_session

        def create_endpoint_config(self, **kwargs: Any) -> None:
            sdk.calls.append(("create_endpoint_config", kwargs))

        def update_endpoint(self, *args: Any, **kwargs: Any) -> None:
            sdk.calls.append(("update_endpoint", {"args": args, **kwargs}))

    modules = {
        "sagemaker": types.ModuleType("sagemaker"),
        "sagemaker.model": types.SimpleNamespace(Model=Model),
        "sagemaker.model_monitor": types.SimpleNamespace(DataCaptureConfig=DataCaptureConfig),
        "sagemaker.session": types.SimpleNamespace(Session=Session),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return sdk


def test_deploy_creates_the_endpoint_then_registers_autoscaling(fake_sdk: Recorder) -> None:
    # Given a plan with a role and no endpoint yet
    p = deploy.plan(deploy.parse_args(argv("prod", "--role-arn", ROLE)))
    boto = FakeBotoSession(exists=False)
    # When deploying
    deploy.deploy(p, boto_session=boto)
    # Then the model is built from the plan and deployed with data capture, then autoscaling is registered
    calls = dict(fake_sdk.calls)
    assert calls["Model"] == {
        "image_uri": IMAGE,
        "model_data": MODEL_DATA,
        "role": ROLE,
        "env": p.env,
        "name": p.model_name,
        "sagemaker_session": calls["Model"]["sagemaker_session"],
    }
    deployed = calls["Model.deploy"]
    assert deployed["endpoint_name"] == "ffe-prod-inference" and deployed["wait"] is True
    assert (deployed["initial_instance_count"], deployed["instance_type"]) == (2, "ml.g5.xlarge")
    assert deployed["data_capture_config"].kwargs == p.data_capture
    assert boto.autoscaling.calls == [
        ("register_scalable_target", {"args": (), **p.scalable_target}),
        ("put_scaling_policy", {"args": (), **p.scaling_policy}),
    ]


def test_deploy_updates_an_existing_endpoint_around_autoscaling(fake_sdk: Recorder) -> None:
    # Given the endpoint already exists
    p = deploy.plan(deploy.parse_args(argv("dev", "--role-arn", ROLE)))
    boto = FakeBotoSession(exists=True)
    # When deploying
    deploy.deploy(p, boto_session=boto)
    # Then autoscaling lets go, a new endpoint config is rolled out, and autoscaling comes back
    names = [name for name, _ in fake_sdk.calls]
    assert names == ["Model", "Model.create", "create_endpoint_config", "update_endpoint"]
    config = dict(fake_sdk.calls)["create_endpoint_config"]
    assert config["model_name"] == p.model_name and config["data_capture_config_dict"] == {"EnableCapture": True}
    update = dict(fake_sdk.calls)["update_endpoint"]
    assert update["args"] == ("ffe-dev-inference", config["name"]) and update["wait"] is True
    assert [name for name, _ in boto.autoscaling.calls] == [
        "deregister_scalable_target",
        "register_scalable_target",
        "put_scaling_policy",
    ]


def test_container_defaults_come_from_the_containers_own_modules() -> None:
    from gpu_inference import gpu, llm

    assert (deploy.DEFAULT_OLLAMA_MODEL, deploy.DEFAULT_OLLAMA_FALLBACK_MODEL) == (gpu.LLAMA_3B_Q4, gpu.LLAMA_1B_Q4)
    assert deploy.CONTAINER_ENV["FFE_LLM_TIMEOUT_S"] == f"{llm.DEFAULT_TIMEOUT_S:g}" == "5"


def test_dry_run_as_a_script_from_the_repository_root() -> None:
    # Given `python gpu_inference/deploy.py` (its folder, not the repository root, is first on sys.path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [sys.executable, "gpu_inference/deploy.py", *argv("dev", "--dry-run")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    # Then it finds the container's modules and prints the plan with their defaults
    printed = json.loads(out.stdout)
    assert printed["env"]["OLLAMA_FALLBACK_MODEL"] == "llama3.2:1b-instruct-q4_0"
    assert printed["env"]["FFE_LLM_TIMEOUT_S"] == "5"
