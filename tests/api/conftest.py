"""API test fixtures: API Gateway REST events, a seeded database of its own, response helpers."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from ffe.api import app as api_app
from ffe.store.migrate import migrate
from functions.api.handler import lambda_handler
from tests.database import fixture_database_url, fixture_db, fixture_postgres, fixture_reservations  # noqa: F401

UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:1/ffe?connect_timeout=1"  # loopback port 1: refused at once


def rest_event(
    method: str,
    path: str,
    query: dict[str, str | list[str]] | None = None,
    body: Any = None,
    raw_body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as API Gateway builds it for ``/{proxy+}`` (``path`` as sent).

    A ``bytes`` ``raw_body`` is handed over base64-encoded, as API Gateway does with binary bodies.
    """
    multi = {k: v if isinstance(v, list) else [v] for k, v in (query or {}).items()}
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    encoded = isinstance(text, bytes)
    if isinstance(text, bytes):
        text = base64.b64encode(text).decode()
    all_headers = {"Accept": "application/json", "Host": "api.example.test", **(headers or {})}
    if text is not None:
        all_headers.setdefault("Content-Type", "application/json")
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": {"proxy": unquote(path.lstrip("/"))},
        "stageVariables": None,
        "body": text,
        "isBase64Encoded": encoded,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "stage": "dev",
            "httpMethod": method,
            "path": f"/dev{path}",
            "resourcePath": "/{proxy+}",
            "accountId": "123456789012",
            "apiId": "testapi",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"},
        },
    }


def every_byte_encoded(segment: str) -> str:
    """``seed-cycle`` -> ``%73%65%65%64...``: what a client that encodes more than it must sends."""
    return "".join(f"%{byte:02X}" for byte in segment.encode())


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    text: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def to_response(raw: dict[str, Any]) -> ApiResponse:
    headers = {k.lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
    headers.update({k.lower(): str(v[0]) for k, v in (raw.get("multiValueHeaders") or {}).items() if v})
    return ApiResponse(raw["statusCode"], headers, raw.get("body") or "", raw)


@pytest.fixture
def call(lambda_context: Any) -> Any:
    """Call the Api function's handler the way Lambda does: ``call("GET", "/decisions", query={...})``."""

    def _call(method: str, path: str, **kwargs: Any) -> ApiResponse:
        return to_response(lambda_handler(rest_event(method, path, **kwargs), lambda_context))

    return _call


def assert_problem(response: ApiResponse, status: int, *mentions: str) -> dict[str, Any]:
    """The response is an RFC 7807 problem with ``status`` whose detail mentions each of ``mentions``."""
    assert response.status == status, response.text
    assert response.content_type == "application/problem+json"
    problem: dict[str, Any] = response.json
    assert {"type", "title", "status", "detail", "instance"} <= set(problem)
    assert problem["status"] == status and problem["type"].startswith("urn:ffe:problem:")
    for mention in mentions:
        assert mention in problem["detail"], (mention, problem["detail"])
    return problem


# --- the database -------------------------------------------------------------------------------------


@dataclass
class Seeded:
    url: str
    decision_ids: list[int]  # newest first by (as_of, id)
    buy_with_risk: int  # decision with a risk event and an execution
    months: tuple[str, str]
    cycle_done: str = "seed-cycle-may"
    cycle_running: str = "seed-cycle-jun"
    cycle_without_row: str = "seed-cycle-orphan"  # decisions and a failure, no cycles row
    cycle_malformed: str = "seed-cycle-malformed"  # only a cycle-level failure


MAY = datetime(2019, 5, 31, 23, 0, tzinfo=UTC)
JUNE_1 = datetime(2019, 6, 1, 0, 0, tzinfo=UTC)
JUNE_15 = datetime(2019, 6, 15, 12, 0, tzinfo=UTC)


def _insert_decision(conn: psycopg.Connection[Any], cycle_id: str, asset: str, as_of: datetime, action: str) -> int:
    conn.execute("SELECT ffe_ensure_decision_partition(%s)", (as_of,))
    row = conn.execute(
        """
        INSERT INTO decisions (cycle_id, execution_id, stage, asset, timeframe, as_of, bar_time, action, confidence,
                               size, stale, reason, reasons, data_age_seconds, staleness_threshold_seconds, model,
                               model_version, regime, source, input_sha256)
        VALUES (%s, NULL, 'dev', %s, '1h', %s, %s, %s, %s, %s, false, %s, %s, 60, 7200, 'naive_router', '1', 'trend',
                %s, %s)
        RETURNING id
        """,
        (
            cycle_id,
            asset,
            as_of,
            as_of - timedelta(hours=1),
            action,
            0.5 if action == "HOLD" else 0.8,
            None if action == "HOLD" else 0.25,
            f"{action} on {asset}",
            Jsonb({"signals": {"trend_following": 0.4}, "route": ["replay"]}),
            Jsonb({"provider": "replay", "dataset": f"{asset}_1h", "synthetic": False, "simulated_clock": True}),
            "0" * 64,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def seed(conn: psycopg.Connection[Any]) -> Seeded:
    """Three cycles over two monthly partitions, a failure, a cycle failure, a risk event, an execution."""
    now = datetime.now(UTC)
    conn.execute(
        "INSERT INTO cycles (id, execution_arn, stage, timeframe, as_of, assets, status, started_at, finished_at) "
        "VALUES ('seed-cycle-may', NULL, 'dev', '1h', %s, %s, 'SUCCEEDED', %s, %s),"
        "       ('seed-cycle-jun', NULL, 'dev', '1h', %s, %s, 'RUNNING', %s, NULL)",
        (
            MAY,
            Jsonb(["BTCUSD", "ETHUSD", "EURUSD"]),
            now - timedelta(hours=2),
            now - timedelta(hours=1),
            JUNE_15,
            Jsonb(["BTCUSD", "ETHUSD", "GBPUSD", "SPY"]),
            now - timedelta(minutes=5),
        ),
    )
    ids: list[tuple[datetime, int]] = []
    for asset, action in (("BTCUSD", "BUY"), ("ETHUSD", "HOLD"), ("EURUSD", "SELL")):
        ids.append((MAY, _insert_decision(conn, "seed-cycle-may", asset, MAY, action)))
    for asset, action in (("BTCUSD", "SELL"), ("ETHUSD", "BUY")):
        ids.append((JUNE_1, _insert_decision(conn, "seed-cycle-orphan", asset, JUNE_1, action)))
    for asset, action in (("BTCUSD", "BUY"), ("ETHUSD", "HOLD"), ("GBPUSD", "HOLD")):
        ids.append((JUNE_15, _insert_decision(conn, "seed-cycle-jun", asset, JUNE_15, action)))
    buy = ids[5][1]
    conn.execute(
        "INSERT INTO risk_events (decision_id, as_of, cycle_id, asset, rule, blocked, detail) "
        "VALUES (%s, %s, 'seed-cycle-jun', 'BTCUSD', 'max_gross_exposure', false, %s)",
        (buy, JUNE_15, Jsonb({"exposure": 0.2, "cap": 0.5})),
    )
    conn.execute(
        "INSERT INTO executions (decision_id, as_of, venue, mode, client_order_id, venue_order_id, side, quantity,"
        " price, status, detail) VALUES (%s, %s, 'coinbase', 'paper', %s, 'v-1', 'BUY', 0.25, 8650.5, 'filled', %s)",
        (buy, JUNE_15, f"ffe-{buy}", Jsonb({"fills": 1})),
    )
    conn.execute(
        "INSERT INTO failures (cycle_id, execution_id, asset, timeframe, as_of, error_class, message) VALUES"
        " ('seed-cycle-orphan', NULL, 'XAUUSD', '1h', %s, 'InvalidInputError', 'unknown asset ''XAUUSD'''),"
        " ('seed-cycle-orphan', NULL, 'ETHUSD', '1h', %s, 'TransientError', 'provider timed out'),"
        " ('seed-cycle-malformed', NULL, NULL, NULL, NULL, 'InvalidInputError', 'assets: Field required')",
        (JUNE_1.isoformat(), JUNE_1.isoformat()),
    )
    newest_first = [i for _, i in sorted(ids, key=lambda t: (t[0], t[1]), reverse=True)]
    return Seeded(url="", decision_ids=newest_first, buy_with_risk=buy, months=("2019_05", "2019_06"))


@pytest.fixture(scope="session")
def seeded(postgres: str) -> Seeded:
    """A database of its own (so other suites' rows never show up), migrated and seeded once."""
    name = f"ffe_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(postgres, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        data = seed(conn)
    data.url = url
    return data


@pytest.fixture
def api_env(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """The Api function's environment, as a cold container: the seeded database, no AWS resources."""
    monkeypatch.setenv("DATABASE_URL", seeded.url)
    for name in ("DB_SECRET_ARN", "STATE_MACHINE_ARN", "BREAKER_TABLE", "BAR_CACHE_TABLE"):
        monkeypatch.delenv(name, raising=False)
    api_app.reset()
    yield seeded
    api_app.reset()


@pytest.fixture
def state_machine(api_env: Seeded, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A DecisionCycle stand-in in moto's Step Functions (executions stay RUNNING), wired as STATE_MACHINE_ARN."""
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="ffe-test-decision-cycle",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/ffe-test",
        )["stateMachineArn"]
        monkeypatch.setenv("STATE_MACHINE_ARN", arn)
        api_app.reset()
        yield arn


def executions(state_machine: str) -> list[dict[str, Any]]:
    """The executions started on ``state_machine`` (in moto)."""
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    found: list[dict[str, Any]] = sfn.list_executions(stateMachineArn=state_machine)["executions"]
    return found
