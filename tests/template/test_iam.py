"""What each function may do (issue 17): the template translated as ``sam deploy`` would for each stage and parameter
combination that matters, every function role's statements resolved for those parameters and held to a table of
exact actions and resources. Also the deploy-time Rules that refuse a stage that would not decide for real.

The table is rendered into docs/configuration.md ("What each function may do"): ``python tests/template/test_iam.py``
prints it, and a test holds the two equal.
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ffe.local.template import load_sam, translate

ROOT = Path(__file__).resolve().parents[2]
NO_VALUE = object()

# The secrets and key a real stage names (any ARN the parameters' patterns take).
SECRETS = {
    "AlphaVantageSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ffe/prod/alpha-vantage-AbC123",
    "OandaSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ffe/prod/oanda-DeF456",
    "CoinbaseTradingSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ffe/prod/coinbase-GhI789",
}
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALL_SECRETS = {**SECRETS, "ProviderSecretsKmsKeyArn": KMS_KEY}
# Rendered names: a parameter's value is shown by its name (<OandaSecretArn>), a resource's ARN by the resource.
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "REGION", "AWS::AccountId": "ACCOUNT", "AWS::URLSuffix": "URLSUFFIX"}

AV, OANDA, COINBASE, KEY = "<AlphaVantageSecretArn>", "<OandaSecretArn>", "<CoinbaseTradingSecretArn>", "<KmsKey>"
READ = ("secretsmanager:GetSecretValue",)
NEVER_CHANGES_SECRETS = (
    "Deny",
    (
        "secretsmanager:CreateSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecret",
        "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:RotateSecret",
        "secretsmanager:DeleteSecret",
        "secretsmanager:PutResourcePolicy",
        "secretsmanager:DeleteResourcePolicy",
    ),
    ("*",),
)
DECRYPT = ("Allow", ("kms:Decrypt",), (KEY,))  # only with ProviderSecretsKmsKeyArn, only via Secrets Manager
MODELS = ("Allow", ("s3:GetObject",), ("ModelBucket/models/*",))
LIST_MODELS = ("Allow", ("s3:ListBucket",), ("ModelBucket",))  # with s3:prefix models/*
BREAKERS = ("Allow", ("dynamodb:GetItem", "dynamodb:UpdateItem"), ("CircuitBreakerTable",))

# Every function's own statements (Effect, actions, resources) with every optional secret and the KMS key set.
# Database access comes from one managed policy per database role (DATABASE_POLICY below).
MAY: dict[str, set[tuple[str, tuple[str, ...], tuple[str, ...]]]] = {
    "FetchMarketData": {
        BREAKERS,
        ("Allow", ("dynamodb:Query", "dynamodb:BatchWriteItem"), ("BarCacheTable",)),
        NEVER_CHANGES_SECRETS,
        ("Allow", READ, (AV,)),
        ("Allow", READ, (OANDA,)),
        DECRYPT,
    },
    "CheckStaleness": {MODELS, LIST_MODELS},
    "DetectRegime": {MODELS, LIST_MODELS},
    "InferDecision": {
        BREAKERS,
        ("Allow", ("sagemaker:InvokeEndpoint",), ("arn:aws:sagemaker:REGION:ACCOUNT:endpoint/ffe-prod-inference",)),
    },
    "GateRisk": {
        ("Allow", ("ssm:GetParameter",), ("arn:aws:ssm:REGION:ACCOUNT:parameter/ffe/prod/risk-limits",)),
        NEVER_CHANGES_SECRETS,
        ("Allow", READ, (OANDA,)),
        ("Allow", READ, (COINBASE,)),
        DECRYPT,
    },
    "ExecuteOrder": {NEVER_CHANGES_SECRETS, ("Allow", READ, (OANDA,)), ("Allow", READ, (COINBASE,)), DECRYPT},
    "RecordDecision": {
        (
            "Allow",
            ("states:DescribeExecution",),
            ("arn:aws:states:REGION:ACCOUNT:execution:ffe-prod-decision-cycle:*",),
        ),
        ("Allow", ("s3:GetObject",), ("CyclesBucket/universe/*",)),  # "Open the cycle": the universe file
        ("Allow", ("s3:ListBucket",), ("CyclesBucket",)),  # with s3:prefix universe/*
        ("Allow", ("s3:PutObject",), ("CyclesBucket/cycles/*/universe.json",)),  # a big cycle's snapshot
        ("Allow", ("s3:GetObject",), ("CyclesBucket/map-runs/*",)),  # the Map Run's results, at its close
    },
    "DecideBatch": {  # the union of the five functions whose work it does for a batch (docs/scaling.md)
        BREAKERS,
        ("Allow", ("dynamodb:Query", "dynamodb:BatchWriteItem"), ("BarCacheTable",)),
        MODELS,
        LIST_MODELS,
        ("Allow", ("sagemaker:InvokeEndpoint",), ("arn:aws:sagemaker:REGION:ACCOUNT:endpoint/ffe-prod-inference",)),
        ("Allow", ("ssm:GetParameter",), ("arn:aws:ssm:REGION:ACCOUNT:parameter/ffe/prod/risk-limits",)),
        NEVER_CHANGES_SECRETS,
        ("Allow", READ, (AV,)),
        ("Allow", READ, (OANDA,)),
        ("Allow", READ, (COINBASE,)),
        DECRYPT,
    },
    "Preflight": {
        NEVER_CHANGES_SECRETS,
        ("Allow", READ, (AV,)),
        ("Allow", READ, (OANDA,)),
        ("Allow", READ, (COINBASE,)),
        DECRYPT,
    },
    "MigrateDatabase": set(),
    "RetainDecisions": {
        ("Allow", ("s3:PutObject", "s3:AbortMultipartUpload"), ("DecisionArchiveBucket/decisions/prod/*",))
    },
    "Api": {
        ("Allow", ("dynamodb:Scan",), ("CircuitBreakerTable",)),
        ("Allow", ("dynamodb:DescribeTable",), ("BarCacheTable",)),
        MODELS,
        LIST_MODELS,
        (
            "Allow",
            ("states:StartExecution", "states:DescribeExecution"),
            (
                "arn:aws:states:REGION:ACCOUNT:stateMachine:ffe-prod-decision-cycle",
                "arn:aws:states:REGION:ACCOUNT:execution:ffe-prod-decision-cycle:*",
            ),
        ),
    },
}
# The database: each function that reaches PostgreSQL reads its database role's secret only, through one managed
# policy per role (template.yaml; the roles and their grants: migration 0009_roles, docs/database-roles.md).
DATABASE_POLICY = {
    "GateRisk": ("DatabaseAppAccessPolicy", "the ffe_app role's secret"),
    "ExecuteOrder": ("DatabaseAppAccessPolicy", "the ffe_app role's secret"),
    "RecordDecision": ("DatabaseAppAccessPolicy", "the ffe_app role's secret"),
    "DecideBatch": ("DatabaseAppAccessPolicy", "the ffe_app role's secret"),
    "Preflight": ("DatabaseAppAccessPolicy", "the ffe_app role's secret"),
    "Api": ("DatabaseApiAccessPolicy", "the ffe_api and ffe_experiments roles' secrets"),
    "RetainDecisions": ("DatabaseRetentionAccessPolicy", "the ffe_retention role's secret"),
    "MigrateDatabase": ("DatabaseMigrationAccessPolicy", "the master secret and every role's secret"),
}
REACHES_THE_DATABASE = set(DATABASE_POLICY)
# AWS managed policies SAM attaches, the only "*" Allow resources a function has: its logs
# (AWSLambdaBasicExecutionRole), X-Ray segments (AWSXrayWriteOnlyAccess, Tracing: Active) and, in the VPC, its
# network interfaces (AWSLambdaVPCAccessExecutionRole). None of them reads data.
AWS_MANAGED = {"AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess", "AWSLambdaVPCAccessExecutionRole"}
# Actions nothing calls: the adapters Get/Update/Query/BatchWrite/Scan(API health)/DescribeTable only.
NEVER = {"dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:BatchGetItem", "dynamodb:PartiQLSelect", "dynamodb:*"}
NEVER |= {"s3:*", "secretsmanager:*", "kms:*", "ssm:GetParametersByPath", "ssm:DescribeParameters"}


# --- resolving the translated template for one set of parameters -----------------------------------------------


@cache
def _translated(items: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return translate(ROOT, dict(items)).cloudformation


def deployed(parameters: dict[str, str]) -> tuple[dict[str, Any], dict[str, str], dict[str, bool]]:
    """The translated template, every parameter's value (defaults filled in) and every condition's value."""
    cfn = _translated(tuple(sorted(parameters.items())))
    values = {name: str(p.get("Default", "")) for name, p in cfn["Parameters"].items()} | parameters
    conditions: dict[str, bool] = {}
    for name in cfn.get("Conditions", {}):
        conditions[name] = condition(cfn, name, values, conditions)
    return cfn, values, conditions


def condition(cfn: dict[str, Any], name: str, values: dict[str, str], known: dict[str, bool]) -> bool:
    if name not in known:
        known[name] = truth(cfn["Conditions"][name], cfn, values, known)
    return known[name]


def truth(node: Any, cfn: dict[str, Any], values: dict[str, str], known: dict[str, bool]) -> bool:
    ((fn, args),) = node.items()
    if fn == "Condition":
        return condition(cfn, args, values, known)
    if fn == "Fn::Equals":
        return bool(value(args[0], values) == value(args[1], values))
    if fn == "Fn::Not":
        return not truth(args[0], cfn, values, known)
    if fn == "Fn::And":
        return all(truth(a, cfn, values, known) for a in args)
    if fn == "Fn::Or":
        return any(truth(a, cfn, values, known) for a in args)
    raise AssertionError(f"unexpected {fn} in a condition")


def value(node: Any, values: dict[str, str]) -> str:
    """A parameter (Ref) or a literal, as CloudFormation compares them: strings."""
    if isinstance(node, dict):
        return values[node["Ref"]]
    return str(node)


def resolved(node: Any, values: dict[str, str], conditions: dict[str, bool]) -> Any:
    """``node`` with every Fn::If decided, AWS::NoValue dropped and Ref/Fn::Sub/Fn::GetAtt rendered as names."""
    if isinstance(node, list):
        items = [resolved(n, values, conditions) for n in node]
        return [i for i in items if i is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and (next(iter(node)) == "Ref" or next(iter(node)).startswith("Fn::")):
        ((fn, args),) = node.items()
        return intrinsic(fn, args, values, conditions)
    out = {k: resolved(v, values, conditions) for k, v in node.items()}
    return {k: v for k, v in out.items() if v is not NO_VALUE}


def intrinsic(fn: str, args: Any, values: dict[str, str], conditions: dict[str, bool]) -> Any:
    if fn == "Fn::If":
        return resolved(args[1] if conditions[args[0]] else args[2], values, conditions)
    if fn == "Ref":
        return NO_VALUE if args == "AWS::NoValue" else rendered_ref(args, values)
    if fn == "Fn::GetAtt":
        name, attribute = args if isinstance(args, list) else args.split(".", 1)
        return name if attribute == "Arn" else f"{name}.{attribute}"
    if fn == "Fn::Sub":
        text, local = (args, {}) if isinstance(args, str) else args
        local = {k: resolved(v, values, conditions) for k, v in local.items()}

        def sub(match: re.Match[str]) -> str:
            key = match.group(1)
            if key in local:
                return str(local[key])
            return key.removesuffix(".Arn") if key.endswith(".Arn") else rendered_ref(key, values)

        return re.sub(r"\$\{([^}!]+)\}", sub, text)
    if fn == "Fn::Split":
        return resolved(args[1], values, conditions).split(args[0])
    if fn == "Fn::Join":
        return args[0].join(resolved(args[1], values, conditions))
    if fn == "Fn::Select":
        return resolved(args[1], values, conditions)[int(args[0])]
    raise AssertionError(f"{fn} is not resolved here")


def rendered_ref(name: str, values: dict[str, str]) -> str:
    if name in PSEUDO:
        return PSEUDO[name]
    if name in values:
        return f"<{name}>" if name in ALL_SECRETS else values[name]
    return name  # a resource


def as_tuple(x: str | list[str]) -> tuple[str, ...]:
    return (x,) if isinstance(x, str) else tuple(x)


def statements(parameters: dict[str, str]) -> dict[str, set[tuple[str, tuple[str, ...], tuple[str, ...]]]]:
    """Each function's inline statements, resolved: (Effect, actions, resources)."""
    cfn, values, conditions = deployed(parameters)
    out = {}
    for function in MAY:
        role = resolved(cfn["Resources"][f"{function}FunctionRole"]["Properties"], values, conditions)
        found = [
            (
                s["Effect"],
                as_tuple(s["Action"]),
                as_tuple(s["Resource"]).__class__(map(key_name, as_tuple(s["Resource"]))),
            )
            for policy in role.get("Policies", [])
            for s in policy["PolicyDocument"]["Statement"]
        ]
        assert len(found) == len(set(found)), f"{function} repeats a statement"
        out[function] = set(found)
    return out


def key_name(resource: str) -> str:
    return KEY if resource == "<ProviderSecretsKmsKeyArn>" else resource


def managed(parameters: dict[str, str], function: str) -> list[str]:
    cfn, values, conditions = deployed(parameters)
    role = resolved(cfn["Resources"][f"{function}FunctionRole"]["Properties"], values, conditions)
    return [str(arn).rsplit("/", 1)[-1] for arn in role.get("ManagedPolicyArns", [])]


PROD = {"Stage": "prod", "DatabaseSecretArn": "", "MarketDataProvider": "live", **ALL_SECRETS}
DEV = {"Stage": "dev", "DatabaseSecretArn": ""}  # no secret configured: replay, paper


def without_secrets(table: set[tuple[str, tuple[str, ...], tuple[str, ...]]]) -> set[Any]:
    return {s for s in table if s[1] != READ and s != DECRYPT}


def for_stage(table: set[Any], stage: str) -> set[Any]:
    return {(e, a, tuple(r.replace("prod", stage) for r in rs)) for e, a, rs in table}


# --- the tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", sorted(MAY))
def test_each_function_may_do_exactly_what_its_code_calls(function: str) -> None:
    assert statements(PROD)[function] == MAY[function]


@pytest.mark.parametrize("function", sorted(MAY))
def test_an_unconfigured_secret_is_readable_by_no_one(function: str) -> None:
    """Without the optional secrets and key (dev, paper, replay), their statements are gone, not widened."""
    assert statements(DEV)[function] == for_stage(without_secrets(MAY[function]), "dev")


@pytest.mark.parametrize(
    ("secret", "readers"),
    [
        ("AlphaVantageSecretArn", {"FetchMarketData", "DecideBatch", "Preflight"}),
        ("OandaSecretArn", {"FetchMarketData", "DecideBatch", "GateRisk", "ExecuteOrder", "Preflight"}),
        # never the per-asset internet-facing fetcher; DecideBatch fetches and gates a batch in one invocation, so
        # it holds both (docs/scaling.md#what-decidebatch-may-do)
        ("CoinbaseTradingSecretArn", {"GateRisk", "DecideBatch", "ExecuteOrder", "Preflight"}),
    ],
)
def test_each_secret_is_read_by_the_functions_that_use_it_only(secret: str, readers: set[str]) -> None:
    only = {"Stage": "prod", "DatabaseSecretArn": "", "MarketDataProvider": "live", secret: SECRETS[secret]}
    reading = {f for f, table in statements(only).items() if ("Allow", READ, (f"<{secret}>",)) in table}
    assert reading == readers
    assert not any(s[1] == ("kms:Decrypt",) for table in statements(only).values() for s in table)  # no key set


def test_no_secret_is_granted_by_a_wildcard_anywhere() -> None:
    cfn = _translated(tuple(sorted(PROD.items())))
    text = json.dumps(cfn)
    assert not re.search(r"secret:[^\"]*\*", text), "a secretsmanager ARN with a wildcard"
    for function in MAY:
        for _effect, actions, resources in statements(PROD)[function]:
            if any(a.startswith("secretsmanager:Get") for a in actions):
                assert all(r.startswith("<") and "*" not in r for r in resources), function


def test_no_function_allows_a_star_resource_or_an_unused_action() -> None:
    for function, table in statements(PROD).items():
        for effect, actions, resources in table:
            assert not (effect == "Allow" and "*" in resources), f"{function} may {actions} on *"
            assert not set(actions) & NEVER, f"{function} may {set(actions) & NEVER}"


def test_no_policy_template_grants_more_than_the_table() -> None:
    """DynamoDBCrudPolicy (Scan, DeleteItem, BatchWriteItem... on the whole table) and its kind are gone for good."""
    sam = load_sam(ROOT)
    for name, resource in sam["Resources"].items():
        for policy in resource.get("Properties", {}).get("Policies", []) or []:
            if isinstance(policy, dict) and len(policy) == 1:
                (kind,) = policy
                assert not kind.endswith("Policy") or kind in {"LambdaInvokePolicy", "SQSSendMessagePolicy"}, (
                    f"{name} uses the policy template {kind}: list the actions its code calls instead"
                )


@pytest.mark.parametrize("function", sorted(MAY))
def test_managed_policies_are_the_runtime_s_and_the_database_s_only(function: str) -> None:
    cfn, values, conditions = deployed(PROD)
    names = managed(PROD, function)
    ours = [n for n in names if n not in AWS_MANAGED]
    assert set(names) >= {"AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"}
    assert ours == ([DATABASE_POLICY[function][0]] if function in REACHES_THE_DATABASE else []), ours
    for name in ours:  # the database's policies (another part of issue 17): no wildcard secret, no "*" grant
        document = resolved(cfn["Resources"][name]["Properties"]["PolicyDocument"], values, conditions)
        for s in document["Statement"]:
            assert s["Effect"] != "Allow" or "*" not in as_tuple(s["Resource"]), name


def test_provider_secrets_decrypt_only_through_secrets_manager() -> None:
    cfn, values, conditions = deployed(PROD)
    for function in ("FetchMarketData", "GateRisk", "ExecuteOrder", "Preflight"):
        role = resolved(cfn["Resources"][f"{function}FunctionRole"]["Properties"], values, conditions)
        (decrypt,) = [
            s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] if s["Action"] == "kms:Decrypt"
        ]
        assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.REGION.amazonaws.com"}}


def test_the_model_store_listing_is_limited_to_models() -> None:
    cfn, values, conditions = deployed(PROD)
    for function in ("CheckStaleness", "DetectRegime", "Api"):
        role = resolved(cfn["Resources"][f"{function}FunctionRole"]["Properties"], values, conditions)
        (listing,) = [
            s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] if s["Action"] == "s3:ListBucket"
        ]
        assert listing["Condition"] == {"StringLike": {"s3:prefix": "models/*"}}
    # nothing but the endpoint (which writes it) touches data-capture/
    assert "data-capture" not in str(statements(PROD))


# --- the endpoint's role (iac/inference.yaml) --------------------------------------------------------------------

IMAGES = {
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ffe-inference:v7": ("eu-west-1", "ffe-inference"),
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/ffe/inference@sha256:" + "a" * 64: (
        "eu-west-1",
        "team/ffe/inference",
    ),
    "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/ffe-inference:v7": ("cn-north-1", "ffe-inference"),
}


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_endpoint_pulls_its_own_repository_only(image: str) -> None:
    from ffe.local.template import parse_template

    stack = parse_template((ROOT / "iac/inference.yaml").read_text())
    values = {
        "ImageUri": image,
        "ModelDataUrl": "s3://models-b/endpoint/v7/model.tar.gz",
        "ModelsBucketName": "models-b",
    }
    values |= {"DataCaptureBucket": "models-b", "Stage": "prod"}
    # outside the VPC and without the stage key (dev); test_network.py covers the endpoint in the VPC with the key
    role = resolved(
        stack["Resources"]["ExecutionRole"]["Properties"],
        values,
        {"HasAlarmTopic": True, "InVpc": False, "HasKmsKey": False},
    )
    by_sid = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    region, repository = IMAGES[image]
    assert by_sid["EcrPull"]["Resource"] == f"arn:aws:ecr:{region}:123456789012:repository/{repository}"
    assert by_sid["EcrAuth"] == {
        "Sid": "EcrAuth",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    }
    assert by_sid["ModelDataRead"]["Resource"] == "arn:aws:s3:::models-b/endpoint/v7/model.tar.gz"
    assert by_sid["ModelStoreRead"]["Resource"] == "arn:aws:s3:::models-b/models/*"
    assert by_sid["ModelStoreList"]["Condition"] == {"StringLike": {"s3:prefix": "models/*"}}
    assert by_sid["DataCaptureWrite"] == {
        "Sid": "DataCaptureWrite",
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::models-b/data-capture/prod/*",
    }
    stars = {sid for sid, s in by_sid.items() if s["Resource"] == "*"}
    assert stars == {"EcrAuth", "Metrics"}  # no resource-level permissions (Metrics is scoped by namespace)


# --- the Rules: a stage that would not decide for real is refused at deploy time ---------------------------------


def refusals(parameters: dict[str, str]) -> list[str]:
    """The rules whose assertion fails for ``parameters`` (what CloudFormation answers before creating anything)."""
    cfn, values, known = deployed(parameters)
    failed = []
    for name, rule in cfn.get("Rules", {}).items():
        if "RuleCondition" in rule and not truth(rule["RuleCondition"], cfn, values, known):
            continue
        failed += [name for a in rule["Assertions"] if not truth(a["Assert"], cfn, values, known)]
    return failed


IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ffe-inference:v7"
ENDPOINT = {"InferenceEndpointSource": "stack", "InferenceImageUri": IMAGE}
ENDPOINT |= {"InferenceModelDataUrl": "s3://ffe-prod-models-123456789012/endpoint/v7/model.tar.gz"}


def samconfig(stage: str) -> dict[str, str]:
    import tomllib

    overrides = tomllib.loads((ROOT / "samconfig.toml").read_text())[stage]["deploy"]["parameters"][
        "parameter_overrides"
    ]
    return dict(pair.split("=", 1) for pair in overrides.split())


@pytest.mark.parametrize(
    ("parameters", "refused_by"),
    [
        ({"Stage": "dev"}, []),  # dev: replay, no endpoint (every fresh decision holds inference_unavailable)
        (
            {"Stage": "dev", "InferenceImageUri": IMAGE, "InferenceModelDataUrl": ENDPOINT["InferenceModelDataUrl"]},
            ["ImageMeansStackEndpoint"],
        ),
        ({"Stage": "dev", **ENDPOINT}, []),
        ({"Stage": "prod", **ENDPOINT}, ["DecidingStagesUseLiveMarketData"]),  # replay, the default
        ({"Stage": "staging", "MarketDataProvider": "live"}, ["DecidingStagesHaveAnEndpoint"]),
        (
            {"Stage": "prod", "MarketDataProvider": "live", "InferenceEndpointSource": "stack"},
            ["StackEndpointNeedsImage"],
        ),
        ({"Stage": "prod", "MarketDataProvider": "live", "InferenceEndpointSource": "external"}, []),
        ({"Stage": "prod", "MarketDataProvider": "live", **ENDPOINT}, []),
        (
            {"Stage": "staging", "MarketDataProvider": "live", **ENDPOINT, "InferenceModelDataUrl": ""},
            ["InferenceEndpointNeedsModelData"],
        ),
    ],
)
def test_rules_refuse_a_stage_that_would_not_decide_for_real(parameters: dict[str, str], refused_by: list[str]) -> None:
    assert refusals({"DatabaseSecretArn": "", **parameters}) == refused_by


def test_the_rules_say_what_to_set() -> None:
    rules = load_sam(ROOT)["Rules"]
    live = rules["DecidingStagesUseLiveMarketData"]["Assertions"][0]["AssertDescription"]
    assert "MarketDataProvider=live" in live and "synthetic" in live
    endpoint = rules["DecidingStagesHaveAnEndpoint"]["Assertions"][0]["AssertDescription"]
    assert "inference_unavailable" in endpoint and "InferenceEndpointSource=external" in endpoint


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_samconfig_s_deciding_stages_are_live_and_refused_until_the_endpoint_is_named(stage: str) -> None:
    """As shipped, `sam deploy --config-env <stage>` stops at StackEndpointNeedsImage: name the image (or say
    external) first. With the image it deploys."""
    overrides = samconfig(stage)
    assert overrides["MarketDataProvider"] == "live"
    assert refusals({"DatabaseSecretArn": "", **overrides}) == ["StackEndpointNeedsImage"]
    assert refusals({"DatabaseSecretArn": "", **overrides, **ENDPOINT}) == []


def test_samconfig_s_dev_passes_the_rules() -> None:
    assert refusals({"DatabaseSecretArn": "", **samconfig("dev")}) == []


def test_a_missing_endpoint_is_alarmed_on_in_every_monitored_stage() -> None:
    """No endpoint (never deployed, or gone): every fresh decision holds inference_unavailable
    (tests/unit/functions/test_endpoint_never_deployed.py) and ffe-<stage>-inference-down fires. That alarm lives in
    iac/alarms.yaml, created with monitoring whatever InferenceEndpointSource says; the endpoint's own alarms
    (iac/inference.yaml) exist only with the endpoint."""
    from ffe.local.template import parse_template

    sam = load_sam(ROOT)
    assert sam["Resources"]["AlarmsStack"]["Condition"] == "MonitoringOn"
    alarm = parse_template((ROOT / "iac/alarms.yaml").read_text())["Resources"]["InferenceDownAlarm"]
    assert "Condition" not in alarm
    metrics = {m["Id"]: m for m in alarm["Properties"]["Metrics"]}
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in metrics.values() if "MetricStat" in m} == {
        "inference_unavailable"
    }
    assert metrics["alldown"]["Expression"] == "IF(held >= 1 AND held / decided >= 1, 1, 0)"
    assert "docs/runbooks/inference-down.md" in alarm["Properties"]["AlarmDescription"]["Fn::Sub"]
    runbook = (ROOT / "docs/runbooks/inference-down.md").read_text()
    assert "never deployed" in runbook and "InferenceEndpointSource" in runbook


# --- the table in the docs ---------------------------------------------------------------------------------------


def table_markdown() -> str:
    rows = ["| Function | Effect | Actions | Resources |", "| --- | --- | --- | --- |"]
    for function in sorted(MAY):
        own = sorted(MAY[function], key=lambda s: (s[0] == "Deny", s[1], s[2]))
        database = (
            ["Allow", f"secretsmanager:GetSecretValue ({DATABASE_POLICY[function][0]})", DATABASE_POLICY[function][1]]
            if function in REACHES_THE_DATABASE
            else []
        )
        lines = [[e, written(a), ", ".join(r)] for e, a, r in own] + ([database] if database else [])
        for i, (effect, actions, resources) in enumerate(lines or [["-", "-", "-"]]):
            rows.append(f"| {function if i == 0 else ''} | {effect} | {actions} | {resources} |")
    return "\n".join(rows) + "\n"


def written(actions: tuple[str, ...]) -> str:
    if actions == NEVER_CHANGES_SECRETS[1]:
        return "every secretsmanager write (Create, Put value, Update, Rotate, Delete, resource policies)"
    return ", ".join(actions)


def test_the_docs_show_this_table() -> None:
    docs = (ROOT / "docs/configuration.md").read_text()
    assert table_markdown() in docs, "regenerate with: python tests/template/test_iam.py"


if __name__ == "__main__":
    sys.stdout.write(table_markdown())
