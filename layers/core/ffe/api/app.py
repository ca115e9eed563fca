"""The public HTTP API: decisions, cycles on demand, health (API Gateway REST -> the Api function).

Requests and responses are validated against the pydantic models in ``ffe.api.models`` (Powertools
OpenAPI validation); every error is an RFC 7807 problem (``ffe.api.problems``). Unknown or repeated
query parameters are rejected, not ignored; bodies are strict JSON (``ffe.api.json_body``) sent as
``application/json``. Every ``GET`` route also answers ``HEAD``. Reads go through
``ffe.adapters.queries``; cycles are started on the DecisionCycle state machine (``STATE_MACHINE_ARN``).

Regenerate the checked-in schema with ``python -m ffe.api.app > layers/core/ffe/api/openapi.json``.
"""

import base64
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Route
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from ffe import __version__
from ffe.adapters.queries import DatabaseUnavailableError, DecisionFilters, DecisionQueries, Keyset, get_queries
from ffe.api.json_body import InvalidJsonBody
from ffe.api.json_body import parse as parse_json_body
from ffe.api.models import (
    BIGINT_MAX,
    CURSOR_PATTERN,
    DEFAULT_PAGE,
    MAX_PAGE,
    Cursor,
    CycleAccepted,
    CycleRequest,
    CycleView,
    DatabaseHealth,
    DecisionDetail,
    DecisionOutcome,
    DecisionPage,
    DecisionSummary,
    ExecutionStatus,
    FailureOutcome,
    HealthReport,
    IsoDatetime,
)
from ffe.api.problems import (
    PROBLEM_JSON,
    PROBLEM_RESPONSES,
    ApiProblem,
    BadRequest,
    DatabaseUnavailable,
    FieldProblem,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    UnsupportedMediaType,
    field_problems,
    problem_response,
    shown,
)
from ffe.api.resolver import ProxyResolver
from ffe.contracts import CycleInput
from ffe.domain.errors import InvalidInputError, PermanentError, TransientError
from ffe.domain.models import Action, Timeframe
from ffe.observability import logger, tracer
from ffe.settings import BaseSettings, ProviderSettings, get_settings

app = ProxyResolver(
    enable_validation=True,
    # A response that fails its own model is our bug: 500, never the 422/400 Powertools would send.
    response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
    json_body_deserializer=parse_json_body,
)

ASSET_PATTERN = r"^[A-Z0-9]{3,12}$"
CYCLE_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"

# Path template -> methods, for 405 answers (Powertools only knows "not found").
_ROUTES: dict[str, set[str]] = {}


def route(method: str, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``app.route`` that also remembers the path's methods (for 405 answers); a GET route answers HEAD too."""
    methods = [method, "HEAD"] if method == "GET" else [method]
    _ROUTES.setdefault(path, set()).update(methods)

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        app.route(path, method, **kwargs)(func)
        if method == "GET":  # the resolver drops the body; HEAD is not in the OpenAPI document
            app.route(path, "HEAD", **{**kwargs, "include_in_schema": False})(func)
        return func

    return register


def _responses(status: int, description: str, *problems: int) -> dict[int, OpenAPIResponse]:
    documented: dict[int, Any] = {status: {"description": description}}
    for code in sorted({400, 500, *problems}):
        documented[code] = PROBLEM_RESPONSES[code]
    return documented


# --- Step Functions -----------------------------------------------------------------------------------

STATE_MACHINE_ARN_PATTERN = r"^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]{1,80}$"
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "ServiceUnavailable"}


class ApiSettings(BaseSettings):
    state_machine_arn: str | None = Field(default=None, pattern=STATE_MACHINE_ARN_PATTERN)


class StepFunctionsUnavailableError(TransientError):
    """Step Functions could not be reached, or throttled us."""


@cache
def _stepfunctions() -> Any:
    """The container's Step Functions client: short timeouts, few retries (a caller is waiting)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("stepfunctions", config=config)


def _unavailable_or_bug(exc: BotoCoreError | ClientError) -> Exception:
    """Throttling, 5xx and connection errors are worth a retry (503); the rest is a bug or misconfiguration."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        if error.get("Code") not in _THROTTLED and status < 500:
            return exc
    return StepFunctionsUnavailableError(f"Step Functions unavailable: {type(exc).__name__}")


def execution_arn_for(cycle_id: str) -> str | None:
    """The execution ARN of a cycle this API started (``api-...``: the execution is named after it)."""
    machine = get_settings(ApiSettings).state_machine_arn
    if not machine or not cycle_id.startswith("api-"):
        return None
    head, _, name = machine.rpartition(":stateMachine:")
    return f"{head}:execution:{name}:{cycle_id}"


@tracer.capture_method
def start_cycle(cycle: CycleInput) -> str:
    machine = get_settings(ApiSettings).state_machine_arn
    if not machine:
        raise PermanentError("STATE_MACHINE_ARN is not set: this API cannot start cycles")
    try:
        started = _stepfunctions().start_execution(
            stateMachineArn=machine, name=cycle.cycle_id, input=cycle.model_dump_json()
        )
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable_or_bug(exc) from exc
    return str(started["executionArn"])


@tracer.capture_method
def describe_execution(arn: str) -> tuple[ExecutionStatus | None, dict[str, Any]]:
    """The execution's status and input; ``(None, {})`` when Step Functions does not know it."""
    try:
        desc = _stepfunctions().describe_execution(executionArn=arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
            return None, {}
        raise _unavailable_or_bug(exc) from exc
    except BotoCoreError as exc:
        raise _unavailable_or_bug(exc) from exc
    try:
        execution_input = json.loads(desc.get("input") or "{}")
    except ValueError:
        execution_input = {}
    status = ExecutionStatus(
        execution_arn=str(desc["executionArn"]),
        status=str(desc["status"]),
        started_at=desc.get("startDate"),
        stopped_at=desc.get("stopDate"),
        error=desc.get("error"),
        cause=str(desc["cause"])[:4000] if desc.get("cause") else None,
    )
    return status, execution_input if isinstance(execution_input, dict) else {}


# --- routes -------------------------------------------------------------------------------------------


@route(
    "GET",
    "/decisions",
    summary="List decisions, newest first",
    description="Keyset-paginated by (as_of, id) descending: follow `next_cursor` until it is null.",
    responses=_responses(200, "A page of decisions", 503),
    tags=["decisions"],
)
def list_decisions(
    asset: Annotated[str | None, Query(pattern=ASSET_PATTERN, description="e.g. BTCUSD")] = None,
    action: Annotated[Action | None, Query()] = None,
    timeframe: Annotated[Timeframe | None, Query()] = None,
    from_: Annotated[
        IsoDatetime | None, Query(alias="from", description="as_of >= from (ISO-8601 with offset)")
    ] = None,
    to: Annotated[IsoDatetime | None, Query(description="as_of <= to (ISO-8601 with offset)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page")] = None,
) -> DecisionPage:
    if from_ is not None and to is not None and from_ > to:
        raise BadRequest.for_fields([FieldProblem(field="query.from", message="must not be after query.to")])
    after = Cursor.decode(cursor) if cursor else None
    filters = DecisionFilters(
        asset=asset,
        action=action.value if action else None,
        timeframe=timeframe.value if timeframe else None,
        start=from_,
        end=to,
    )
    keyset = Keyset(after.as_of, after.id) if after else None
    rows = get_queries().decisions(filters, keyset, limit + 1)  # one more tells whether a next page exists
    items = [DecisionSummary.model_validate(row) for row in rows[:limit]]
    next_cursor = Cursor(as_of=items[-1].as_of, id=items[-1].id).encode() if len(rows) > limit else None
    return DecisionPage(items=items, next_cursor=next_cursor)


@route(
    "GET",
    "/decisions/<id>",
    summary="One decision with its reasons, source, risk events and execution",
    responses=_responses(200, "The decision", 404, 503),
    tags=["decisions"],
)
def get_decision(
    decision_id: Annotated[int, Path(alias="id", ge=1, description="a positive integer, in plain digits")],
) -> DecisionDetail:
    spelled = app.path_text("id")
    if spelled != str(decision_id):  # "+1", "01", "1_0", " 1" parse as integers, but no id is written so
        raise NotFound(f"no decision with id {shown(spelled)!r}")
    row = get_queries().decision(decision_id) if decision_id <= BIGINT_MAX else None  # ids are bigints
    if row is None:
        raise NotFound(f"no decision with id {decision_id}")
    return DecisionDetail.model_validate(row)


@route(
    "POST",
    "/cycles",
    summary="Start a decision cycle now",
    description="Starts a DecisionCycle execution named after the new cycle id; follow it with GET /cycles/{id}.",
    status_code=202,
    responses=_responses(202, "The cycle was started", 503),
    tags=["cycles"],
)
def post_cycle(request: Annotated[CycleRequest, Body()]) -> Response[CycleAccepted]:
    cycle = CycleInput(
        cycle_id=f"api-{uuid.uuid4()}",
        as_of=request.resolved_as_of(),
        timeframe=request.timeframe,
        assets=list(request.assets),
    )
    arn = start_cycle(cycle)
    logger.info("cycle started", extra={"cycle_id": cycle.cycle_id, "execution_arn": arn})
    return Response(
        status_code=202,
        content_type="application/json",
        body=CycleAccepted(cycle_id=cycle.cycle_id, execution_arn=arn),
        headers={"Location": f"/cycles/{cycle.cycle_id}"},
    )


@route(
    "GET",
    "/cycles/<id>",
    summary="A cycle: its recorded state, per-asset outcomes and live execution status",
    responses=_responses(200, "The cycle", 404, 503),
    tags=["cycles"],
)
def get_cycle(
    cycle_id: Annotated[str, Path(alias="id", pattern=CYCLE_ID_PATTERN, min_length=1, max_length=128)],
) -> CycleView:
    rows = get_queries().cycle(cycle_id)
    recorded = rows.cycle or {}
    arn = recorded.get("execution_arn") or next(
        (r["execution_id"] for r in [*rows.decisions, *rows.failures] if r.get("execution_id")), None
    )
    arn = arn or execution_arn_for(cycle_id)
    execution: ExecutionStatus | None = None
    execution_input: dict[str, Any] = {}
    if arn:
        try:
            execution, execution_input = describe_execution(arn)
        except StepFunctionsUnavailableError:
            if not rows.found:
                raise  # nothing else to show: 503, not a misleading 404
            logger.warning("execution status unavailable", extra={"execution_arn": arn})
    if not rows.found and execution is None:
        raise NotFound(f"no cycle with id {cycle_id}")
    return _cycle_view(cycle_id, rows.cycle, rows.decisions, rows.failures, execution, execution_input)


@route(
    "GET",
    "/health",
    summary="Database, market-data providers and the age of the last cycle",
    responses={
        200: {"description": "The database is reachable (status may still be degraded)"},
        503: {
            "description": "The database is unreachable",
            "content": {"application/json": {"model": HealthReport}},
        },
        400: PROBLEM_RESPONSES[400],
        500: PROBLEM_RESPONSES[500],
    },
    tags=["health"],
)
def health() -> Response[HealthReport]:
    from ffe.health import market_data_health  # looked up per call, so a test can replace it

    queries = get_queries()
    database, age = _database_health(queries), None
    if database.ok:
        try:
            age = queries.last_cycle_age_seconds()
        except TransientError:
            logger.warning("last cycle age unavailable")
    try:
        market = market_data_health(get_settings(ProviderSettings))
    except Exception:  # health must always answer; the reason is in the log
        logger.exception("market-data health unavailable")
        market = None
    healthy_market = (
        market is not None
        and market.cache_reachable is not False
        and all(p.breaker == "closed" for p in market.providers if p.configured)
    )
    report = HealthReport(
        status="ok" if database.ok and healthy_market else "degraded",
        database=database,
        market_data=market,
        last_cycle_age_seconds=age,
    )
    return Response(
        status_code=200 if database.ok else 503,
        content_type="application/json",
        body=report,
        headers={"Cache-Control": "no-store"},
    )


@route("GET", "/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=openapi_json())


# --- helpers ------------------------------------------------------------------------------------------


def _database_health(queries: DecisionQueries) -> DatabaseHealth:
    try:
        latency = queries.ping()
    except Exception as exc:  # unreachable, misconfigured, secret unreadable: name it, never the connection string
        logger.warning("database health check failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return DatabaseHealth(ok=False, latency_ms=None, error=type(exc).__name__)
    return DatabaseHealth(ok=True, latency_ms=round(latency, 3), error=None)


# Recorded cycle statuses that say the cycle will decide nothing more (its execution may still read SUCCEEDED).
_ENDED_UNDECIDED = {"SKIPPED", "ABORTED", "TIMED_OUT"}


def _cycle_view(
    cycle_id: str,
    recorded: dict[str, Any] | None,
    decisions: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    execution: ExecutionStatus | None,
    execution_input: dict[str, Any],
) -> CycleView:
    outcomes: dict[str, DecisionOutcome | FailureOutcome] = {
        f["asset"]: FailureOutcome(error_class=f["error_class"], message=f["message"])
        for f in failures
        if f["asset"] is not None
    }
    for d in decisions:  # a decision wins over a failure of the same asset (a retried, then decided, asset)
        outcomes[d["asset"]] = DecisionOutcome(
            decision_id=d["id"], action=d["action"], confidence=d["confidence"], reason=d["reason"], stale=d["stale"]
        )
    cycle_failure = next(
        (FailureOutcome(error_class=f["error_class"], message=f["message"]) for f in failures if f["asset"] is None),
        None,
    )
    recorded = recorded or {}
    requested = recorded.get("assets") or execution_input.get("assets") or []
    assets = [a for a in requested if isinstance(a, str)]
    first = decisions[0] if decisions else {}
    ended = recorded.get("status") in _ENDED_UNDECIDED  # what happened to the cycle, whatever its execution says
    return CycleView(
        cycle_id=cycle_id,
        status=recorded["status"] if ended else execution.status if execution else recorded.get("status"),
        reason=recorded.get("reason") or None,
        stage=recorded.get("stage"),
        timeframe=recorded.get("timeframe") or _str_or_none(execution_input.get("timeframe")) or first.get("timeframe"),
        as_of=recorded.get("as_of") or _datetime_or_none(execution_input.get("as_of")) or first.get("as_of"),
        assets=assets,
        started_at=recorded.get("started_at") or (execution.started_at if execution else None),
        finished_at=recorded.get("finished_at") or (execution.stopped_at if execution else None),
        execution_arn=execution.execution_arn if execution else recorded.get("execution_arn"),
        execution=execution,
        outcomes=dict(sorted(outcomes.items())),
        pending_assets=[] if ended else [a for a in assets if a not in outcomes],
        cycle_failure=cycle_failure,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _datetime_or_none(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _our_route() -> Route | None:
    """The route serving this request; None for the resolver's catch-all not-found route."""
    current: Route | None = app.context.get("_route")
    if current is None or current.method not in _ROUTES.get(current.path, ()):
        return None
    return current


def _query_problems() -> list[FieldProblem]:
    """Unknown or repeated query parameters of the current request (Powertools would ignore them)."""
    current = _our_route()
    if current is None:
        return []
    allowed = {param.alias for param in current.dependant.query_params}
    single = app.current_event.query_string_parameters or {}
    multi = app.current_event.multi_value_query_string_parameters or {}
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


def _takes_body() -> bool:
    current = _our_route()
    return current is not None and bool(current.dependant.body_params)


def _is_json(content_type: str) -> bool:
    """``application/json``, with no charset or UTF-8 (Powertools would also take ``application/jsonx``)."""
    media_type, *params = (part.strip().lower() for part in content_type.split(";"))
    charsets = {value.strip('"') for name, _, value in (p.partition("=") for p in params) if name == "charset"}
    return media_type == "application/json" and charsets <= {"utf-8"}


def _unsupported_body() -> UnsupportedMediaType | None:
    """A body sent as anything but JSON to a route that takes one (Powertools would try it as a form)."""
    content_type = (app.current_event.headers.get("content-type") or "").strip()
    if not _takes_body() or not content_type or _is_json(content_type):
        return None
    return UnsupportedMediaType(f"send the body as application/json in UTF-8, not {shown(content_type)!r}")


def _undecodable_body() -> BadRequest | None:
    """A body that is not UTF-8 (API Gateway passes such bytes base64-encoded; Powertools fails decoding them)."""
    event = app.current_event
    if not (_takes_body() and event.is_base64_encoded and event.body):
        return None
    try:
        base64.b64decode(event.body).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError
        return BadRequest.for_fields([FieldProblem(field="body", message="not UTF-8 text (JSON is UTF-8)")])
    return None


def _strict_query(resolver: APIGatewayRestResolver, next_middleware: Callable[..., Any]) -> Any:
    unsupported = _unsupported_body()
    if unsupported:
        raise unsupported
    problems = _query_problems()
    if problems:
        raise BadRequest.for_fields(problems)
    return next_middleware(resolver)


app.use(middlewares=[_strict_query])


# --- errors -> problems -------------------------------------------------------------------------------


def _problem(problem: ApiProblem) -> Response[str]:
    """The problem response; 4xx and 503 are logged here, 500s by the handler that knows the exception."""
    if problem.status < 500:
        logger.info("request rejected", extra={"status": problem.status, "detail": problem.detail})
    elif problem.status == 503:
        logger.warning("dependency unavailable", extra={"status": problem.status, "detail": problem.detail})
    return problem_response(problem, instance=app.current_event.path)


@app.exception_handler(ApiProblem)
def _api_problem(exc: ApiProblem) -> Response[str]:
    if exc.status == 500:
        logger.error("request failed", extra={"detail": exc.detail})
    return _problem(exc)


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[str]:
    return _problem(_unsupported_body() or BadRequest.for_fields([*field_problems(exc.errors()), *_query_problems()]))


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_media_type(exc: RequestUnsupportedContentType) -> Response[str]:
    content_type = shown(app.current_event.headers.get("content-type", ""))
    return _problem(
        _unsupported_body() or UnsupportedMediaType(f"send the body as application/json, not {content_type!r}")
    )


@app.exception_handler(InvalidJsonBody)
def _invalid_json(exc: InvalidJsonBody) -> Response[str]:
    return _problem(
        _unsupported_body() or BadRequest.for_fields([FieldProblem(field="body", message=str(exc)), *_query_problems()])
    )


@app.exception_handler(InvalidInputError)
def _invalid_input(exc: InvalidInputError) -> Response[str]:
    return _problem(BadRequest(str(exc)))


@app.exception_handler([DatabaseUnavailableError, psycopg.OperationalError])
def _database_unavailable(exc: Exception) -> Response[str]:
    logger.warning("database unavailable", extra={"error": str(exc)})
    return _problem(DatabaseUnavailable("the decision store is unavailable; retry later"))


@app.exception_handler(TransientError)
def _transient(exc: TransientError) -> Response[str]:
    return _problem(ServiceUnavailable(f"a dependency is unavailable; retry later ({type(exc).__name__})"))


@app.exception_handler(ResponseValidationError)
def _bad_response(exc: ResponseValidationError) -> Response[str]:
    logger.error("response failed its own schema", extra={"errors": [str(e.get("loc")) for e in exc.errors()]})
    return _problem(ApiProblem("the response could not be produced; this is logged and will be fixed"))


@app.not_found
def _not_found(exc: NotFoundError) -> Response[str]:
    method, path = app.current_event.http_method.upper(), app.current_event.path
    allowed = {m for template, methods in _ROUTES.items() if _template(template).match(path) for m in methods}
    if allowed:
        return _problem(MethodNotAllowed(f"{shown(method)} is not allowed on {shown(path)}", allowed))
    return _problem(NotFound(f"no route for {shown(method)} {shown(path)}"))


@app.exception_handler(ValueError)
def _value_error(exc: ValueError) -> Response[str]:
    # Powertools raises a bare ValueError for a form body it cannot parse (e.g. multipart without a boundary),
    # and a UnicodeDecodeError for a body that is not UTF-8.
    problem = _unsupported_body() or _undecodable_body()
    return _problem(problem) if problem else _unexpected(exc)


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[str]:
    logger.exception("unexpected error")
    request_id = app.current_event.request_context.request_id
    return _problem(ApiProblem(f"unexpected error; it is logged under request id {request_id}"))


@cache
def _template(path: str) -> re.Pattern[str]:
    """``/decisions/<id>`` -> a regex matching ``/decisions/<anything but a slash>``."""
    parts = ("[^/]+" if part.startswith("<") else re.escape(part) for part in path.split("/"))
    return re.compile("^" + "/".join(parts) + "$")


# --- OpenAPI ------------------------------------------------------------------------------------------


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy)."""
    schema: dict[str, Any] = json.loads(openapi_json())
    return schema


@cache
def openapi_json() -> str:
    """The OpenAPI document as served and checked in: Powertools' schema minus its 422s (ours are 400 problems)."""
    schema: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="ffe API",
            version=__version__,
            description="Trading decisions with their reasons, decision cycles on demand, health. "
            "Every error is an RFC 7807 problem (application/problem+json).",
        )
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


def reset() -> None:
    """Forget what a warm container keeps (the database connection, the Step Functions client)."""
    from ffe.adapters import queries

    if queries.get_queries.cache_info().currsize:
        queries.get_queries().close()
    queries.get_queries.cache_clear()
    _stepfunctions.cache_clear()


if __name__ == "__main__":
    print(openapi_json(), end="")
