"""RFC 7807 problem details: the one shape of every error the API returns.

``{"type", "title", "status", "detail", "instance"}`` served as ``application/problem+json``; validation
problems add ``errors`` (one entry per offending field). Routes raise ``ApiProblem`` subclasses; the
resolver's exception handlers (``ffe.api.errors``) turn those, validation errors, ffe errors and database
outages into problems, so no route has to build one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_JSON = "application/problem+json"

# Problem types are URNs: stable identifiers clients can switch on, that do not pretend to be web pages.
INVALID_REQUEST = "urn:ffe:problem:invalid-request"
NOT_FOUND = "urn:ffe:problem:not-found"
METHOD_NOT_ALLOWED = "urn:ffe:problem:method-not-allowed"
CONFLICT = "urn:ffe:problem:conflict"
UNSUPPORTED_MEDIA_TYPE = "urn:ffe:problem:unsupported-media-type"
DATABASE_UNAVAILABLE = "urn:ffe:problem:database-unavailable"
SERVICE_UNAVAILABLE = "urn:ffe:problem:service-unavailable"
INTERNAL_ERROR = "urn:ffe:problem:internal-error"

MAX_ECHO = 100  # the most characters of a path, parameter name or key that a problem repeats back


def shown(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` as a problem repeats it: cut to ``limit`` characters (a path can be as long as the client likes)."""
    return text if len(text) <= limit else text[:limit] + "..."


class FieldProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str = Field(description="where the problem is, e.g. query.limit, path.id, body.assets.0")
    message: str


class Problem(BaseModel):
    """An RFC 7807 problem details document."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(description="URN naming the kind of problem, e.g. urn:ffe:problem:invalid-request")
    title: str = Field(description="short, the same for every problem of this type")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="what went wrong with this request, naming the offending fields")
    instance: str = Field(description="the request path (its first 100 characters and '...' when longer)")
    errors: list[FieldProblem] | None = Field(default=None, description="validation problems, one per field")


class ApiProblem(Exception):
    """Raised by a route to answer with a problem; the message is the problem's ``detail``."""

    status = 500
    type = INTERNAL_ERROR
    title = "Internal error"

    def __init__(self, detail: str, *, errors: Sequence[FieldProblem] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors else None


class BadRequest(ApiProblem):
    status, type, title = 400, INVALID_REQUEST, "Invalid request"

    @classmethod
    def for_fields(cls, problems: Iterable[FieldProblem]) -> BadRequest:
        found = list(problems)
        return cls("; ".join(f"{p.field}: {p.message}" for p in found), errors=found)


class NotFound(ApiProblem):
    status, type, title = 404, NOT_FOUND, "Not found"


class MethodNotAllowed(ApiProblem):
    status, type, title = 405, METHOD_NOT_ALLOWED, "Method not allowed"

    def __init__(self, detail: str, allowed: Iterable[str]) -> None:
        super().__init__(detail)
        self.allowed = sorted(set(allowed))


class Conflict(ApiProblem):
    status, type, title = 409, CONFLICT, "Conflict"


class UnsupportedMediaType(ApiProblem):
    status, type, title = 415, UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"


class DatabaseUnavailable(ApiProblem):
    status, type, title = 503, DATABASE_UNAVAILABLE, "Database unavailable"


class ServiceUnavailable(ApiProblem):
    status, type, title = 503, SERVICE_UNAVAILABLE, "Service unavailable"


def problem_response(problem: ApiProblem, instance: str) -> Response[str]:
    """The HTTP response for ``problem`` (the body is serialised here: Powertools only encodes JSON types)."""
    body = Problem(
        type=problem.type,
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=shown(instance),
        errors=problem.errors,
    )
    headers: dict[str, str] = {}
    if isinstance(problem, MethodNotAllowed):
        headers["Allow"] = ", ".join(problem.allowed)
    if problem.status == 503:
        headers["Retry-After"] = "5"
    return Response(
        status_code=problem.status,
        content_type=PROBLEM_JSON,
        body=json.dumps(body.model_dump(mode="json", exclude_none=True), separators=(",", ":")),
        headers=headers,
    )


PROBLEM_RESPONSES: dict[int, dict[str, Any]] = {
    status: {"description": description, "content": {PROBLEM_JSON: {"model": Problem}}}
    for status, description in (
        (400, "Invalid request: each offending field is named in `detail` and `errors`"),
        (404, "Not found"),
        (409, "Conflicts with what is stored now (e.g. an invalid experiment transition): `detail` says why"),
        (500, "Unexpected server error (logged with the request id)"),
        (503, "The database (or Step Functions) is unavailable; retry later"),
    )
}
