"""The checked-in OpenAPI document is exactly what the app generates, and says what the API does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ffe import __version__
from ffe.api import app as api_app
from tests.api.conftest import Seeded

SCHEMA_FILE = Path(api_app.__file__).with_name("openapi.json")
REGENERATE = "PYTHONPATH=layers/core .venv/bin/python -m ffe.api.app > layers/core/ffe/api/openapi.json"


def test_checked_in_schema_is_what_the_app_generates() -> None:
    # Given the routes and models as they are now
    generated = api_app.openapi_schema()
    # Then the checked-in document is the same, byte for byte
    assert SCHEMA_FILE.read_text() == api_app.openapi_json(), f"openapi.json is stale; regenerate it: {REGENERATE}"
    assert generated["info"] == {
        "title": "ffe API", "version": __version__, "description": generated["info"]["description"],
    }  # fmt: skip


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
        for template, methods in api_app._ROUTES.items()
        for method in methods
    }
    assert served - documented == {("/openapi.json", "GET")} and documented <= served
