"""The golden walk: decision cycles run through the real Lambda handlers, in process, as the state machine runs them.

Every cycle is what ``state_machines/decision_cycle.asl.json`` does, written out in Python: Open the cycle, then
for each asset (one after another; the Map runs them side by side) Fetch market data -> Check staleness -> Hold on
stale data, or Detect regime -> Infer decision -> Gate risk; Record decision; Execute order when the record says
so; then Close the cycle. A task's error becomes the failure record the ASL's *Build ... failure record* state
builds. Each handler gets its event as JSON and its answer goes back through JSON, as Step Functions hands
payloads over, and each state's result lands where the ASL's ``ResultPath`` puts it.

The handlers are loaded from the ``functions/`` of the checkout ``ffe`` is imported from (the base copy when
``tests/golden/generate.py`` runs with its PYTHONPATH), and InferDecision reaches the inference container's own
server (``gpu_inference.serve``, bundled champion, CPU) on loopback through its real SageMaker client, as
``ffe run`` does; the LLM voter is off (``INFERENCE_LLM=false``), so the RL voter decides alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ffe import containers, settings

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
# each function, and the step its failure record names (the ASL's Build <step> failure record states)
FUNCTIONS = {
    "fetch_market_data": "fetch",
    "check_staleness": "staleness",
    "detect_regime": "regime",
    "infer_decision": "infer",
    "gate_risk": "gate",
    "record_decision": "record",
    "execute_order": "execute",
}
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:execution:ffe-golden-decision-cycle"


@dataclass(frozen=True)
class Cycle:
    """One execution of the state machine: a stage (its own paper account), a timeframe, an as_of, the assets."""

    stage: str
    timeframe: str
    as_of: datetime
    assets: tuple[str, ...]

    @property
    def cycle_id(self) -> str:
        return f"golden-{self.stage}-{self.timeframe}-{self.as_of:%Y%m%dT%H%M}"


def _every(
    stage: str, timeframe: str, first: datetime, count: int, step: timedelta, assets: tuple[str, ...]
) -> list[Cycle]:
    return [Cycle(stage, timeframe, first + i * step, assets) for i in range(count)]


# Stages with limits of their own (every other stage keeps the settings' defaults): tight enough that the kill
# switches, the gross exposure cap and the VaR limit block orders.
STAGE_SETTINGS: dict[str, dict[str, str]] = {
    "tight": {
        "RISK_TARGET_DAILY_VOLATILITY": "0.05",
        "RISK_MAX_POSITION_FRACTION": "0.08",
        "RISK_MAX_GROSS_EXPOSURE": "0.07",
        "RISK_VAR_LIMIT": "0.002",
        "RISK_DAILY_LOSS_LIMIT": "0.0005",
        "RISK_MAX_DRAWDOWN": "0.001",
    }
}


def schedule() -> list[Cycle]:
    """The cycles, in the order they run (~270 decisions). Each stage is its own paper account, walking forward.

    crypto (1h; BTCUSD, ETHUSD and the synthetic GBPUSD): BTCUSD's first bundled hours (too few bars: HOLD), five
    days of June 2019 every 4 hours, two cycles 30 minutes apart on one bar (the second finds the first's order:
    ``already_ordered``), a 15m cycle (replay has no 15m bars: HOLD on no bars), and the days around ETHUSD's
    last bundled bar (ETHUSD goes stale, BTCUSD stays fresh). tight (1h; BTCUSD, ETHUSD; ``STAGE_SETTINGS``):
    three days of July 2019 every 3 hours. fx (1h, EURUSD): eight days of March 2017 every 6 hours, over a weekend
    (the market's closed hours), the first cycle with XAUUSD too (no asset of the universe: FetchMarketData
    fails it, a failure row), then past the last bundled bar. equity (1d; SPX, and EURUSD resampled to days): the
    weekdays of November 2018, then past SPX's last bundled day.
    """
    h = timedelta(hours=1)
    crypto, tight = ("BTCUSD", "ETHUSD", "GBPUSD"), ("BTCUSD", "ETHUSD")
    cycles = _every("crypto", "1h", datetime(2019, 2, 9, 19, 1, tzinfo=UTC), 3, 3 * h, crypto)
    cycles += _every("crypto", "1h", datetime(2019, 6, 12, 1, 1, tzinfo=UTC), 30, 4 * h, crypto)
    again = datetime(2019, 6, 17, 9, 31, tzinfo=UTC)  # the bar of the cycle 30 minutes earlier
    cycles += [Cycle("crypto", "1h", again - timedelta(minutes=30), crypto), Cycle("crypto", "1h", again, crypto)]
    cycles.append(Cycle("crypto", "15m", datetime(2019, 6, 17, 10, 1, tzinfo=UTC), ("BTCUSD",)))
    cycles += _every("crypto", "1h", datetime(2019, 9, 29, 2, 1, tzinfo=UTC), 12, 6 * h, crypto)
    cycles += _every("tight", "1h", datetime(2019, 7, 3, 0, 1, tzinfo=UTC), 24, 3 * h, tight)
    fx = _every("fx", "1h", datetime(2017, 3, 8, 0, 1, tzinfo=UTC), 32, 6 * h, ("EURUSD",))
    cycles += [Cycle("fx", "1h", fx[0].as_of, ("EURUSD", "XAUUSD")), *fx[1:]]
    cycles += _every("fx", "1h", datetime(2017, 12, 29, 19, 1, tzinfo=UTC), 3, 3 * h, ("EURUSD",))
    days = _every("equity", "1d", datetime(2018, 11, 1, 0, 1, tzinfo=UTC), 30, 24 * h, ("SPX", "EURUSD"))
    cycles += [c for c in days if c.as_of.weekday() < 5]
    cycles.append(Cycle("equity", "1d", datetime(2019, 1, 9, 0, 1, tzinfo=UTC), ("SPX",)))
    return cycles


class _Context:
    """The attributes of Lambda's context object the handlers and Powertools read."""

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.memory_limit_in_mb = 512
        self.function_version = "$LATEST"
        self.aws_request_id = "00000000-0000-0000-0000-000000000000"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "golden"

    def get_remaining_time_in_millis(self) -> int:
        return 40_000


class TaskFailed(Exception):
    """A task's error as Step Functions catches it: ``Error`` (the class name) and ``Cause`` (Lambda's JSON)."""

    def __init__(self, step: str, error: str, cause: str) -> None:
        super().__init__(f"{step}: {error}")
        self.step, self.error, self.cause = step, error, cause


def load_handlers(root: Path) -> dict[str, Handler]:
    """Each function's ``handler.lambda_handler`` from ``root/functions`` (imported by path, as ffe.local does)."""
    handlers: dict[str, Handler] = {}
    for name in FUNCTIONS:
        path = root / "functions" / name / "handler.py"
        spec = importlib.util.spec_from_file_location(f"golden_functions.{name}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        handlers[name] = module.lambda_handler
    return handlers


def invoke(handler: Handler, name: str, state: dict[str, Any]) -> dict[str, Any]:
    """One Lambda task: the state in as JSON, the answer back as JSON; an error as Step Functions sees it.

    The Cause carries Lambda's ``errorType`` and ``errorMessage``; its ``stackTrace`` is left empty, because it
    names files and line numbers, which any refactor moves.
    """
    event = json.loads(json.dumps(state))
    try:
        answer = handler(event, _Context(f"ffe-golden-{name}"))
    except Exception as exc:  # States.ALL: caught into a failure record
        cause = json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []})
        raise TaskFailed(FUNCTIONS[name], type(exc).__name__, cause) from exc
    result: dict[str, Any] = json.loads(json.dumps(answer))
    return result


@dataclass
class Step:
    """What one asset's iteration produced, state by state (the values the golden file keeps)."""

    asset: str
    outputs: dict[str, Any]


class Walk:
    """Runs cycles through the handlers and keeps each asset's state outputs, in order."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.steps: list[tuple[Cycle, Step]] = []

    def cycle(self, cycle: Cycle) -> None:
        execution_id = f"{STATE_MACHINE}:{cycle.cycle_id}"
        given = {
            "cycle_id": cycle.cycle_id,
            "as_of": cycle.as_of.isoformat().replace("+00:00", "Z"),
            "timeframe": cycle.timeframe,
            "assets": list(cycle.assets),
        }
        opened = self._task("record_decision", {"kind": "cycle_opened", "cycle": given, "execution_id": execution_id})
        if opened["cycle_status"] == "SKIPPED":
            raise AssertionError(f"cycle {cycle.cycle_id} was skipped: {opened['reason']}")
        outcomes = []
        for index, asset in enumerate(cycle.assets):
            item = {
                "cycle_id": cycle.cycle_id,
                "as_of": given["as_of"],
                "timeframe": cycle.timeframe,
                "asset": asset,
                "execution_id": execution_id,
                "item": index,
                "models": opened["models"],
            }
            outcomes.append(self._asset(cycle, item))
        closing = {
            "kind": "cycle_closed",
            "cycle_id": cycle.cycle_id,
            "execution_id": execution_id,
            "status": "SUCCEEDED",
            "outcomes": outcomes,
            "timeframe": opened["timeframe"],
        }
        self._task("record_decision", closing)

    def _asset(self, cycle: Cycle, item: dict[str, Any]) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        self.steps.append((cycle, Step(item["asset"], outputs)))
        try:
            state = self._decide(item, outputs)
        except TaskFailed as failed:
            state = _failure_record(item, failed)
        outputs["record"] = state
        recorded = self._task("record_decision", state)  # a store that refuses it fails the walk: it must not
        outputs["recorded"] = recorded
        if recorded["execute"]:
            try:
                outputs["execution"] = self._task("execute_order", {**state, "recorded": recorded})
            except TaskFailed as failed:
                failure = _failure_record(item, failed)
                outputs["order_failure"] = failure
                outputs["order_failure_recorded"] = self._task("record_decision", failure)
        return {"asset": item["asset"], "outcome": "recorded"}

    def _decide(self, item: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        """The states from Fetch market data to Gate risk (or Hold on stale data): the record to store."""
        outputs["fetched"] = self._task("fetch_market_data", item)
        state = dict(outputs["fetched"])  # the states below add to the state, never to the fetch's output
        state["staleness"] = outputs["staleness"] = self._task("check_staleness", state)
        if state["staleness"]["stale"] or state["staleness"]["code"] != "fresh":
            return _hold_on_stale_data(state)
        state["regime"] = outputs["regime"] = self._task("detect_regime", state)
        state["decision"] = outputs["inferred"] = self._task("infer_decision", state)
        return self._task("gate_risk", state)

    def _task(self, name: str, state: dict[str, Any]) -> dict[str, Any]:
        return invoke(self.handlers[name], name, state)


def _hold_on_stale_data(state: dict[str, Any]) -> dict[str, Any]:
    """The ASL's *Hold on stale data* Pass state."""
    staleness = state["staleness"]
    return {
        "kind": "decision",
        "cycle_id": state["cycle_id"],
        "as_of": state["as_of"],
        "timeframe": state["timeframe"],
        "asset": state["asset"],
        "execution_id": state["execution_id"],
        "bar_time": staleness["last_bar_time"],
        "action": "HOLD",
        "confidence": 1.0,
        "stale": True,
        "reason": staleness["reason"],
        "data_age_seconds": staleness["age_seconds"],
        "staleness_threshold_seconds": staleness["threshold_seconds"],
        "model": "staleness_gate",
        "model_version": "1",
        "signals": {},
        "source": state["source"],
        "input_sha256": state["bars_sha256"],
    }


def _failure_record(item: dict[str, Any], failed: TaskFailed) -> dict[str, Any]:
    """The ASL's *Build <step> failure record* Pass state (only the fetch's carries the item)."""
    record = {
        "kind": "failure",
        "cycle_id": item["cycle_id"],
        "as_of": item["as_of"],
        "timeframe": item["timeframe"],
        "asset": item["asset"],
        "execution_id": item["execution_id"],
        "error": failed.error,
        "cause": failed.cause,
        "step": failed.step,
    }
    if failed.step == "fetch":
        record["item"] = item["item"]
    return record


def environment(database_url: str, stage: str, endpoint_url: str) -> dict[str, str]:
    """What the functions need to run offline, and the stage's own limits (``STAGE_SETTINGS``); every other
    setting keeps its default, so a changed default is a changed decision and shows."""
    return STAGE_SETTINGS.get(stage, {}) | {
        "STAGE": stage,
        "DATABASE_URL": database_url,
        "MARKET_DATA_PROVIDER": "replay",
        "EXECUTION_MODE": "paper",
        "MODEL_STORE": "bundled",
        "INFERENCE_ENDPOINT": "ffe-golden-inference",
        "INFERENCE_ENDPOINT_URL": endpoint_url,
        "INFERENCE_LLM": "false",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "FFE",
    }


def settings_keys() -> set[str]:
    """Every environment variable the functions' settings read: the fields of ``ffe.settings``' models, upper-cased
    (``get_settings``)."""
    models = [m for m in vars(settings).values() if isinstance(m, type) and issubclass(m, settings.BaseSettings)]
    return {name.upper() for model in models for name in model.model_fields}


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` set, and every other setting unset (a shell's ``RISK_*``, say, would move the golden decisions),
    for the walk; the environment as it was afterwards."""
    cleared = settings_keys() - values.keys()
    before = {key: os.environ.get(key) for key in values.keys() | cleared}
    for key in cleared:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def endpoint() -> Iterator[str]:
    """The inference container's server on loopback: the bundled champion on CPU, no LLM voter."""
    from gpu_inference.predictor import Predictor
    from gpu_inference.serve import serve_in_thread

    server, stop = serve_in_thread(Predictor.load("bundled", device="cpu"))
    try:
        yield server.url
    finally:
        stop()


def run_walk(database_url: str, root: Path, cycles: list[Cycle] | None = None) -> list[tuple[Cycle, Step]]:
    """Run ``cycles`` (the whole schedule by default) on a fresh database; each stage starts as a cold container."""
    handlers = load_handlers(root)
    walk = Walk(handlers)
    stage: str | None = None
    with endpoint() as url:
        try:
            for cycle in cycles or schedule():
                if cycle.stage != stage:
                    containers.reset()  # a new stage: new settings, clients and connections, as a cold start
                    stage = cycle.stage
                with environ(environment(database_url, cycle.stage, url)):
                    walk.cycle(cycle)
        finally:
            containers.reset()
    return walk.steps
