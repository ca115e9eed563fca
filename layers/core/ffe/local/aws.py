"""Embedded AWS: the project's template deployed into moto, with the real handlers behind its Lambdas.

``LocalCloud`` is the whole offline stack: translate template.yaml, upload the function and layer code
to (moto's) S3, put the database credentials in (moto's) Secrets Manager, serve the inference
container's server on loopback (``ffe.local.inference``), create the CloudFormation stack, and start
DecisionCycle executions the way the EventBridge schedules do.
"""

from __future__ import annotations

import ast
import fcntl
import io
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict

from ffe.dlq import REASON_ATTRIBUTE, queued
from ffe.local import breakers as local_breakers
from ffe.local import distributed_map
from ffe.local.errors import LocalError
from ffe.local.inference import LocalInference
from ffe.local.lambdas import FunctionCode, InProcessLambdas, cold_start
from ffe.local.template import (
    ARTIFACT_BUCKET,
    PUBLISHED,
    REGION,
    Alias,
    published_versions,
    s3_objects,
    translate,
    without_unsupported,
)
from ffe.universe_file import UniverseEntry

STACK_NAME = "ffe-local"
_LOCAL_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon offline
    # moto answers only the AWS endpoints: a shell's AWS_ENDPOINT_URL(_<SERVICE>) (LocalStack, docs/localstack.md)
    # would send every client past it. INFERENCE_ENDPOINT_URL, an explicit endpoint_url, still applies.
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
}


@dataclass(frozen=True)
class Schedule:
    rule_name: str
    expression: str
    state: str
    input_paths: dict[str, str]
    input_template: str

    def input_for(self, event: dict[str, Any]) -> dict[str, Any]:
        """Apply the rule's InputTransformer to an event, as EventBridge does for a JSON template."""
        text = self.input_template
        for name, path in self.input_paths.items():
            text = text.replace(f"<{name}>", json.dumps(_json_path(event, path)))
        result: dict[str, Any] = json.loads(text)
        return result


@dataclass
class LocalCloud:
    root: Path
    database_url: str
    stage: str = "dev"
    echo_logs: bool = False
    market_data: str = "replay"  # the template's MarketDataProvider: replay | live
    provider_secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # provider -> secret JSON
    dlq_file: Path | None = None  # where parked records survive between commands (moto's SQS does not)
    poison_file: Path | None = None  # likewise for the records on the poison shelf (`ffe dlq list`)
    breakers_file: Path | None = None  # the breaker table's items between commands (`ffe breakers`)
    emf_file: Path | None = None  # where the functions' EMF lines are appended (``ffe dashboard``); None: nowhere
    model_store: Path | None = None  # the local store (<version>/ bundles, `ffe train`): uploaded to the model bucket
    ollama_host: str | None = None  # the LLM voter's Ollama; None: OLLAMA_HOST (unreachable: the voter says so)
    state_machine_arn: str = ""
    schedules: dict[str, Schedule] = field(default_factory=dict)  # by timeframe
    lambdas: InProcessLambdas = field(init=False)
    inference: LocalInference = field(init=False)
    _mock: Any = field(default=None, repr=False)
    _patch: Any = field(default=None, repr=False)
    _saved_env: dict[str, str | None] = field(default_factory=dict, repr=False)
    _restored: dict[str, list[dict[str, str]]] = field(default_factory=dict, repr=False)  # queue -> read from file
    _breakers: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # the breakers read from file

    def __post_init__(self) -> None:
        self.lambdas = InProcessLambdas(echo_logs=self.echo_logs, emf_file=self.emf_file)
        self.inference = LocalInference(self.root, ollama_host=self.ollama_host, store=self.model_store)

    def __enter__(self) -> LocalCloud:
        # the queues' files first: one that cannot be read stops the command before anything starts
        self._restored = {
            queue: queue_file(path)
            for queue, path in (("dlq", self.dlq_file), ("poison", self.poison_file))
            if path is not None
        }
        for key, value in _LOCAL_ENV.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        if not self.echo_logs:
            # moto's ASL interpreter logs every caught state error at ERROR; the history reports them.
            logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        self.inference.start()  # the endpoint InferDecision calls, before the stack that points at it
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        _share_service_models()
        _serialise_ast_building()
        _read_json_templates_as_json()
        _parse_each_definition_once()
        distributed_map.install()  # ItemBatcher, ResultWriter files, failure threshold: what moto lacks
        self._patch = self.lambdas.patched()
        self._patch.__enter__()
        self.deploy()
        self._restore_dead_letters()
        if self.breakers_file is not None:
            self._breakers = local_breakers.restore(self._breaker_table(), self.breakers_file)
        return self

    def __exit__(self, *exc: object) -> None:
        self._save_dead_letters()
        if self.breakers_file is not None:
            local_breakers.save(self._breaker_table(), self.breakers_file, self._breakers)
        self._patch.__exit__(None, None, None)
        self._mock.stop()
        self.inference.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # --- deploy -------------------------------------------------------------------------------------

    def deploy(self) -> None:
        parameters = {
            "Stage": self.stage,
            "DatabaseSecretArn": self._database_secret(),
            "MarketDataProvider": self.market_data,
            # moto cannot take a custom resource's answer; the store migrates on first connect instead
            "RunMigrationsOnDeploy": "false",
            # moto cannot deploy nested stacks from local template files: no monitoring stacks offline
            "MonitoringEnabled": "false",
            "ModelSource": "bucket" if self.model_store is not None else "bundled",
            "InferenceEndpointUrl": self.inference.url,  # sagemaker-runtime calls go to the local server
            **self._provider_secrets(),
        }
        translated = translate(self.root, parameters)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        for logical_id, key in s3_objects(translated.cloudformation).items():
            s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=_zip(translated.code_dirs[logical_id]))
        cfn = boto3.client("cloudformation", region_name=REGION)
        deployable, aliases = published_versions(without_unsupported(translated.cloudformation))
        cfn.create_stack(
            StackName=STACK_NAME,
            TemplateBody=json.dumps(deployable),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cfn.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(f"local stack failed: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.state_machine_arn = outputs["DecisionCycleStateMachineArn"]
        latest = _latest_versions()  # nothing below publishes a version until the state machine is pinned
        _create_aliases(cfn, aliases, latest)
        if self.model_store is not None:  # what `ffe models publish` does in AWS, for every local version
            for manifest in sorted(self.model_store.glob("*/manifest.json")):
                version = manifest.parent.name
                for f in sorted(p for p in manifest.parent.iterdir() if p.is_file() and p.name != "manifest.json"):
                    s3.put_object(
                        Bucket=outputs["ModelBucketName"], Key=f"models/{version}/{f.name}", Body=f.read_bytes()
                    )
                s3.put_object(
                    Bucket=outputs["ModelBucketName"], Key=f"models/{version}/manifest.json", Body=manifest.read_bytes()
                )
        _hand_to_executor(self.state_machine_arn, latest)
        self._register_functions(cfn, translated.cloudformation, translated.code_dirs)
        self._read_schedules(cfn)

    def _database_secret(self) -> str:
        """The embedded database's credentials, in the RDS secret format the functions read in AWS."""
        info = conninfo_to_dict(self.database_url)
        secret = {
            "engine": "postgres",
            "host": info.get("host", "localhost"),
            "port": int(str(info.get("port") or 5432)),
            "username": info.get("user", "postgres"),
            "password": info.get("password", ""),
            "dbname": info.get("dbname", "ffe"),
            "sslmode": info.get("sslmode", "disable"),
        }
        sm = boto3.client("secretsmanager", region_name=REGION)
        return sm.create_secret(Name=f"ffe-{self.stage}-database", SecretString=json.dumps(secret))["ARN"]

    def _provider_secrets(self) -> dict[str, str]:
        """Provider credentials into (moto's) Secrets Manager, their ARNs as the template's parameters."""
        sm = boto3.client("secretsmanager", region_name=REGION)
        parameter = {"alpha_vantage": "AlphaVantageSecretArn", "oanda": "OandaSecretArn"}
        return {
            parameter[name]: sm.create_secret(Name=f"ffe/{self.stage}/{name}", SecretString=json.dumps(secret))["ARN"]
            for name, secret in self.provider_secrets.items()
        }

    def function_environment(self, name_suffix: str) -> dict[str, str]:
        """The deployed environment of the function whose name ends with ``name_suffix``."""
        config = boto3.client("lambda", region_name=REGION).get_function_configuration(
            FunctionName=f"ffe-{self.stage}-{name_suffix}"
        )
        # as strings, as Lambda keeps them (moto's CloudFormation may keep a Number parameter's value as a number)
        return {key: str(value) for key, value in config.get("Environment", {}).get("Variables", {}).items()}

    def configure_function(self, name_suffix: str, **variables: str) -> None:
        """Change a deployed function's environment as ``sam deploy`` does: update the configuration, publish a
        version, move the ``live`` alias to it and point the state machine's tasks at it (executions started
        before keep their definition). Warm containers are recycled, so the next invocation reads it."""
        name = f"ffe-{self.stage}-{name_suffix}"
        lambdas = boto3.client("lambda", region_name=REGION)
        env = {**self.function_environment(name_suffix), **variables}
        lambdas.update_function_configuration(FunctionName=name, Environment={"Variables": env})
        version = lambdas.publish_version(FunctionName=name)["Version"]
        if any(a["Name"] == "live" for a in lambdas.list_aliases(FunctionName=name)["Aliases"]):
            lambdas.update_alias(FunctionName=name, Name="live", FunctionVersion=version)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        definition = sfn.describe_state_machine(stateMachineArn=self.state_machine_arn)["definition"]
        pinned = _pin_versions(
            definition, lambda function: version if function == name else _current(definition, function)
        )
        sfn.update_state_machine(stateMachineArn=self.state_machine_arn, definition=pinned)
        cold_start()

    def serve_scenario(self, files: Mapping[str, bytes]) -> str:
        """Upload scenario files (``ffe run --bars``) to a local-only bucket and point FetchMarketData at them.

        Only here: the template's MarketDataProvider cannot select ``scenario``. Returns the files' S3 prefix.
        """
        s3 = boto3.client("s3", region_name=REGION)
        bucket = f"ffe-{self.stage}-scenarios"
        if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket=bucket)
        prefix = f"{uuid.uuid4()}/"
        for name, body in files.items():
            s3.put_object(Bucket=bucket, Key=prefix + name, Body=body)
        uri = f"s3://{bucket}/{prefix}"
        for function in ("fetch-market-data", "decide-batch"):  # the inline Map's fetch, the Distributed Map's
            self.configure_function(function, MARKET_DATA_PROVIDER="scenario", SCENARIO_URI=uri)
        return uri

    def put_universe(self, timeframe: str, entries: list[UniverseEntry]) -> str:
        """Store a universe file for ``timeframe`` in the stack's cycles bucket, as ``ffe universe put`` does for a
        deployed stage; returns its S3 URI. A cycle that names no assets then decides it (docs/universe.md)."""
        from ffe.adapters.universe import UniverseStore

        store = UniverseStore(self.function_environment("record-decision")["CYCLES_BUCKET"], boto3.client("s3"))
        store.write(timeframe, entries)
        return store.uri(timeframe)

    def _breaker_table(self) -> Any:
        return boto3.resource("dynamodb", region_name=REGION).Table(local_breakers.table_name(self.stage))

    def market_data_health(self) -> Any:
        """Providers configured, breaker states and cache reachability, as FetchMarketData sees them."""
        from ffe.health import market_data_health
        from ffe.settings import ProviderSettings

        env = self.function_environment("fetch-market-data")
        settings = ProviderSettings.model_validate({k.lower(): v for k, v in env.items()})
        return market_data_health(
            settings, dynamodb=lambda name: boto3.resource("dynamodb", region_name=REGION).Table(name)
        )

    def invoke(self, name_suffix: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Invoke a deployed function through (moto's) Lambda API, as the console's Test button does."""
        response = boto3.client("lambda", region_name=REGION).invoke(
            FunctionName=f"ffe-{self.stage}-{name_suffix}", Payload=json.dumps(event or {}).encode()
        )
        payload: dict[str, Any] = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError"):
            raise RuntimeError(f"{name_suffix} failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
        return payload

    def _register_functions(self, cfn: Any, template: dict[str, Any], code_dirs: dict[str, Path]) -> None:
        resources = cfn.describe_stack_resources(StackName=STACK_NAME)["StackResources"]
        # moto lists skipped (condition-false) resources without ids: keep only the created ones
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if r.get("PhysicalResourceId")}
        layer_dirs = [
            code_dirs[lid] for lid, res in template["Resources"].items() if res["Type"] == "AWS::Lambda::LayerVersion"
        ]
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Lambda::Function":
                name = physical[logical_id].split(":")[-1]
                code = FunctionCode(code_dirs[logical_id], resource["Properties"]["Handler"])
                self.lambdas.register(name, code)
        # Layers are importable the way /opt/python is in Lambda (moto does not attach them; see README).
        _ensure_on_path(layer_dirs)

    def _read_schedules(self, cfn: Any) -> None:
        events = boto3.client("events", region_name=REGION)
        for rule in events.list_rules()["Rules"]:
            for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
                transformer = target.get("InputTransformer")
                if target["Arn"] != self.state_machine_arn or not transformer:
                    continue
                schedule = Schedule(
                    rule["Name"],
                    rule.get("ScheduleExpression", ""),
                    rule["State"],
                    transformer["InputPathsMap"],
                    transformer["InputTemplate"],
                )
                probe = schedule.input_for({"id": "probe", "time": "1970-01-01T00:00:00Z"})
                self.schedules[probe["timeframe"]] = schedule

    @property
    def dead_letter_queue_url(self) -> str:
        return self._queue_url("decision-dlq")

    @property
    def poison_queue_url(self) -> str:
        return self._queue_url("decision-poison")

    def _queue_url(self, suffix: str) -> str:
        sqs = boto3.client("sqs", region_name=REGION)
        return str(sqs.get_queue_url(QueueName=f"ffe-{self.stage}-{suffix}")["QueueUrl"])

    def dead_letters(self) -> list[dict[str, Any]]:
        """The records parked in the dead-letter queue (left in the queue)."""
        return queued(boto3.client("sqs", region_name=REGION), self.dead_letter_queue_url)

    def poisoned(self) -> list[dict[str, Any]]:
        """The records on the poison shelf, each with its ``reason`` attribute (left in the queue)."""
        return queued(boto3.client("sqs", region_name=REGION), self.poison_queue_url)

    def replay_dead_letters(self) -> Any:
        from ffe.dlq import replay

        return replay(
            boto3.client("sqs", region_name=REGION),
            boto3.client("lambda", region_name=REGION),
            self.dead_letter_queue_url,
            f"ffe-{self.stage}-record-decision",
            poison_queue_url=self.poison_queue_url,
        )

    def _save_dead_letters(self) -> None:
        """Apply what this command changed (records parked, replayed or shelved) to each queue's file as it is
        now: other commands sharing the state dir may have parked records meanwhile."""
        self._save_queue(self.dlq_file, "dlq", [_kept(m) for m in self.dead_letters()])
        self._save_queue(self.poison_file, "poison", [_kept(m) for m in self.poisoned()])

    def _save_queue(self, path: Path | None, queue: str, queued: list[dict[str, str]]) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            on_file = queue_file(path)
            replayed = [e for e in self._restored.get(queue, []) if e not in queued]
            entries = [e for e in on_file if e not in replayed] + [e for e in queued if e not in on_file]
            if entries:  # written aside and moved in place: a command restoring meanwhile reads all or nothing new
                staged = path.with_suffix(".tmp")
                staged.write_text(json.dumps([e if e["reason"] else e["body"] for e in entries], indent=1))
                staged.replace(path)
            elif path.exists():
                path.unlink()

    def _restore_dead_letters(self) -> None:
        sqs = boto3.client("sqs", region_name=REGION)
        for path, queue, url in (
            (self.dlq_file, "dlq", self.dead_letter_queue_url),
            (self.poison_file, "poison", self.poison_queue_url),
        ):
            if path is None:
                continue
            for entry in self._restored[queue]:
                attributes = {REASON_ATTRIBUTE: {"DataType": "String", "StringValue": entry["reason"]}}
                sqs.send_message(
                    QueueUrl=url, MessageBody=entry["body"], MessageAttributes=attributes if entry["reason"] else {}
                )

    # --- run ----------------------------------------------------------------------------------------

    def scheduled_event(self, timeframe: str, at: datetime) -> dict[str, Any]:
        """The event EventBridge sends when the ``timeframe`` rule fires at ``at``."""
        schedule = self.schedules[timeframe]
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{schedule.rule_name}"],
            "detail": {},
        }

    def start_execution(self, cycle_input: dict[str, Any] | str, name: str | None = None) -> str:
        body = cycle_input if isinstance(cycle_input, str) else json.dumps(cycle_input)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        started = sfn.start_execution(
            stateMachineArn=self.state_machine_arn, input=body, name=name or str(uuid.uuid4())
        )
        return str(started["executionArn"])

    def wait(self, execution_arn: str, timeout_s: float = 300) -> dict[str, Any]:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        deadline = time.monotonic() + timeout_s
        while True:
            desc: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if desc["status"] != "RUNNING":
                return desc
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution still running after {timeout_s:.0f} s: {execution_arn}")
            time.sleep(0.05)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        return [event for page in pages for event in page["events"]]


def _kept(message: dict[str, Any]) -> dict[str, str]:
    """A queued message as its queue file keeps it: the body, and why it was shelved (empty when not)."""
    reason = (message.get("MessageAttributes") or {}).get(REASON_ATTRIBUTE, {}).get("StringValue", "")
    return {"body": message["Body"], "reason": reason}


def queue_file(path: Path) -> list[dict[str, str]]:
    """The messages a local queue file keeps, each ``{"body", "reason"}``: a dead-letter file holds record bodies,
    a poison-shelf file bodies with the reason they were shelved. A file that is neither is a LocalError naming it
    (the command stops before anything runs), never a traceback or a silently emptied queue."""
    if not path.exists():
        return []
    fix = "move it away (its records are then not replayed) or mend it"
    try:
        entries = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise LocalError(f"{path} is not JSON ({exc}): {fix}") from None
    if not isinstance(entries, list):
        raise LocalError(f"{path} holds JSON {type(entries).__name__}, not a list of records: {fix}")
    out = []
    for i, entry in enumerate(entries, start=1):
        if isinstance(entry, str):
            out.append({"body": entry, "reason": ""})
        elif isinstance(entry, dict) and isinstance(entry.get("body"), str) and isinstance(entry.get("reason"), str):
            out.append({"body": entry["body"], "reason": entry["reason"]})
        else:
            raise LocalError(f"{path}: entry {i} is neither a record body nor {{body, reason}}: {fix}")
    return out


def _create_aliases(cfn: Any, aliases: list[Alias], latest: Callable[[str], str]) -> None:
    """Each function's alias on the version its stack published (AutoPublishAlias, as in AWS)."""
    resources = cfn.describe_stack_resources(StackName=STACK_NAME)["StackResources"]
    physical = {r.get("LogicalResourceId"): r.get("PhysicalResourceId") for r in resources}
    lambdas = boto3.client("lambda", region_name=REGION)
    for alias in aliases:
        name = str(physical[alias.function]).split(":")[-1]
        lambdas.create_alias(FunctionName=name, Name=alias.name, FunctionVersion=latest(name))


def _latest_versions() -> Callable[[str], str]:
    """Each function's highest published version, asked of (moto's) Lambda once per function for one deploy.

    A deploy names each function once for its alias and again for every task that calls it (17 lookups for
    the decision cycle, each listing every version's configuration); nothing publishes a version in between.
    """
    lambdas = boto3.client("lambda", region_name=REGION)
    found: dict[str, str] = {}

    def latest(function_name: str) -> str:
        if function_name not in found:
            listed = lambdas.list_versions_by_function(FunctionName=function_name)
            found[function_name] = str(max(int(v["Version"]) for v in listed["Versions"] if v["Version"] != "$LATEST"))
        return found[function_name]

    return latest


def _current(definition: str, function_name: str) -> str:
    """The version a definition's tasks pin ``function_name`` to."""
    found = re.search(rf":function:{re.escape(function_name)}:(\d+)", definition)
    if found is None:
        raise RuntimeError(f"the state machine pins no version of {function_name}")
    return found.group(1)


def _pin_versions(definition: str, versions: Callable[[str], str]) -> str:
    """Every ``function:<name>:__published__`` (or ``:<n>``) task resource pinned to ``versions(name)``."""
    pattern = rf"(arn:[^\"]*?:function:)([A-Za-z0-9_-]+):({PUBLISHED}|\d+)"
    return re.sub(pattern, lambda m: f"{m.group(1)}{m.group(2)}:{versions(m.group(2))}", definition)


def _hand_to_executor(arn: str, latest: Callable[[str], str]) -> None:
    """Re-create a stack's state machine (same ARN) in moto's executing Step Functions backend, its tasks pinned
    to the function versions the stack published.

    moto's CloudFormation writes state machines to its plain backend, while executions run in its
    parser backend. Creating it there through the public API also validates the ASL with moto's
    parser, as AWS does on deploy.
    """
    from moto.stepfunctions.models import stepfunctions_backends

    account, region = arn.split(":")[4], arn.split(":")[3]
    machine = stepfunctions_backends[account][region].describe_state_machine(arn)
    sfn = boto3.client("stepfunctions", region_name=region)
    created = sfn.create_state_machine(
        name=machine.name,
        definition=_pin_versions(machine.definition, latest),
        roleArn=machine.roleArn,
        type=machine.type,
    )
    if created["stateMachineArn"] != arn:
        raise RuntimeError(f"state machine re-created as {created['stateMachineArn']}, expected {arn}")


# botocore's loader for each data path (AWS_DATA_PATH), kept for the process: see _share_service_models.
_LOADERS: dict[str | None, Any] = {}


def _share_service_models() -> None:
    """Give the default boto3 session that moto's mock starts without the loader this process already has.

    moto starts every mock with no default session, so each stack's first client builds a new session whose loader
    reads botocore's service models (JSON files) from disk again: about 0.4 s of every local stack in a profile of
    tests/e2e/test_risk_cap_across_cycles.py. The loader reads the same files from the same data path, and within a
    session its models are already shared by every client; this only shares them between sessions.
    """
    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION._session
    data_path = session.get_config_variable("data_path")
    kept = _LOADERS.get(data_path)
    if kept is None:
        _LOADERS[data_path] = session.get_component("data_loader")
    else:
        session.register_component("data_loader", kept)


_AST_LOCK = threading.RLock()


def _serialise_ast_building() -> None:
    """Build Python ASTs one thread at a time while moto runs Map iterations in parallel threads.

    Each iteration's Lambda call goes through moto's werkzeug URL rules, which are compiled with
    ``ast.parse`` + ``compile``; moto's ASL interpreter also calls ``ast.literal_eval``. On CPython
    before 3.11.9 / 3.12.4, building ASTs in several threads at once can fail with "AST constructor
    recursion depth mismatch" (python/cpython gh-106905). Installed once per process; a lock only.
    """
    from werkzeug.routing.rules import Rule

    if getattr(ast.parse, "ffe_serialised", False):
        return
    parse, rule_compile = ast.parse, Rule.compile

    def locked_parse(*args: Any, **kwargs: Any) -> Any:
        with _AST_LOCK:
            return parse(*args, **kwargs)

    def locked_compile(self: Rule) -> None:
        with _AST_LOCK:
            rule_compile(self)

    locked_parse.ffe_serialised = True  # type: ignore[attr-defined]
    ast.parse = locked_parse
    Rule.compile = locked_compile  # type: ignore[method-assign]


def _read_json_templates_as_json() -> None:
    """moto's CloudFormation reads every TemplateBody with PyYAML's pure-Python loader, JSON included (YAML is a
    superset): over a second for the stack the deployer sends, as JSON (``deploy``). Read JSON as JSON first; a
    body that is not JSON goes the YAML way as before. Installed once per process."""
    from moto.cloudformation.models import Stack

    parse = Stack.parse_template
    if getattr(parse, "ffe_json_first", False):
        return

    def json_first(template: str) -> dict[str, Any]:
        try:
            parsed = json.loads(template)
        except ValueError:
            return parse(template)
        return parsed if isinstance(parsed, dict) else parse(template)

    json_first.ffe_json_first = True  # type: ignore[attr-defined]
    Stack.parse_template = staticmethod(json_first)  # type: ignore[method-assign]


def _parse_each_definition_once() -> None:
    """moto's Step Functions parses a definition with its ANTLR grammar (pure Python, about a third of a second
    for the decision cycle's) when the machine is created and again at every execution. Keep each definition's
    parse tree; every parse still builds the evaluation components afresh from it (moto's ``Preprocessor``, which
    only reads the tree), so an execution's state is its own. A definition the grammar refuses is never kept and
    raises as before. Installed once per process."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    parse = AmazonStateLanguageParser.parse
    if getattr(parse, "ffe_tree_kept", False):
        return
    trees: dict[str, Any] = {}

    def parse_kept(definition: str) -> tuple[Any, Any]:
        tree = trees.get(definition)
        if tree is None:
            program, tree = parse(definition)
            if len(trees) >= 32:  # a process deploys a handful of definitions; never grow without bound
                trees.clear()
            trees[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    parse_kept.ffe_tree_kept = True  # type: ignore[attr-defined]
    AmazonStateLanguageParser.parse = staticmethod(parse_kept)  # type: ignore[method-assign]


def _json_path(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(folder))
    return buffer.getvalue()


def _ensure_on_path(folders: list[Path]) -> None:
    for folder in folders:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
