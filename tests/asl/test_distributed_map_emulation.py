"""The offline runtime runs a Distributed Map as AWS documents it (ffe.local.distributed_map; docs/offline-runtime.md,
"Distributed Map: what the offline runtime emulates"): batches with BatchInput, ResultWriter's manifest and result
files, the tolerated failure threshold, children as executions of their own whose events stay out of the parent's
history; a Map without ItemBatcher, and an inline Map, run as moto runs them."""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ffe.local.aws import _parse_each_definition_once
from ffe.local.distributed_map import install, rewrite

REGION = "us-east-1"
BUCKET = "universe-bucket"
ROLE = "arn:aws:iam::123456789012:role/sfn"
READER = {
    "Resource": "arn:aws:states:::s3:getObject",
    "ReaderConfig": {"InputType": "JSON"},
    "Parameters": {"Bucket": BUCKET, "Key": "items.json"},
}
WRITER = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": BUCKET, "Prefix": "results"}}
ECHO = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}
# A child that fails when any of its items says so (ArrayContains: moto reads `$.Items[0].x` as a list)
FAILS_ON_FLAG = {
    "StartAt": "Look",
    "States": {
        "Look": {
            "Type": "Pass",
            "Parameters": {"Items.$": "$.Items", "bad.$": "States.ArrayContains($.Items[*].fail, true)"},
            "Next": "Choose",
        },
        "Choose": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.bad", "BooleanEquals": True, "Next": "Boom"}],
            "Default": "Fine",
        },
        "Fine": {"Type": "Pass", "End": True},
        "Boom": {"Type": "Fail", "Error": "AssetFailed", "Cause": "the item said so"},
    },
}
# The same for a child that takes one item
FAILS_ON_ITEM_FLAG = {
    "StartAt": "Choose",
    "States": {
        "Choose": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.fail", "IsPresent": True},
                        {"Variable": "$.fail", "BooleanEquals": True},
                    ],
                    "Next": "Boom",
                }
            ],
            "Default": "Fine",
        },
        "Fine": {"Type": "Pass", "End": True},
        "Boom": {"Type": "Fail", "Error": "AssetFailed", "Cause": "the item said so"},
    },
}


class Cloud:
    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)

    def run(
        self, definition: dict[str, Any], items: list[Any] | None = None, cycle_input: Any = None
    ) -> dict[str, Any]:
        if items is not None:
            self.s3.put_object(Bucket=BUCKET, Key="items.json", Body=json.dumps(items).encode())
        name = f"m-{uuid.uuid4().hex[:12]}"
        machine = self.sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
        started = self.sfn.start_execution(
            stateMachineArn=machine["stateMachineArn"], input=json.dumps(cycle_input or {}), name="run-1"
        )
        deadline = time.monotonic() + 120  # a bound on a hung run, not an assertion on speed
        while (described := self.sfn.describe_execution(executionArn=started["executionArn"]))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution never ended"
            time.sleep(0.02)
        events = self.sfn.get_execution_history(executionArn=started["executionArn"], maxResults=1000)["events"]
        described["history"] = [event["type"] for event in events]
        described["result"] = json.loads(described["output"]) if "output" in described else None
        return dict(described)

    def read(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)  # caught child errors log at ERROR
    install()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield Cloud()


def distributed(processor: dict[str, Any], execution_type: str = "EXPRESS", **fields: Any) -> dict[str, Any]:
    """A one-state machine: a Distributed Map reading items.json, with ``fields`` on the Map state."""
    item_processor = {**processor, "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type}}
    state = {"Type": "Map", "ItemReader": READER, "ItemProcessor": item_processor, "End": True, **fields}
    return {"StartAt": "Decide the universe", "States": {"Decide the universe": state}}


def test_children_get_batches_of_the_declared_size_with_the_batch_input(cloud: Cloud) -> None:
    definition = distributed(
        ECHO,
        ItemSelector={"asset.$": "$$.Map.Item.Value.asset", "index.$": "$$.Map.Item.Index", "run.$": "$.run"},
        ItemBatcher={
            "MaxItemsPerBatch": 2,
            "BatchInput": {"run.$": "$.run", "execution.$": "$$.Execution.Name", "stage": "dev"},
        },
    )
    assets = [{"asset": f"A{i}"} for i in range(5)]

    result = cloud.run(definition, assets, {"run": "r-7"})

    assert result["status"] == "SUCCEEDED"
    batch_input = {"run": "r-7", "execution": "run-1", "stage": "dev"}
    selected = [{"asset": f"A{i}", "index": i, "run": "r-7"} for i in range(5)]  # ItemSelector, then batching
    assert result["result"] == [
        {"Items": selected[0:2], "BatchInput": batch_input},
        {"Items": selected[2:4], "BatchInput": batch_input},
        {"Items": selected[4:5], "BatchInput": batch_input},
    ]


def test_a_batch_closes_before_an_item_would_take_it_past_the_byte_bound(cloud: Cloud) -> None:
    definition = distributed(ECHO, ItemBatcher={"MaxInputBytesPerBatchPath": "$.bytes", "MaxItemsPerBatch": 50})
    items = [{"asset": "X" * width} for width in (10, 30, 5, 60, 1, 1, 40)]
    bound = 100

    result = cloud.run(definition, items, {"bytes": bound})

    batches = result["result"]
    assert [item for each in batches for item in each["Items"]] == items  # every item once, in order
    sizes = [len(json.dumps(each, separators=(",", ":")).encode()) for each in batches]
    assert all(size <= bound for size in sizes)
    assert len(batches) > 1
    for each, following in itertools.pairwise(batches):  # no batch could have taken the next item
        grown = {"Items": [*each["Items"], following["Items"][0]]}
        assert len(json.dumps(grown, separators=(",", ":")).encode()) > bound


def test_an_item_larger_than_the_byte_bound_fails_the_map_as_item_reader_failed(cloud: Cloud) -> None:
    definition = distributed(ECHO, ItemBatcher={"MaxInputBytesPerBatch": 50})

    result = cloud.run(definition, [{"asset": "A"}, {"asset": "B" * 80}])

    assert result["status"] == "FAILED"
    assert result["error"] == "States.ItemReaderFailed"
    assert "item 1" in result["cause"]


def test_result_writer_writes_the_manifest_and_a_file_per_status(cloud: Cloud) -> None:
    definition = distributed(
        FAILS_ON_FLAG,
        Label="Universe",
        ItemBatcher={"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.run"}},
        ToleratedFailurePercentage=50,
        ResultWriter=WRITER,
    )
    items = [{"asset": "A0"}, {"asset": "A1"}, {"asset": "A2", "fail": True}, {"asset": "A3"}, {"asset": "A4"}]

    result = cloud.run(definition, items, {"run": "r-1"})

    assert result["status"] == "SUCCEEDED"  # 2 of 5 items failed: 40 %, within 50 %
    output = result["result"]
    map_run_arn = output["MapRunArn"]
    run_id = map_run_arn.split(":")[-1]
    assert ":mapRun:" in map_run_arn and "/Universe:" in map_run_arn
    assert output["ResultWriterDetails"] == {"Bucket": BUCKET, "Key": f"results/{run_id}/manifest.json"}
    manifest = cloud.read(f"results/{run_id}/manifest.json")
    assert manifest["DestinationBucket"] == BUCKET and manifest["MapRunArn"] == map_run_arn
    assert manifest["ResultFiles"]["PENDING"] == []
    for status in ("SUCCEEDED", "FAILED"):
        [listed] = manifest["ResultFiles"][status]
        assert listed["Key"] == f"results/{run_id}/{status}_0.json"
        body = cloud.s3.get_object(Bucket=BUCKET, Key=listed["Key"])["Body"].read()
        assert listed["Size"] == len(body)

    succeeded = cloud.read(f"results/{run_id}/SUCCEEDED_0.json")
    [failed] = cloud.read(f"results/{run_id}/FAILED_0.json")
    child_machine = map_run_arn.replace(":mapRun:", ":stateMachine:").rsplit(":", 1)[0]
    assert [json.loads(r["Input"])["Items"] for r in succeeded] == [items[0:2], items[4:5]]
    for record in [*succeeded, failed]:
        assert record["StateMachineArn"] == child_machine
        assert record["ExecutionArn"] == f"{child_machine.replace(':stateMachine:', ':express:')}:{record['Name']}"
        assert record["InputDetails"] == {"Included": True}
        assert json.loads(record["Input"])["BatchInput"] == {"run": "r-1"}
        assert record["StartDate"] <= record["StopDate"]
    for record in succeeded:
        assert record["Status"] == "SUCCEEDED" and record["OutputDetails"] == {"Included": True}
        assert json.loads(record["Output"])["Items"] == json.loads(record["Input"])["Items"]
    assert failed["Status"] == "FAILED"
    assert (failed["Error"], failed["Cause"]) == ("AssetFailed", "the item said so")
    assert json.loads(failed["Input"])["Items"] == items[2:4]
    assert "Output" not in failed


@pytest.mark.parametrize(
    ("tolerance", "status"),
    [
        ({}, "FAILED"),  # neither set: any failed item fails the Map Run
        ({"ToleratedFailurePercentage": 20}, "SUCCEEDED"),  # 1 of 5 items = 20 %: not more than 20 %
        ({"ToleratedFailurePercentage": 19.5}, "FAILED"),
        ({"ToleratedFailureCount": 1}, "SUCCEEDED"),
        ({"ToleratedFailureCount": 0}, "FAILED"),
        ({"ToleratedFailureCount": 5, "ToleratedFailurePercentage": 10}, "FAILED"),  # either one exceeded
        ({"ToleratedFailurePercentagePath": "$.tolerated"}, "SUCCEEDED"),
    ],
)
def test_the_map_fails_only_past_the_tolerated_failure_threshold(
    cloud: Cloud, tolerance: dict[str, Any], status: str
) -> None:
    definition = distributed(FAILS_ON_ITEM_FLAG, execution_type="STANDARD", **tolerance)
    items = [{"asset": f"A{i}", "fail": i == 3} for i in range(5)]

    result = cloud.run(definition, items, {"tolerated": 25})

    assert result["status"] == status
    if status == "FAILED":
        assert result["error"] == "States.ExceedToleratedFailureThreshold"
        assert result["history"][-3:] == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]
    else:
        assert result["result"][3] is None  # a failed child's place in the Map's output (moto)
        assert len(result["result"]) == 5


def test_a_batch_that_fails_counts_each_of_its_items(cloud: Cloud) -> None:
    # 1 failed batch of 2 items among 5 items: 40 % of the items, though 1 of 3 children (33 %)
    definition = distributed(FAILS_ON_FLAG, ItemBatcher={"MaxItemsPerBatch": 2}, ToleratedFailurePercentage=35)
    items = [{"asset": f"A{i}", "fail": i == 0} for i in range(5)]

    result = cloud.run(definition, items)

    assert result["status"] == "FAILED"
    assert result["error"] == "States.ExceedToleratedFailureThreshold"


def test_a_catch_takes_the_exceeded_threshold_and_the_results_are_still_written(cloud: Cloud) -> None:
    definition = distributed(FAILS_ON_ITEM_FLAG, ResultWriter=WRITER)
    state = definition["States"]["Decide the universe"]
    state.pop("End")
    state["Catch"] = [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "Too many failed"}]
    definition["States"]["Too many failed"] = {"Type": "Pass", "End": True}

    result = cloud.run(definition, [{"asset": "A0", "fail": True}, {"asset": "A1"}])

    assert result["status"] == "SUCCEEDED"
    assert result["result"]["Error"] == "States.ExceedToleratedFailureThreshold"
    [manifest_key] = [o["Key"] for o in cloud.s3.list_objects_v2(Bucket=BUCKET)["Contents"] if "manifest" in o["Key"]]
    files = cloud.read(manifest_key)["ResultFiles"]
    assert len(files["FAILED"]) == 1 and len(files["SUCCEEDED"]) == 1


def test_the_parent_history_has_no_child_events(cloud: Cloud) -> None:
    definition = distributed(FAILS_ON_FLAG, ItemBatcher={"MaxItemsPerBatch": 3}, ToleratedFailureCount=10)
    items = [{"asset": f"A{i}", "fail": i == 4} for i in range(7)]

    result = cloud.run(definition, items)

    assert result["history"] == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapRunStarted",
        "MapRunSucceeded",
        "MapStateSucceeded",
        "MapStateExited",
        "ExecutionSucceeded",
    ]


def test_a_child_is_an_execution_of_its_own_without_the_map_context(cloud: Cloud) -> None:
    who = {
        "StartAt": "Who",
        "States": {
            "Who": {
                "Type": "Pass",
                "Parameters": {"execution.$": "$$.Execution.Id", "machine.$": "$$.StateMachine.Id", "input.$": "$"},
                "End": True,
            }
        },
    }
    definition = distributed(who, execution_type="STANDARD", Label="Universe")

    result = cloud.run(definition, [{"asset": "A0"}, {"asset": "A1"}])

    assert result["status"] == "SUCCEEDED"
    parent = result["stateMachineArn"]
    for output, item in zip(result["result"], [{"asset": "A0"}, {"asset": "A1"}], strict=True):
        assert output["input"] == item
        assert output["machine"] == f"{parent}/Universe"
        assert output["execution"].startswith(f"{parent.replace(':stateMachine:', ':execution:')}/Universe:")
    assert result["result"][0]["execution"] != result["result"][1]["execution"]

    # $$.Map is the ItemSelector's: a child state that reads it fails, as on AWS
    reads_map = {
        "StartAt": "Index",
        "States": {"Index": {"Type": "Pass", "Parameters": {"i.$": "$$.Map.Item.Index"}, "End": True}},
    }
    failed = cloud.run(distributed(reads_map, ResultWriter=WRITER), [{"asset": "A0"}])
    assert failed["error"] == "States.ExceedToleratedFailureThreshold"
    [failed_file] = [o["Key"] for o in cloud.s3.list_objects_v2(Bucket=BUCKET)["Contents"] if "FAILED_0" in o["Key"]]
    assert cloud.read(failed_file)[0]["Error"] == "States.Runtime"


def test_a_distributed_map_without_item_batcher_is_untouched(cloud: Cloud) -> None:
    definition = distributed(
        ECHO, execution_type="STANDARD", ItemSelector={"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"}
    )
    text = json.dumps(definition)
    assert rewrite(text) is text  # the grammar sees the definition as written

    result = cloud.run(definition, ["a", "b", "c"])

    assert result["result"] == [{"i": 0, "v": "a"}, {"i": 1, "v": "b"}, {"i": 2, "v": "c"}]


def test_an_inline_map_is_untouched(cloud: Cloud) -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.assets",
                "ItemSelector": {"asset.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **ECHO},
                "MaxConcurrency": 2,
                "End": True,
            }
        },
    }
    text = json.dumps(definition)
    assert rewrite(text) is text

    result = cloud.run(definition, cycle_input={"assets": ["A", "B"]})

    assert result["result"] == [{"asset": "A", "i": 0}, {"asset": "B", "i": 1}]
    assert "MapIterationStarted" in result["history"]  # an inline Map's iterations are the execution's own events


def test_item_batcher_where_it_is_not_emulated_is_refused_when_the_machine_is_created(cloud: Cloud) -> None:
    inline = distributed(ECHO, ItemBatcher={"MaxItemsPerBatch": 2})
    inline["States"]["Decide the universe"]["ItemProcessor"]["ProcessorConfig"] = {"Mode": "INLINE"}
    jsonata = {**distributed(ECHO, ItemBatcher={"MaxItemsPerBatch": 2}), "QueryLanguage": "JSONata"}
    for definition, problem in ((inline, "Mode DISTRIBUTED"), (jsonata, "JSONata")):
        with pytest.raises(ClientError, match=problem):
            cloud.sfn.create_state_machine(
                name=f"m-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=ROLE
            )


def test_installing_again_or_beside_the_parse_cache_in_either_order_keeps_the_batcher() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    install()
    _parse_each_definition_once()
    install()
    text = json.dumps(distributed(ECHO, ItemBatcher={"MaxItemsPerBatch": 7}, Comment="the universe"))
    for _ in range(2):  # the second parse comes from the kept tree
        program: Any = AmazonStateLanguageParser.parse(text)[0]
        state = program.states.states["Decide the universe"]
        assert state.iteration_component.ffe_map.batcher.max_items == 7
        assert state.comment.comment == "the universe"


def test_a_moto_whose_internals_differ_is_refused_at_install_rather_than_patched_silently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import moto
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )

    from ffe.local import distributed_map

    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(distributed_map.DistributedMapEmulationError, match=r"moto 5\.3\.0"):
        distributed_map._internals()
    monkeypatch.setattr(moto, "__version__", "5.2.5")
    monkeypatch.delattr(DistributedIterationComponent, "_map_run")
    with pytest.raises(distributed_map.DistributedMapEmulationError, match=r"DistributedIterationComponent\._map_run"):
        distributed_map._internals()
