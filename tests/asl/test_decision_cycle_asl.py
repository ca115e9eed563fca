"""The ASL file on its own: substitutions, retries, catches and error names (STYLE.md §14)."""

import inspect
import json
import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ffe.domain import errors
from ffe.local.template import load_sam

ROOT = Path(__file__).resolve().parents[2]
ASL_FILES = sorted((ROOT / "state_machines").glob("*.asl.json"))
LAMBDA_RETRYABLE = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "TransientError",
    "RateLimitedError",  # a subclass in Python, but Step Functions matches error names exactly
}
ERROR_CLASSES = {name for name, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, Exception)}


def states(definition: dict) -> dict:  # type: ignore[type-arg]
    """Every state, including those nested in Map/Parallel."""
    found = {}
    for name, state in definition["States"].items():
        found[name] = state
        for sub in [state.get("ItemProcessor") or state.get("Iterator"), *state.get("Branches", [])]:
            if sub:
                found.update(states(sub))
    return found


@pytest.fixture(params=ASL_FILES, ids=lambda p: p.name)
def asl(request: pytest.FixtureRequest) -> tuple[str, dict]:  # type: ignore[type-arg]
    path: Path = request.param
    return path.name, json.loads(path.read_text())


def test_every_placeholder_has_a_definition_substitution(asl) -> None:  # type: ignore[no-untyped-def]
    name, definition = asl
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", json.dumps(definition)))
    machines = [r for r in load_sam(ROOT)["Resources"].values() if r["Type"] == "AWS::Serverless::StateMachine"]
    subs = next(
        m["Properties"]["DefinitionSubstitutions"] for m in machines if m["Properties"]["DefinitionUri"].endswith(name)
    )
    assert placeholders, "the ASL names its functions only through substitutions"
    assert placeholders == set(subs)
    assert "arn:aws:lambda" not in json.dumps(definition)


def test_every_task_retries_transient_errors_with_1_2_4_s_backoff(asl) -> None:  # type: ignore[no-untyped-def]
    _, definition = asl
    tasks = {n: s for n, s in states(definition).items() if s["Type"] == "Task"}
    lambdas = {n: t for n, t in tasks.items() if t["Resource"].endswith("FunctionArn}")}
    assert lambdas
    for name, task in tasks.items():
        if name not in lambdas:  # a service integration (SQS): retried on that service's errors
            assert task["Retry"], name
            continue
        retry = next((r for r in task.get("Retry", []) if set(r["ErrorEquals"]) >= LAMBDA_RETRYABLE), None)
        assert retry is not None, f"{name} does not retry Lambda service errors and TransientError"
        intervals = [retry["IntervalSeconds"] * retry["BackoffRate"] ** i for i in range(retry["MaxAttempts"])]
        assert intervals == [1, 2, 4], name


def test_every_task_catches_the_rest_into_a_recorded_failure(asl) -> None:  # type: ignore[no-untyped-def]
    _, definition = asl
    all_states = states(definition)
    for name, task in ((n, s) for n, s in all_states.items() if s["Type"] == "Task"):
        catch = task.get("Catch", [])
        assert any("States.ALL" in c["ErrorEquals"] for c in catch), f"{name} lets an error fail the cycle"
        assert all(c["Next"] in all_states for c in catch)


def test_custom_error_names_are_domain_error_classes(asl) -> None:  # type: ignore[no-untyped-def]
    _, definition = asl
    names = {
        e
        for s in states(definition).values()
        for rule in s.get("Retry", []) + s.get("Catch", [])
        for e in rule["ErrorEquals"]
        if "." not in e  # States.*, Lambda.*, SQS.* are the services' own names
    }
    assert names and names <= ERROR_CLASSES


def test_stale_branch_builds_a_hold_with_age_threshold_and_reason() -> None:
    definition = json.loads((ROOT / "state_machines/decision_cycle.asl.json").read_text())
    hold = states(definition)["Hold on stale data"]["Parameters"]
    assert hold["action"] == "HOLD" and hold["confidence"] == 1.0
    assert {"data_age_seconds.$", "staleness_threshold_seconds.$", "reason.$"} <= set(hold)


def test_definition_is_accepted_by_the_step_functions_parser(asl) -> None:  # type: ignore[no-untyped-def]
    name, definition = asl
    text = re.sub(
        r"\$\{([A-Za-z0-9_]+)\}", r"arn:aws:lambda:us-east-1:123456789012:function:\1", json.dumps(definition)
    )
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        role = "arn:aws:iam::123456789012:role/sfn"
        arn = sfn.create_state_machine(name=name.split(".")[0], definition=text, roleArn=role)["stateMachineArn"]
        assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == json.loads(text)


def test_a_record_the_store_refuses_goes_to_the_dead_letter_queue() -> None:
    definition = json.loads((ROOT / "state_machines/decision_cycle.asl.json").read_text())
    every = states(definition)
    for recorder in ("Record decision", "Close the cycle", "Record cycle failure"):
        target = every[recorder]["Catch"][0]["Next"]
        assert every[target]["Resource"] == "arn:aws:states:::sqs:sendMessage", recorder
        # the record's own fields (a failure record has an `error` field) are never overwritten
        assert every[recorder]["Catch"][0]["ResultPath"] == "$.record_error"
