"""The ASL file on its own: substitutions, retries, catches and error names (docs/architecture.md, Error classes)."""

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


def states(definition: dict) -> dict:
    """Every state, including those nested in Map/Parallel."""
    found = {}
    for name, state in definition["States"].items():
        found[name] = state
        for sub in [state.get("ItemProcessor") or state.get("Iterator"), *state.get("Branches", [])]:
            if sub:
                found.update(states(sub))
    return found


@pytest.fixture(params=ASL_FILES, ids=lambda p: p.name)
def asl(request: pytest.FixtureRequest) -> tuple[str, dict]:
    path: Path = request.param
    return path.name, json.loads(path.read_text())


def test_every_placeholder_has_a_definition_substitution(asl) -> None:
    name, definition = asl
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", json.dumps(definition)))
    machines = [r for r in load_sam(ROOT)["Resources"].values() if r["Type"] == "AWS::Serverless::StateMachine"]
    subs = next(
        m["Properties"]["DefinitionSubstitutions"] for m in machines if m["Properties"]["DefinitionUri"].endswith(name)
    )
    assert placeholders, "the ASL names its functions only through substitutions"
    assert placeholders == set(subs)
    assert "arn:aws:lambda" not in json.dumps(definition)


def test_every_task_retries_transient_errors_with_1_2_4_s_backoff(asl) -> None:
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


def test_every_task_catches_the_rest_into_a_recorded_failure(asl) -> None:
    _, definition = asl
    all_states = states(definition)
    for name, task in ((n, s) for n, s in all_states.items() if s["Type"] == "Task"):
        catch = task.get("Catch", [])
        assert any("States.ALL" in c["ErrorEquals"] for c in catch), f"{name} lets an error fail the cycle"
        assert all(c["Next"] in all_states for c in catch)


def test_custom_error_names_are_domain_error_classes(asl) -> None:
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


def test_definition_is_accepted_by_the_step_functions_parser(asl) -> None:
    """moto's parser, with what the offline runtime adds for the Distributed Map (ItemBatcher, Express children:
    ffe.local.distributed_map, docs/offline-runtime.md)."""
    from ffe.local import distributed_map

    distributed_map.install()
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


# --- bounded, non-overlapping, within its limits -----------------------------------------------------------------


def function_timeouts() -> dict[str, int]:
    """Each DefinitionSubstitutions key of the cycle -> its function's Timeout in seconds (template.yaml)."""
    sam = load_sam(ROOT)
    default = sam["Globals"]["Function"]["Timeout"]
    subs = sam["Resources"]["DecisionCycleStateMachine"]["Properties"]["DefinitionSubstitutions"]
    out = {}
    for key, value in subs.items():
        if isinstance(value, dict) and "Ref" in value and value["Ref"].endswith(".Version"):
            function = sam["Resources"][value["Ref"].removesuffix(".Version")]
            out[key] = function["Properties"].get("Timeout", default)
    return out


def test_the_execution_and_every_task_are_bounded_in_time() -> None:
    from ffe.domain.cycles import CYCLE_TIMEOUT_SECONDS

    definition = json.loads((ROOT / "state_machines/decision_cycle.asl.json").read_text())
    assert definition["TimeoutSeconds"] == CYCLE_TIMEOUT_SECONDS
    timeouts = function_timeouts()
    assert len(timeouts) == 8  # every function the cycle invokes, at the version its deploy published
    for name, task in ((n, s) for n, s in states(definition).items() if s["Type"] == "Task"):
        assert 0 < task["TimeoutSeconds"] < CYCLE_TIMEOUT_SECONDS, name
        key = task["Resource"].strip("${}")
        if key in timeouts:  # the task gives up only after the function itself would have
            assert task["TimeoutSeconds"] > timeouts[key], name


def test_an_unplaced_reservation_outlives_any_execution_that_could_still_place_it() -> None:
    from ffe.domain.cycles import CYCLE_TIMEOUT_SECONDS
    from ffe.settings import RiskSettings

    ttl = RiskSettings.model_fields["reservation_ttl_seconds"].default
    assert ttl > CYCLE_TIMEOUT_SECONDS + function_timeouts()["ExecuteOrderFunctionArn"]


def test_retries_back_off_with_full_jitter_and_a_ceiling_and_retry_what_is_safe(asl) -> None:
    _, definition = asl
    for name, task in ((n, s) for n, s in states(definition).items() if s["Type"] == "Task"):
        for retrier in task["Retry"]:
            assert retrier["JitterStrategy"] == "FULL" and 0 < retrier["MaxDelaySeconds"] <= 60, name
        if task["Resource"].endswith("FunctionArn}"):  # every function is idempotent: a crash or timeout is retried
            retried = {e for r in task["Retry"] for e in r["ErrorEquals"]}
            assert {"Lambda.TooManyRequestsException", "Lambda.Unknown", "States.Timeout"} <= retried, name


def test_no_iteration_can_fail_the_map_and_each_leaves_only_its_outcome() -> None:
    definition = json.loads((ROOT / "state_machines/decision_cycle.asl.json").read_text())
    iteration = definition["States"]["Decide each asset"]["ItemProcessor"]["States"]
    assert [n for n, s in iteration.items() if s["Type"] == "Fail"] == []
    ends = {n: s for n, s in iteration.items() if s.get("End") or s["Type"] == "Succeed"}
    for name, state in ends.items():  # small and fixed whatever the asset carried: the Map result stays bounded
        assert state["Type"] == "Pass", name
        assert set(state["Parameters"]) <= {"asset.$", "outcome", "error.$", "dead_letter_error.$"}, name
    assert {s["Parameters"]["outcome"] for s in ends.values()} == {"recorded", "deferred", "lost"}
    assert definition["States"]["Decide each asset"]["ResultPath"] == "$.outcomes"


def test_a_cycle_that_finds_another_running_stops_as_skipped() -> None:
    definition = json.loads((ROOT / "state_machines/decision_cycle.asl.json").read_text())
    every = definition["States"]
    opened = every["Open the cycle"]
    assert opened["ResultPath"] == "$.opened" and every[opened["Next"]]["Type"] == "Choice"
    choice, distributed = every[opened["Next"]]["Choices"]  # skipped first, then the Map the cycle opened with
    assert (choice["Variable"], choice["StringEquals"]) == ("$.opened.cycle_status", "SKIPPED")
    assert every[choice["Next"]]["Type"] == "Succeed"
    assert (distributed["Variable"], distributed["StringEquals"]) == ("$.opened.mode", "distributed")
    assert every[distributed["Next"]]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert every[opened["Next"]]["Default"] == "Decide each asset"
    # a non-object input (null, a list) can still be caught: the error replaces it instead of being merged in
    assert opened["Catch"][0]["ResultPath"] == "$"
