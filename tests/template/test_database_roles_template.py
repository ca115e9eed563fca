"""Each function reaches PostgreSQL as its own role (migration 0009_roles, docs/database-roles.md): the secret in
its environment is its role's, its policy reads that secret only, and iac/database.yaml makes, proxies and
rotates a secret per login role."""

from __future__ import annotations

import json
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from ffe.local.template import load_sam
from ffe.store.roles import LOGIN_ROLES
from tests.conftest import ROOT

# function -> (its DB_SECRET_ARN's output in the database stack, its managed policy)
ROLE_OF = {
    "GateRiskFunction": ("AppRoleSecretArn", "DatabaseAppAccessPolicy"),
    "ExecuteOrderFunction": ("AppRoleSecretArn", "DatabaseAppAccessPolicy"),
    "RecordDecisionFunction": ("AppRoleSecretArn", "DatabaseAppAccessPolicy"),
    "PreflightFunction": ("AppRoleSecretArn", "DatabaseAppAccessPolicy"),
    "ApiFunction": ("ApiRoleSecretArn", "DatabaseApiAccessPolicy"),
    "RetainDecisionsFunction": ("RetentionRoleSecretArn", "DatabaseRetentionAccessPolicy"),
    "MigrateDatabaseFunction": ("SecretArn", "DatabaseMigrationAccessPolicy"),
}


def created(value: Any) -> Any:
    """The CreateDatabase branch of an ``Fn::If`` on it."""
    assert value["Fn::If"][0] == "CreateDatabase", value
    return value["Fn::If"][1]


def test_each_function_gets_its_role_s_secret_and_may_read_only_that() -> None:
    sam = load_sam(ROOT)
    resources = sam["Resources"]
    default = created(sam["Globals"]["Function"]["Environment"]["Variables"]["DB_SECRET_ARN"])
    for function, (output, policy) in ROLE_OF.items():
        variables = resources[function]["Properties"].get("Environment", {}).get("Variables", {})
        secret = created(variables["DB_SECRET_ARN"]) if "DB_SECRET_ARN" in variables else default
        assert secret == {"Fn::GetAtt": ["DatabaseStack", f"Outputs.{output}"]}, function
        refs = [p for p in resources[function]["Properties"]["Policies"] if isinstance(p, dict) and "Ref" in p]
        assert {"Ref": policy} in refs and not [
            r for r in refs if r["Ref"].startswith("Database") and r["Ref"] != policy
        ]
    api = resources["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert created(api["DB_EXPERIMENTS_SECRET_ARN"]) == {
        "Fn::GetAtt": ["DatabaseStack", "Outputs.ExperimentsRoleSecretArn"]
    }
    for policy, outputs in {
        "DatabaseAppAccessPolicy": ["AppRoleSecretArn"],
        "DatabaseApiAccessPolicy": ["ApiRoleSecretArn", "ExperimentsRoleSecretArn"],
        "DatabaseRetentionAccessPolicy": ["RetentionRoleSecretArn"],
    }.items():
        (statement,) = resources[policy]["Properties"]["PolicyDocument"]["Statement"]
        read = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert [created(r) for r in read] == [{"Fn::GetAtt": ["DatabaseStack", f"Outputs.{o}"]} for o in outputs]
    migration = resources["MigrateDatabaseFunction"]["Properties"]["Environment"]["Variables"]
    joined = created(migration["DB_ROLE_SECRET_ARNS"])["Fn::Join"][1]
    roles = ("AppRoleSecretArn", "ApiRoleSecretArn", "ExperimentsRoleSecretArn", "RetentionRoleSecretArn")
    assert [j["Fn::GetAtt"][1] for j in joined] == [f"Outputs.{o}" for o in roles]


def test_the_database_stack_makes_proxies_and_rotates_a_secret_per_login_role() -> None:
    stack = yaml_parse((ROOT / "iac/database.yaml").read_text())
    resources = stack["Resources"]
    secrets = {
        name: json.loads(r["Properties"]["GenerateSecretString"]["SecretStringTemplate"])["username"]
        for name, r in resources.items()
        if r["Type"] == "AWS::SecretsManager::Secret" and name != "DatabaseSecret"
    }
    assert sorted(secrets.values()) == sorted(LOGIN_ROLES)
    proxied = {a["SecretArn"]["Ref"] for a in resources["DatabaseProxy"]["Properties"]["Auth"]}
    assert proxied == {"DatabaseSecret", *secrets}
    assert resources["ProxyRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"] == [
        {"Ref": name} for name in ("DatabaseSecret", *secrets)
    ]
    rotated = {
        r["Properties"]["SecretId"]["Ref"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::SecretsManager::RotationSchedule"
    }
    assert set(rotated) == {"DatabaseSecret", *secrets}
    for name, rotation in rotated.items():
        assert rotation["HostedRotationLambda"]["RotationType"] == "PostgreSQLSingleUser"
        # a role has no password until MigrateDatabase ran: its first rotation waits for the schedule
        assert rotation.get("RotateImmediatelyOnUpdate", True) is (name == "DatabaseSecret")
    assert stack["Transform"] == "AWS::SecretsManager-2020-07-23"
