"""The OpenAPI document as served and checked in: Powertools' schema, made to say what the API does.

Powertools documents a 422 for every validated route and its own validation-error schemas; this API answers
400 problems instead, and a 500 problem where Powertools puts its response validation error. pydantic's
integral bounds (``minimum: 1.0``) are written as integers.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from ffe import __version__
from ffe.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES

TITLE = "ffe API"
DESCRIPTION = (
    "Trading decisions with their reasons, decision cycles on demand, health. "
    "Every error is an RFC 7807 problem (application/problem+json)."
)


def document(app: APIGatewayRestResolver) -> str:
    """The OpenAPI document of ``app``'s routes, as JSON text (indented, ending in a newline)."""
    schema: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title=TITLE, version=__version__, description=DESCRIPTION)
    )
    problem_500 = {"description": PROBLEM_RESPONSES[500]["description"]}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            if "500" in responses:  # Powertools puts its ResponseValidationError here; we answer a problem
                problem_500["content"] = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
                responses["500"] = problem_500
    schemas = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    return json.dumps(_integral_bounds(schema), indent=2) + "\n"


def _integral_bounds(node: Any) -> Any:
    """``minimum: 1`` rather than pydantic's ``1.0`` (the OpenAPI model types bounds as floats)."""
    if isinstance(node, dict):
        return {
            key: int(value)
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53
            else _integral_bounds(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_integral_bounds(item) for item in node]
    return node


def responses(status: int, description: str, *problems: int) -> dict[int, OpenAPIResponse]:
    """A route's documented responses: its success, and the problems it answers (400 and 500 always)."""
    documented: dict[int, Any] = {status: {"description": description}}
    for code in sorted({400, 500, *problems}):
        documented[code] = PROBLEM_RESPONSES[code]
    return documented
