"""Retention in the template: the daily decision retention job, its archive bucket, the model bucket's lifecycle."""

import json
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from ffe.local.template import load_sam, translate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resources() -> dict:
    return translate(ROOT, {"Stage": "dev", "DatabaseSecretArn": ""}).cloudformation["Resources"]


def test_decision_retention_runs_daily_with_the_stage_s_window(resources) -> None:
    fn = resources["RetainDecisionsFunction"]["Properties"]
    env = fn["Environment"]["Variables"]
    assert env["DECISION_RETENTION_DAYS"] == {"Ref": "DecisionRetentionDays"}
    assert env["DECISION_ARCHIVE_BUCKET"] == {
        "Fn::If": ["ArchiveDecisions", {"Ref": "DecisionArchiveBucket"}, {"Ref": "AWS::NoValue"}]
    }
    assert fn["Timeout"] == 900
    rule = resources["RetainDecisionsFunctionDaily"]["Properties"]
    assert rule["ScheduleExpression"] == "cron(38 3 * * ? *)" and rule["State"] == "ENABLED"
    # between two 15-minute cycles (they start at :31 and :46) and clear of the hourly one at :01
    assert "RetainDecisionsFunction" in json.dumps(rule["Targets"])
    log_group = resources["RetainDecisionsLogGroup"]["Properties"]
    assert "RetainDecisionsFunction" in json.dumps(log_group["LogGroupName"]) and "RetentionInDays" in log_group


def test_the_archive_outlives_the_stack_and_only_the_stage_s_prefix_is_writable(resources) -> None:
    bucket = resources["DecisionArchiveBucket"]
    assert bucket["Condition"] == "ArchiveDecisions" and bucket["DeletionPolicy"] == "Retain"
    policies = json.dumps(resources["RetainDecisionsFunctionRole"]["Properties"]["Policies"])
    assert "${DecisionArchiveBucket.Arn}/decisions/${Stage}/*" in policies and "s3:DeleteObject" not in policies


def test_sam_defaults_keep_90_days_and_export_first() -> None:
    params = load_sam(ROOT)["Parameters"]
    assert params["DecisionRetentionDays"]["Default"] == 90 and params["DecisionArchive"]["Default"] == "true"
    assert params["DataCaptureRetentionDays"]["Default"] == 30


def test_model_bucket_expires_old_versions_capture_and_abandoned_uploads(resources) -> None:
    rules = {r["Id"]: r for r in resources["ModelBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rules["ExpireDataCapture"]["ExpirationInDays"] == {"Ref": "DataCaptureRetentionDays"}
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert all(r["Status"] == "Enabled" for r in rules.values())
    # the capture rule's prefix is where the endpoint writes (iac/inference.yaml)
    inference = yaml_parse((ROOT / "iac/inference.yaml").read_text())
    capture = inference["Resources"]["EndpointConfig"]["Properties"]["DataCaptureConfig"]["DestinationS3Uri"]
    assert capture["Fn::Sub"].startswith(f"s3://${{DataCaptureBucket}}/{rules['ExpireDataCapture']['Prefix']}")
