"""One decision cycle, offline, start to finish: what ``ffe run`` and ``make run`` do."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ffe.adapters.scenario import Scenario
from ffe.domain.models import Timeframe
from ffe.local.aws import LocalCloud, Schedule
from ffe.local.errors import LocalError, PortUnavailableError
from ffe.local.history import StateVisit, state_visits
from ffe.local.postgres import EmbeddedPostgres
from ffe.local.template import load_sam, project_root
from ffe.universe_file import UniverseEntry

# A Saturday inside the bundled 2019 crypto data: BTCUSD and ETHUSD trade around the clock (fresh),
# the FX market is closed for the weekend (GBPUSD stale) and the bundled EURUSD history ended in 2017.
DEFAULT_AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
# What ffe keeps in the state dir (names start with these, after an optional dot): all `ffe reset` may delete.
_OWN_ENTRIES = (
    "pgdata",
    "runs",
    "dead-letters",
    "poison-records",
    "champion",  # the single-bundle folder before the store (.ffe/models)
    "models",
    "replay-clock",
    "mlartifacts",
    "backtests",
    "breakers",
    "metrics",
    "dashboard.html",
)


@dataclass
class CycleReport:
    execution_arn: str
    status: str
    error: str
    cause: str
    cycle_input: Any
    rule_name: str
    database: str
    setup_postgres_s: float
    setup_aws_s: float
    execution_s: float
    decisions: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    visits: list[StateVisit] = field(default_factory=list)
    health: Any = None  # MarketDataHealth at start-up, for live runs
    dead_letters: int = 0  # records parked in the DLQ, waiting for `ffe dlq replay`
    inference: str = ""  # the local inference endpoint: what it serves, where, and whether the LLM can vote
    cycle_note: str = ""  # a skipped cycle's reason, and earlier cycles this one closed as ABORTED / TIMED_OUT


@dataclass(frozen=True)
class LocalState:
    """What persists between commands in the working directory's ``.ffe/``."""

    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def dead_letters(self) -> Path:
        return self.root / "dead-letters.json"

    @property
    def poison_records(self) -> Path:
        """Records the store refused as malformed on replay (`ffe dlq list`), with the reason."""
        return self.root / "poison-records.json"

    @property
    def breakers(self) -> Path:
        """The shared circuit breakers' items between commands (`ffe breakers`)."""
        return self.root / "breakers.json"

    @property
    def emf(self) -> Path:
        """The EMF lines the in-process Lambdas printed, one JSON document a line (``ffe dashboard`` reads them)."""
        return self.root / "metrics" / "emf.jsonl"

    @property
    def models(self) -> Path:
        """The local model store: ``<version>/`` for every bundle ``ffe train`` / ``ffe models promote`` left
        here (``ffe run`` serves them all; which one is champion is the embedded Postgres' ``model_champions``)."""
        return self.root / "models"

    def model_store(self) -> Path | None:
        """The local store when it holds any version (a ``<version>/manifest.json``), else None."""
        return self.models if any(self.models.glob("*/manifest.json")) else None

    def model_dir(self, version: str) -> Path:
        return self.models / version

    @property
    def replay_clock(self) -> Path:
        return self.root / "replay-clock"

    def next_as_of(self, timeframe: str) -> datetime:
        """Replay advances one bar per run: the first run is DEFAULT_AS_OF, each later one a bar after the last."""
        if not self.replay_clock.exists():
            return DEFAULT_AS_OF
        text = self.replay_clock.read_text().strip()
        try:
            last = datetime.fromisoformat(text)
        except ValueError:
            raise LocalError(f"{self.replay_clock} holds {text[:40]!r}, not a time: delete it to start over") from None
        return last + Timeframe(timeframe).duration

    def remember(self, as_of: datetime) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staged = self.replay_clock.with_name(f".replay-clock.{os.getpid()}")
        staged.write_text(as_of.isoformat())
        staged.replace(self.replay_clock)  # a concurrent `ffe run` reads the old time or the new, never half

    def postgres(self) -> EmbeddedPostgres:
        return EmbeddedPostgres(self.pgdata)

    def reset(self) -> None:
        """Stop the embedded cluster and delete ``.ffe/``, unless another ffe command uses it (StateInUseError).

        A folder holding anything ffe does not make (``--state-dir`` naming the wrong folder) is left alone.
        """
        if self.root.is_dir():
            foreign = sorted(p.name for p in self.root.iterdir() if not p.name.lstrip(".").startswith(_OWN_ENTRIES))
            if foreign:
                raise LocalError(f"not deleting {self.root}: it holds {', '.join(foreign[:5])}, which ffe did not make")
        with self.postgres().stopped():
            shutil.rmtree(self.root, ignore_errors=True)


def run_cycle(
    state: LocalState,
    as_of: datetime = DEFAULT_AS_OF,
    timeframe: str = "1h",
    assets: list[str] | None = None,
    raw_input: str | None = None,
    project: Path | None = None,
    echo_logs: bool = False,
    provider: str = "replay",
    scenario: Scenario | None = None,
    universe: list[UniverseEntry] | None = None,
) -> CycleReport:
    """Deploy the stack into moto, fire the ``timeframe`` schedule at ``as_of``, wait, collect the outcome.

    ``raw_input`` bypasses the schedule and starts the execution with exactly that JSON (to see how a
    malformed event is handled); ``assets`` overrides the schedule's universe. ``provider="live"`` fetches
    from the real providers with the credentials in the environment (``provider_secrets_from_env``).
    ``scenario`` (``ffe run --bars``) serves its files to FetchMarketData and starts a manual input with
    its timeframe and assets at ``as_of`` (``timeframe`` is not used). ``universe`` (``ffe run --universe``) is
    stored as the stage's universe file for the cycle's timeframe, and the cycle names no assets (unless
    ``assets`` does), so "Open the cycle" decides the file on the Distributed Map (docs/scaling.md).
    """
    t0 = time.perf_counter()
    with state.postgres() as pg:
        t1 = time.perf_counter()
        secrets = provider_secrets_from_env() if provider == "live" else {}
        with LocalCloud(
            project or project_root(),
            pg.url,
            echo_logs=echo_logs,
            market_data=provider,
            provider_secrets=secrets,
            dlq_file=state.dead_letters,
            poison_file=state.poison_records,
            breakers_file=state.breakers,
            model_store=state.model_store(),
            emf_file=state.emf,
        ) as cloud:
            health = cloud.market_data_health() if provider == "live" else None
            inference = cloud.inference.describe()
            t2 = time.perf_counter()
            schedule = cloud.schedules[timeframe] if timeframe in cloud.schedules else None
            if universe is not None:
                cloud.put_universe(str(scenario.timeframe) if scenario is not None else timeframe, universe)
            if scenario is not None:
                cloud.serve_scenario(scenario.files)
                scenario_input = scenario.cycle_input(as_of, f"scenario-{uuid.uuid4()}")
                if assets:
                    scenario_input["assets"] = assets
                elif universe is not None:
                    del scenario_input["assets"]  # the universe file's assets, not the scenario's
                name, body = None, json.dumps(scenario_input)
            elif raw_input is not None:
                name, body = None, raw_input
            elif schedule is None:
                raise ValueError(f"no schedule for timeframe {timeframe!r}; the template has {sorted(cloud.schedules)}")
            else:
                event = cloud.scheduled_event(timeframe, as_of)
                cycle_input = schedule.input_for(event)
                if assets:
                    cycle_input["assets"] = assets
                name, body = event["id"], json.dumps(cycle_input)
            arn = cloud.start_execution(body, name=name)
            desc = cloud.wait(arn)
            t3 = time.perf_counter()
            visits = state_visits(cloud.history(arn))
            parked = len(cloud.dead_letters())
        report = CycleReport(
            execution_arn=arn,
            status=desc["status"],
            error=desc.get("error", ""),
            cause=desc.get("cause", ""),
            cycle_input=json.loads(body),
            rule_name=schedule.rule_name if schedule and raw_input is None else "(manual input)",
            database=pg.kind,
            setup_postgres_s=t1 - t0,
            setup_aws_s=t2 - t1,
            execution_s=t3 - t2,
            visits=visits,
            health=health,
            dead_letters=parked,
            inference=inference,
        )
        if scenario is not None:
            report.rule_name = f"(scenario {scenario.name})"
        report.decisions, report.failures, report.cycle_note = _outcome(pg.url, arn)
    _save(state, report)
    if raw_input is None and provider == "replay" and scenario is None:
        state.remember(as_of)
    return report


def default_universe(project: Path) -> list[str]:
    """The assets a scheduled cycle decides when the stage has no universe file: the AssetUniverseJson default."""
    parameter = (load_sam(project).get("Parameters") or {}).get("AssetUniverseJson") or {}
    try:
        assets = json.loads(str(parameter.get("Default", "[]")))
    except ValueError:
        return []
    return [a for a in assets if isinstance(a, str)] if isinstance(assets, list) else []


def scheduled_inputs(project: Path) -> dict[str, dict[str, Any]]:
    """The cycle input each schedule in template.yaml starts, by timeframe, with the parameters' defaults: what
    ``ffe run --timeframe`` can fire, read without deploying (the deployed stack's schedules are the same)."""
    sam = load_sam(project)
    defaults = {name: str(p.get("Default", "")) for name, p in (sam.get("Parameters") or {}).items()}
    inputs: dict[str, dict[str, Any]] = {}
    for resource in sam.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        for target in resource.get("Properties", {}).get("Targets", []):
            transformer = target.get("InputTransformer") or {}
            template = transformer.get("InputTemplate")
            template = template.get("Fn::Sub") if isinstance(template, dict) else template
            if not isinstance(template, str):
                continue
            text = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), template)
            try:
                cycle = Schedule("", "", "", transformer.get("InputPathsMap", {}), text).input_for(
                    {"id": "probe", "time": "1970-01-01T00:00:00Z"}
                )
            except (ValueError, KeyError, TypeError):
                continue  # not a decision-cycle input
            if isinstance(cycle, dict) and isinstance(cycle.get("timeframe"), str):
                inputs[cycle["timeframe"]] = cycle
    return inputs


def provider_secrets_from_env(env: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Live-provider credentials for local runs, from the environment (never from files in the repo).

    ALPHA_VANTAGE_API_KEY; OANDA_API_TOKEN + OANDA_ACCOUNT_ID (+ OANDA_ENVIRONMENT=practice|live).
    Coinbase candles are public and need nothing.
    """
    env = os.environ if env is None else env
    secrets: dict[str, dict[str, str]] = {}
    if env.get("ALPHA_VANTAGE_API_KEY"):
        secrets["alpha_vantage"] = {"api_key": env["ALPHA_VANTAGE_API_KEY"]}
    if env.get("OANDA_API_TOKEN") and env.get("OANDA_ACCOUNT_ID"):
        secrets["oanda"] = {
            "token": env["OANDA_API_TOKEN"],
            "account_id": env["OANDA_ACCOUNT_ID"],
            "environment": env.get("OANDA_ENVIRONMENT", "practice"),
        }
    return secrets


def run_preflight_locally(state: LocalState, project: Path | None = None) -> dict[str, Any]:
    """Deploy, migrate the store (the paper broker's check reads its tables), then invoke Preflight with the
    environment's provider credentials."""
    with (
        state.postgres() as pg,
        LocalCloud(
            project or project_root(), pg.url, market_data="live", provider_secrets=provider_secrets_from_env()
        ) as cloud,
    ):
        migrate_database(pg.url)
        return cloud.invoke("preflight")


def paper_portfolio(state: LocalState, stage: str = "dev") -> dict[str, Any] | None:
    """The stage's paper account from the store: cash, positions marked to the last bar, exposure."""
    with state.postgres() as pg, psycopg.connect(pg.url, row_factory=dict_row) as conn:
        if conn.execute("SELECT to_regclass('paper_accounts') IS NOT NULL AS ok").fetchone() == {"ok": False}:
            return None
        account = conn.execute("SELECT * FROM paper_accounts WHERE id = %s", (f"paper-{stage}",)).fetchone()
        if account is None:
            return None
        positions = conn.execute(
            "SELECT asset, quantity, average_price, mark_price, quantity * mark_price AS value FROM paper_positions"
            " WHERE account_id = %s AND quantity <> 0 ORDER BY asset",
            (account["id"],),
        ).fetchall()
        pending = conn.execute(
            "SELECT count(*) AS n FROM paper_orders WHERE account_id = %s AND status = 'PENDING'", (account["id"],)
        ).fetchone()
        marks = conn.execute("SELECT peak_equity FROM equity_marks WHERE account = %s", (account["id"],)).fetchone()
    value = sum((p["value"] for p in positions), Decimal(0))
    equity = account["cash"] + value
    gross = sum((abs(p["value"]) for p in positions), Decimal(0))
    peak = max(marks["peak_equity"], equity) if marks else equity
    return {
        "account": account["id"],
        "currency": account["currency"],
        "cash": account["cash"],
        "equity": equity,
        "peak": peak,
        "drawdown": (peak - equity) / peak if peak else Decimal(0),
        "exposure": gross / equity if equity else Decimal(0),
        "positions": positions,
        "pending_orders": pending["n"] if pending else 0,
    }


def replay_dead_letters_locally(state: LocalState, project: Path | None = None) -> Any:
    """Write the records parked by earlier local runs (kept in .ffe/) through RecordDecision."""
    with (
        state.postgres() as pg,
        LocalCloud(
            project or project_root(),
            pg.url,
            dlq_file=state.dead_letters,
            poison_file=state.poison_records,
            emf_file=state.emf,
        ) as cloud,
    ):
        return cloud.replay_dead_letters()


def parked_locally(state: LocalState) -> tuple[list[Any], list[Any]]:
    """(records waiting in the dead-letter queue, records on the poison shelf) as earlier commands left them."""
    from ffe.dlq import REASON_ATTRIBUTE, parked
    from ffe.local.aws import queue_file

    def read(path: Path) -> list[dict[str, Any]]:
        return [
            {
                "MessageId": f"{path.stem}#{i}",
                "Body": e["body"],
                "MessageAttributes": {REASON_ATTRIBUTE: {"StringValue": e["reason"]}} if e["reason"] else {},
            }
            for i, e in enumerate(queue_file(path), start=1)
        ]

    return parked(read(state.dead_letters)), parked(read(state.poison_records))


def serve_api(state: LocalState, port: int, project: Path | None = None) -> int:
    """``ffe api``: the deployed Api function behind http://127.0.0.1:PORT, until interrupted (Ctrl-C, SIGTERM).

    The port is bound first, so a busy one fails before anything starts. The Api function never reads the
    dead-letter queue, so this long-running command leaves ``.ffe/dead-letters.json`` to ``ffe run``/``dlq``.
    """
    from ffe.local.api_server import serve

    stack: dict[str, LocalCloud] = {}
    try:
        server = serve(lambda event: stack["cloud"].invoke("api", event), port=port)
    except OSError as exc:
        reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise PortUnavailableError(f"cannot serve on 127.0.0.1:{port}: {reason}; pick another --port") from None
    try:
        with (
            state.postgres() as pg,
            LocalCloud(
                project or project_root(),
                pg.url,
                breakers_file=state.breakers,  # /health's breakers
                model_store=state.model_store(),  # the versions POST /experiments and PUT /models/champion accept
            ) as cloud,
        ):
            stack["cloud"] = cloud
            migrate_database(pg.url)
            bound = server.server_address[1]
            print(f"ffe API on http://127.0.0.1:{bound}  (database: {pg.kind})", flush=True)
            print(f"  try: curl -s localhost:{bound}/decisions | python -m json.tool", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                print("stopped")
    finally:
        server.server_close()
    return 0


def migrate_database(url: str) -> list[str]:
    from ffe.store.migrate import migrate

    with psycopg.connect(url, autocommit=True) as conn:
        return migrate(conn)


def migrate_locally(state: LocalState) -> list[str]:
    """Apply the schema migrations to the embedded database (or DATABASE_URL when set)."""
    with state.postgres() as pg:
        return migrate_database(pg.url)


def _cycle_note(conn: psycopg.Connection[dict[str, Any]], execution_arn: str) -> str:
    """What became of the execution's cycle when it decided nothing (skipped), and earlier cycles it closed."""
    own = conn.execute("SELECT id, status, reason FROM cycles WHERE execution_arn = %s", (execution_arn,)).fetchone()
    if own is None:
        return ""
    closed = conn.execute(  # the store's reason for a cycle it closed: "closed when cycle <id> started: ..."
        "SELECT id, status FROM cycles WHERE starts_with(reason, %s) ORDER BY id",
        (f"closed when cycle {own['id']} started:",),
    ).fetchall()
    notes = [f"cycle {own['status']}: {own['reason']}"] if own["status"] == "SKIPPED" else []
    notes += [f"closed the earlier cycle {c['id']} as {c['status']} (its run ended without closing it)" for c in closed]
    return "\n".join(notes)


def _outcome(url: str, execution_arn: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The execution's decisions, its failures, and what became of its cycle (``_cycle_note``)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        decisions = conn.execute(
            "SELECT id, asset, bar_time, data_age_seconds, staleness_threshold_seconds, action, confidence, stale,"
            " reason, model, source, size, experiment_id, arm, arms FROM decisions WHERE execution_id = %s"
            " ORDER BY asset",
            (execution_arn,),
        ).fetchall()
        failures = conn.execute(
            "SELECT asset, error_class, message FROM failures WHERE execution_id = %s ORDER BY asset NULLS FIRST",
            (execution_arn,),
        ).fetchall()
        return decisions, failures, _cycle_note(conn, execution_arn)


def recent_decisions(state: LocalState, limit: int = 20, asset: str | None = None) -> list[dict[str, Any]]:
    """What ``ffe run`` stored, newest first, every field (starts and stops the embedded cluster)."""
    with state.postgres() as pg, psycopg.connect(pg.url, row_factory=dict_row) as conn:
        exists = conn.execute("SELECT to_regclass('decisions') IS NOT NULL AS ok").fetchone()
        if not exists or not exists["ok"]:
            return []
        return conn.execute(
            "SELECT * FROM decisions WHERE %(asset)s::text IS NULL OR asset = %(asset)s"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"asset": asset, "limit": limit},
        ).fetchall()


def recorded_decision(state: LocalState, decision_id: int) -> dict[str, Any] | None:
    """One stored decision with every field, or None when there is no such id (or no store yet)."""
    with state.postgres() as pg, psycopg.connect(pg.url, row_factory=dict_row) as conn:
        exists = conn.execute("SELECT to_regclass('decisions') IS NOT NULL AS ok").fetchone()
        if not exists or not exists["ok"]:
            return None
        return conn.execute("SELECT * FROM decisions WHERE id = %s", (decision_id,)).fetchone()


def _save(state: LocalState, report: CycleReport) -> None:
    state.runs.mkdir(parents=True, exist_ok=True)
    name = report.execution_arn.rsplit(":", 1)[-1]
    (state.runs / f"{name}.json").write_text(json.dumps(asdict(report), default=str, indent=2))
