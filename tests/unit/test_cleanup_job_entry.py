"""The scheduled cleanup's script-mode entry: the tracking URI from its secret, the EMF lines sent to CloudWatch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from ffe.observability import emit
from ffe.training.cleanup_job import SECRET_ENV, EmfTee, run, tracking_uri_from_secret


class Secrets:
    def __init__(self, value: str) -> None:
        self.value = value
        self.asked: list[str] = []

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        self.asked.append(SecretId)
        return {"SecretString": self.value}


class CloudWatch:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[dict[str, Any]] = []

    def put_metric_data(self, **request: Any) -> None:
        if self.fail:
            raise PermissionError("AccessDenied")
        self.sent.append(request)


def test_the_secret_holds_the_uri_or_json_with_it() -> None:
    assert tracking_uri_from_secret(" postgresql://u:p@h/mlflow\n") == "postgresql://u:p@h/mlflow"
    assert tracking_uri_from_secret('{"MLFLOW_TRACKING_URI": "http://mlflow:5000"}') == "http://mlflow:5000"


def test_the_uri_comes_from_the_secret_and_models_cleaned_goes_to_cloudwatch(monkeypatch, capsys) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(SECRET_ENV, "arn:aws:secretsmanager:us-east-1:123456789012:secret:ffe/dev/mlflow")
    seen: dict[str, Any] = {}

    def cleanup(argv: Sequence[str] | None) -> int:
        import os

        seen["argv"], seen["uri"] = argv, os.environ["MLFLOW_TRACKING_URI"]
        print("v1 keep")
        emit("models_cleaned", 3)
        return 0

    secrets, cloudwatch = Secrets('{"MLFLOW_TRACKING_URI": "postgresql://u:p@proxy/mlflow"}'), CloudWatch()
    assert run(["--apply", "true", "--stage", "dev"], cleanup, lambda: secrets, lambda: cloudwatch) == 0
    assert seen == {"argv": ["--apply", "true", "--stage", "dev"], "uri": "postgresql://u:p@proxy/mlflow"}
    assert secrets.asked == ["arn:aws:secretsmanager:us-east-1:123456789012:secret:ffe/dev/mlflow"]
    [request] = cloudwatch.sent
    assert request["Namespace"] == "FFE"
    assert request["MetricData"] == [
        {
            "MetricName": "models_cleaned",
            "Dimensions": [{"Name": "service", "Value": "ffe"}],
            "Value": 3.0,
            "Unit": "Count",
        }
    ]
    out = capsys.readouterr().out
    assert "v1 keep" in out and "models_cleaned" in out  # still printed into the job's log


def test_a_metric_that_cannot_be_sent_is_a_warning_not_a_failure(monkeypatch, capsys) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://set/mlflow")

    def cleanup(argv: Sequence[str] | None) -> int:
        emit("models_cleaned", 1)
        return 0

    def no_secrets() -> Any:
        raise AssertionError("the secret is not read when MLFLOW_TRACKING_URI is set")

    assert run([], cleanup, no_secrets, lambda: CloudWatch(fail=True)) == 0
    assert "metrics not sent to CloudWatch: PermissionError" in capsys.readouterr().err


def test_without_uri_or_secret_nothing_runs(monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)

    def cleanup(argv: Sequence[str] | None) -> int:
        raise AssertionError("must not run")

    assert run([], cleanup, lambda: None, lambda: None) == 2


def test_the_tee_keeps_only_whole_emf_lines() -> None:
    class Sink:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

    sink = Sink()
    tee = EmfTee(sink)  # type: ignore[arg-type]
    document = json.dumps({"_aws": {"CloudWatchMetrics": []}, "x": 1})
    tee.write("plain\n" + document[:10])
    tee.write(document[10:] + "\n[1, 2]\n{not json\n")
    assert tee.lines == [document] and sink.text.startswith("plain\n")


@pytest.mark.parametrize("value", ["true", "True"])
def test_script_mode_s_apply_value_is_accepted(value: str) -> None:
    """Script mode passes the hyperparameter "true" as --apply true, or as --apply True where the training toolkit
    decodes hyperparameters as JSON first: both apply."""
    import argparse

    from ffe.training.cleanup import add_cleanup_arguments

    parser = argparse.ArgumentParser()
    add_cleanup_arguments(parser)
    args = parser.parse_args(["--apply", value, "--stage", "dev"])
    assert args.apply is True and args.stage == ["dev"]
