"""Bad input gets a 4xx problem that names it, never a 5xx (issue 12 §5), through the Api function's handler."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import MAY, Seeded, assert_problem, every_byte_encoded, executions

CYCLE = {"assets": ["BTCUSD"], "timeframe": "1h", "as_of": "2019-06-15T12:01:00Z"}
LONG = "x" * 5000


# --- request bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "mention"),
    [
        (b'{"assets": ["BTCUSD"], "timeframe": "1h", "as_of": "2019\xff"}', "not UTF-8"),  # arrives base64-encoded
        ("[" * 5000, "recursion limit exceeded"),
        ('{"assets": ["BTCUSD"], "timeframe": "1h", "as_of": ' + "1" * 5000 + "}", "number out of range"),
        ('{"assets": ["BTCUSD"], "timeframe": "1h", "timeframe": "1d"}', "key 'timeframe' is given more than once"),
        ('{"assets": ["BTCUSD"], "timeframe": "1h", "x": {"a": 1, "a": 2}}', "key 'a' is given more than once"),
        ('{"assets": ["BTCUSD"], "timeframe": "1h", "as_of": NaN}', "not valid JSON"),
        ('{"assets": ["\\ud800"], "timeframe": "1h"}', "hex escape"),  # a lone surrogate
    ],
    ids=[
        "not-utf8",
        "deeply-nested",
        "5000-digit-integer",
        "duplicate-key",
        "nested-duplicate-key",
        "nan",
        "surrogate",
    ],
)
def test_post_cycle_refuses_bodies_that_are_not_strict_json(
    state_machine: str, call: Any, raw: str | bytes, mention: str
) -> None:
    # When the body is not UTF-8, nests too deep, holds a number too long, repeats a key or is not JSON at all
    response = call("POST", "/cycles", raw_body=raw)
    # Then 400 names the body and why, and no cycle is started
    problem = assert_problem(response, 400, "body", mention)
    assert [error["field"] for error in problem["errors"]] == ["body"]
    assert executions(state_machine) == []


@pytest.mark.parametrize(
    ("path", "raw", "mention"),
    [
        ("/experiments", b'{"treatment_version": "ffe-\xff"}', "not UTF-8"),
        ("/experiments", '{"treatment_version": "ffe-a", "plan": [{"share": NaN}]}', "not valid JSON"),
        ("/experiments", '{"treatment_version": "\\ud800"}', "hex escape"),
        ("/experiments", '{"treatment_version": "a", "mode": "shadow", "mode": "split"}', "given more than once"),
        ("/experiments", '{"treatment_version": "ffe-a", "plan": [{"share": ' + "9" * 5000 + "}]}", "out of range"),
        ("/experiments/exp-1/start", "[" * 5000, "recursion limit exceeded"),
        ("/models/champion", "version=ffe-a", "not valid JSON"),
    ],
    ids=["not-utf8", "nan", "surrogate", "duplicate-key", "huge-number", "deeply-nested", "form-as-json"],
)
def test_experiment_bodies_that_are_not_strict_json_are_400s(
    api_env: Seeded, call: Any, path: str, raw: str | bytes, mention: str
) -> None:
    method = "PUT" if path == "/models/champion" else "POST"
    assert_problem(call(method, path, raw_body=raw), 400, "body", mention)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/jsonx",
        "application/json-seq",
        "application/json; charset=latin-1",
        "application/json;charset=utf-16",
    ],
)
def test_post_cycle_takes_json_only_as_application_json_in_utf8(
    state_machine: str, call: Any, content_type: str
) -> None:
    # When a JSON body is labelled as another media type, or as JSON in another charset
    response = call("POST", "/cycles", body=CYCLE, headers={"Content-Type": content_type})
    # Then 415 says what to send, and no cycle is started
    assert_problem(response, 415, "application/json", content_type)
    assert executions(state_machine) == []
    # While application/json, with or without its charset, is taken
    for accepted in ("application/json", 'application/json; charset="UTF-8"'):
        assert call("POST", "/cycles", body=CYCLE, headers={"Content-Type": accepted}).status == 202


# --- path ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["+{}", "0{}", "0_{}", "%2B{}", "%20{}", "{}%0A"])
def test_decision_ids_are_written_one_way_only(api_env: Seeded, call: Any, spelling: str) -> None:
    # Given a decision, and another way to write its id that reads as the same integer (e.g. /decisions/+1)
    decision_id = api_env.decision_ids[-1]
    assert call("GET", f"/decisions/{decision_id}").status == 200
    # When fetching it by that spelling
    response = call("GET", f"/decisions/{spelling.format(decision_id)}")
    # Then it names no decision: 404, not the decision with that integer id
    assert_problem(response, 404, "no decision with id")


@pytest.mark.parametrize("route", ["/decisions/{}", "/cycles/{}"])
def test_percent_encoded_path_segments_name_the_same_resource(api_env: Seeded, call: Any, route: str) -> None:
    # Given a decision and a cycle, fetched by their plain ids
    plain_id = str(api_env.decision_ids[0]) if route.startswith("/decisions") else api_env.cycle_done
    plain = call("GET", route.format(plain_id))
    assert plain.status == 200
    # When fetched with every byte of the id percent-encoded (API Gateway passes the path as sent)
    encoded = call("GET", route.format(every_byte_encoded(plain_id)))
    # Then the answer is the same
    assert encoded.status == 200 and encoded.json == plain.json


def test_cycle_id_with_a_colon_is_found_when_the_client_encodes_it(api_env: Seeded, call: Any) -> None:
    # Given a recorded cycle whose id has a colon, which many HTTP clients send as %3A
    with psycopg.connect(api_env.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO cycles (id, stage, timeframe, as_of, assets, status) "
            "VALUES ('sched:2019-05', 'dev', '1h', %s, '[\"BTCUSD\"]', 'SUCCEEDED')",
            (MAY,),
        )
    try:
        # When it is fetched encoded, and plain
        encoded, plain = call("GET", "/cycles/sched%3A2019-05"), call("GET", "/cycles/sched:2019-05")
        # Then both find it
        assert encoded.status == plain.status == 200 and encoded.json["cycle_id"] == "sched:2019-05"
    finally:
        with psycopg.connect(api_env.url, autocommit=True) as conn:
            conn.execute("DELETE FROM cycles WHERE id = 'sched:2019-05'")


# --- what a problem repeats back ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", f"/cycles/{LONG}", None, 400),
        ("GET", f"/{LONG}", None, 404),
        ("DELETE", f"/cycles/{LONG}", None, 405),
        ("POST", "/cycles", {**CYCLE, LONG: 1}, 400),
    ],
    ids=["400-path", "404-path", "405-path", "400-body-key"],
)
def test_problems_do_not_repeat_long_input_in_full(
    state_machine: str, call: Any, method: str, path: str, body: Any, status: int
) -> None:
    # When a request carries 5,000 characters where a short id or name belongs
    response = call(method, path, body=body)
    # Then the problem names the field or path, cut short: never the 5,000 characters
    problem = assert_problem(response, status)
    assert LONG not in response.text and len(response.text) < 1000
    assert problem["instance"] == (path if len(path) <= 100 else path[:100] + "...")


# --- HEAD ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/decisions", {"limit": "2"}),
        ("/decisions/{decision}", None),
        ("/cycles/seed-cycle-may", None),
        ("/health", None),
        ("/openapi.json", None),
        ("/decisions/999999", None),
        ("/decisions", {"limit": "0"}),
        ("/nope", None),
        ("/cycles", None),
    ],
)
def test_head_answers_as_get_does_without_the_body(
    api_env: Seeded, call: Any, path: str, query: dict[str, str] | None
) -> None:
    path = path.format(decision=api_env.decision_ids[0])
    # When asking with HEAD what GET would answer
    get, head = call("GET", path, query=query), call("HEAD", path, query=query)
    # Then the status and headers are GET's, and there is no body
    assert get.text and head.text == ""
    assert (head.status, head.headers) == (get.status, get.headers)


# --- anything at all ----------------------------------------------------------------------------------

JSON_TEXTS = st.one_of(
    st.text(),
    st.integers(0, 6000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(0, 6000).map(lambda digits: '{"assets": ["BTCUSD"], "timeframe": "1h", "as_of": ' + "9" * digits + "}"),
    st.lists(
        st.sampled_from(['"assets": ["BTCUSD"]', '"timeframe": "1h"', '"as_of": "2019-06-15T12:00:00Z"', '"x": NaN']),
        min_size=1,
        max_size=5,
    ).map(lambda members: "{" + ", ".join(members) + "}"),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    ).map(json.dumps),
)
SEGMENTS = st.one_of(
    st.text(max_size=40).map(lambda text: quote(text, safe="")),
    st.from_regex(r"\A(%[0-9A-Fa-f]{2}|[A-Za-z0-9+_.:~-]){0,20}\Z"),
)
PATHS = st.one_of(
    st.tuples(st.sampled_from(["/decisions/", "/cycles/", "/experiments/", "/"]), SEGMENTS).map("".join),
    st.tuples(
        st.just("/experiments/"),
        SEGMENTS,
        st.sampled_from(["/start", "/pause", "/stop", "/promote", "/rollback", "/advance", "/results"]),
    ).map("".join),
    st.sampled_from(["/decisions", "/cycles", "/health", "/openapi.json", "/experiments", "/models/champion"]),
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/jsonx",
        "application/json; charset=latin-1",
        "APPLICATION/JSON",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ]
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE"]),
    path=PATHS,
    body=st.none() | JSON_TEXTS | st.binary(max_size=64),
    content_type=CONTENT_TYPES,
)
def test_no_request_makes_the_api_fail(
    state_machine: str, call: Any, method: str, path: str, body: str | bytes | None, content_type: str | None
) -> None:
    # Given any method, path, body and content type, however malformed
    response = call(method, path, raw_body=body, headers={"Content-Type": content_type} if content_type else None)
    # Then the answer is never a 5xx; an error is a problem that repeats at most the start of the path
    assert response.status < 500, (method, path, body, content_type, response.text)
    if response.status >= 400 and method != "HEAD":
        assert len(assert_problem(response, response.status)["instance"]) <= 103
