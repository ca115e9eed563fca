"""The Api function's handler, called as Lambda calls it, against a real (seeded) PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ffe.adapters import executions
from ffe.adapters.queries import DecisionFilters, get_queries
from ffe.api import app as api_app
from ffe.api.models import Cursor
from tests.api.conftest import JUNE_1, JUNE_15, MAY, UNREACHABLE_DB, ApiResponse, Seeded, assert_problem
from tests.fakes.dynamodb import breaker_table

ALL_FILTERS = {"asset", "action", "timeframe", "from", "to", "limit", "cursor"}


def walk(call: Any, query: dict[str, str]) -> list[list[dict[str, Any]]]:
    """Every page of GET /decisions with ``query``, following next_cursor to the end."""
    pages, cursor = [], None
    while True:
        response = call("GET", "/decisions", query={**query, **({"cursor": cursor} if cursor else {})})
        assert response.status == 200, response.text
        pages.append(response.json["items"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not terminate"


def table_intact(seeded: Seeded) -> None:
    with psycopg.connect(seeded.url) as conn:
        for table in ("decisions", "cycles", "failures", "risk_events", "executions"):
            assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (table,)
        assert conn.execute("SELECT count(*) FROM decisions").fetchone() == (len(seeded.decision_ids),)


# --- GET /decisions -----------------------------------------------------------------------------------


def test_decisions_are_listed_newest_first_across_partitions(api_env: Seeded, call: Any) -> None:
    # Given decisions in two monthly partitions (seeded)
    # When listing without filters
    response = call("GET", "/decisions")
    # Then every decision comes back, ordered by (as_of, id) descending, with no next page
    assert response.status == 200 and response.content_type == "application/json"
    body = response.json
    assert [d["id"] for d in body["items"]] == api_env.decision_ids and body["next_cursor"] is None
    first = body["items"][0]
    assert first["as_of"] == "2019-06-15T12:00:00Z" and first["cycle_id"] == "seed-cycle-jun"
    assert "reasons" not in first and "source" not in first  # the list is a summary; details per id


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"asset": "BTCUSD"}, lambda d: d["asset"] == "BTCUSD"),
        ({"action": "HOLD"}, lambda d: d["action"] == "HOLD"),
        ({"timeframe": "1h"}, lambda d: True),
        ({"timeframe": "1d"}, lambda d: False),
        ({"from": "2019-06-01T00:00:00Z"}, lambda d: d["as_of"] >= "2019-06-01"),
        ({"to": "2019-06-01T01:00:00+01:00"}, lambda d: d["as_of"] <= "2019-06-01T00:00:00Z"),  # inclusive, offset
        ({"from": "2019-06-01T00:00:00Z", "to": "2019-06-01T00:00:00Z"}, lambda d: d["as_of"].startswith("2019-06-01")),
        (
            {"asset": "ETHUSD", "action": "BUY", "from": "2019-05-01T00:00:00Z"},
            lambda d: (d["asset"], d["action"]) == ("ETHUSD", "BUY"),
        ),
        ({"asset": "ZZZZ"}, lambda d: False),
    ],
)
def test_decisions_filters_select_exactly_the_matching_rows(
    api_env: Seeded, call: Any, query: dict[str, str], expected: Callable[[dict[str, Any]], bool]
) -> None:
    # Given every decision (unfiltered)
    everything = call("GET", "/decisions").json["items"]
    # When filtering
    response = call("GET", "/decisions", query=query)
    # Then exactly the matching rows come back, still newest first
    assert response.status == 200, response.text
    assert [d["id"] for d in response.json["items"]] == [d["id"] for d in everything if expected(d)]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 500])
@pytest.mark.parametrize("query", [{}, {"asset": "BTCUSD"}, {"from": "2019-06-01T00:00:00Z"}])
def test_pagination_walks_every_row_exactly_once_in_order(
    api_env: Seeded, call: Any, limit: int, query: dict[str, str]
) -> None:
    # Given the full, unpaginated answer
    expected = [d["id"] for d in call("GET", "/decisions", query=query).json["items"]]
    # When walking it page by page
    pages = walk(call, {**query, "limit": str(limit)})
    # Then each row appears exactly once, in the same order, in pages of at most `limit`
    assert [d["id"] for page in pages for d in page] == expected
    assert all(len(page) <= limit for page in pages) and all(len(page) == limit for page in pages[:-1])
    assert len(pages) == max(1, -(-len(expected) // limit))


def test_next_cursor_is_opaque_base64_json_of_the_last_row(api_env: Seeded, call: Any) -> None:
    # When fetching the first page of two
    body = call("GET", "/decisions", query={"limit": "2"}).json
    # Then the cursor decodes to the (as_of, id) of the page's last row
    token = body["next_cursor"]
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert decoded == {"as_of": "2019-06-15T12:00:00+00:00", "id": body["items"][-1]["id"]}


def test_pagination_is_stable_when_newer_rows_arrive(api_env: Seeded, call: Any) -> None:
    # Given a cursor into the middle of the list
    first = call("GET", "/decisions", query={"limit": "3"}).json
    # When a newer decision is recorded before the next page is fetched
    with psycopg.connect(api_env.url, autocommit=True) as conn:
        from tests.api.conftest import _insert_decision

        new_id = _insert_decision(conn, "seed-cycle-later", "SPY", JUNE_15 + timedelta(days=1), "BUY")
    try:
        rest = [d["id"] for page in walk(call, {"limit": "3", "cursor": first["next_cursor"]}) for d in page]
        # Then the walk continues where it was: no row repeated, none skipped, the newcomer not mixed in
        assert [d["id"] for d in first["items"]] + rest == api_env.decision_ids
    finally:
        with psycopg.connect(api_env.url, autocommit=True) as conn:
            conn.execute("DELETE FROM decisions WHERE id = %s", (new_id,))


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ({"limit": "0"}, ["query.limit", "greater than or equal to 1"]),
        ({"limit": "501"}, ["query.limit", "500"]),
        ({"limit": "99999999999999999999999999999999"}, ["query.limit", "500"]),
        ({"limit": "-1"}, ["query.limit"]),
        ({"limit": "ten"}, ["query.limit", "integer"]),
        ({"limit": "1.5"}, ["query.limit"]),
        ({"limit": ""}, ["query.limit"]),
        ({"action": "buy"}, ["query.action"]),
        ({"action": "BUY,SELL"}, ["query.action"]),
        ({"timeframe": "2h"}, ["query.timeframe"]),
        ({"asset": "btcusd"}, ["query.asset", "pattern"]),
        ({"asset": "AB"}, ["query.asset"]),
        ({"asset": "A" * 13}, ["query.asset"]),
        ({"from": "yesterday"}, ["query.from"]),
        ({"to": "0.5"}, ["query.to", "ISO-8601"]),  # pydantic alone would read a Unix time (found by schemathesis)
        ({"from": "1718000000"}, ["query.from", "ISO-8601"]),
        ({"from": "2019-06-01T00:00:00"}, ["query.from", "timezone"]),
        ({"to": "2019-13-01T00:00:00Z"}, ["query.to"]),
        ({"from": "2019-06-02T00:00:00Z", "to": "2019-06-01T00:00:00Z"}, ["query.from", "must not be after query.to"]),
        ({"from": "2019-06-01T02:00:00+01:00", "to": "2019-06-01T00:30:00Z"}, ["must not be after"]),
        ({"sort": "id"}, ["query.sort", "unknown parameter"]),
        ({"Asset": "BTCUSD"}, ["query.Asset", "unknown parameter"]),
        ({"limit": "0", "page": "2", "offset": "1"}, ["query.limit", "query.page", "query.offset"]),
        ({"asset": ["BTCUSD", "ETHUSD"]}, ["query.asset", "more than once"]),
    ],
)
def test_decisions_reject_bad_filters_naming_each_field(
    api_env: Seeded, call: Any, query: dict[str, Any], mentions: list[str]
) -> None:
    # When listing with a bad, unknown or repeated filter
    response = call("GET", "/decisions", query=query)
    # Then 400 problem+json names each offending parameter
    problem = assert_problem(response, 400, *mentions)
    assert problem["instance"] == "/decisions" and problem["errors"]


def test_unknown_parameter_problem_lists_the_allowed_ones(api_env: Seeded, call: Any) -> None:
    problem = assert_problem(call("GET", "/decisions", query={"order": "asc"}), 400, "query.order")
    assert all(name in problem["detail"] for name in ALL_FILTERS)


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/decisions/1", "/cycles/seed-cycle-may"])
def test_routes_without_filters_reject_any_query_parameter(api_env: Seeded, call: Any, path: str) -> None:
    assert_problem(call("GET", path, query={"verbose": "1"}), 400, "query.verbose", "allowed: none")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "!!!!",
        "a" * 600,
        "eyJ",
        _b64(b"not json"),
        _b64(b"\xff\xfe\x00"),
        _b64(b"[]"),
        _b64(b'{"as_of": "2019-06-15T12:00:00+00:00"}'),
        _b64(b'{"id": 3}'),
        _b64(b'{"as_of": "2019-06-15T12:00:00+00:00", "id": "3"}'),
        _b64(b'{"as_of": "2019-06-15T12:00:00+00:00", "id": 0}'),
        _b64(b'{"as_of": "2019-06-15T12:00:00+00:00", "id": -5}'),
        _b64(b'{"as_of": "2019-06-15T12:00:00+00:00", "id": 3.5}'),
        _b64(b'{"as_of": "2019-06-15T12:00:00+00:00", "id": 9223372036854775808}'),
        _b64(b'{"as_of": "2019-06-15T12:00:00", "id": 3}'),
        _b64(b'{"as_of": "soon", "id": 3}'),
        _b64(b'{"as_of": "2019-06-15T12:00:00+00:00", "id": 3, "offset": 10}'),
        _b64(b'{"as_of": "2019-06-15T12:00:00+00:00", "id": "3 OR 1=1"}'),
        _tampered(Cursor(as_of=datetime(2019, 6, 15, 12, tzinfo=UTC), id=3).encode()),
    ],
)
def test_malformed_or_tampered_cursors_are_rejected(api_env: Seeded, call: Any, cursor: str) -> None:
    # When paginating with a cursor this API never produced
    response = call("GET", "/decisions", query={"cursor": cursor})
    # Then 400 names the cursor, and nothing about the database leaks
    assert_problem(response, 400, "query.cursor")


# --- GET /decisions/{id} ------------------------------------------------------------------------------


def test_decision_detail_has_reasons_source_risk_events_and_execution(api_env: Seeded, call: Any) -> None:
    # When fetching the decision that was risk-checked and executed
    response = call("GET", f"/decisions/{api_env.buy_with_risk}")
    # Then it carries its reasons JSON, source, risk events and execution
    assert response.status == 200, response.text
    d = response.json
    assert (d["id"], d["asset"], d["action"], d["size"]) == (api_env.buy_with_risk, "BTCUSD", "BUY", 0.25)
    assert d["reasons"] == {"signals": {"trend_following": 0.4}, "route": ["replay"]}
    assert d["source"]["provider"] == "replay" and d["input_sha256"] == "0" * 64
    assert [(r["rule"], r["blocked"], r["detail"]) for r in d["risk_events"]] == [
        ("max_gross_exposure", False, {"exposure": 0.2, "cap": 0.5})
    ]
    execution = d["execution"]
    assert (execution["venue"], execution["side"], execution["quantity"], execution["price"]) == (
        "coinbase",
        "BUY",
        0.25,
        8650.5,
    )
    assert execution["status"] == "filled" and execution["mode"] == "paper"


def test_decision_without_risk_events_or_execution_says_so(api_env: Seeded, call: Any) -> None:
    d = call("GET", f"/decisions/{api_env.decision_ids[-1]}").json
    assert d["risk_events"] == [] and d["execution"] is None and d["as_of"] == "2019-05-31T23:00:00Z"


@pytest.mark.parametrize("decision_id", ["999999", "9223372036854775807", "9223372036854775808", "1" + "0" * 40])
def test_unknown_decision_is_404(api_env: Seeded, call: Any, decision_id: str) -> None:
    assert_problem(call("GET", f"/decisions/{decision_id}"), 404, "no decision with id")


@pytest.mark.parametrize("decision_id", ["0", "-1", "abc", "1.5", "1e3", "0x10", "%FF1", "%2F1"])
def test_decision_id_must_be_a_positive_integer(api_env: Seeded, call: Any, decision_id: str) -> None:
    assert_problem(call("GET", f"/decisions/{decision_id}"), 400, "path.id")


# --- SQL injection ------------------------------------------------------------------------------------

INJECTIONS = [
    "' OR '1'='1",
    "BTCUSD' OR 1=1 --",
    "BTCUSD'; DROP TABLE decisions; --",
    "1; DROP TABLE decisions",
    "1 OR 1=1",
    "1) OR (1=1",
    "$$; DROP TABLE decisions; $$",
    "BTCUSD' UNION SELECT id, cycle_id FROM cycles --",
    "2019-06-01T00:00:00Z' OR '1'='1",
    "'; SELECT pg_sleep(10); --",
]


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("param", sorted(ALL_FILTERS))
def test_sql_injection_in_any_filter_is_rejected_and_harmless(
    api_env: Seeded, call: Any, param: str, payload: str
) -> None:
    # When an injection string arrives in a filter
    response = call("GET", "/decisions", query={param: payload})
    # Then it is a 400 naming that filter, nothing leaks, and every table is intact
    problem = assert_problem(response, 400, f"query.{param}")
    assert "seed-cycle" not in response.text and "SELECT" not in problem["detail"].upper().replace(payload.upper(), "")
    table_intact(api_env)


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("route", ["/decisions/{}", "/cycles/{}"])
def test_sql_injection_in_path_ids_is_rejected_and_harmless(
    api_env: Seeded, call: Any, route: str, payload: str
) -> None:
    # When an injection string arrives as a path id (raw, and percent-encoded as a client would send it)
    for path_id in (payload, payload.replace(" ", "%20").replace("'", "%27")):
        response = call("GET", route.format(path_id))
        # Then it is a 400 (or a 404 when it is not even a route), with no data leaked
        assert response.status in (400, 404), response.text
        assert_problem(response, response.status)
        assert "seed-cycle" not in response.text
    table_intact(api_env)


def test_queries_bind_values_even_past_validation(api_env: Seeded) -> None:
    # Given the query layer called directly with hostile values (no HTTP validation in front of it)
    queries = get_queries()
    for hostile in INJECTIONS:
        # When it filters on them
        rows = queries.decisions(DecisionFilters(asset=hostile, action=hostile, timeframe=hostile), None, 10)
        # Then they are compared as values: no row matches, nothing runs
        assert rows == []
        assert queries.cycle(hostile).found is False
    table_intact(api_env)


# --- GET /cycles/{id} ---------------------------------------------------------------------------------


def test_finished_cycle_shows_each_assets_decision(api_env: Seeded, call: Any) -> None:
    response = call("GET", "/cycles/seed-cycle-may")
    assert response.status == 200, response.text
    cycle = response.json
    assert (cycle["status"], cycle["timeframe"], cycle["as_of"]) == ("SUCCEEDED", "1h", "2019-05-31T23:00:00Z")
    assert {a: (o["outcome"], o["action"]) for a, o in cycle["outcomes"].items()} == {
        "BTCUSD": ("decision", "BUY"),
        "ETHUSD": ("decision", "HOLD"),
        "EURUSD": ("decision", "SELL"),
    }
    assert cycle["pending_assets"] == [] and cycle["cycle_failure"] is None and cycle["execution"] is None


def test_running_cycle_lists_the_assets_still_pending(api_env: Seeded, call: Any) -> None:
    cycle = call("GET", "/cycles/seed-cycle-jun").json
    assert cycle["status"] == "RUNNING" and cycle["finished_at"] is None
    assert sorted(cycle["outcomes"]) == ["BTCUSD", "ETHUSD", "GBPUSD"] and cycle["pending_assets"] == ["SPY"]


def test_cycle_without_a_cycles_row_is_built_from_decisions_and_failures(api_env: Seeded, call: Any) -> None:
    cycle = call("GET", "/cycles/seed-cycle-orphan").json
    assert cycle["status"] is None and cycle["as_of"] == JUNE_1.isoformat().replace("+00:00", "Z")
    assert cycle["outcomes"]["XAUUSD"] == {
        "outcome": "failure",
        "error_class": "InvalidInputError",
        "message": "unknown asset 'XAUUSD'",
    }
    assert cycle["outcomes"]["ETHUSD"]["outcome"] == "decision"  # decided after a failed attempt: the decision wins


def test_cycle_that_failed_as_a_whole_reports_the_failure(api_env: Seeded, call: Any) -> None:
    cycle = call("GET", "/cycles/seed-cycle-malformed").json
    assert cycle["outcomes"] == {} and cycle["cycle_failure"]["message"] == "assets: Field required"


@pytest.mark.parametrize("cycle_id", ["nope", "api-00000000-0000-0000-0000-000000000000", "seed-cycle-may.", "x" * 128])
def test_unknown_cycle_is_404(api_env: Seeded, call: Any, cycle_id: str) -> None:
    assert_problem(call("GET", f"/cycles/{cycle_id}"), 404, "no cycle with id")


@pytest.mark.parametrize("cycle_id", ["x" * 129, "a b", "a%20b", "é", "a;b", "a'b", "%00", "%FF", "%E2%82", "a%2Fb"])
def test_malformed_cycle_id_is_400(api_env: Seeded, call: Any, cycle_id: str) -> None:
    assert_problem(call("GET", f"/cycles/{cycle_id}"), 400, "path.id")


# --- POST /cycles and live status (Step Functions in moto) --------------------------------------------


def test_post_cycle_starts_an_execution_named_after_the_cycle(state_machine: str, call: Any) -> None:
    # When a cycle is requested for two assets at a given time
    response = call(
        "POST",
        "/cycles",
        body={"assets": ["BTCUSD", "ETHUSD"], "timeframe": "1h", "as_of": "2019-06-15T14:01:00+02:00"},
    )
    # Then 202 with the cycle id and the execution, whose input is the cycle (as_of in UTC)
    assert response.status == 202, response.text
    accepted = response.json
    assert accepted["cycle_id"].startswith("api-") and response.headers["location"] == f"/cycles/{accepted['cycle_id']}"
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    execution = sfn.describe_execution(executionArn=accepted["execution_arn"])
    assert execution["name"] == accepted["cycle_id"] and execution["stateMachineArn"] == state_machine
    assert json.loads(execution["input"]) == {
        "cycle_id": accepted["cycle_id"],
        "as_of": "2019-06-15T12:01:00Z",
        "timeframe": "1h",
        "assets": ["BTCUSD", "ETHUSD"],
    }
    # And GET /cycles/{id} finds it through Step Functions alone (nothing recorded yet): all assets pending
    cycle = call("GET", f"/cycles/{accepted['cycle_id']}").json
    assert cycle["execution"]["status"] == "RUNNING" and cycle["status"] == "RUNNING"
    assert cycle["execution_arn"] == accepted["execution_arn"] and cycle["pending_assets"] == ["BTCUSD", "ETHUSD"]
    assert cycle["timeframe"] == "1h" and cycle["as_of"] == "2019-06-15T12:01:00Z"


def test_post_cycle_without_assets_decides_the_stages_universe(state_machine: str, call: Any) -> None:
    accepted = call("POST", "/cycles", body={"timeframe": "1h"}).json
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    started = json.loads(sfn.describe_execution(executionArn=accepted["execution_arn"])["input"])
    # no assets: "Open the cycle" reads the stage's universe file for 1h (docs/universe.md)
    assert started["assets"] is None and started["timeframe"] == "1h"


def test_post_cycle_defaults_as_of_to_this_minute(state_machine: str, call: Any) -> None:
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    accepted = call("POST", "/cycles", body={"assets": ["EURUSD"], "timeframe": "15m"}).json
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    as_of = json.loads(sfn.describe_execution(executionArn=accepted["execution_arn"])["input"])["as_of"]
    parsed = datetime.fromisoformat(as_of)
    assert before <= parsed <= datetime.now(UTC) and parsed.second == 0 and parsed.microsecond == 0


def test_cycle_row_with_an_execution_arn_gets_the_live_status(state_machine: str, api_env: Seeded, call: Any) -> None:
    # Given a recorded cycle whose execution is known to Step Functions
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.start_execution(stateMachineArn=state_machine, name="sched-1", input='{"assets": ["BTCUSD"]}')[
        "executionArn"
    ]
    with psycopg.connect(api_env.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO cycles (id, execution_arn, stage, timeframe, as_of, assets, status) "
            "VALUES ('sched-1', %s, 'dev', '1h', %s, '[\"BTCUSD\"]', 'SUCCEEDED')",
            (arn, MAY),
        )
    try:
        # When fetching the cycle
        cycle = call("GET", "/cycles/sched-1").json
        # Then the live status wins over the recorded one
        assert cycle["status"] == "RUNNING" and cycle["execution"]["execution_arn"] == arn
    finally:
        with psycopg.connect(api_env.url, autocommit=True) as conn:
            conn.execute("DELETE FROM cycles WHERE id = 'sched-1'")


def test_a_skipped_cycle_says_so_and_why_whatever_its_execution_reads(
    state_machine: str, api_env: Seeded, call: Any
) -> None:
    # Given a cycle recorded SKIPPED, whose execution ended SUCCEEDED at "Cycle skipped"
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.start_execution(stateMachineArn=state_machine, name="sched-skip", input='{"assets": ["BTCUSD"]}')[
        "executionArn"
    ]
    why = "cycle sched-0 of stage dev, timeframe 1h, ... is still running: one cycle per stage and timeframe at a time"
    with psycopg.connect(api_env.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO cycles (id, execution_arn, stage, timeframe, as_of, assets, status, reason, finished_at) "
            "VALUES ('sched-skip', %s, 'dev', '1h', %s, '[\"BTCUSD\"]', 'SKIPPED', %s, now())",
            (arn, MAY, why),
        )
    try:
        # When fetching it
        cycle = call("GET", "/cycles/sched-skip").json
        # Then it reads SKIPPED with the reason, and no asset is pending: it will decide nothing
        assert (cycle["status"], cycle["reason"], cycle["pending_assets"]) == ("SKIPPED", why, [])
        assert cycle["execution"]["execution_arn"] == arn
    finally:
        with psycopg.connect(api_env.url, autocommit=True) as conn:
            conn.execute("DELETE FROM cycles WHERE id = 'sched-skip'")


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"assets": ["XAUUSD"], "timeframe": "1h"}, ["body.assets", "unknown asset 'XAUUSD'"]),
        ({"assets": ["BTCUSD", "XAUUSD"], "timeframe": "1h"}, ["XAUUSD"]),
        ({"assets": ["BTCUSD", "BTCUSD"], "timeframe": "1h"}, ["duplicated assets: BTCUSD"]),
        ({"assets": [], "timeframe": "1h"}, ["body.assets", "at least 1"]),
        ({"assets": ["BTCUSD"] * 10_001, "timeframe": "1h"}, ["body.assets", "at most 10000"]),
        ({"assets": ["btcusd"], "timeframe": "1h"}, ["body.assets.0"]),
        ({"assets": "BTCUSD", "timeframe": "1h"}, ["body.assets"]),
        ({"assets": [1], "timeframe": "1h"}, ["body.assets.0"]),
        ({"assets": ["BTCUSD"]}, ["body.timeframe", "Field required"]),
        ({"assets": ["BTCUSD"], "timeframe": "2h"}, ["body.timeframe"]),
        ({"assets": ["BTCUSD"], "timeframe": "1h", "as_of": "2019-06-15T12:00:00"}, ["body.as_of", "timezone"]),
        ({"assets": ["BTCUSD"], "timeframe": "1h", "as_of": "2999-01-01T00:00:00Z"}, ["body.as_of", "future"]),
        ({"assets": ["BTCUSD"], "timeframe": "1h", "as_of": 1560600000}, ["body.as_of", "ISO-8601"]),
        ({"assets": ["BTCUSD"], "timeframe": "1h", "as_of": "9999-12-31T23:59:59-14:00"}, ["body.as_of"]),
        ({"assets": ["BTCUSD"], "timeframe": "1h", "cycle_id": "mine"}, ["body.cycle_id", "Extra inputs"]),
        ({"assets": ["BTCUSD'; DROP TABLE cycles; --"], "timeframe": "1h"}, ["body.assets.0"]),
        ([], ["body"]),
        ("BTCUSD", ["body"]),
    ],
)
def test_post_cycle_rejects_bad_bodies_naming_the_field(
    state_machine: str, call: Any, body: Any, mentions: list[str]
) -> None:
    assert_problem(call("POST", "/cycles", body=body), 400, *mentions)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    assert sfn.list_executions(stateMachineArn=state_machine)["executions"] == []  # nothing was started


@pytest.mark.filterwarnings("ignore:Received multipart/form-data without base64 encoding:UserWarning")
@pytest.mark.parametrize(
    ("raw", "headers", "status", "mention"),
    [
        ("{not json", {}, 400, "not valid JSON"),
        ("", {}, 400, "body"),
        ('{"assets": ["BTCUSD"], "timeframe": "1h"}', {"Content-Type": "text/plain"}, 415, "application/json"),
        ("assets=BTCUSD&timeframe=1h", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        (
            "--x\r\n",
            {"Content-Type": "multipart/form-data"},
            415,
            "application/json",
        ),  # no boundary (found by schemathesis)
        (
            "--b\r\nContent-Disposition: form-data; name=assets\r\n\r\nBTCUSD\r\n--b--\r\n",
            {"Content-Type": "multipart/form-data; boundary=b"},
            415,
            "application/json",
        ),
    ],
)
def test_post_cycle_rejects_bodies_that_are_not_json(
    state_machine: str, call: Any, raw: bytes, headers: dict[str, str], status: int, mention: str
) -> None:
    assert_problem(call("POST", "/cycles", raw_body=raw, headers=headers), status, mention)


@pytest.mark.parametrize(
    "failure",
    [
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "StartExecution"),
        EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com"),
    ],
    ids=["throttled", "unreachable"],
)
def test_post_cycle_when_step_functions_is_unavailable_is_503(
    state_machine: str, call: Any, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def broken(**kwargs: Any) -> None:
        raise failure

    monkeypatch.setattr(executions.client(), "start_execution", broken)
    response = call("POST", "/cycles", body={"assets": ["BTCUSD"], "timeframe": "1h"})
    assert_problem(response, 503, "retry later")
    assert response.headers["retry-after"] == "5"


def test_post_cycle_without_a_state_machine_is_a_500_problem(api_env: Seeded, call: Any) -> None:
    # A deployment bug (STATE_MACHINE_ARN missing), not the caller's fault: 500, logged, still a problem
    problem = assert_problem(call("POST", "/cycles", body={"assets": ["BTCUSD"], "timeframe": "1h"}), 500)
    assert "request id" in problem["detail"] and "STATE_MACHINE_ARN" not in problem["detail"]


# --- GET /health --------------------------------------------------------------------------------------


def test_health_reports_database_market_data_and_last_cycle(api_env: Seeded, call: Any) -> None:
    response = call("GET", "/health")
    assert response.status == 200 and response.headers["cache-control"] == "no-store"
    report = response.json
    assert report["status"] == "ok" and report["database"]["ok"] is True and report["database"]["error"] is None
    assert 0 <= report["database"]["latency_ms"] < 1000
    assert 3500 < report["last_cycle_age_seconds"] < 3600 + 600  # seed-cycle-may finished an hour ago
    assert {p["provider"] for p in report["market_data"]["providers"]} >= {"coinbase"}
    assert report["breakers"] == []  # no breaker table: each container keeps its own, none is shared


def test_health_when_the_database_is_down_is_503_degraded(
    api_env: Seeded, call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DB)
    response = call("GET", "/health")
    assert response.status == 503 and response.content_type == "application/json"
    report = response.json
    assert report["status"] == "degraded" and report["database"] == {
        "ok": False,
        "latency_ms": None,
        "error": "DatabaseUnavailableError",
    }
    assert report["last_cycle_age_seconds"] is None and "nobody" not in response.text  # no connection details


def test_health_degrades_when_market_data_health_fails(
    api_env: Seeded, call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ffe.health

    def broken(settings: Any) -> Any:
        raise RuntimeError("dynamodb down")

    monkeypatch.setattr(ffe.health, "market_data_health", broken)
    response = call("GET", "/health")
    assert response.status == 200 and response.json["status"] == "degraded" and response.json["market_data"] is None


def test_health_lists_the_shared_breakers_and_degrades_while_one_is_open(
    api_env: Seeded, call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import mock_aws

    from ffe import containers
    from ffe.adapters.breaker import DynamoDBBreakerStorage, make_breaker

    with mock_aws():
        # Given the stage's breaker table, with the inference endpoint's breaker opened by one failure
        table = breaker_table(boto3.resource("dynamodb", region_name="us-east-1"), "ffe-test-circuit-breakers")
        name = "inference:ffe-test-inference"
        breaker = make_breaker(name, DynamoDBBreakerStorage(table, name), fail_max=1, reset_timeout_s=30)
        with pytest.raises(TimeoutError):
            breaker.call(_times_out)
        monkeypatch.setenv("BREAKER_TABLE", "ffe-test-circuit-breakers")
        monkeypatch.setenv("STAGE", "test")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        containers.reset()
        try:
            response = call("GET", "/health")
        finally:
            containers.reset()  # no later test may see this table's settings or client
    # Then /health lists every shared breaker as `ffe breakers` does, and says degraded while one is open
    assert response.status == 200 and response.json["status"] == "degraded"
    breakers = {b["name"]: b for b in response.json["breakers"]}
    assert set(breakers) == {"coinbase", "oanda", "alpha_vantage", name}
    opened = breakers[name]
    assert opened["state"] == "open" and opened["failures"] == 1
    assert datetime.fromisoformat(opened["next_half_open"]) - datetime.fromisoformat(opened["opened_at"]) == timedelta(
        seconds=30
    )
    assert breakers["coinbase"]["state"] == "closed" and breakers["coinbase"]["opened_at"] is None


def _times_out() -> None:
    raise TimeoutError("endpoint did not answer")


# --- errors everywhere --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/decisions", "/decisions/1", "/cycles/seed-cycle-may"])
def test_database_down_is_a_503_problem(api_env: Seeded, call: Any, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DB)
    response = call("GET", path)
    assert_problem(response, 503, "retry later")
    assert response.headers["retry-after"] == "5" and "127.0.0.1" not in response.text


def test_unexpected_error_is_a_logged_500_problem_without_internals(
    api_env: Seeded, call: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a bug deep inside a route
    def boom() -> Any:
        raise KeyError("internal detail")

    monkeypatch.setattr(api_app, "get_queries", boom)
    # When the route runs
    response = call("GET", "/decisions")
    # Then the caller gets a 500 problem naming the request id, and the log gets the exception
    problem = assert_problem(response, 500, "request id")
    assert "internal detail" not in response.text and "Traceback" not in response.text
    assert problem["instance"] == "/decisions"
    logged = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert logged and logged[0].exc_info is not None and isinstance(logged[0].exc_info[1], KeyError)


@pytest.mark.parametrize("path", ["/", "/nope", "/decisions/1/risk", "/cycles", "/decision", "/openapi.yaml"])
def test_unknown_routes_are_404_problems(api_env: Seeded, call: Any, path: str) -> None:
    method = "GET"
    response = call(method, path)
    if path == "/cycles":  # the route exists for POST only
        assert_problem(response, 405)
        assert response.headers["allow"] == "POST"
    else:
        assert_problem(response, 404, f"no route for GET {path}")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("DELETE", "/decisions/1", "GET, HEAD"), ("PUT", "/cycles", "POST"), ("POST", "/health", "GET, HEAD")],
)
def test_wrong_method_is_405_with_allow(api_env: Seeded, call: Any, method: str, path: str, allow: str) -> None:
    response = call(method, path)
    assert_problem(response, 405, method)
    assert response.headers["allow"] == allow


def test_logs_carry_the_api_gateway_request_id_as_correlation_id(api_env: Seeded, lambda_context: Any) -> None:
    from ffe.observability import logger
    from functions.api.handler import lambda_handler
    from tests.api.conftest import rest_event

    event = rest_event("GET", "/decisions/999999")
    lambda_handler(event, lambda_context)
    assert logger.get_correlation_id() == event["requestContext"]["requestId"]


def backend_pid() -> int:
    conn = get_queries().database.current
    assert conn is not None
    return int(conn.info.backend_pid)


def test_warm_container_reuses_its_connection_and_survives_losing_it(api_env: Seeded, call: Any) -> None:
    # Given a warm container (one request served)
    assert call("GET", "/health").status == 200
    pid = backend_pid()
    assert call("GET", "/decisions").status == 200
    assert backend_pid() == pid  # the same connection, reused
    # When the database drops that connection (failover, idle timeout)
    with psycopg.connect(api_env.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # returns once it is gone
    # Then the next request reconnects transparently
    response: ApiResponse = call("GET", "/decisions", query={"limit": "1"})
    assert response.status == 200 and backend_pid() != pid


def test_read_side_session_is_read_only(api_env: Seeded, call: Any) -> None:
    assert call("GET", "/health").status == 200
    conn = get_queries().database.current
    assert conn is not None
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("DELETE FROM decisions")
