"""Deploy the gpu_inference container to the ``ffe-<stage>-inference`` endpoint with the SageMaker Python SDK.

The same deployment as ``iac/inference.yaml`` for teams that do not go through CloudFormation:

    python gpu_inference/deploy.py --stage dev --image-uri <ecr image> --model-data s3://.../model.tar.gz \
        --role-arn arn:aws:iam::...:role/... [--instance-type ml.g5.xlarge] [--min 1 --max 4] \
        [--target-invocations 100] [--data-capture-s3 s3://...] [--dry-run]

``--dry-run`` prints the plan as JSON and imports neither the SageMaker SDK nor boto3. The SDK is imported
only inside :func:`deploy`: it belongs to this operator tool, never to a Lambda package. It is the v2 SDK
(``pip install "sagemaker>=2.200,<3"``; checked with 2.257.7): v3 replaced ``sagemaker.model.Model``. The
container's defaults (Ollama models, per-call timeout) come from its own modules, so it runs in the project's
environment (``ffe`` and the container's requirements importable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python gpu_inference/deploy.py): the repository root holds the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_inference.gpu import LLAMA_1B_Q4, LLAMA_3B_Q4
from gpu_inference.llm import DEFAULT_TIMEOUT_S

VARIANT_NAME = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"
DEFAULT_OLLAMA_MODEL = LLAMA_3B_Q4
DEFAULT_OLLAMA_FALLBACK_MODEL = LLAMA_1B_Q4
# Unpacking the bundle, starting Ollama and loading the LLM onto the GPU takes minutes (same as the YAML).
STARTUP_TIMEOUT_S = 600
SCALE_OUT_COOLDOWN_S = 60
SCALE_IN_COOLDOWN_S = 600

# The container environment; iac/inference.yaml's Model Environment has exactly these keys (tested).
# ``{stage}`` is filled per deployment; the Ollama models can be overridden on the command line.
CONTAINER_ENV: dict[str, str] = {
    "OLLAMA_HOST": "127.0.0.1:11434",
    "OLLAMA_MODEL": DEFAULT_OLLAMA_MODEL,
    "OLLAMA_FALLBACK_MODEL": DEFAULT_OLLAMA_FALLBACK_MODEL,
    # Per Ollama call; a decision may take a retry and the fallback model (InferDecision reads for 20 s).
    "FFE_LLM_TIMEOUT_S": f"{DEFAULT_TIMEOUT_S:g}",
    "SAGEMAKER_MODEL_SERVER_TIMEOUT": "60",
    "STAGE": "{stage}",
    # Every bundle version instances may name (ffe models publish writes models/<version>/): loaded on demand.
    "FFE_MODEL_STORE": "s3://{models_bucket}/models",
    "OTEL_SERVICE_NAME": "ffe-inference",
    "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=ffe,deployment.environment={stage}",
    # No collector runs beside a SageMaker endpoint: traces off, metrics go out as EMF in the logs.
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}


@dataclass(frozen=True)
class StageDefaults:
    instance_type: str
    min_capacity: int
    max_capacity: int
    target_invocations: int
    sampling_percentage: int


# ml.g5.xlarge: one A10G, 24 GB, compute capability 8.6 -> llama3.2 3B q4_0 and the torch meta-controller fit.
# Prod keeps two instances so one can fail without a "model serving down" outage.
#                                 instance type  min max target/min sampling %
STAGES: dict[str, StageDefaults] = {
    "dev": StageDefaults("ml.c5.xlarge", 1, 1, 100, 100),  # CPU: the RL voter alone (docs/inference.md#instances)
    "staging": StageDefaults("ml.g5.xlarge", 1, 2, 100, 100),
    "prod": StageDefaults("ml.g5.xlarge", 2, 4, 100, 100),
}

_ECR_IMAGE = re.compile(
    r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})$"
)
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


@dataclass(frozen=True)
class DeployPlan:
    """Everything a deployment does, as plain data: printed by --dry-run, executed by :func:`deploy`."""

    stage: str
    endpoint_name: str
    variant_name: str
    model_name: str
    image_uri: str
    model_data: str
    role_arn: str | None
    instance_type: str
    initial_instance_count: int
    env: dict[str, str]
    data_capture: dict[str, Any]  # DataCaptureConfig(**data_capture)
    scalable_target: dict[str, Any]  # application-autoscaling register_scalable_target(**scalable_target)
    scaling_policy: dict[str, Any]  # application-autoscaling put_scaling_policy(**scaling_policy)
    region: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def endpoint_name(stage: str) -> str:
    return f"ffe-{stage}-inference"


def container_env(
    stage: str,
    ollama_model: str = DEFAULT_OLLAMA_MODEL,
    ollama_fallback_model: str = DEFAULT_OLLAMA_FALLBACK_MODEL,
    models_bucket: str = "ffe-{stage}-models",
) -> dict[str, str]:
    """CONTAINER_ENV filled in for one stage and its model bucket (the one the model data lives in)."""
    bucket = models_bucket.format(stage=stage)
    env = {key: value.format(stage=stage, models_bucket=bucket) for key, value in CONTAINER_ENV.items()}
    env["OLLAMA_MODEL"] = ollama_model
    env["OLLAMA_FALLBACK_MODEL"] = ollama_fallback_model
    return env


def plan(args: argparse.Namespace) -> DeployPlan:
    """The deployment for parsed arguments; unset options take the stage's defaults. Pure: no AWS, no SDK."""
    defaults = STAGES[args.stage]
    name = endpoint_name(args.stage)
    min_capacity = args.min if args.min is not None else defaults.min_capacity
    max_capacity = args.max if args.max is not None else max(defaults.max_capacity, min_capacity)
    target = args.target_invocations if args.target_invocations is not None else defaults.target_invocations
    sampling = args.sampling_percentage if args.sampling_percentage is not None else defaults.sampling_percentage
    env = container_env(args.stage, args.ollama_model, args.ollama_fallback_model, _bucket(args.model_data))
    capture_uri = args.data_capture_s3 or f"s3://{_bucket(args.model_data)}/data-capture/{args.stage}"
    # Content-addressed model name: the same image, data and env reuse one SageMaker Model (names are unique).
    digest = hashlib.sha256(
        json.dumps([args.image_uri, args.model_data, args.role_arn or "", env], sort_keys=True).encode()
    ).hexdigest()[:10]
    resource_id = f"endpoint/{name}/variant/{VARIANT_NAME}"
    return DeployPlan(
        stage=args.stage,
        endpoint_name=name,
        variant_name=VARIANT_NAME,
        model_name=f"{name}-{digest}",
        image_uri=args.image_uri,
        model_data=args.model_data,
        role_arn=args.role_arn,
        instance_type=args.instance_type or defaults.instance_type,
        initial_instance_count=min_capacity,
        env=env,
        data_capture={
            "enable_capture": True,
            "sampling_percentage": sampling,
            "destination_s3_uri": capture_uri.rstrip("/"),
            "capture_options": ["REQUEST", "RESPONSE"],
            "json_content_types": ["application/json"],
        },
        scalable_target={
            "ServiceNamespace": "sagemaker",
            "ResourceId": resource_id,
            "ScalableDimension": SCALABLE_DIMENSION,
            "MinCapacity": min_capacity,
            "MaxCapacity": max_capacity,
        },
        scaling_policy={
            "PolicyName": f"{name}-invocations",
            "ServiceNamespace": "sagemaker",
            "ResourceId": resource_id,
            "ScalableDimension": SCALABLE_DIMENSION,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": float(target),
                "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC},
                # A GPU instance takes minutes to come up: scale out early, scale in slowly.
                "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S,
                "ScaleInCooldown": SCALE_IN_COOLDOWN_S,
            },
        },
        region=args.region,
    )


def deploy(deployment: DeployPlan, boto_session: Any = None) -> None:
    """Create (or update) the endpoint with the SageMaker SDK, then register its autoscaling."""
    # Imported here only: --dry-run and every Lambda stay free of the SDK (docs/architecture.md, Dependency rules).
    import boto3
    from sagemaker.model import Model
    from sagemaker.model_monitor import DataCaptureConfig
    from sagemaker.session import Session

    boto_session = boto_session or boto3.Session(region_name=deployment.region)
    session = Session(boto_session=boto_session)
    autoscaling = boto_session.client("application-autoscaling")
    capture = DataCaptureConfig(**deployment.data_capture)
    model = Model(
        image_uri=deployment.image_uri,
        model_data=deployment.model_data,
        role=deployment.role_arn,
        env=deployment.env,
        name=deployment.model_name,
        sagemaker_session=session,
    )
    if _endpoint_exists(boto_session.client("sagemaker"), deployment.endpoint_name):
        # Application Auto Scaling must let go of the variant while the endpoint changes configuration.
        _deregister(autoscaling, deployment)
        model.create(instance_type=deployment.instance_type)
        config_name = f"{deployment.model_name}-{int(time.time())}"
        session.create_endpoint_config(
            name=config_name,
            model_name=deployment.model_name,
            initial_instance_count=deployment.initial_instance_count,
            instance_type=deployment.instance_type,
            data_capture_config_dict=capture._to_request_dict(),
            model_data_download_timeout=STARTUP_TIMEOUT_S,
            container_startup_health_check_timeout=STARTUP_TIMEOUT_S,
        )
        session.update_endpoint(deployment.endpoint_name, config_name, wait=True)
    else:
        model.deploy(
            initial_instance_count=deployment.initial_instance_count,
            instance_type=deployment.instance_type,
            endpoint_name=deployment.endpoint_name,
            data_capture_config=capture,
            model_data_download_timeout=STARTUP_TIMEOUT_S,
            container_startup_health_check_timeout=STARTUP_TIMEOUT_S,
            wait=True,
        )
    autoscaling.register_scalable_target(**deployment.scalable_target)
    autoscaling.put_scaling_policy(**deployment.scaling_policy)


def _endpoint_exists(sagemaker_client: Any, name: str) -> bool:
    try:
        sagemaker_client.describe_endpoint(EndpointName=name)
    except sagemaker_client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationException":  # "Could not find endpoint"
            return False
        raise
    return True


def _deregister(autoscaling: Any, deployment: DeployPlan) -> None:
    target = {k: deployment.scalable_target[k] for k in ("ServiceNamespace", "ResourceId", "ScalableDimension")}
    try:
        autoscaling.deregister_scalable_target(**target)
    except autoscaling.exceptions.ObjectNotFoundException:
        pass  # never registered: nothing to let go of


def _bucket(uri: str) -> str:
    match = _S3_URI.match(uri)
    if not match:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return match.group(1)


def _checked(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise argparse.ArgumentTypeError(f"{what} expected, got {value!r}")
        return value

    return check


def _model_data(value: str) -> str:
    if not _S3_URI.match(value) or not value.endswith(".tar.gz"):
        raise argparse.ArgumentTypeError(f"s3://<bucket>/<key>.tar.gz expected, got {value!r}")
    return value


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number expected, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"at least 1 expected, got {number}")
    return number


def _percentage(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number expected, got {value!r}") from None
    if not 0 <= number <= 100:
        raise argparse.ArgumentTypeError(f"0 to 100 expected, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy.py",
        description="Deploy the gpu_inference container to the ffe-<stage>-inference SageMaker endpoint.",
        epilog="Stage defaults: "
        + "; ".join(
            f"{s}: {d.instance_type} min {d.min_capacity} max {d.max_capacity} target {d.target_invocations}/min"
            for s, d in STAGES.items()
        ),
    )
    parser.add_argument("--stage", required=True, choices=sorted(STAGES))
    parser.add_argument("--image-uri", required=True, type=_checked(_ECR_IMAGE, "an ECR image URI"))
    parser.add_argument("--model-data", required=True, type=_model_data, help="s3://.../model.tar.gz")
    parser.add_argument("--instance-type", type=_checked(_INSTANCE_TYPE, "an ml.<family>.<size> instance type"))
    parser.add_argument("--min", type=_positive, help="autoscaling floor; also the initial instance count")
    parser.add_argument("--max", type=_positive, help="autoscaling ceiling")
    parser.add_argument("--target-invocations", type=_positive, help="invocations per instance per minute")
    parser.add_argument(
        "--data-capture-s3",
        type=_checked(_S3_URI, "an s3:// URI"),
        help="default: s3://<model-data bucket>/data-capture/<stage>",
    )
    parser.add_argument("--sampling-percentage", type=_percentage, help="data capture sampling, 0 to 100")
    parser.add_argument("--role-arn", type=_checked(_ROLE_ARN, "an IAM role ARN"), help="SageMaker execution role")
    parser.add_argument("--ollama-model", default=DEFAULT_OLLAMA_MODEL)
    parser.add_argument("--ollama-fallback-model", default=DEFAULT_OLLAMA_FALLBACK_MODEL)
    parser.add_argument("--region", help="default: the AWS SDK's configured region")
    parser.add_argument("--dry-run", action="store_true", help="print the plan as JSON; import no AWS SDK")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed, cross-checked arguments; exits with status 2 and a message on bad ones (argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    defaults = STAGES[args.stage]
    low = args.min if args.min is not None else defaults.min_capacity
    if args.max is not None and args.max < low:
        parser.error(f"--max ({args.max}) must be at least --min ({low})")
    if not args.dry_run and args.role_arn is None:
        parser.error("--role-arn is required unless --dry-run")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deployment = plan(args)
    if args.dry_run:
        print(json.dumps({"dry_run": True, **deployment.to_dict()}, indent=2, sort_keys=True))
        return 0
    deploy(deployment)
    print(json.dumps({"deployed": deployment.endpoint_name, "variant": deployment.variant_name}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
