"""Every AWS client ffe makes honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> (LocalStack's variables).

moto in server mode (``ThreadedMotoServer``) on a free loopback port stands in for LocalStack. Each adapter in
``ADAPTERS`` is driven through its own code path (the place that makes the client), and each case asserts what
only the server can have answered or stored; every request botocore sent is recorded, and all of them went to
the server. Nothing reaches AWS: the credentials are fake and tests/conftest.py blocks every non-loopback socket.
A new adapter is one more ``@adapter(...)`` function. The precedence (docs/localstack.md#endpoints): an explicit
setting (INFERENCE_ENDPOINT_URL) wins, then AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.endpoint
import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from moto.server import ThreadedMotoServer

from ffe import containers
from ffe.adapters.inference import InferenceUnavailableError
from ffe.domain.errors import TransientError
from ffe.domain.models import Bar, Timeframe

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
SOURCES = ("layers/core/ffe", "functions", "gpu_inference")
# The only explicit endpoint_url in the source, each with the setting it comes from (docs/localstack.md#endpoints).
DOCUMENTED_ENDPOINTS = {
    ("layers/core/ffe/adapters/inference.py", "settings.inference_endpoint_url or None"),  # INFERENCE_ENDPOINT_URL
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    yield f"http://{host}:{port}"
    moto.stop()


@pytest.fixture
def dead() -> str:
    """A loopback URL nothing listens on: a client sent there fails fast (connection refused)."""
    return f"http://127.0.0.1:{_free_port()}"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, server: str) -> Iterator[list[str]]:
    """A clean AWS environment with fake credentials, a reset server, and the URL of every request botocore sends."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_MAX_ATTEMPTS": "1",  # a refused connection fails at once
        "AWS_CONFIG_FILE": os.devnull,  # a developer's ~/.aws never takes part
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    urllib.request.urlopen(urllib.request.Request(f"{server}/moto-api/reset", method="POST"), timeout=10).close()
    containers.reset()  # clients cached per container (Step Functions, inference, Powertools providers)
    urls: list[str] = []
    real = botocore.endpoint.Endpoint._send

    def recording(self: botocore.endpoint.Endpoint, request: Any) -> Any:
        urls.append(str(request.url))
        return real(self, request)

    monkeypatch.setattr(botocore.endpoint.Endpoint, "_send", recording)
    yield urls
    containers.reset()


def on_server(server: str, service: str) -> Any:
    """A client the test itself points at the server, to arrange what an adapter reads and check what it wrote."""
    return boto3.client(service, endpoint_url=server, region_name=REGION)


def env_name(service: str) -> str:
    """botocore's AWS_ENDPOINT_URL_<SERVICE>: the model's service id, upper case, spaces and dashes as underscores
    (e.g. sagemaker-runtime: "SageMaker Runtime", AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME)."""
    service_id = str(boto3.session.Session()._session.get_service_model(service).service_id)
    return "AWS_ENDPOINT_URL_" + service_id.upper().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class Adapter:
    name: str
    services: tuple[str, ...]  # the boto3 service names its clients use
    drive: Callable[[str, pytest.MonkeyPatch, Any], None]  # (server, monkeypatch, capsys): act, then assert


ADAPTERS: list[Adapter] = []


def adapter(*services: str) -> Callable[[Callable[[str, pytest.MonkeyPatch, Any], None]], Any]:
    def register(drive: Callable[[str, pytest.MonkeyPatch, Any], None]) -> Any:
        ADAPTERS.append(Adapter(drive.__name__, services, drive))
        return drive

    return register


# --- the adapters -------------------------------------------------------------------------------------------


@adapter("s3")
def model_store(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from ffe.adapters.models import _s3_exists, _s3_get, _s3_versions

    s3 = on_server(server, "s3")
    s3.create_bucket(Bucket="ffe-dev-models")
    s3.put_object(Bucket="ffe-dev-models", Key="models/v7/manifest.json", Body=b'{"version": "v7"}')
    assert _s3_versions("ffe-dev-models", "models/") == {"v7"}
    assert _s3_exists("ffe-dev-models", "models/v7/manifest.json")
    assert _s3_get("s3://ffe-dev-models/models/v7", "ffe-dev-models", "models/v7/manifest.json") == b'{"version": "v7"}'


@adapter("s3")
def decision_archive(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """RetainDecisions' handler makes the archive's S3 client; the database and the step are stand-ins."""
    from ffe.steps.retain import RetentionResult
    from functions.retain_decisions import handler

    on_server(server, "s3").create_bucket(Bucket="ffe-dev-archive")

    class NoDatabase:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def close(self) -> None:
            pass

    def retain(database: object, *, retention_days: int, now: datetime, export: Any) -> RetentionResult:
        export("decisions_2026_01", iter([b"decision_id,action\n", b"d1,HOLD\n"]))
        return RetentionResult(cutoff=datetime(2026, 9, 1, tzinfo=UTC), dropped=["decisions_2026_01"], exported={})

    monkeypatch.setattr(handler, "Database", NoDatabase)
    monkeypatch.setattr(handler, "retain_decisions", retain)
    for key, value in {"STAGE": "dev", "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/ffe"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DECISION_ARCHIVE_BUCKET", "ffe-dev-archive")
    from tests.conftest import FakeLambdaContext

    handler.lambda_handler({}, FakeLambdaContext())  # type: ignore[arg-type]
    head = on_server(server, "s3").head_object(Bucket="ffe-dev-archive", Key="decisions/dev/decisions_2026_01.csv.gz")
    assert head["ContentEncoding"] == "gzip"


@adapter("secretsmanager")
def database_secret(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from ffe.adapters.database import conninfo_from_settings
    from ffe.settings import DatabaseSettings

    secret = {"host": "db.localstack.test", "port": 5432, "username": "ffe", "password": "pw", "dbname": "ffe"}
    arn = on_server(server, "secretsmanager").create_secret(Name="ffe-dev-database", SecretString=json.dumps(secret))
    conninfo = conninfo_from_settings(DatabaseSettings(db_secret_arn=arn["ARN"]))
    assert "host=db.localstack.test" in conninfo


@adapter("secretsmanager")
def provider_secret(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from ffe.adapters.market_data import secret_credentials

    value = {"token": "t", "account_id": "a", "environment": "practice"}
    arn = on_server(server, "secretsmanager").create_secret(Name="ffe/dev/oanda", SecretString=json.dumps(value))
    assert secret_credentials(arn["ARN"])() == value


@adapter("ssm")
def risk_limits(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from ffe.adapters.brokers_factory import risk_limits as read_limits
    from ffe.settings import RiskSettings

    on_server(server, "ssm").put_parameter(
        Name="/ffe/dev/risk-limits", Type="String", Value=json.dumps({"max_drawdown": 0.123})
    )
    settings = RiskSettings(database_url="postgresql://x@127.0.0.1/ffe", risk_limits_parameter="/ffe/dev/risk-limits")
    assert read_limits(settings).max_drawdown == 0.123


def _table(server: str, name: str, keys: dict[str, str]) -> None:
    on_server(server, "dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": t} for k, t in keys.items()],
        KeySchema=[{"AttributeName": k, "KeyType": kind} for k, kind in zip(keys, ("HASH", "RANGE"), strict=False)],
    )


@adapter("dynamodb")
def provider_breakers(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from ffe.adapters.market_data import breakers
    from ffe.settings import ProviderSettings

    _table(server, "ffe-dev-circuit-breakers", {"name": "S"})
    breaker = breakers(ProviderSettings(breaker_table="ffe-dev-circuit-breakers"))("coinbase")

    def fails() -> None:
        raise TransientError("provider down")

    with pytest.raises(TransientError):
        breaker.call(fails)
    item = on_server(server, "dynamodb").get_item(TableName="ffe-dev-circuit-breakers", Key={"name": {"S": "coinbase"}})
    assert item["Item"]["failures"] == {"N": "1"}


@adapter("dynamodb")
def bar_cache(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from ffe.adapters.market_data import bar_cache as make_cache
    from ffe.settings import ProviderSettings

    _table(server, "ffe-dev-bar-cache", {"series": "S", "t": "N"})
    cache = make_cache(ProviderSettings(bar_cache_table="ffe-dev-bar-cache"))
    assert cache is not None
    bar = Bar(datetime(2026, 12, 1, 10, tzinfo=UTC), 1.0, 2.0, 0.5, 1.5, 10.0)
    cache.put("coinbase", "BTCUSD", Timeframe.H1, [bar])
    stored = on_server(server, "dynamodb").scan(TableName="ffe-dev-bar-cache")["Items"]
    assert [item["series"]["S"] for item in stored] == ["coinbase#BTCUSD#1h"]


@adapter("sqs")
def dead_letters(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """`ffe dlq list --stage dev`: the deployed stage's queues."""
    from ffe.cli import main

    sqs = on_server(server, "sqs")
    queue = sqs.create_queue(QueueName="ffe-dev-decision-dlq")["QueueUrl"]
    sqs.create_queue(QueueName="ffe-dev-decision-poison")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"decision_id": "parked-on-the-server"}))
    assert main(["dlq", "list", "--stage", "dev", "--region", REGION, "--wide"]) == 0
    assert "1 record(s) waiting in the dead-letter queue" in capsys.readouterr().out  # the one sent above


@adapter("stepfunctions")
def executions(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from ffe.adapters.executions import start_execution

    sfn = on_server(server, "stepfunctions")
    machine = sfn.create_state_machine(
        name="ffe-dev-decision-cycle",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/ffe-dev-sfn",
    )["stateMachineArn"]
    arn = start_execution(machine, "cycle-1", json.dumps({"assets": ["BTCUSD"]}))
    assert json.loads(sfn.describe_execution(executionArn=arn)["input"]) == {"assets": ["BTCUSD"]}


@adapter("secretsmanager", "cloudwatch")
def training_metrics(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """The checkpoint cleanup job: its tracking URI from Secrets Manager, its EMF lines sent with PutMetricData."""
    from ffe.training import cleanup, cleanup_job

    arn = on_server(server, "secretsmanager").create_secret(Name="ffe/dev/mlflow", SecretString="file:///tmp/mlruns")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(cleanup_job.SECRET_ENV, arn["ARN"])
    emf = {
        "_aws": {
            "Timestamp": 1764756000000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "FFE",
                    "Dimensions": [["stage"]],
                    "Metrics": [{"Name": "checkpoints_deleted", "Unit": "Count"}],
                }
            ],
        },
        "stage": "dev",
        "checkpoints_deleted": 3,
    }

    def fake_cleanup(argv: object) -> int:
        assert os.environ["MLFLOW_TRACKING_URI"] == "file:///tmp/mlruns"
        print(json.dumps(emf))
        return 0

    monkeypatch.setattr(cleanup, "main", fake_cleanup)
    assert cleanup_job.main([]) == 0
    assert "not sent" not in capsys.readouterr().err
    metrics = on_server(server, "cloudwatch").list_metrics(Namespace="FFE")["Metrics"]
    assert [m["MetricName"] for m in metrics] == ["checkpoints_deleted"]


def _instance() -> Any:
    from ffe.contracts import BarsSummary, InferenceInstance

    t = datetime(2026, 12, 1, 10, tzinfo=UTC)
    return InferenceInstance(
        asset="BTCUSD",
        timeframe=Timeframe.H1,
        as_of=t,
        scores={"momentum": 0.2},
        path_features=[[0.0]],
        path_posteriors=[[1.0]],
        summary=BarsSummary(bars=1, first_time=t, last_time=t, last_close=1.0, change_pct=0.0, high=1.0, low=1.0),
    )


def invocations() -> int:
    """How many InvokeEndpoint calls moto's sagemaker-runtime answered since the reset (server-side state; the
    server mode does not record the endpoint's name)."""
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    return sum(len(answers) for answers in sagemakerruntime_backends[ACCOUNT][REGION].results.values())


@adapter("sagemaker-runtime", "dynamodb")
def inference(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """InferDecision's client (and its breaker table): moto answers a fixed body, which is not a prediction."""
    from ffe.adapters.inference import get_inference
    from ffe.contracts import InferenceRequest
    from ffe.settings import InferenceSettings

    _table(server, "ffe-dev-circuit-breakers", {"name": "S"})
    client = get_inference(
        InferenceSettings(inference_endpoint="ffe-dev-inference", breaker_table="ffe-dev-circuit-breakers")
    )
    with pytest.raises(InferenceUnavailableError, match="not a prediction"):
        client.infer(InferenceRequest(instances=[_instance()], llm=False))
    assert invocations() == 1


@adapter("secretsmanager")
def secrets_cli(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """`ffe secrets list --stage dev`."""
    from ffe.cli import main

    on_server(server, "secretsmanager").create_secret(Name="ffe/dev/oanda", SecretString="{}")
    assert main(["secrets", "list", "--stage", "dev", "--region", REGION]) == 0
    assert "ffe/dev/oanda" in capsys.readouterr().out


@adapter("dynamodb")
def breakers_cli(server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """`ffe breakers --stage dev --json`: the deployed stage's breaker table."""
    from ffe.cli import main

    _table(server, "ffe-dev-circuit-breakers", {"name": "S"})
    on_server(server, "dynamodb").put_item(
        TableName="ffe-dev-circuit-breakers",
        Item={"name": {"S": "oanda-on-the-server"}, "state": {"S": "closed"}, "failures": {"N": "0"}},
    )
    assert main(["breakers", "--stage", "dev", "--region", REGION, "--json"]) == 0
    assert "oanda-on-the-server" in capsys.readouterr().out


# --- the tests ----------------------------------------------------------------------------------------------

CASES = [pytest.param(a, id=a.name) for a in ADAPTERS]


def _all_went_to(urls: list[str], server: str) -> None:
    assert urls, "no request was sent"
    assert [u for u in urls if not u.startswith(server + "/")] == []


@pytest.mark.parametrize("case", CASES)
def test_aws_endpoint_url_sends_every_adapter_to_the_server(
    case: Adapter, server: str, sent: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", server)
    case.drive(server, monkeypatch, capsys)
    _all_went_to(sent, server)


@pytest.mark.parametrize("case", CASES)
def test_the_per_service_variable_wins_over_aws_endpoint_url(
    case: Adapter, server: str, dead: str, sent: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)  # anything left on it would fail: connection refused
    for service in case.services:
        monkeypatch.setenv(env_name(service), server)
    case.drive(server, monkeypatch, capsys)
    _all_went_to(sent, server)


@pytest.mark.parametrize(
    ("elsewhere", "case", "error"),
    [("s3", "model_store", TransientError), ("ssm", "risk_limits", GetParameterError)],
)
def test_one_service_pointed_elsewhere_leaves_the_others_on_aws_endpoint_url(
    elsewhere: str, case: str, error: type[Exception], server: str, dead: str, sent: list[str], monkeypatch
) -> None:
    """AWS_ENDPOINT_URL_<SERVICE> moves that service only: its calls go there (here: refused), the rest stay."""
    from ffe.adapters.market_data import secret_credentials

    monkeypatch.setenv("AWS_ENDPOINT_URL", server)
    monkeypatch.setenv(env_name(elsewhere), dead)
    drive = next(a for a in ADAPTERS if a.name == case).drive
    with pytest.raises(error):
        drive(server, monkeypatch, None)
    arn = on_server(server, "secretsmanager").create_secret(
        Name="ffe/dev/alpha_vantage", SecretString='{"api_key": "k"}'
    )
    assert secret_credentials(arn["ARN"])() == {"api_key": "k"}
    on_test_side = [u for u in sent if u.startswith(dead)]
    assert on_test_side and all(u.startswith((server + "/", dead + "/")) for u in sent)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"AWS_ENDPOINT_URL": "server"}, id="AWS_ENDPOINT_URL"),
        pytest.param(
            {"AWS_ENDPOINT_URL": "dead", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "server"},
            id="AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME-over-AWS_ENDPOINT_URL",
        ),
        pytest.param(
            {
                "AWS_ENDPOINT_URL": "dead",
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "dead",
                "INFERENCE_ENDPOINT_URL": "server",
            },
            id="INFERENCE_ENDPOINT_URL-over-both",
        ),
        pytest.param(
            {
                "AWS_ENDPOINT_URL": "dead",
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
                "INFERENCE_ENDPOINT_URL": "server",
            },
            id="INFERENCE_ENDPOINT_URL-when-the-variables-are-ignored",
        ),
    ],
)
def test_inference_endpoint_precedence(
    settings: dict[str, str], server: str, dead: str, sent: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """InferDecision's sagemaker-runtime client: INFERENCE_ENDPOINT_URL, then the per-service variable, then
    AWS_ENDPOINT_URL (ffe.adapters.inference.get_inference)."""
    from ffe.adapters.inference import get_inference
    from ffe.contracts import InferenceRequest
    from ffe.settings import InferenceSettings

    urls = {"server": server, "dead": dead}
    for key, value in settings.items():
        monkeypatch.setenv(key, urls.get(value, value))
    client = get_inference(
        InferenceSettings(
            inference_endpoint="ffe-dev-inference", inference_endpoint_url=os.environ.get("INFERENCE_ENDPOINT_URL")
        )
    )
    with pytest.raises(InferenceUnavailableError, match="not a prediction"):
        client.infer(InferenceRequest(instances=[_instance()], llm=False))
    assert invocations() == 1
    _all_went_to(sent, server)


def test_ignoring_the_variables_leaves_the_public_endpoint_and_the_network_guard_stops_it(
    server: str, sent: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true: botocore skips the variables (the Region's endpoint), so nothing
    here may rely on it; the only request is refused before it leaves the machine."""
    from ffe.adapters.market_data import secret_credentials

    monkeypatch.setenv("AWS_ENDPOINT_URL", server)
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    with pytest.raises(Exception):
        secret_credentials(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ffe/dev/oanda")()
    assert sent and all(u.startswith(f"https://secretsmanager.{REGION}.amazonaws.com") for u in sent)


def _explicit_endpoints() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    for keyword in node.keywords:
                        if keyword.arg in ("endpoint_url", "ignore_configured_endpoint_urls"):
                            found.add((str(path.relative_to(ROOT)), ast.unparse(keyword.value)))
    return found


def test_no_client_in_the_source_bypasses_the_endpoint_variables() -> None:
    """A client made with an explicit endpoint_url (or ignore_configured_endpoint_urls) would not honour
    AWS_ENDPOINT_URL: only the documented ones may (docs/localstack.md#endpoints)."""
    assert _explicit_endpoints() == DOCUMENTED_ENDPOINTS


def test_every_service_an_adapter_uses_has_a_case() -> None:
    """Each boto3 service the Lambda adapters name (boto3.client/resource/Session().client) is driven above."""
    used: set[str] = set()
    for folder in ("layers/core/ffe/adapters", "functions"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("client", "resource")
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    used.add(str(node.args[0].value))
    covered = {service for a in ADAPTERS for service in a.services} | {"secretsmanager", "ssm"}  # Powertools
    assert used <= covered, sorted(used - covered)
