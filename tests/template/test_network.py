"""Issue 17 §3, the network and data layer: per stage, what iac/network.yaml creates (endpoints, NAT gateways, flow
logs), the stages' CIDRs, the database's security groups, what is kept on delete, the Rules for an existing database,
the stage key, the endpoint's network and the TLS setting of the built connection string."""

from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ffe.local.template import load_sam, parse_template
from tests.template.test_iam import deployed, refusals, resolved, truth

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "staging", "prod")
LIVE = {"MarketDataProvider": "live", "InferenceEndpointSource": "external"}  # what staging/prod's Rules ask
CERTIFI_IN_LAYER = "/opt/python/certifi/cacert.pem"


@cache
def nested(name: str) -> dict[str, Any]:
    return parse_template((ROOT / "iac" / name).read_text())


def stage_config(stage: str) -> dict[str, Any]:
    return dict(load_sam(ROOT)["Mappings"]["StageConfig"][stage])


def created(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The resources ``template`` creates for ``parameters`` (defaults filled in), conditions decided."""
    values = {k: str(p.get("Default", "")) for k, p in template["Parameters"].items()} | parameters
    known: dict[str, bool] = {}
    for name in template.get("Conditions", {}):
        known[name] = truth(template["Conditions"][name], template, values, known)
    return {k: r for k, r in template["Resources"].items() if known.get(r.get("Condition", ""), True)}


def network(stage: str) -> dict[str, dict[str, Any]]:
    """iac/network.yaml's resources as template.yaml's NetworkStack passes the stage's StageConfig."""
    config = stage_config(stage)
    passed = ("VpcCidr", "NatGatewayPerAz", "InterfaceEndpoints", "FlowLogs")
    return created(nested("network.yaml"), {"Stage": stage} | {k: str(config[k]) for k in passed})


def of_type(resources: dict[str, dict[str, Any]], type_: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in resources.items() if r["Type"] == type_}


def service(endpoint: dict[str, Any]) -> str:
    return str(endpoint["Properties"]["ServiceName"]["Fn::Sub"]).removeprefix("com.amazonaws.${AWS::Region}.")


# --- the network, per stage ----------------------------------------------------------------------------------------

INTERFACE_ALL = {"secretsmanager", "ssm", "states", "sqs", "sagemaker.runtime", "monitoring", "logs"}
EXPECTED = {  # stage: (interface endpoints, NAT gateways, flow logs)
    "dev": ({"secretsmanager"}, 1, False),
    "staging": (INTERFACE_ALL, 1, False),
    "prod": (INTERFACE_ALL, 2, True),
}


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_has_its_endpoints_nat_gateways_and_flow_logs(stage: str) -> None:
    resources = network(stage)
    interface, nats, flow_logs = EXPECTED[stage]
    endpoints = of_type(resources, "AWS::EC2::VPCEndpoint").values()
    gateway = {service(e) for e in endpoints if e["Properties"]["VpcEndpointType"] == "Gateway"}
    assert gateway == {"s3", "dynamodb"}
    assert {service(e) for e in endpoints if e["Properties"]["VpcEndpointType"] == "Interface"} == interface
    for e in endpoints:
        if e["Properties"]["VpcEndpointType"] == "Interface":
            assert e["Properties"]["PrivateDnsEnabled"] is True
            assert e["Properties"]["SecurityGroupIds"] == [{"Ref": "EndpointSecurityGroup"}]
    assert len(of_type(resources, "AWS::EC2::NatGateway")) == nats
    # a private route table per NAT gateway, each routing 0.0.0.0/0 to its own AZ's gateway
    routes = [r["Properties"] for r in of_type(resources, "AWS::EC2::Route").values()]
    assert sorted(r["NatGatewayId"]["Ref"] for r in routes if "NatGatewayId" in r) == sorted(
        of_type(resources, "AWS::EC2::NatGateway")
    )
    assert bool(of_type(resources, "AWS::EC2::FlowLog")) is flow_logs
    if flow_logs:
        group = resources["FlowLogGroup"]
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert group["DeletionPolicy"] == "Retain"


def test_interface_endpoints_admit_https_from_the_lambdas_only() -> None:
    group = nested("network.yaml")["Resources"]["EndpointSecurityGroup"]["Properties"]
    assert group["SecurityGroupIngress"] == [
        {
            "Description": "HTTPS from ffe Lambdas",
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "SourceSecurityGroupId": {"Ref": "LambdaSecurityGroup"},
        }
    ]


def test_the_isolated_subnets_route_to_s3_only() -> None:
    resources = network("prod")
    routes = list(of_type(resources, "AWS::EC2::Route").values())
    assert not [r for r in routes if r["Properties"]["RouteTableId"] == {"Ref": "IsolatedRouteTable"}]
    s3 = resources["S3GatewayEndpoint"]["Properties"]["RouteTableIds"]
    assert {"Ref": "IsolatedRouteTable"} in s3
    dynamodb = resources["DynamoDbGatewayEndpoint"]["Properties"]["RouteTableIds"]
    assert {"Ref": "IsolatedRouteTable"} not in dynamodb


def test_the_stages_cidrs_differ_and_never_overlap() -> None:
    cidrs = [ipaddress.ip_network(stage_config(stage)["VpcCidr"]) for stage in STAGES]
    assert all(not a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])
    pattern = nested("network.yaml")["Parameters"]["VpcCidr"]["AllowedPattern"]
    import re

    assert all(re.fullmatch(pattern, str(c)) for c in cidrs)
    # six /20 subnets carved from each
    assert all(c.prefixlen <= 17 for c in cidrs)


def test_the_stage_passes_its_network_settings() -> None:
    parameters = load_sam(ROOT)["Resources"]["NetworkStack"]["Properties"]["Parameters"]
    for key in ("VpcCidr", "NatGatewayPerAz", "InterfaceEndpoints", "FlowLogs"):
        assert parameters[key] == {"Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, key]}


# --- the database ----------------------------------------------------------------------------------------------------


def test_the_database_admits_only_the_proxy_and_the_rotation_and_the_proxy_only_the_lambdas() -> None:
    resources = nested("database.yaml")["Resources"]
    assert "SecurityGroupIngress" not in resources["DatabaseSecurityGroup"]["Properties"]
    ingress = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    assert sorted((i["GroupId"]["Ref"], i["FromPort"], i["SourceSecurityGroupId"]["Ref"]) for i in ingress) == [
        ("DatabaseSecurityGroup", 5432, "ProxySecurityGroup"),
        ("DatabaseSecurityGroup", 5432, "RotationSecurityGroup"),  # the hosted rotation logs in to the cluster
        ("EndpointSecurityGroupId", 443, "RotationSecurityGroup"),  # ... and calls Secrets Manager's endpoint
    ]
    rotations = [r for r in resources.values() if r["Type"] == "AWS::SecretsManager::RotationSchedule"]
    assert rotations and all(
        r["Properties"]["HostedRotationLambda"]["VpcSecurityGroupIds"] == {"Ref": "RotationSecurityGroup"}
        for r in rotations
    )
    proxy = resources["ProxySecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(i["FromPort"], i["SourceSecurityGroupId"]) for i in proxy] == [(5432, {"Ref": "LambdaSecurityGroupId"})]


@pytest.mark.parametrize("stage", STAGES)
def test_prod_has_a_reader_in_the_second_az_and_every_instance_performance_insights(stage: str) -> None:
    resources = created(nested("database.yaml"), {"Stage": stage})
    instances = of_type(resources, "AWS::RDS::DBInstance")
    assert sorted(instances) == (
        ["DatabaseReaderInstance", "DatabaseWriterInstance"] if stage == "prod" else ["DatabaseWriterInstance"]
    )
    for instance in instances.values():
        assert instance["Properties"]["EnablePerformanceInsights"] is True
        assert instance["Properties"]["PerformanceInsightsRetentionPeriod"] == 7
    if stage == "prod":
        assert resources["DatabaseReaderInstance"]["Properties"]["AvailabilityZone"] == {
            "Fn::Select": [1, {"Fn::GetAZs": ""}]
        }
    cluster = resources["DatabaseCluster"]
    assert cluster["DeletionPolicy"] == cluster["UpdateReplacePolicy"] == "Snapshot"
    assert cluster["Properties"]["BackupRetentionPeriod"] == {"Ref": "BackupRetentionDays"}


def test_backups_are_kept_longer_in_the_deciding_stages() -> None:
    days = {stage: stage_config(stage)["DatabaseBackupRetentionDays"] for stage in STAGES}
    assert days["dev"] < days["staging"] < days["prod"] <= 35
    passed = load_sam(ROOT)["Resources"]["DatabaseStack"]["Properties"]["Parameters"]["BackupRetentionDays"]
    assert passed == {"Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "DatabaseBackupRetentionDays"]}


# --- what is kept on delete ------------------------------------------------------------------------------------------


def policy(node: Any, conditions: dict[str, bool]) -> str:
    if isinstance(node, dict):
        name, yes, no = node["Fn::If"]
        return str(yes if conditions[name] else no)
    return str(node)


@pytest.mark.parametrize("stage", STAGES)
def test_data_is_retained_in_staging_and_prod(stage: str) -> None:
    cfn, _, conditions = deployed({"Stage": stage, "DatabaseSecretArn": "", **LIVE})
    keep = "Delete" if stage == "dev" else "Retain"
    kept = [
        lid
        for lid, r in cfn["Resources"].items()
        if r["Type"] in {"AWS::Logs::LogGroup", "AWS::SQS::Queue"} or lid == "ModelBucket"
    ]
    assert len(kept) >= 17
    for lid in kept:
        r = cfn["Resources"][lid]
        assert policy(r["DeletionPolicy"], conditions) == keep, lid
        assert policy(r["UpdateReplacePolicy"], conditions) == keep, lid
    # the archive (the only copy of dropped decisions) and the nested database and network stacks: in every stage
    for lid in ("DecisionArchiveBucket", "NetworkStack", "DatabaseStack"):
        assert cfn["Resources"][lid]["DeletionPolicy"] == "Retain", lid


def test_switching_to_an_existing_database_keeps_the_created_one() -> None:
    """A stack that created its database and is then given DatabaseSecretArn drops the nested stacks from the
    template: Retain keeps them (and the cluster) instead of deleting them."""
    sam = load_sam(ROOT)
    assert "AWS::LanguageExtensions" in sam["Transform"]
    for lid in ("NetworkStack", "DatabaseStack"):
        r = sam["Resources"][lid]
        assert r["Condition"] == "CreateDatabase"
        assert r["DeletionPolicy"] == r["UpdateReplacePolicy"] == "Retain"


# --- an existing database: through a VPC, TLS verified ----------------------------------------------------------------

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:shared/db-AbC123"
VPC = {"ExistingSubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210"}
VPC |= {"ExistingSecurityGroupId": "sg-0123456789abcdef0"}
TLS = {"DatabaseSslMode": "verify-full"}


@pytest.mark.parametrize(
    ("parameters", "refused_by"),
    [
        ({"Stage": "dev"}, []),  # the offline runtime and LocalStack: no VPC, the secret's own sslmode
        (
            {"Stage": "prod", **LIVE},
            ["ExistingDatabaseThroughAVpc", "ExistingDatabaseVerifiesItsCertificate"],
        ),
        ({"Stage": "staging", **LIVE, **TLS}, ["ExistingDatabaseThroughAVpc"]),
        ({"Stage": "prod", **LIVE, **VPC}, ["ExistingDatabaseVerifiesItsCertificate"]),
        ({"Stage": "prod", **LIVE, **VPC, **TLS}, []),
        (
            {"Stage": "prod", **LIVE, **TLS, "ExistingSubnetIds": VPC["ExistingSubnetIds"]},
            ["ExistingDatabaseThroughAVpc", "ExistingVpcNeedsBoth"],
        ),
    ],
)
def test_an_existing_database_is_reached_through_a_vpc_with_tls_verified(
    parameters: dict[str, str], refused_by: list[str]
) -> None:
    assert refusals({"DatabaseSecretArn": SECRET, **parameters}) == refused_by


DATABASE_FUNCTIONS: tuple[str, ...] = ("GateRisk", "ExecuteOrder", "RecordDecision", "Preflight")
DATABASE_FUNCTIONS += ("MigrateDatabase", "RetainDecisions", "Api")


def function(parameters: dict[str, str], name: str) -> dict[str, Any]:
    """The function's VpcConfig and DB_SSL* environment, resolved (the rest may hold FindInMap)."""
    cfn, values, conditions = deployed(parameters)
    props = cfn["Resources"][f"{name}Function"]["Properties"]
    env = {k: v for k, v in props["Environment"]["Variables"].items() if k.startswith("DB_SSL")}
    out: dict[str, Any] = resolved({"VpcConfig": props.get("VpcConfig"), "Env": env}, values, conditions)
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize("name", DATABASE_FUNCTIONS)
def test_the_functions_reach_an_existing_database_from_its_vpc(name: str) -> None:
    props = function({"Stage": "prod", "DatabaseSecretArn": SECRET, **LIVE, **VPC, **TLS}, name)
    assert props["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "SubnetIds": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    }
    own = function({"Stage": "prod", "DatabaseSecretArn": "", **LIVE}, name)  # the stack's own VPC
    assert own["VpcConfig"] == {
        "SecurityGroupIds": ["NetworkStack.Outputs.LambdaSecurityGroupId"],
        "SubnetIds": ["NetworkStack.Outputs.PrivateSubnetIds"],  # the output split, rendered by name
    }
    assert "VpcConfig" not in function({"Stage": "dev", "DatabaseSecretArn": SECRET}, name)  # ffe run


def tls_environment(parameters: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = function(parameters, "RecordDecision")["Env"]  # SAM folds Globals into each function
    return env


def test_the_functions_verify_the_database_s_certificate() -> None:
    assert tls_environment({"Stage": "prod", "DatabaseSecretArn": "", **LIVE}) == {
        "DB_SSLMODE": "verify-full",
        "DB_SSLROOTCERT": CERTIFI_IN_LAYER,
    }
    existing = {"Stage": "prod", "DatabaseSecretArn": SECRET, **LIVE, **VPC, **TLS}
    assert tls_environment(existing) == {"DB_SSLMODE": "verify-full", "DB_SSLROOTCERT": CERTIFI_IN_LAYER}
    bundle = "/opt/python/ffe/certs/rds-global-bundle.pem"
    assert tls_environment(existing | {"DatabaseSslRootCert": bundle})["DB_SSLROOTCERT"] == bundle
    assert tls_environment({"Stage": "dev", "DatabaseSecretArn": SECRET}) == {}  # the secret's own sslmode


def test_the_layer_s_ca_bundle_trusts_rds_proxy_s_issuer() -> None:
    """RDS Proxy's certificate chains to Amazon Root CA 1 (Amazon Trust Services); certifi ships it, and the core
    layer has certifi (httpx requires it), at /opt/python/certifi/cacert.pem."""
    import certifi

    bundle = Path(certifi.where())
    assert bundle.name == Path(CERTIFI_IN_LAYER).name and bundle.parent.name == "certifi"
    text = bundle.read_text()
    assert all(f"CN=Amazon Root CA {n} O=Amazon" in text for n in (1, 2, 3, 4))
    from importlib.metadata import requires

    assert any(r.startswith("certifi") for r in requires("httpx") or [])
    assert "httpx" in (ROOT / "layers/core/requirements.txt").read_text()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DB_SSLMODE": "verify-full", "DB_SSLROOTCERT": CERTIFI_IN_LAYER}, ("verify-full", CERTIFI_IN_LAYER)),
        ({"DB_SSLMODE": "verify-full", "DB_SSLROOTCERT": "system"}, ("verify-full", "system")),
        ({}, ("require", None)),  # a secret without sslmode, no setting: TLS unverified, as before
    ],
)
def test_the_built_connection_string_carries_the_tls_setting(
    env: dict[str, str], expected: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities import parameters
    from psycopg.conninfo import conninfo_to_dict

    from ffe.adapters.database import conninfo_from_settings
    from ffe.settings import DatabaseSettings

    secret = {"host": "cluster.example", "port": 5432, "username": "app", "password": "pw", "dbname": "ffe"}
    monkeypatch.setattr(parameters, "get_secret", lambda *a, **k: secret)
    settings = DatabaseSettings.model_validate(
        {"db_secret_arn": SECRET, "db_host": "proxy.example"} | {k.lower(): v for k, v in env.items()}
    )
    info = conninfo_to_dict(conninfo_from_settings(settings))
    assert (info["sslmode"], info.get("sslrootcert")) == expected
    assert info["host"] == "proxy.example"


# --- the stage key (prod) ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_prod_encrypts_buckets_and_logs_with_its_own_key(stage: str) -> None:
    cfn, values, conditions = deployed({"Stage": stage, "DatabaseSecretArn": "", **LIVE})
    prod = stage == "prod"
    assert cfn["Resources"]["StageKey"]["Condition"] == "CustomerManagedKey"
    assert conditions["CustomerManagedKey"] is prod
    for bucket in ("ModelBucket", "DecisionArchiveBucket"):
        props = resolved(
            {"BucketEncryption": cfn["Resources"][bucket]["Properties"]["BucketEncryption"]}, values, conditions
        )
        default = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert default == (
            {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "StageKey"} if prod else {"SSEAlgorithm": "AES256"}
        )
    for lid, r in cfn["Resources"].items():
        if r["Type"] == "AWS::Logs::LogGroup":
            props = resolved({"KmsKeyId": r["Properties"]["KmsKeyId"]}, values, conditions)
            assert props.get("KmsKeyId") == ("StageKey" if prod else None), lid
    for stack in ("NetworkStack", "DatabaseStack"):
        props = resolved(cfn["Resources"][stack]["Properties"]["Parameters"]["KmsKeyArn"], values, conditions)
        assert props == ("StageKey" if prod else "")


def test_the_stage_key_serves_the_stage_s_roles_through_s3_and_secrets_manager_only() -> None:
    key = load_sam(ROOT)["Resources"]["StageKey"]
    assert key["Condition"] == "CustomerManagedKey" and key["Properties"]["EnableKeyRotation"] is True
    by_sid = {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    roles = by_sid["StageRolesThroughS3AndSecretsManager"]
    assert roles["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert len(roles["Condition"]["StringEquals"]["kms:ViaService"]) == 2
    assert roles["Condition"]["ArnLike"]["aws:PrincipalArn"]["Fn::Sub"].endswith(":role/${AWS::StackName}-*")
    logs = by_sid["CloudWatchLogsOfThisAccount"]
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]


# --- the inference endpoint's network -----------------------------------------------------------------------------------


def test_the_endpoint_runs_in_the_isolated_subnets_not_network_isolated() -> None:
    stack = nested("inference.yaml")["Resources"]
    model = stack["Model"]["Properties"]
    assert model["EnableNetworkIsolation"] is False  # the predictor loads versions from S3 on demand
    assert model["VpcConfig"]["Fn::If"][0] == "InVpc"
    passed = load_sam(ROOT)["Resources"]["InferenceStack"]["Properties"]["Parameters"]
    assert passed["SubnetIds"] == {
        "Fn::If": ["CreateDatabase", {"Fn::GetAtt": ["NetworkStack", "Outputs.IsolatedSubnetIds"]}, ""]
    }
    values = {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ffe-inference:v7", "Stage": "prod"}
    values |= {"ModelDataUrl": "s3://b/endpoint/v7/model.tar.gz", "ModelsBucketName": "b", "DataCaptureBucket": "b"}
    values |= {"KmsKeyArn": "<key>"}
    role = resolved(
        stack["ExecutionRole"]["Properties"], values, {"HasAlarmTopic": True, "InVpc": True, "HasKmsKey": True}
    )
    by_sid = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    assert "ec2:CreateNetworkInterface" in by_sid["VpcNetworkInterfaces"]["Action"]
    assert by_sid["ModelBucketKey"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert by_sid["ModelBucketKey"]["Resource"] == "<key>"


# --- API access logs and the pre-flight schedule ------------------------------------------------------------------------


def test_api_access_logs_have_the_stage_s_retention() -> None:
    sam = load_sam(ROOT)["Resources"]
    assert sam["DecisionApi"]["Properties"]["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]
    }
    assert sam["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == {
        "Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "LogRetentionDays"]
    }


@pytest.mark.parametrize("stage", STAGES)
def test_the_preflight_schedule_is_per_stage(stage: str) -> None:
    config = stage_config(stage)
    assert str(config["PreflightSchedule"]).startswith("cron(")
    assert config["PreflightScheduleState"] in {"ENABLED", "DISABLED"}
    daily = load_sam(ROOT)["Resources"]["PreflightFunction"]["Properties"]["Events"]["Daily"]["Properties"]
    assert daily["Schedule"] == {"Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "PreflightSchedule"]}
    assert daily["State"] == {"Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "PreflightScheduleState"]}
