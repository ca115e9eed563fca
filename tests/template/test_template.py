"""template.yaml and the nested stacks: lint clean, translate offline, say what a deploy needs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ffe.local.template import load_sam, translate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def translated() -> dict:
    return translate(ROOT, {"Stage": "dev", "DatabaseSecretArn": ""}).cloudformation


def test_cfn_lint_passes_on_the_template_and_nested_stacks() -> None:
    files = ["template.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "iac").glob("*.yaml"))]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), *files], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_functions_run_python312_with_the_core_layer() -> None:
    sam = load_sam(ROOT)
    assert sam["Globals"]["Function"]["Runtime"] == "python3.12"
    functions = {k: v for k, v in sam["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(functions) >= {
        "FetchMarketDataFunction",
        "CheckStalenessFunction",
        "InferDecisionFunction",
        "RecordDecisionFunction",
    }
    for logical_id, fn in functions.items():
        code = ROOT / fn["Properties"]["CodeUri"]
        assert (code / "handler.py").exists(), logical_id
    layer = sam["Resources"]["CoreLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/core" and layer["Metadata"]["BuildMethod"] == "makefile"


def test_lambda_requirements_stay_lean() -> None:
    lines = (ROOT / "layers/core/requirements.txt").read_text().lower().splitlines()
    requirements = [line for line in lines if line.strip() and not line.startswith("#")]
    assert requirements
    for heavy in ("pandas", "scikit-learn", "sklearn", "torch", "mlflow", "sagemaker"):
        assert not any(heavy in line for line in requirements), heavy


HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))
HEAVY = ("torch", "sklearn", "mlflow", "pandas", "sagemaker", "scipy", "matplotlib")
# What a handler's cold import (tracing off) may load besides powertools, pydantic and ffe: each module only in the
# handlers that use it on every call. The rest is loaded on demand (numpy for RecordDecision's experiment review,
# jwt/cryptography for a live Coinbase venue) or never (the heavy libraries, X-Ray's recorder with tracing off).
LOADED_ONLY_BY: dict[str, set[str]] = {
    "numpy": {"check_staleness", "detect_regime", "infer_decision", "decide_batch"},  # features, regimes, strategies
    "psycopg": {"api", "execute_order", "gate_risk", "migrate_database", "preflight", "record_decision"}
    | {"retain_decisions", "decide_batch"},
    "httpx": {"fetch_market_data", "decide_batch", "preflight"},  # the live providers, and preflight's probes
    "boto3": {"retain_decisions"},  # the archive's S3 client, every daily run
    "botocore.client": {"retain_decisions"},  # no AWS client is built at import anywhere else
    # nor botocore's modules beyond its package (powertools' user agent imports that): Step Functions' client
    # config and errors are imported at the first call that asks it (ffe.adapters.executions)
    "botocore.config": {"retain_decisions"},
    "botocore.exceptions": {"retain_decisions"},
    # the contracts' models: every step and the API validate with them; the settings import them only to describe
    # a bad environment, so the schema migration and the retention, which validate no contract, skip them
    "ffe.contracts": set(HANDLERS) - {"migrate_database", "retain_decisions"},
    "ffe.domain.risk": {"gate_risk", "decide_batch"},  # the risk gate's limits and sizing
    "aws_xray_sdk.core": set(),  # ffe.observability: no X-Ray recorder (nor its sampler's client) with tracing off
    "jwt": set(),
    "cryptography": set(),
    **{heavy: set() for heavy in HEAVY},
}
COLD_IMPORT = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(name for name in json.loads(sys.argv[2]) if name in sys.modules)))
"""


@pytest.fixture(scope="module")
def cold_imports() -> dict[str, list[str]]:
    """Each handler imported in a fresh interpreter (all at once), and which of LOADED_ONLY_BY that loaded."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers/core'}{os.pathsep}{ROOT}", "POWERTOOLS_TRACE_DISABLED": "true"}
    watched = json.dumps(sorted(LOADED_ONLY_BY))
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-c", COLD_IMPORT, f"functions.{name}.handler", watched],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for name in HANDLERS
    }
    loaded = {}
    for name, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err[-3000:]
        loaded[name] = json.loads(out.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_handlers_cold_import_loads_only_what_it_uses_on_every_call(handler: str, cold_imports) -> None:
    """The lean-Lambda rule, checked on what actually gets imported: each handler, in a fresh interpreter."""
    unneeded = [name for name in cold_imports[handler] if handler not in LOADED_ONLY_BY[name]]
    assert not unneeded, f"{handler}'s cold import loads {unneeded}"


def test_every_handler_is_checked() -> None:
    assert len(HANDLERS) >= 10 and all(set(users) <= set(HANDLERS) for users in LOADED_ONLY_BY.values())


def test_translates_offline_with_substitutions_folded(translated) -> None:
    machines = [r for r in translated["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    # the decision cycle, plus the checkpoint cleanup's (an inline Definition: nothing to fold; test_cleanup_job)
    machines = [r for r in machines if r.get("Condition") != "CheckpointCleanupOn"]
    assert len(machines) == 1
    props = machines[0]["Properties"]
    assert "DefinitionSubstitutions" not in props
    body = props["DefinitionString"]["Fn::Sub"]
    # every task invokes the version of its function this deploy published (AutoPublishAlias), never $LATEST
    assert "${FetchMarketDataFunctionVersion" in body and "${RecordDecisionFunctionVersion" in body
    assert "Function.Arn}" not in body
    assert "$$.Execution.Id" in body  # context paths survive the fold


def test_one_schedule_per_timeframe_building_the_cycle_input(translated) -> None:
    rules = [
        r
        for r in translated["Resources"].values()
        if r["Type"] == "AWS::Events::Rule" and "InputTransformer" in r["Properties"]["Targets"][0]
    ]
    timeframes = set()
    for rule in rules:
        target = rule["Properties"]["Targets"][0]
        template = target["InputTransformer"]["InputTemplate"]
        assert target["InputTransformer"]["InputPathsMap"] == {"id": "$.id", "time": "$.time"}
        cycle = json.loads(template.replace("<id>", '"e"').replace("<time>", '"t"'))
        # no assets: "Open the cycle" decides the stage's universe file (or AssetUniverseJson) for the timeframe
        assert set(cycle) == {"cycle_id", "as_of", "timeframe"}
        timeframes.add(cycle["timeframe"])
        assert "Stage" in json.dumps(rule["Properties"]["Name"])  # per stage
    assert timeframes == {"15m", "1h", "1d"}


def test_samconfig_has_every_stage() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for stage in ("dev", "staging", "prod"):
        overrides = config[stage]["deploy"]["parameters"]["parameter_overrides"]
        assert f"Stage={stage}" in (overrides if isinstance(overrides, str) else " ".join(overrides))


def test_preflight_runs_daily_and_market_data_state_has_its_tables(translated) -> None:
    resources = translated["Resources"]
    # the schedule is per stage (StageConfig PreflightSchedule): daily at 06:30 UTC in dev
    per_stage = {"Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "PreflightSchedule"]}
    assert translated["Mappings"]["StageConfig"]["dev"]["PreflightSchedule"] == "cron(30 6 * * ? *)"
    daily = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule" and r["Properties"].get("ScheduleExpression") == per_stage
    ]
    assert len(daily) == 1 and "PreflightFunction" in json.dumps(daily[0]["Properties"]["Targets"])
    cache = resources["BarCacheTable"]["Properties"]
    assert [k["AttributeName"] for k in cache["KeySchema"]] == ["series", "t"]
    assert cache["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert resources["CircuitBreakerTable"]["Properties"]["KeySchema"] == [{"AttributeName": "name", "KeyType": "HASH"}]
    env = resources["FetchMarketDataFunction"]["Properties"]["Environment"]["Variables"]
    assert {"BREAKER_TABLE", "BAR_CACHE_TABLE", "MARKET_DATA_PROVIDER"} <= set(env)


def test_api_is_iam_authorised_and_proxies_every_route_to_the_api_function(translated) -> None:
    # moto cannot deploy API Gateway, so the API is checked here, on the translated template
    api = next(r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi")
    method = api["Properties"]["Body"]["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]
    assert method["security"] == [{"AWS_IAM": []}]
    integration = method["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy" and "ApiFunction.Arn" in json.dumps(integration["uri"])
    assert "credentials" not in integration  # not the caller's credentials: execute-api:Invoke is enough


def test_offline_deploy_leaves_out_only_what_moto_cannot_create(translated) -> None:
    from ffe.local.template import without_unsupported

    kept = without_unsupported(translated)
    left_out = set(translated["Resources"]) - set(kept["Resources"])
    assert all(
        translated["Resources"][r]["Type"].startswith(
            ("AWS::ApiGateway::", "AWS::Lambda::Permission", "AWS::SQS::QueuePolicy")
        )
        for r in left_out
    )
    assert {"ApiFunction", "DecisionCycleStateMachine", "RecordDecisionFunction"} <= set(kept["Resources"])


def test_the_order_path_has_reserved_concurrency_unless_the_stage_reserves_none(translated) -> None:
    resources = translated["Resources"]
    for function in ("GateRiskFunction", "ExecuteOrderFunction"):
        assert resources[function]["Properties"]["ReservedConcurrentExecutions"] == {
            "Fn::If": ["HasOrderPathReservation", {"Ref": "OrderPathReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
        }, function
    assert translated["Conditions"]["HasOrderPathReservation"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "OrderPathReservedConcurrency"}, 0]}]
    }


def test_record_decision_may_ask_step_functions_only_about_this_stage_s_cycles(translated) -> None:
    policies = [
        statement
        for r in translated["Resources"].values()
        if r["Type"] == "AWS::IAM::Role" and "RecordDecision" in json.dumps(r)
        for policy in r["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if statement.get("Action") == "states:DescribeExecution"
    ]
    assert len(policies) == 1
    resource = json.dumps(policies[0]["Resource"])
    assert "execution:ffe-${Stage}-decision-cycle:*" in resource


def test_the_api_gates_promotions_with_the_clis_settings_and_defaults(translated) -> None:
    """PromotionMetric/PromotionConfidence reach the Api function as the CLI's FFE_PROMOTION_* (same defaults)."""
    from ffe.evaluation.gate_config import CONFIDENCE_ENV, DEFAULT_CONFIDENCE, DEFAULT_METRIC, METRIC_ENV, METRICS

    parameters = translated["Parameters"]
    env = translated["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env[METRIC_ENV] == {"Ref": "PromotionMetric"} and env[CONFIDENCE_ENV] == {"Ref": "PromotionConfidence"}
    metric, confidence = parameters["PromotionMetric"], parameters["PromotionConfidence"]
    assert metric["Default"] == DEFAULT_METRIC and metric["AllowedValues"] == list(METRICS)
    assert float(confidence["Default"]) == DEFAULT_CONFIDENCE
    pattern = re.compile(confidence["AllowedPattern"])
    assert all(pattern.match(v) for v in ("0.9", ".95", "0.999", "0.51", "0.6")) and not any(
        pattern.match(v) for v in ("0", "0.0", "1", "1.0", "0.", "-0.5", "abc", "0.5", "0.50", "0.3", "0.05")
    )  # what GateConfig accepts: (0.5, 1)
