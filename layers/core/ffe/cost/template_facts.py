"""What a stage deploys, read from ``template.yaml``, its nested stacks (``iac/*.yaml``), the decision cycle's ASL
and ``samconfig.toml``: the counts and sizes the cost model prices (``ffe.cost.model``). Nothing here is typed per
resource: every figure is read off a resource, a Condition, a Mapping or a parameter for the chosen stage.

Pure: PyYAML, the standard library and ``ffe.contracts``' INLINE_MAX_ASSETS (no boto3, no aws-sam-translator). The CLI
alone imports it.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ffe.contracts import INLINE_MAX_ASSETS

STAGES = ("dev", "staging", "prod")
TIMEFRAMES = ("15m", "1h", "1d")
HOURS_PER_MONTH = 730.0  # AWS's pricing month
DAYS_PER_MONTH = HOURS_PER_MONTH / 24


class TemplateError(ValueError):
    """The template does not say what the model needs (a resource or property it reads is missing)."""


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics read as their long form (``!Ref x`` -> ``{"Ref": x}``)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - a safe loader
    return loaded


@dataclass(frozen=True)
class Function:
    logical_id: str
    code: str  # the handler's folder under functions/ (the key of the measured durations)
    memory_mb: int
    architecture: str


@dataclass(frozen=True)
class Schedule:
    timeframe: str
    expression: str
    runs_per_day: float
    enabled: bool


@dataclass(frozen=True)
class Path_:
    """One walk through the ASL: the states it enters and the Lambda functions (handler folders) it invokes."""

    transitions: int
    invocations: tuple[str, ...]


@dataclass(frozen=True)
class DistributedPath:
    """The cycle on its Distributed Map, read off the ASL: the parent's states on the branch a Choice sends a
    distributed cycle down, one child execution's happy path (no order: its inline Map of orders runs no iteration),
    and the Map's ItemBatcher and ProcessorConfig."""

    cycle_path: Path_  # the parent's states: open, the lock's Choice, the Distributed Map, close, succeed
    batch_path: Path_  # one child execution (one batch)
    batch_size: int  # ItemBatcher.MaxItemsPerBatch
    execution_type: str  # ItemProcessor.ProcessorConfig.ExecutionType: EXPRESS or STANDARD
    max_concurrency: int
    result_writer: bool


@dataclass(frozen=True)
class StageFacts:
    stage: str
    parameters: dict[str, str]
    functions: dict[str, Function]  # by handler folder
    workflow_type: str  # STANDARD or EXPRESS
    cycle_path: Path_  # the cycle's own states (open, map, close)
    asset_path: Path_  # one asset's happy path (no order: the Choice defaults)
    map_concurrency: int
    schedules: dict[str, Schedule]
    daily_functions: tuple[str, ...]  # handler folders run once a day by a schedule event
    endpoint_source: str  # stack, external or none
    instance_type: str
    instance_min: int
    instance_max: int
    scheduled_scale_down: bool
    llm_default: bool
    database: bool
    aurora_instances: int
    aurora_min_acu: float
    aurora_max_acu: float
    proxy: bool
    nat_gateways: int
    interface_endpoints: tuple[str, ...]  # the services' short names (secretsmanager, sagemaker.runtime, ...)
    endpoint_azs: int
    flow_logs: bool
    kms_keys: int
    alarms: int
    dashboards: int
    log_groups: int
    log_retention_days: int
    dynamodb_tables: int
    queues: int
    stack_secrets: int
    retention_days: int
    archive: bool
    distributed: DistributedPath | None  # None: the ASL has no Distributed Map (every cycle runs inline)
    inline_max_assets: int  # ffe.contracts.INLINE_MAX_ASSETS: larger cycles (and universe files) run distributed
    notes: list[str] = field(default_factory=list)


class _Evaluator:
    """Resolves the intrinsics the model reads (Ref to parameters, FindInMap, If, Equals, Not, And, Or, Condition)."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template = template
        self.parameters = parameters
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self._conditions[name]

    def included(self, resource: dict[str, Any]) -> bool:
        return "Condition" not in resource or self.condition(resource["Condition"])

    def value(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.parameters.get(arg, {"Ref": arg})
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::FindInMap":
                name, top, second = (self.value(a) for a in arg)
                return self.template["Mappings"][name][top][second]
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                left, right = (self.value(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(a) for a in arg)
            if key == "Fn::Or":
                return any(self.value(a) for a in arg)
        return node


def parameters_for(root: Path, stage: str) -> dict[str, str]:
    """The template's defaults, overridden by the stage's ``samconfig.toml`` deploy parameter_overrides."""
    template = load_yaml(root / "template.yaml")
    out = {k: str(p["Default"]) for k, p in template["Parameters"].items() if "Default" in p}
    config = tomllib.loads((root / "samconfig.toml").read_text())
    overrides = config.get(stage, {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
    for item in shlex.split(overrides):
        key, _, value = item.partition("=")
        out[key] = value
    out["Stage"] = stage
    return out


def _nested(root: Path, top: _Evaluator, logical_id: str) -> tuple[_Evaluator, dict[str, Any]]:
    """The nested stack's template and an evaluator with the parameters the top template passes it."""
    resource = top.template["Resources"][logical_id]
    props = resource["Properties"]
    template = load_yaml(root / props["TemplateURL"])
    params = {k: str(p["Default"]) for k, p in template.get("Parameters", {}).items() if "Default" in p}
    for key, node in props.get("Parameters", {}).items():
        value = top.value(node)
        params[key] = value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict) else str(value)
    template.setdefault("Conditions", {})
    return _Evaluator(template, params), template


def _service(endpoint: dict[str, Any]) -> str:
    name = endpoint["Properties"]["ServiceName"]
    text = str(name.get("Fn::Sub", name) if isinstance(name, dict) else name)
    return text.split("}.", 1)[-1]


def _runs_per_day(expression: str) -> float:
    """Runs a day of ``cron(m h dom mon dow y)`` with lists, ``*`` and ``*/n`` in minutes and hours (every day)."""
    match = re.fullmatch(r"cron\((\S+) (\S+) \S+ \S+ \S+ \S+\)", expression)
    if match is None:
        raise TemplateError(f"schedule {expression!r}: only cron(minutes hours * * ? *) is read")

    def count(field_: str, size: int) -> int:
        if field_ == "*":
            return size
        if field_.startswith("*/"):
            return math.ceil(size / int(field_[2:]))
        return len(field_.split(","))

    return float(count(match.group(1), 60) * count(match.group(2), 24))


def _distributed(state: dict[str, Any]) -> bool:
    processor = state.get("ItemProcessor") or {}
    return state.get("Type") == "Map" and processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"


def _walk(
    states: dict[str, Any], start: str, substitutions: dict[str, str], distributed: bool = False
) -> tuple[int, list[str], dict[str, Any]]:
    """Follow Next and, at a Choice, its Default (``distributed``: the rule that leads to a Distributed Map, where
    one does), until End/Succeed/Fail; returns transitions, invoked code and the (last) Map met."""
    transitions, invoked, the_map = 0, [], {}
    name: str | None = start
    while name is not None:
        state = states[name]
        transitions += 1
        resource = str(state.get("Resource", ""))
        placeholder = re.fullmatch(r"\$\{(\w+)\}", resource)
        if state["Type"] == "Task" and placeholder:
            invoked.append(substitutions[placeholder.group(1)])
        if state["Type"] == "Map":
            the_map = state
        if state.get("End") or state["Type"] in ("Succeed", "Fail"):
            break
        if state["Type"] == "Choice":
            rules = [c["Next"] for c in state.get("Choices", []) if distributed and _distributed(states[c["Next"]])]
            name = rules[0] if rules else state.get("Default")
        else:
            name = state.get("Next")
    return transitions, invoked, the_map


def read(root: Path, stage: str) -> StageFacts:
    """The stage as its template deploys it, with the stage's samconfig.toml parameters."""
    if stage not in STAGES:
        raise TemplateError(f"stage {stage!r}: one of {', '.join(STAGES)}")
    params = parameters_for(root, stage)
    template = load_yaml(root / "template.yaml")
    ev = _Evaluator(template, params)
    resources = {k: r for k, r in template["Resources"].items() if ev.included(r)}
    functions = _functions(ev, resources)
    mapping = template["Mappings"]["StageConfig"][stage]

    def count(kind: str) -> int:
        return sum(r["Type"] == kind for r in resources.values())

    return StageFacts(
        stage=stage,
        parameters=params,
        functions=functions,
        **_cycle(root, ev, resources, {f.logical_id: f.code for f in functions.values()}),
        **_endpoint(root, ev),
        **_network_and_database(root, ev, resources),
        **_monitoring(root, ev, resources),
        kms_keys=count("AWS::KMS::Key"),
        log_groups=count("AWS::Logs::LogGroup"),
        log_retention_days=int(mapping["LogRetentionDays"]),
        dynamodb_tables=count("AWS::DynamoDB::Table"),
        queues=count("AWS::SQS::Queue"),
        retention_days=int(params.get("DecisionRetentionDays", "90")),
        archive="DecisionArchiveBucket" in resources,
    )


def _functions(ev: _Evaluator, resources: dict[str, Any]) -> dict[str, Function]:
    glob = ev.template.get("Globals", {}).get("Function", {})
    functions: dict[str, Function] = {}
    for lid, r in resources.items():
        if r["Type"] == "AWS::Serverless::Function":
            props = r["Properties"]
            code = Path(str(props["CodeUri"])).name
            memory = int(ev.value(props.get("MemorySize", glob.get("MemorySize", 128))))
            arch = (props.get("Architectures") or glob.get("Architectures") or ["x86_64"])[0]
            functions[code] = Function(lid, code, memory, arch)
    return functions


def _cycle(root: Path, ev: _Evaluator, resources: dict[str, Any], by_logical: dict[str, str]) -> dict[str, Any]:
    """The decision cycle: its workflow type, the ASL's paths, the Map's concurrency, the rules that start it and
    the functions a schedule event runs daily."""
    machines = [
        (lid, r)
        for lid, r in resources.items()
        if r["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in r["Properties"]
    ]
    if not machines:
        raise TemplateError("template.yaml: no AWS::Serverless::StateMachine with a DefinitionUri")
    machine_id, machine = machines[0]
    asl = json.loads((root / machine["Properties"]["DefinitionUri"]).read_text())
    substitutions = {}
    for key, node in machine["Properties"].get("DefinitionSubstitutions", {}).items():
        ref = node.get("Ref", "") if isinstance(node, dict) else ""
        substitutions[key] = by_logical.get(ref.split(".")[0], key)
    cycle_t, cycle_inv, the_map = _walk(asl["States"], asl["StartAt"], substitutions)
    if not the_map:
        raise TemplateError(f"{machine['Properties']['DefinitionUri']}: the cycle's path meets no Map state")
    processor = the_map.get("ItemProcessor") or the_map["Iterator"]
    asset_t, asset_inv, _ = _walk(processor["States"], processor["StartAt"], substitutions)
    return {
        "distributed": _distributed_path(asl, substitutions),
        "inline_max_assets": INLINE_MAX_ASSETS,
        "workflow_type": str(machine["Properties"].get("Type", "STANDARD")),
        "cycle_path": Path_(cycle_t, tuple(cycle_inv)),
        "asset_path": Path_(asset_t, tuple(asset_inv)),
        "map_concurrency": int(the_map.get("MaxConcurrency", 0)),
        "schedules": _schedules(ev, resources, machine_id),
        "daily_functions": _daily(ev, resources, by_logical),
    }


def _distributed_path(asl: dict[str, Any], substitutions: dict[str, str]) -> DistributedPath | None:
    """The distributed branch of the cycle: None when no Choice on the way leads to a Distributed Map."""
    cycle_t, cycle_inv, the_map = _walk(asl["States"], asl["StartAt"], substitutions, distributed=True)
    if not _distributed(the_map):
        return None
    processor = the_map["ItemProcessor"]
    batch_t, batch_inv, _ = _walk(processor["States"], processor["StartAt"], substitutions)
    batcher = the_map.get("ItemBatcher") or {}
    return DistributedPath(
        cycle_path=Path_(cycle_t, tuple(cycle_inv)),
        batch_path=Path_(batch_t, tuple(batch_inv)),
        batch_size=int(batcher.get("MaxItemsPerBatch", 1)),  # no ItemBatcher: one item per child execution
        execution_type=str(processor["ProcessorConfig"].get("ExecutionType", "STANDARD")),
        max_concurrency=int(the_map.get("MaxConcurrency", 0)),
        result_writer="ResultWriter" in the_map,
    )


def _schedules(ev: _Evaluator, resources: dict[str, Any], machine_id: str) -> dict[str, Schedule]:
    schedules: dict[str, Schedule] = {}
    for r in resources.values():
        targets = r["Properties"].get("Targets", []) if r["Type"] == "AWS::Events::Rule" else []
        for target in (t for t in targets if t.get("Arn") == {"Ref": machine_id}):
            raw = ev.value(target["InputTransformer"]["InputTemplate"])
            body = str(raw.get("Fn::Sub", "") if isinstance(raw, dict) else raw)
            tf = re.search(r'"timeframe": "(\w+)"', body)
            if tf is None:
                raise TemplateError("a decision-cycle rule's InputTemplate names no timeframe")
            expression = r["Properties"]["ScheduleExpression"]
            enabled = ev.value(r["Properties"].get("State", "ENABLED")) == "ENABLED"
            schedules[tf.group(1)] = Schedule(tf.group(1), expression, _runs_per_day(expression), enabled)
    return schedules


def _daily(ev: _Evaluator, resources: dict[str, Any], by_logical: dict[str, str]) -> tuple[str, ...]:
    daily: list[str] = []
    for lid, r in resources.items():
        events = (r["Properties"].get("Events") or {}) if r["Type"] == "AWS::Serverless::Function" else {}
        for event in (e for e in events.values() if e["Type"] == "Schedule"):
            daily += [by_logical[lid]] * int(_runs_per_day(str(ev.value(event["Properties"]["Schedule"]))))
    return tuple(daily)


def _endpoint(root: Path, ev: _Evaluator) -> dict[str, Any]:
    """The endpoint as iac/inference.yaml builds it with the parameters the stage passes it."""
    inference_ev, inference = _nested(root, ev, "InferenceStack")
    target = next(
        r for r in inference["Resources"].values() if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
    )
    floor = int(inference_ev.parameters["MinCapacity"])
    actions = inference_ev.value(target["Properties"].get("ScheduledActions")) or []
    if not isinstance(actions, list):  # AWS::NoValue: no scheduled actions in this stage
        actions = []
    floors = [int(inference_ev.value(a["ScalableTargetAction"]["MinCapacity"])) for a in actions]
    scale_down = any(f < floor for f in floors)  # only an action below the floor saves instance-hours
    burst = max([floor, *floors])
    notes = (
        []
        if scale_down
        else ["the endpoint has no scheduled scale-down in iac/inference.yaml: its floor runs all month"]
    )
    if burst > floor:  # raised 5 minutes before each 15m tick, lowered 5 after: target tracking never scales in
        notes.append(  # between (its scale-in needs 15 minutes of low load), so the raised floor runs all month
            f"scheduled scaling raises the floor from {floor} to {burst} around every quarter-hour cycle; "
            f"counted as {burst} all month"
        )
    return {
        "endpoint_source": ev.parameters.get("InferenceEndpointSource", "none"),
        "instance_type": str(inference_ev.parameters["InstanceType"]),
        "instance_min": burst,
        "instance_max": int(inference_ev.parameters["MaxCapacity"]),
        "scheduled_scale_down": scale_down,
        "llm_default": ev.parameters.get("InferenceLlmVote", "true") == "true",
        "notes": notes,
    }


def _network_and_database(root: Path, ev: _Evaluator, resources: dict[str, Any]) -> dict[str, Any]:
    """iac/network.yaml and iac/database.yaml, when the stage creates them (CreateDatabase)."""
    network_ev, network = _nested(root, ev, "NetworkStack")
    db_ev, db = _nested(root, ev, "DatabaseStack")
    database = "DatabaseStack" in resources
    net = [r for r in network["Resources"].values() if network_ev.included(r)] if database else []
    dbr = [r for r in db["Resources"].values() if db_ev.included(r)] if database else []
    interface = [
        r for r in net if r["Type"] == "AWS::EC2::VPCEndpoint" and r["Properties"].get("VpcEndpointType") == "Interface"
    ]
    cluster = next(r for r in db["Resources"].values() if r["Type"] == "AWS::RDS::DBCluster")
    scaling = cluster["Properties"]["ServerlessV2ScalingConfiguration"]
    return {
        "database": database,
        "aurora_instances": sum(r["Type"] == "AWS::RDS::DBInstance" for r in dbr),
        "aurora_min_acu": float(db_ev.value(scaling["MinCapacity"])),
        "aurora_max_acu": float(db_ev.value(scaling["MaxCapacity"])),
        "proxy": any(r["Type"] == "AWS::RDS::DBProxy" for r in dbr),
        "stack_secrets": sum(r["Type"] == "AWS::SecretsManager::Secret" for r in dbr),
        "nat_gateways": sum(r["Type"] == "AWS::EC2::NatGateway" for r in net),
        "interface_endpoints": tuple(_service(r) for r in interface),
        "endpoint_azs": max((len(r["Properties"].get("SubnetIds", [])) for r in interface), default=0),
        "flow_logs": any(r["Type"] == "AWS::EC2::FlowLog" for r in net),
    }


def _monitoring(root: Path, ev: _Evaluator, resources: dict[str, Any]) -> dict[str, Any]:
    """Alarms (iac/alarms.yaml, the database's, the endpoint's when the stack creates it) and dashboards."""
    if "AlarmsStack" not in resources:
        return {"alarms": 0, "dashboards": 0}
    alarms = 0
    stacks = ["AlarmsStack"] + ["DatabaseStack"] * ("DatabaseStack" in resources)
    stacks += ["InferenceStack"] * (ev.parameters.get("InferenceEndpointSource") == "stack")  # once its image is set
    for stack in stacks:
        nested_ev, nested = _nested(root, ev, stack)
        alarms += sum(
            r["Type"] == "AWS::CloudWatch::Alarm" for r in nested["Resources"].values() if nested_ev.included(r)
        )
    dash_ev, dashboards = _nested(root, ev, "DashboardsStack")
    count = sum(
        r["Type"] == "AWS::CloudWatch::Dashboard" for r in dashboards["Resources"].values() if dash_ev.included(r)
    )
    return {"alarms": alarms, "dashboards": count}
