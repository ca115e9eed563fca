"""The public HTTP API: decisions, cycles on demand, health (API Gateway REST -> the Api function).

Requests and responses are validated against the pydantic models in ``ffe.api.models`` (Powertools
OpenAPI validation); every error is an RFC 7807 problem (``ffe.api.errors`` maps each error to one of
``ffe.api.problems``). Unknown or repeated query parameters are rejected, not ignored; bodies are strict
JSON (``ffe.api.json_body``) sent as ``application/json``. Every ``GET`` route also answers ``HEAD``.
Reads go through ``ffe.adapters.queries``; cycles are started on the DecisionCycle state machine
(``ffe.api.cycles``).

A route is one ``@app.endpoint(method, path, ...)`` function: it validates nothing by hand that its
annotations can say, and raises an ``ApiProblem`` (or lets an ffe error through) rather than building a
response for an error.

Regenerate the checked-in schema with ``python -m ffe.api.app > layers/core/ffe/api/openapi.json``.
"""

import json
import uuid
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from ffe.adapters import executions
from ffe.adapters.queries import DecisionFilters, DecisionQueries, Keyset, get_queries
from ffe.api import errors, experiments, openapi
from ffe.api.cycles import show_cycle, start_cycle
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
    DecisionPage,
    DecisionSummary,
    HealthReport,
    IsoDatetime,
)
from ffe.api.openapi import responses
from ffe.api.problems import PROBLEM_RESPONSES, BadRequest, FieldProblem, NotFound, shown
from ffe.api.resolver import ProxyResolver
from ffe.contracts import CYCLE_ID_PATTERN, SYMBOL_PATTERN, CycleInput
from ffe.domain.errors import TransientError
from ffe.domain.models import Action, Timeframe
from ffe.observability import logger
from ffe.settings import ProviderSettings, get_settings

app = ProxyResolver(
    enable_validation=True,
    # A response that fails its own model is our bug: 500, never the 422/400 Powertools would send.
    response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
    json_body_deserializer=parse_json_body,
)
errors.install(app)
experiments.register(app)  # the experiment lifecycle and the champion (ffe.api.experiments)


@app.endpoint(
    "GET",
    "/decisions",
    summary="List decisions, newest first",
    description="Keyset-paginated by (as_of, id) descending: follow `next_cursor` until it is null.",
    responses=responses(200, "A page of decisions", 503),
    tags=["decisions"],
)
def list_decisions(
    asset: Annotated[str | None, Query(pattern=SYMBOL_PATTERN, description="e.g. BTCUSD")] = None,
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


@app.endpoint(
    "GET",
    "/decisions/<id>",
    summary="One decision with its reasons, source, risk events and execution",
    responses=responses(200, "The decision", 404, 503),
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


@app.endpoint(
    "POST",
    "/cycles",
    summary="Start a decision cycle now",
    description="Starts a DecisionCycle execution named after the new cycle id; follow it with GET /cycles/{id}.",
    status_code=202,
    responses=responses(202, "The cycle was started", 503),
    tags=["cycles"],
)
def post_cycle(request: Annotated[CycleRequest, Body()]) -> Response[CycleAccepted]:
    cycle = CycleInput(
        cycle_id=f"api-{uuid.uuid4()}",
        as_of=request.resolved_as_of(),
        timeframe=request.timeframe,
        assets=list(request.assets) if request.assets is not None else None,  # None: the stage's universe file
    )
    arn = start_cycle(cycle)
    logger.info("cycle started", extra={"cycle_id": cycle.cycle_id, "execution_arn": arn})
    return Response(
        status_code=202,
        content_type="application/json",
        body=CycleAccepted(cycle_id=cycle.cycle_id, execution_arn=arn),
        headers={"Location": f"/cycles/{cycle.cycle_id}"},
    )


@app.endpoint(
    "GET",
    "/cycles/<id>",
    summary="A cycle: its recorded state, per-asset outcomes and live execution status",
    responses=responses(200, "The cycle", 404, 503),
    tags=["cycles"],
)
def get_cycle(
    cycle_id: Annotated[str, Path(alias="id", pattern=CYCLE_ID_PATTERN, min_length=1, max_length=128)],
) -> CycleView:
    view = show_cycle(cycle_id, get_queries().cycle(cycle_id))
    if view is None:
        raise NotFound(f"no cycle with id {cycle_id}")
    return view


@app.endpoint(
    "GET",
    "/health",
    summary="Database, market-data providers, the shared circuit breakers and the age of the last cycle",
    description="`degraded` when the database or the bar cache is unreachable, a configured provider's breaker or "
    "any shared breaker is not closed, or the market-data side or the breakers could not be read.",
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
    from ffe.health import breaker_health, market_data_health  # looked up per call, so a test can replace them

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
    try:
        breakers = breaker_health(get_settings(ProviderSettings))
    except Exception:
        logger.exception("circuit breakers unavailable")
        breakers = None
    healthy_market = (
        market is not None
        and market.cache_reachable is not False
        and all(p.breaker == "closed" for p in market.providers if p.configured)
    )
    healthy_breakers = breakers is not None and all(b.state == "closed" for b in breakers)
    report = HealthReport(
        status="ok" if database.ok and healthy_market and healthy_breakers else "degraded",
        database=database,
        market_data=market,
        last_cycle_age_seconds=age,
        breakers=breakers,
    )
    return Response(
        status_code=200 if database.ok else 503,
        content_type="application/json",
        body=report,
        headers={"Cache-Control": "no-store"},
    )


@app.endpoint("GET", "/openapi.json", include_in_schema=False)
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


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy)."""
    schema: dict[str, Any] = json.loads(openapi_json())
    return schema


@cache
def openapi_json() -> str:
    """The OpenAPI document as served and checked in (``ffe.api.openapi``)."""
    return openapi.document(app)


def reset() -> None:
    """Forget what the API's warm container keeps: its database connection (closed), its Step Functions client.

    (``ffe.containers.reset`` forgets these and everything else a container keeps.)
    """
    from ffe.adapters import queries  # the module's own: a test may replace this module's get_queries

    queries.get_queries.cache_clear()
    executions.reset()


if __name__ == "__main__":
    print(openapi_json(), end="")
