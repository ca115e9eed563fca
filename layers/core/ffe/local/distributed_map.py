"""Step Functions Distributed Map in moto's executing backend, as AWS documents it (docs/offline-runtime.md,
"Distributed Map: what the offline runtime emulates").

moto 5.2.5 runs a Distributed Map's children in threads of the parent execution, keeps their events out of the
parent's history, reads ``ItemReader`` from (moto's) S3 and honours ``MaxConcurrency``. ``install()`` adds what it
lacks, for the Map states that use it:

- ``ItemBatcher``, which moto's grammar refuses: taken out of the definition before the grammar sees it (carried to
  the Map state in its ``Comment``) and applied where moto hands the items to the children (``_map_run``);
- ``ExecutionType: EXPRESS``, which the grammar refuses (the children run as moto runs STANDARD ones), and an integer
  ``ToleratedFailurePercentage``, which it refuses too (written as the same float);
- the tolerated failure threshold, which moto parses and never applies: the Map fails with
  ``States.ExceedToleratedFailureThreshold``;
- each child as an execution of its own: its ``$$.Execution`` and ``$$.StateMachine``, and no ``$$.Map`` past the
  ``ItemSelector``;
- ``ResultWriter``'s files: moto writes an empty manifest.json only.

AWS's documented semantics followed here:
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html (ItemBatcher),
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html (ResultWriter),
https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html (tolerated failure threshold).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

PAYLOAD_LIMIT_BYTES = 262_144  # 256 KiB: the largest input a child execution takes, and so the largest batch
_MARK = "ffe.local.distributed_map:"  # starts a Map state's Comment that carries what the grammar never saw
_BATCHER_FIELDS = {
    "MaxItemsPerBatch",
    "MaxItemsPerBatchPath",
    "MaxInputBytesPerBatch",
    "MaxInputBytesPerBatchPath",
    "BatchInput",
}
_EXCEEDED_CAUSE = "The specified tolerated failure threshold was exceeded"
_LOCK = threading.Lock()
_installed = False


class DistributedMapEmulationError(RuntimeError):
    """moto's internals are not what this emulation patches: installing it would silently do nothing."""


# --- the definition the grammar accepts -------------------------------------------------------------------------


def rewrite(definition: str) -> str:
    """The definition moto's grammar accepts. Each Map state loses its ``ItemBatcher``, EXPRESS children are declared
    STANDARD and an integer ``ToleratedFailurePercentage`` becomes the same float; what was taken out rides in the Map
    state's ``Comment`` (restored when the state is built). A definition without these comes back as the same string,
    and one that is not a JSON object is left for the grammar to refuse."""
    try:
        document = json.loads(definition)
    except ValueError:
        return definition
    if not isinstance(document, dict):
        return definition
    changed = _rewrite_states(document, jsonata=document.get("QueryLanguage") == "JSONata")
    return json.dumps(document) if changed else definition


def _rewrite_states(program: dict[str, Any], jsonata: bool) -> bool:
    states = program.get("States")
    if not isinstance(states, dict):
        return False
    changed = False
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        state_jsonata = state.get("QueryLanguage", "JSONata" if jsonata else "JSONPath") == "JSONata"
        for branch in state.get("Branches") or []:
            if isinstance(branch, dict):
                changed |= _rewrite_states(branch, state_jsonata)
        if state.get("Type") != "Map":
            continue
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if isinstance(processor, dict):
            changed |= _rewrite_states(processor, state_jsonata)
        percentage = state.get("ToleratedFailurePercentage")
        if isinstance(percentage, int) and not isinstance(percentage, bool):
            state["ToleratedFailurePercentage"] = float(percentage)
            changed = True
        config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
        express = isinstance(config, dict) and config.get("ExecutionType") == "EXPRESS"
        if express:
            config["ExecutionType"] = "STANDARD"  # type: ignore[index]
        batcher = state.pop("ItemBatcher", None)
        if batcher is None and not express:
            continue
        if batcher is not None:
            _check_batcher(name, batcher, state_jsonata)
        carried = {"ItemBatcher": batcher, "Express": express, "Comment": state.get("Comment")}
        state["Comment"] = _MARK + base64.b64encode(json.dumps(carried).encode()).decode("ascii")
        changed = True
    return changed


def _check_batcher(state_name: str, batcher: Any, jsonata: bool) -> None:
    def refuse(problem: str) -> ValueError:
        return ValueError(f"Map state {state_name!r}: ItemBatcher {problem}")

    if jsonata:
        raise refuse("in a JSONata state is not emulated offline (ffe.local.distributed_map: JSONPath only)")
    if not isinstance(batcher, dict):
        raise refuse("must be a JSON object")
    unknown = set(batcher) - _BATCHER_FIELDS
    if unknown:
        raise refuse(f"has unknown fields {sorted(unknown)}")
    if not set(batcher) & (_BATCHER_FIELDS - {"BatchInput"}):
        raise refuse("needs MaxItemsPerBatch(Path) or MaxInputBytesPerBatch(Path)")
    for static in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
        if static in batcher and f"{static}Path" in batcher:
            raise refuse(f"sets both {static} and {static}Path")
        value = batcher.get(static)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise refuse(f"{static} must be a positive integer, not {value!r}")
        path = batcher.get(f"{static}Path")
        if path is not None and not (isinstance(path, str) and path.startswith("$")):
            raise refuse(f"{static}Path must be a reference path, not {path!r}")
    if "BatchInput" in batcher and not isinstance(batcher["BatchInput"], dict):
        raise refuse("BatchInput must be a JSON object")


# --- what a Distributed Map state carries at run time -------------------------------------------------------------


@dataclass(frozen=True)
class _Batcher:
    max_items: int | None
    max_bytes: int | None
    template: Any  # moto's Parameters for BatchInput and the *Path fields, evaluated against the Map's input; or None
    batch_input: bool

    @classmethod
    def of(cls, declared: dict[str, Any]) -> _Batcher:
        payload: dict[str, Any] = {}
        if "BatchInput" in declared:
            payload["BatchInput"] = declared["BatchInput"]
        for static in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
            if f"{static}Path" in declared:
                payload[f"{static}.$"] = declared[f"{static}Path"]
        return cls(
            max_items=declared.get("MaxItemsPerBatch"),
            max_bytes=declared.get("MaxInputBytesPerBatch"),
            template=_payload_template(payload) if payload else None,
            batch_input="BatchInput" in declared,
        )


@dataclass(frozen=True)
class _MapSpec:
    batcher: _Batcher | None
    express: bool
    result_writer: Any
    count_declared: bool
    percentage_declared: bool


@dataclass
class _Child:
    """One child workflow execution, as ResultWriter records it."""

    index: int
    name: str
    arn: str
    start: str
    input: Any = None
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    stop: str = ""

    def record(self, state_machine_arn: str) -> dict[str, Any]:
        record: dict[str, Any] = {
            "ExecutionArn": self.arn,
            "Input": json.dumps(self.input),
            "InputDetails": {"Included": True},
            "Name": self.name,
        }
        if self.status == "SUCCEEDED":
            record["Output"] = json.dumps(self.output)
            record["OutputDetails"] = {"Included": True}
        else:
            record["Error"] = self.error
            record["Cause"] = self.cause
        record.update(StartDate=self.start, StateMachineArn=state_machine_arn, Status=self.status, StopDate=self.stop)
        return record


@dataclass
class _Run:
    """The children of one Map Run and the items each took."""

    state_machine_arn: str
    execution_prefix: str
    sizes: list[int] | None = None  # items per child when batched; None: one item each
    children: list[_Child] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, index: int) -> _Child:
        name = str(uuid.uuid4())
        child = _Child(index=index, name=name, arn=f"{self.execution_prefix}:{name}", start=_now())
        with self.lock:
            self.children.append(child)
        return child

    def items_of(self, child: _Child) -> int:
        return 1 if self.sizes is None else self.sizes[child.index]

    def ordered(self) -> list[_Child]:
        with self.lock:
            return sorted(self.children, key=lambda child: child.index)


def _now() -> str:
    from moto.core.utils import iso_8601_datetime_with_milliseconds

    return iso_8601_datetime_with_milliseconds(datetime.now(UTC))


_TEMPLATES: dict[str, Any] = {}  # payload JSON -> moto's component for it (components keep no state)


def _payload_template(payload: dict[str, Any]) -> Any:
    """moto's own payload-template component for ``payload`` (``.$`` keys, ``$$`` paths, intrinsic functions): the
    Parameters of a one-state machine, parsed once per process for each payload."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    key = json.dumps(payload, sort_keys=True)
    template = _TEMPLATES.get(key)
    if template is None:
        definition = {"StartAt": "T", "States": {"T": {"Type": "Pass", "Parameters": payload, "End": True}}}
        program: Any = AmazonStateLanguageParser.parse(json.dumps(definition))[0]
        template = _TEMPLATES.setdefault(key, program.states.states["T"].parameters)
    return template


def _evaluate(env: Any, template: Any, value: Any) -> Any:
    """``template`` evaluated in a frame of ``env`` whose input is ``value``."""
    frame = env.open_inner_frame()
    try:
        frame.states.reset(input_value=value)
        frame.stack.append(value)
        template.eval(frame)
        return frame.stack.pop()
    finally:
        env.delete_frame(frame)


# --- the patches -------------------------------------------------------------------------------------------------


def install() -> None:
    """Patch moto's Step Functions interpreter for the Distributed Map (this module's docstring). Once per process;
    raises DistributedMapEmulationError when moto's internals are not the ones patched here."""
    global _installed
    with _LOCK:
        if _installed:
            return
        _patch(_internals())
        _installed = True


def _internals() -> dict[str, Any]:
    """The moto classes patched, each checked for what the patches rely on."""
    import moto
    from moto.stepfunctions.parser.asl.component.common.comment import Comment
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.item_reader_decl import ItemReader
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker,
        inline_item_processor_worker,
        map_run_record,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    found = {
        "Comment": Comment,
        "StatesErrorNameType": StatesErrorNameType,
        "ItemReader": ItemReader,
        "DistributedIterationComponent": DistributedIterationComponent,
        "DistributedWorker": distributed_item_processor_worker.DistributedItemProcessorWorker,
        "InlineWorker": inline_item_processor_worker.InlineItemProcessorWorker,
        "MapRunRecord": map_run_record.MapRunRecord,
        "ResultWriterS3": resource_eval_s3.ResourceEvalS3,
        "StateMap": StateMap,
        "Parser": AmazonStateLanguageParser,
    }
    expected = {
        "DistributedIterationComponent": ["_map_run", "_create_worker"],
        "DistributedWorker": ["_eval_job"],
        "InlineWorker": ["_eval_input"],
        "ResultWriterS3": ["_handle_put_object", "_get_s3_client"],
        "StateMap": ["from_state_props"],
        "Parser": ["parse"],
        "StatesErrorNameType": [
            "StatesExceedToleratedFailureThreshold",
            "StatesItemReaderFailed",
            "StatesResultWriterFailed",
            "StatesRuntime",
        ],
    }
    missing = [
        f"{owner}.{name}" for owner, names in expected.items() for name in names if not hasattr(found[owner], name)
    ]
    record_fields = ("map_run_arn", "map_state_machine_arn", "tolerated_failure_count", "tolerated_failure_percentage")
    if set(record_fields) - set(found["MapRunRecord"].__annotations__):
        missing.append(f"MapRunRecord fields {record_fields}")
    version = tuple(int(part) for part in moto.__version__.split(".")[:2])
    if missing or not (5, 2) <= version < (5, 3):
        raise DistributedMapEmulationError(
            f"ffe.local.distributed_map patches moto 5.2.x (pyproject pins >=5.2.5,<5.3); moto {moto.__version__} "
            f"lacks {missing or 'nothing, but is another minor version'}: check the patches before widening the pin"
        )
    return found


def _patch(moto_: dict[str, Any]) -> None:  # noqa: C901 - one closure per patched moto method, kept together
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
        ToleratedFailureCountDecl,
        ToleratedFailurePercentageDecl,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.program_state import (
        ProgramEnded,
        ProgramError,
        ProgramStopped,
        ProgramTimedOut,
    )
    from moto.stepfunctions.parser.asl.eval.states import ExecutionData, ItemData, MapData, StateMachineData
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    errors = moto_["StatesErrorNameType"]
    parser, state_map, component = moto_["Parser"], moto_["StateMap"], moto_["DistributedIterationComponent"]
    worker, inline_worker, writer = moto_["DistributedWorker"], moto_["InlineWorker"], moto_["ResultWriterS3"]
    parse, from_state_props, map_run = parser.parse, state_map.from_state_props, component._map_run
    eval_job, eval_input = worker._eval_job, inline_worker._eval_input
    s3_client = writer._get_s3_client

    def failure(env: Any, error: Any, cause: str) -> Exception:
        """The Map Run's failure: MapRunFailed, then MapStateFailed (or the Catch) in the parent's history."""
        name = StatesErrorName(typ=error)
        details = MapRunFailedEventDetails(error=name.error_name, cause=cause)
        event = FailureEvent(
            env=env,
            error_name=name,
            event_type=HistoryEventType.MapRunFailed,
            event_details=cast(Any, EventDetails)(mapRunFailedEventDetails=details),
        )
        return FailureEventException(failure_event=event)

    def parse_rewritten(definition: str) -> tuple[Any, Any]:
        return parse(rewrite(definition))

    def build_map(self: Any, state_props: Any) -> None:
        from_state_props(self, state_props)
        carried: dict[str, Any] = {"ItemBatcher": None, "Express": False}
        comment = self.comment.comment if self.comment is not None else None
        if comment is not None and comment.startswith(_MARK):
            carried = json.loads(base64.b64decode(comment[len(_MARK) :]))
            self.comment = None if carried["Comment"] is None else moto_["Comment"](comment=carried["Comment"])
        if not isinstance(self.iteration_component, component):
            if carried["ItemBatcher"] is not None:
                raise ValueError(f"Map state {self.name!r}: ItemBatcher needs ProcessorConfig Mode DISTRIBUTED")
            return
        declared = carried["ItemBatcher"]
        self.iteration_component.ffe_map = _MapSpec(
            batcher=None if declared is None else _Batcher.of(declared),
            express=bool(carried["Express"]),
            result_writer=self.result_writer,
            count_declared=state_props.get(ToleratedFailureCountDecl) is not None,
            percentage_declared=state_props.get(ToleratedFailurePercentageDecl) is not None,
        )

    def batch(self: Any, env: Any, eval_input: Any, spec: _MapSpec, items: list[Any]) -> list[dict[str, Any]]:
        batcher = spec.batcher
        assert batcher is not None
        map_input = env.stack[-1]  # what the ItemSelector reads as $ (moto's InlineItemProcessorWorker._eval_input)
        values = _evaluate(env, batcher.template, map_input) if batcher.template is not None else {}
        max_items = _positive(env, "MaxItemsPerBatch", values.get("MaxItemsPerBatch", batcher.max_items))
        max_bytes = _positive(env, "MaxInputBytesPerBatch", values.get("MaxInputBytesPerBatch", batcher.max_bytes))
        bound = min(max_bytes or PAYLOAD_LIMIT_BYTES, PAYLOAD_LIMIT_BYTES)
        selector = None
        if eval_input.item_selector is not None or eval_input.parameters is not None:
            selector = self._create_worker(env=env, eval_input=eval_input, job_pool=None)
        extra = {"BatchInput": values["BatchInput"]} if batcher.batch_input else {}
        empty = _size({"Items": [], **extra})
        batches: list[dict[str, Any]] = []
        current: list[Any] = []
        size = empty
        for index, item in enumerate(items):
            if selector is not None:  # AWS applies ItemSelector to each item, then batches
                item = select(env, selector, index, item)
            item_size = _size(item)
            if empty + item_size > bound:
                raise failure(
                    env,
                    errors.StatesItemReaderFailed,
                    f"item {index} alone makes a batch of {empty + item_size} bytes, over the {bound} this Map "
                    "allows (MaxInputBytesPerBatch, at most 256 KiB)",
                )
            full = max_items is not None and len(current) >= max_items
            if current and (full or size + 1 + item_size > bound):  # 1: the comma before the item
                batches.append({"Items": current, **extra})
                current, size = [], empty
            size += item_size + (1 if current else 0)
            current.append(item)
        if current:
            batches.append({"Items": current, **extra})
        return batches

    def _positive(env: Any, name: str, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        raise failure(env, errors.StatesRuntime, f"ItemBatcher {name} must be a positive integer, not {value!r}")

    def select(env: Any, selector: Any, index: int, item: Any) -> Any:
        frame = env.open_inner_frame()
        try:
            frame.states.context_object.context_object_data["Map"] = MapData(Item=ItemData(Index=index, Value=item))
            frame.states.reset(input_value=item)
            frame.stack.append(item)
            eval_input(selector, env_frame=frame)
            return frame.states.get_input()
        finally:
            env.delete_frame(frame)

    def map_run_emulated(self: Any, env: Any, eval_input: Any) -> None:
        spec: _MapSpec | None = getattr(self, "ffe_map", None)
        record = eval_input.map_run_record
        prefix = record.map_state_machine_arn.replace(
            ":stateMachine:", ":express:" if spec is not None and spec.express else ":execution:"
        )
        run = _Run(state_machine_arn=record.map_state_machine_arn, execution_prefix=prefix)
        record.ffe_run = run
        env.ffe_map_run_record = record  # the Map state's ResultWriter runs in this frame: its Map Run
        if spec is not None and spec.batcher is not None:
            batches = batch(self, env, eval_input, spec, env.stack.pop())
            run.sizes = [len(each["Items"]) for each in batches]
            env.stack.append(batches)
            eval_input = type(eval_input)(
                state_name=eval_input.state_name,
                max_concurrency=eval_input.max_concurrency,
                input_items=eval_input.input_items,
                parameters=None,  # applied to each item before batching
                item_selector=None,
                item_reader=eval_input.item_reader,
                tolerated_failure_count=eval_input.tolerated_failure_count,
                tolerated_failure_percentage=eval_input.tolerated_failure_percentage,
                label=eval_input.label,
                map_run_record=record,
            )
        map_run(self, env, eval_input)
        if spec is not None and _exceeded(spec, record, run):
            if spec.result_writer is not None:  # the results still go to S3: which children failed, and why
                spec.result_writer.eval(env)  # reads the outputs map_run left on the stack, leaves its own
            raise failure(env, errors.StatesExceedToleratedFailureThreshold, _EXCEEDED_CAUSE)

    def eval_job_recorded(self: Any, env: Any, job: Any) -> None:
        run: _Run | None = getattr(self._map_run_record, "ffe_run", None)
        if run is None:
            eval_job(self, env, job)
            return
        child = run.start(job.job_index)
        env.ffe_child = child
        try:
            eval_job(self, env, job)
        finally:
            state = env.program_state()
            if isinstance(state, ProgramEnded):
                child.status, child.output = "SUCCEEDED", job.job_output
            elif isinstance(state, ProgramError):
                details = state.error or {}
                child.status, child.error, child.cause = "FAILED", details.get("error"), details.get("cause")
            elif isinstance(state, ProgramStopped):
                child.status = "ABORTED"
            elif isinstance(state, ProgramTimedOut):
                child.status, child.error = "TIMED_OUT", "States.Timeout"
            else:
                child.status, child.error = "FAILED", errors.StatesRuntime.to_name()
            child.stop = _now()
            extra = run.items_of(child) - 1  # moto counts one item per child
            counters = self._map_run_record.item_counter
            counters.total.count(extra)
            if child.status == "SUCCEEDED":
                counters.succeeded.count(extra)
                counters.results_written.count(extra)
            elif child.status == "TIMED_OUT":
                counters.timed_out.count(extra)
            elif child.status == "FAILED":
                counters.failed.count(extra)

    def eval_input_as_child(self: Any, env_frame: Any) -> None:
        eval_input(self, env_frame=env_frame)
        child: _Child | None = getattr(env_frame, "ffe_child", None)
        if child is None:
            return
        child.input = env_frame.states.get_input()
        context = env_frame.states.context_object.context_object_data  # this frame's own
        context.pop("Map", None)  # a child execution's context object has no Map: that was the ItemSelector's
        context["Execution"] = ExecutionData(
            Id=child.arn,
            Input=child.input,
            Name=child.name,
            RoleArn=context["Execution"]["RoleArn"],
            StartTime=child.start,
        )
        arn = self._map_run_record.map_state_machine_arn
        context["StateMachine"] = StateMachineData(Id=arn, Name=arn.split(":")[-1])

    def put_results(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        parameters = env.stack.pop()
        env.stack.pop()  # the children's outputs: the result files carry them
        record = getattr(env, "ffe_map_run_record", None) or env.map_run_record_pool_manager.get_all()[-1]
        run: _Run | None = getattr(record, "ffe_run", None)
        bucket, prefix = parameters["Bucket"], parameters.get("Prefix", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folder = f"{prefix}{record.map_run_arn.split(':')[-1]}/"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        s3 = s3_client(resource_runtime_part=resource_runtime_part, state_credentials=state_credentials)
        try:
            children = run.ordered() if run is not None else []
            for status, group in (
                ("SUCCEEDED", [c for c in children if c.status == "SUCCEEDED"]),
                ("FAILED", [c for c in children if c.status != "SUCCEEDED"]),  # failed, timed out, aborted
            ):
                if not group:
                    continue
                body = json.dumps([c.record(record.map_state_machine_arn) for c in group]).encode()
                key = f"{folder}{status}_0.json"
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
            manifest = {"DestinationBucket": bucket, "MapRunArn": record.map_run_arn, "ResultFiles": files}
            s3.put_object(Bucket=bucket, Key=f"{folder}manifest.json", Body=json.dumps(manifest).encode())
        except (BotoCoreError, ClientError) as error:
            raise failure(env, errors.StatesResultWriterFailed, str(error)) from error
        details = {"Bucket": bucket, "Key": f"{folder}manifest.json"}
        env.stack.append({"MapRunArn": record.map_run_arn, "ResultWriterDetails": details})

    parser.parse = staticmethod(parse_rewritten)
    state_map.from_state_props = build_map
    component._map_run = map_run_emulated
    worker._eval_job = eval_job_recorded
    worker._eval_input = eval_input_as_child
    writer._handle_put_object = staticmethod(put_results)
    # moto warns at every parse that tolerated-failure declarations have no effect: no longer true
    logging.getLogger(Preprocessor.__module__).addFilter(lambda record: "have no effect" not in record.getMessage())


def _size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON, the form a child execution's input is measured in."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _exceeded(spec: _MapSpec, record: Any, run: _Run) -> bool:
    """Whether the failed and timed-out items pass the Map's tolerated failure threshold (maprun-fail-threshold.html):
    any failure when neither ToleratedFailureCount nor ToleratedFailurePercentage is set, else more than either."""
    children = run.ordered()
    total = sum(run.items_of(child) for child in children)
    failed = sum(run.items_of(child) for child in children if child.status in ("FAILED", "TIMED_OUT"))
    if not failed:
        return False
    if not spec.count_declared and not spec.percentage_declared:
        return True
    over_count = spec.count_declared and failed > record.tolerated_failure_count
    over_percentage = spec.percentage_declared and failed * 100 > record.tolerated_failure_percentage * total
    return bool(over_count or over_percentage)
