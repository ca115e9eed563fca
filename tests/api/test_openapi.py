"""The checked-in OpenAPI document is exactly what the app generates, and says what the API does."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ffe import __version__
from ffe.api import app as api_app
from ffe.api.models import BIGINT_MAX, Cursor
from ffe.domain.universe import ASSET_CLASSES
from tests.api.conftest import Seeded

SCHEMA_FILE = Path(api_app.__file__).with_name("openapi.json")
REGENERATE = "PYTHONPATH=layers/core .venv/bin/python -m ffe.api.app > layers/core/ffe/api/openapi.json"


def test_checked_in_schema_is_what_the_app_generates() -> None:
    # Given the routes and models as they are now
    generated = api_app.openapi_schema()
    # Then the checked-in document is the same, byte for byte
    assert SCHEMA_FILE.read_text() == api_app.openapi_json(), f"openapi.json is stale; regenerate it: {REGENERATE}"
    assert generated["info"] == {
        "title": "ffe API",
        "version": __version__,
        "description": generated["info"]["description"],
    }


def test_openapi_route_serves_the_schema(api_env: Seeded, call: Any) -> None:
    response = call("GET", "/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    assert response.json == json.loads(SCHEMA_FILE.read_text())


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = json.loads(SCHEMA_FILE.read_text())
    return [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


@pytest.mark.parametrize(("path", "method", "operation"), operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_error_is_documented_as_a_problem(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    assert "422" not in responses  # Powertools' default; this API answers 400 problems
    for status in ("400", "500"):
        assert responses[status]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }, (path, method, status)


def test_schema_lists_exactly_the_routes_the_app_serves() -> None:
    documented = {(path, method.upper()) for path, method, _ in operations()}
    served = {
        (template.replace("<", "{").replace(">", "}"), method)
        for template, methods in api_app.app.methods.items()
        for method in methods
        if method != "HEAD"  # every GET route answers HEAD too; README says so, the schema does not list it
    }
    assert served - documented == {("/openapi.json", "GET")} and documented <= served


# --- the schema is as strict as the server ------------------------------------------------------------


def test_cycle_assets_are_documented_as_the_known_symbols_each_once() -> None:
    assets = json.loads(SCHEMA_FILE.read_text())["components"]["schemas"]["CycleRequest"]["properties"]["assets"]
    listed, absent = assets["anyOf"]  # a list of known symbols, or left out: the stage's universe file
    assert listed["items"]["enum"] == sorted(ASSET_CLASSES) and listed["uniqueItems"] is True
    assert absent == {"type": "null"} and "assets" not in json.loads(SCHEMA_FILE.read_text())["components"]["schemas"][
        "CycleRequest"
    ].get("required", [])


def cursor_pattern() -> str:
    (parameter,) = [p for p in operations_by_path()["/decisions"]["get"]["parameters"] if p["name"] == "cursor"]
    pattern: str = parameter["schema"]["anyOf"][0]["pattern"]
    return pattern


def operations_by_path() -> dict[str, Any]:
    paths: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())["paths"]
    return paths


def test_cursor_pattern_takes_exactly_the_cursors_the_api_writes(api_env: Seeded, call: Any) -> None:
    # Given the cursors of a walk through every decision, one per page, and cursors at the extremes
    written, cursor = [], None
    while True:
        page = call("GET", "/decisions", query={"limit": "1", **({"cursor": cursor} if cursor else {})}).json
        if (cursor := page["next_cursor"]) is None:
            break
        written.append(cursor)
    written += [
        Cursor(as_of=datetime(1, 1, 1, tzinfo=UTC), id=1).encode(),
        Cursor(as_of=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), id=BIGINT_MAX).encode(),
    ]
    assert len(written) == len(api_env.decision_ids) + 1
    # And tokens the API never writes: too short, padded, the same JSON with its keys in another order
    never = [
        "abc",
        Cursor(as_of=datetime(2019, 6, 15, tzinfo=UTC), id=3).encode() + "==",
        base64.urlsafe_b64encode(b'{"id":3,"as_of":"2019-06-15T00:00:00+00:00"}').decode().rstrip("="),
    ]
    # Then the documented pattern takes the first and refuses the others, which the server answers with 400
    assert [c for c in written if not re.search(cursor_pattern(), c)] == []
    assert [c for c in never if re.search(cursor_pattern(), c)] == []
    assert {call("GET", "/decisions", query={"cursor": c}).status for c in never} == {400}
