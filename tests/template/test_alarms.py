"""Alarms, topics, log retention and the schedules' dead-letter queue, on the translated template of every stage.

The catalogue below is the issue's alarm table (slug -> severity): each slug has at least one alarm named
ffe-<stage>-<slug>[-<which>] whose description links docs/runbooks/<slug>.md, that treats missing data on
purpose and notifies the topic of its severity on ALARM and OK.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from ffe.local.template import translate

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "staging", "prod")

CATALOGUE = {
    "decision-latency": "critical",
    "risk-violation-not-blocked": "critical",
    "experiment-rolled-back": "critical",
    "records-lost": "critical",
    "inference-down": "critical",
    "data-pipeline": "critical",
    "provider-breaker-open": "critical",
    "provider-unhealthy": "critical",
    "database-unreachable": "critical",
    "cycle-failed": "critical",
    "cycle-missing": "critical",
    "order-path-errors": "critical",
    "api-5xx": "critical",
    "schedule-failed": "critical",
    "training-failed": "warning",
    "dlq-backlog": "warning",
    "cache-hit-rate-low": "warning",
    "storage-growth": "warning",
    "online-learning-degradation": "warning",
}
PROVIDERS = ("coinbase", "oanda", "alpha_vantage")


def _stack(name: str) -> dict[str, Any]:
    return yaml_parse((ROOT / "iac" / name).read_text())


def _alarms(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in stack["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def _slug(props: dict[str, Any]) -> str:
    """The runbook an alarm links: ${RunbookBaseUrl}/docs/runbooks/<slug>.md."""
    text = json.dumps(props["AlarmDescription"])
    return text.split("${RunbookBaseUrl}/docs/runbooks/", 1)[1].split(".md", 1)[0]


def _metrics(props: dict[str, Any]) -> list[dict[str, Any]]:
    """(Namespace, MetricName, Dimensions) of a plain or a metric-math alarm."""
    if "MetricName" in props:
        return [{k: props[k] for k in ("Namespace", "MetricName", "Dimensions")}]
    return [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]


@pytest.fixture(scope="module", params=STAGES)
def translated(request: pytest.FixtureRequest) -> dict[str, Any]:
    return translate(ROOT, {"Stage": request.param, "DatabaseSecretArn": ""}).cloudformation


@pytest.fixture(scope="module")
def alarms_stack() -> dict[str, Any]:
    return _stack("alarms.yaml")


def test_the_alarms_stack_is_on_in_every_deployed_stage_and_off_offline(translated) -> None:
    nested = translated["Resources"]["AlarmsStack"]
    assert nested["Type"] == "AWS::CloudFormation::Stack" and nested["Properties"]["TemplateURL"] == "iac/alarms.yaml"
    assert nested["Condition"] == "MonitoringOn"
    assert translated["Conditions"]["MonitoringOn"] == {"Fn::Equals": [{"Ref": "MonitoringEnabled"}, "true"]}
    assert translated["Parameters"]["MonitoringEnabled"]["Default"] == "true"
    local_aws = (ROOT / "layers/core/ffe/local/aws.py").read_text()
    assert '"MonitoringEnabled": "false"' in local_aws  # moto cannot create nested stacks from local files


def test_the_alarms_stack_is_passed_every_parameter_it_declares(translated, alarms_stack) -> None:
    passed = set(translated["Resources"]["AlarmsStack"]["Properties"]["Parameters"])
    required = {k for k, p in alarms_stack["Parameters"].items() if "Default" not in p}
    assert required <= passed <= set(alarms_stack["Parameters"])


def test_two_topics_with_optional_email_and_their_arns_as_outputs(translated, alarms_stack) -> None:
    resources = alarms_stack["Resources"]
    assert resources["CriticalTopic"]["Properties"]["TopicName"] == {"Fn::Sub": "ffe-${Stage}-critical"}
    assert resources["WarningTopic"]["Properties"]["TopicName"] == {"Fn::Sub": "ffe-${Stage}-warning"}
    subscriptions = {
        r["Properties"]["TopicArn"]["Ref"]: r for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"
    }
    assert set(subscriptions) == {"CriticalTopic", "WarningTopic"}
    assert {s["Condition"] for s in subscriptions.values()} == {"HasCriticalEmail", "HasWarningEmail"}
    assert {p["Default"] for k, p in alarms_stack["Parameters"].items() if k.endswith("Email")} == {""}
    assert {"CriticalTopicArn", "WarningTopicArn"} <= set(alarms_stack["Outputs"])
    for output in ("CriticalTopicArn", "WarningTopicArn"):
        assert translated["Outputs"][output]["Value"] == {"Fn::GetAtt": ["AlarmsStack", f"Outputs.{output}"]}


def test_every_catalogue_alarm_exists_linked_named_and_on_its_severity_topic(alarms_stack) -> None:
    found: dict[str, list[str]] = {}
    topic = {"critical": "CriticalTopic", "warning": "WarningTopic"}
    for lid, props in _alarms(alarms_stack).items():
        slug = _slug(props)
        assert slug in CATALOGUE, lid
        found.setdefault(slug, []).append(lid)
        name = props["AlarmName"]["Fn::Sub"]
        assert name == f"ffe-${{Stage}}-{slug}" or name.startswith(f"ffe-${{Stage}}-{slug}-"), lid
        assert props["AlarmDescription"]["Fn::Sub"].startswith(CATALOGUE[slug].upper()), lid
        assert props["TreatMissingData"] in {"breaching", "notBreaching", "ignore", "missing"}, lid
        assert props["AlarmActions"] == props["OKActions"] == [{"Ref": topic[CATALOGUE[slug]]}], lid
    # storage-growth's Aurora half lives with the database (iac/database.yaml)
    assert set(found) == set(CATALOGUE)
    assert len(found["provider-breaker-open"]) == len(found["provider-unhealthy"]) == len(PROVIDERS)


def test_missing_data_is_chosen_and_explained_for_every_alarm() -> None:
    for name in ("alarms.yaml", "inference.yaml", "database.yaml"):
        lines = (ROOT / "iac" / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if "TreatMissingData:" in line:
                assert lines[i - 1].strip().startswith("#"), f"{name}:{i + 1}: say why, in a comment on the line above"


def test_custom_metrics_carry_the_service_dimension_and_never_asset(alarms_stack) -> None:
    for name in ("alarms.yaml", "inference.yaml", "database.yaml"):
        for lid, props in _alarms(_stack(name)).items():
            for metric in _metrics(props):
                dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                assert "asset" not in dims, lid
                if metric["Namespace"] == "FFE":
                    assert dims.get("service") == "ffe", lid


def test_the_heartbeat_breaches_on_silence_only_when_schedules_run(alarms_stack) -> None:
    heartbeat = alarms_stack["Resources"]["CycleMissingAlarm"]
    assert heartbeat["Condition"] == "SchedulesOn"
    assert heartbeat["Properties"]["TreatMissingData"] == "breaching"
    dims = {d["Name"]: d["Value"] for d in heartbeat["Properties"]["Dimensions"]}
    assert dims == {"service": "ffe", "event": "closed", "timeframe": "1h"}


def test_training_job_failures_reach_the_warning_topic(alarms_stack) -> None:
    rule = alarms_stack["Resources"]["TrainingJobFailedRule"]["Properties"]
    assert rule["EventPattern"]["detail"]["TrainingJobStatus"] == ["Failed"]
    assert rule["Targets"][0]["Arn"] == {"Ref": "WarningTopic"}
    policy = json.dumps(alarms_stack["Resources"]["WarningTopicPolicy"])
    assert "events.amazonaws.com" in policy and "cloudwatch.amazonaws.com" in policy


def test_the_endpoint_and_database_alarms_notify_the_stage_topics(translated) -> None:
    resources = translated["Resources"]
    inference = resources["InferenceStack"]["Properties"]["Parameters"]["AlarmTopicArn"]
    database = resources["DatabaseStack"]["Properties"]["Parameters"]["AlarmTopicArn"]
    assert inference == {"Fn::If": ["MonitoringOn", {"Fn::GetAtt": ["AlarmsStack", "Outputs.CriticalTopicArn"]}, ""]}
    assert database == {"Fn::If": ["MonitoringOn", {"Fn::GetAtt": ["AlarmsStack", "Outputs.WarningTopicArn"]}, ""]}
    slugs = {_slug(p) for p in _alarms(_stack("inference.yaml")).values()}
    assert "inference-down" in slugs
    assert {_slug(p) for p in _alarms(_stack("database.yaml")).values()} == {"storage-growth"}


def test_every_schedule_has_a_dead_letter_queue_and_a_failed_invocations_alarm(translated, alarms_stack) -> None:
    resources = translated["Resources"]
    rules = {
        r["Properties"]["Name"]["Fn::Sub"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]
    }
    assert len(rules) >= 5
    for name, rule in rules.items():
        for target in rule["Targets"]:
            assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}}, name
    policy = json.dumps(resources["ScheduleDeadLetterQueuePolicy"]["Properties"])
    assert "events.amazonaws.com" in policy and "rule/ffe-${Stage}-*" in policy
    passed = translated["Resources"]["AlarmsStack"]["Properties"]["Parameters"]
    watched = {
        passed[d["Value"]["Ref"]]["Fn::Sub"]
        for p in _alarms(alarms_stack).values()
        if p.get("MetricName") == "FailedInvocations"
        for d in p["Dimensions"]
    }
    assert watched == set(rules)


def test_every_log_group_has_the_stage_retention_and_every_function_a_log_group(translated) -> None:
    resources = translated["Resources"]
    stage = translated["Mappings"]["StageConfig"]
    assert [stage[s]["LogRetentionDays"] for s in STAGES] == [14, 30, 90]
    groups = {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for lid, group in groups.items():
        assert group["RetentionInDays"] == {"Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "LogRetentionDays"]}, lid
    named = {json.dumps(g["LogGroupName"]) for g in groups.values()}
    functions = [lid for lid, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) >= 10
    for function in functions:
        assert json.dumps({"Fn::Sub": f"/aws/lambda/${{{function}}}"}) in named, function
    stage_resource = next(r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage")
    assert stage_resource["Properties"]["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]
    }
    machine = resources["DecisionCycleStateMachine"]
    assert "DecisionCycleStateMachineLogGroup" in json.dumps(machine["Properties"]["LoggingConfiguration"])
    for nested in ("InferenceStack", "DatabaseStack"):
        assert resources[nested]["Properties"]["Parameters"]["LogRetentionDays"] == {
            "Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "LogRetentionDays"]
        }


def test_the_endpoint_and_aurora_log_groups_exist_before_what_writes_them() -> None:
    inference, database = _stack("inference.yaml")["Resources"], _stack("database.yaml")["Resources"]
    endpoint_logs = inference["EndpointLogGroup"]["Properties"]
    assert endpoint_logs["LogGroupName"] == {"Fn::Sub": "/aws/sagemaker/Endpoints/ffe-${Stage}-inference"}
    assert endpoint_logs["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert inference["Endpoint"]["DependsOn"] == "EndpointLogGroup"
    aurora_logs = database["DatabaseLogGroup"]["Properties"]
    assert database["DatabaseCluster"]["Properties"]["EnableCloudwatchLogsExports"] == ["postgresql"]
    assert aurora_logs["LogGroupName"] == {"Fn::Sub": "/aws/rds/cluster/${DatabaseCluster}/postgresql"}
    assert aurora_logs["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert database["DatabaseWriterInstance"]["DependsOn"] == "DatabaseLogGroup"
