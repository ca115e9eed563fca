"""Every error of the API as an RFC 7807 problem (``ffe.api.problems``): ``install`` puts this on the resolver.

- Before a route runs, the request itself is checked: a body sent as anything but JSON (415), query
  parameters the route does not take or that are given twice (400: Powertools would ignore them).
- Then each kind of error has its answer: a route's ``ApiProblem`` as raised; request validation errors as
  400s naming every offending field; a database outage as 503 ``database-unavailable``; any other
  ``TransientError`` (e.g. Step Functions throttling) as 503; ``InvalidInputError`` as 400;
  ``UnknownExperimentError`` as 404; ``ConflictError`` (an invalid experiment transition) as 409; a response
  that fails its own model, or anything unexpected, as a 500 that names the request id (logged).
- A path no route serves is a 404; a path served with other methods is a 405 with ``Allow``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)

from ffe.adapters.queries import DatabaseUnavailableError
from ffe.api.json_body import InvalidJsonBody
from ffe.api.problems import (
    ApiProblem,
    BadRequest,
    Conflict,
    DatabaseUnavailable,
    FieldProblem,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    UnsupportedMediaType,
    problem_response,
    shown,
)
from ffe.api.resolver import ProxyResolver
from ffe.contracts import describe_errors
from ffe.domain.errors import ConflictError, InvalidInputError, TransientError, UnknownExperimentError
from ffe.observability import logger


def install(app: ProxyResolver) -> None:
    """Check every request of ``app`` before its route runs, and answer every error with a problem."""
    problems = _Problems(app)
    app.use(middlewares=[problems.check_request])
    handlers: list[tuple[type[Exception] | list[type[Exception]], Callable[[Any], Response[str]]]] = [
        (ApiProblem, problems.api_problem),
        (RequestValidationError, problems.invalid_request),
        (RequestUnsupportedContentType, problems.unsupported_media_type),
        (InvalidJsonBody, problems.invalid_json),
        (InvalidInputError, problems.invalid_input),
        (UnknownExperimentError, problems.unknown_experiment),
        (ConflictError, problems.conflict),
        ([DatabaseUnavailableError, psycopg.OperationalError], problems.database_unavailable),
        (TransientError, problems.transient),
        (ResponseValidationError, problems.bad_response),
        (NotFoundError, problems.not_found),
        (ValueError, problems.value_error),
        (Exception, problems.unexpected),
    ]
    for exc_class, handler in handlers:
        app.exception_handler(exc_class)(handler)


def field_problems(errors: Sequence[Mapping[str, Any]]) -> list[FieldProblem]:
    """Pydantic/Powertools validation errors as field problems (locations like ``query.limit``).

    Only the location (each part cut to ``MAX_ECHO`` characters) and pydantic's message are kept: never
    the offending input (it may be an attack string, and echoing it back helps nobody) nor pydantic's
    internals (URLs, class names).
    """
    described = describe_errors(errors, whole="request", plain=True, part=shown)
    return [FieldProblem(field=field, message=message) for field, message in described]


class _Problems:
    """The request checks and exception handlers of one resolver (they read its current event)."""

    def __init__(self, app: ProxyResolver) -> None:
        self.app = app

    # --- the request, before its route runs ---------------------------------------------------------------

    def check_request(self, resolver: APIGatewayRestResolver, next_middleware: Callable[..., Any]) -> Any:
        unsupported = self.unsupported_body()
        if unsupported:
            raise unsupported
        problems = self.query_problems()
        if problems:
            raise BadRequest.for_fields(problems)
        return next_middleware(resolver)

    def query_problems(self) -> list[FieldProblem]:
        """Unknown or repeated query parameters of the current request (Powertools would ignore them)."""
        current = self.app.current_route()
        if current is None:
            return []
        allowed = {param.alias for param in current.dependant.query_params}
        single = self.app.current_event.query_string_parameters or {}
        multi = self.app.current_event.multi_value_query_string_parameters or {}
        problems = []
        for name in sorted(set(single) | set(multi)):
            if name not in allowed:
                listed = ", ".join(sorted(allowed)) or "none"
                problems.append(
                    FieldProblem(field=f"query.{shown(name)}", message=f"unknown parameter (allowed: {listed})")
                )
            elif len(multi.get(name) or ()) > 1:
                problems.append(FieldProblem(field=f"query.{shown(name)}", message="given more than once"))
        return problems

    def takes_body(self) -> bool:
        current = self.app.current_route()
        return current is not None and bool(current.dependant.body_params)

    def unsupported_body(self) -> UnsupportedMediaType | None:
        """A body sent as anything but JSON to a route that takes one (Powertools would try it as a form)."""
        content_type = (self.app.current_event.headers.get("content-type") or "").strip()
        if not self.takes_body() or not content_type or _is_json(content_type):
            return None
        return UnsupportedMediaType(f"send the body as application/json in UTF-8, not {shown(content_type)!r}")

    def undecodable_body(self) -> BadRequest | None:
        """A body that is not UTF-8 (API Gateway passes such bytes base64-encoded; Powertools fails decoding them)."""
        event = self.app.current_event
        if not (self.takes_body() and event.is_base64_encoded and event.body):
            return None
        try:
            base64.b64decode(event.body).decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError
            return BadRequest.for_fields([FieldProblem(field="body", message="not UTF-8 text (JSON is UTF-8)")])
        return None

    # --- errors -> problems -------------------------------------------------------------------------------

    def problem(self, problem: ApiProblem) -> Response[str]:
        """The problem response; 4xx and 503 are logged here, 500s by the handler that knows the exception."""
        if problem.status < 500:
            logger.info("request rejected", extra={"status": problem.status, "detail": problem.detail})
        elif problem.status == 503:
            logger.warning("dependency unavailable", extra={"status": problem.status, "detail": problem.detail})
        return problem_response(problem, instance=self.app.current_event.path)

    def api_problem(self, exc: ApiProblem) -> Response[str]:
        if exc.status == 500:
            logger.error("request failed", extra={"detail": exc.detail})
        return self.problem(exc)

    def invalid_request(self, exc: RequestValidationError) -> Response[str]:
        return self.problem(
            self.unsupported_body() or BadRequest.for_fields([*field_problems(exc.errors()), *self.query_problems()])
        )

    def unsupported_media_type(self, exc: RequestUnsupportedContentType) -> Response[str]:
        content_type = shown(self.app.current_event.headers.get("content-type", ""))
        return self.problem(
            self.unsupported_body() or UnsupportedMediaType(f"send the body as application/json, not {content_type!r}")
        )

    def invalid_json(self, exc: InvalidJsonBody) -> Response[str]:
        return self.problem(
            self.unsupported_body()
            or BadRequest.for_fields([FieldProblem(field="body", message=str(exc)), *self.query_problems()])
        )

    def invalid_input(self, exc: InvalidInputError) -> Response[str]:
        return self.problem(BadRequest(str(exc)))

    def unknown_experiment(self, exc: UnknownExperimentError) -> Response[str]:
        return self.problem(NotFound(str(exc)))

    def conflict(self, exc: ConflictError) -> Response[str]:
        return self.problem(Conflict(str(exc)))

    def database_unavailable(self, exc: Exception) -> Response[str]:
        logger.warning("database unavailable", extra={"error": str(exc)})
        return self.problem(DatabaseUnavailable("the decision store is unavailable; retry later"))

    def transient(self, exc: TransientError) -> Response[str]:
        return self.problem(ServiceUnavailable(f"a dependency is unavailable; retry later ({type(exc).__name__})"))

    def bad_response(self, exc: ResponseValidationError) -> Response[str]:
        logger.error("response failed its own schema", extra={"errors": [str(e.get("loc")) for e in exc.errors()]})
        return self.problem(ApiProblem("the response could not be produced; this is logged and will be fixed"))

    def not_found(self, exc: NotFoundError) -> Response[str]:
        method, path = self.app.current_event.http_method.upper(), self.app.current_event.path
        allowed = self.app.allowed_methods(path)
        if allowed:
            return self.problem(MethodNotAllowed(f"{shown(method)} is not allowed on {shown(path)}", allowed))
        return self.problem(NotFound(f"no route for {shown(method)} {shown(path)}"))

    def value_error(self, exc: ValueError) -> Response[str]:
        # Powertools raises a bare ValueError for a form body it cannot parse (e.g. multipart without a boundary),
        # and a UnicodeDecodeError for a body that is not UTF-8.
        problem = self.unsupported_body() or self.undecodable_body()
        return self.problem(problem) if problem else self.unexpected(exc)

    def unexpected(self, exc: Exception) -> Response[str]:
        logger.exception("unexpected error")
        request_id = self.app.current_event.request_context.request_id
        return self.problem(ApiProblem(f"unexpected error; it is logged under request id {request_id}"))


def _is_json(content_type: str) -> bool:
    """``application/json``, with no charset or UTF-8 (Powertools would also take ``application/jsonx``)."""
    media_type, *params = (part.strip().lower() for part in content_type.split(";"))
    charsets = {value.strip('"') for name, _, value in (p.partition("=") for p in params) if name == "charset"}
    return media_type == "application/json" and charsets <= {"utf-8"}
