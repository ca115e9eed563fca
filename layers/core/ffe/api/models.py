"""Request and response models of the public API (they are the OpenAPI schema's components)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)

from ffe.api.problems import BadRequest, FieldProblem
from ffe.breakers import BreakerStatus
from ffe.contracts import MAX_CYCLE_ASSETS, Symbol, check_as_of, unique_assets
from ffe.domain.models import Action, Timeframe
from ffe.domain.universe import ASSET_CLASSES, asset_class_of
from ffe.health import MarketDataHealth

BIGINT_MAX = 2**63 - 1  # ids are Postgres bigints: anything larger can never exist
MAX_PAGE = 500
DEFAULT_PAGE = 50

# What Cursor.encode writes: unpadded base64url of '{"as_of":"...","id":...}', whose first 9 bytes encode to
# "eyJhc19vZiI6"; 47 to 80 characters follow (as_of with or without microseconds, ids of 1 to 19 digits).
CURSOR_PATTERN = r"^eyJhc19vZiI6[A-Za-z0-9_-]{40,100}$"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text(value: Any) -> Any:
    # pydantic would also take 0.5 or "1718000000" as a Unix time; this API speaks ISO-8601 only.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO-8601 date-time with offset, e.g. 2019-06-15T12:00:00Z")
    if isinstance(value, int | float):
        raise ValueError("expected an ISO-8601 date-time string, not a number")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- cursors ------------------------------------------------------------------------------------------


class Cursor(BaseModel):
    """Keyset position: the (as_of, id) of the last row of a page; the next page starts strictly after it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: IsoDatetime
    id: Annotated[StrictInt, Field(ge=1, le=BIGINT_MAX)]

    def encode(self) -> str:
        raw = json.dumps({"as_of": self.as_of.isoformat(), "id": self.id}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Raises ``BadRequest`` for anything that this API did not produce (or that was altered)."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return cls.model_validate(json.loads(raw.decode("utf-8")))
        except (binascii.Error, ValueError, ValidationError):  # JSON/UTF-8 errors are ValueErrors
            raise BadRequest.for_fields(
                [FieldProblem(field="query.cursor", message="malformed cursor; pass next_cursor back unchanged")]
            ) from None


# --- requests -----------------------------------------------------------------------------------------


class CycleRequest(BaseModel):
    """Start a decision cycle now, outside the schedules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assets: (
        Annotated[
            list[Annotated[Symbol, Field(json_schema_extra={"enum": sorted(ASSET_CLASSES)})]],
            Field(min_length=1, max_length=MAX_CYCLE_ASSETS, json_schema_extra={"uniqueItems": True}),
        ]
        | None
    ) = Field(
        default=None,
        description="known symbols, unique; left out: the stage's universe file for the timeframe (docs/universe.md)",
    )
    timeframe: Timeframe
    as_of: IsoDatetime | None = Field(
        default=None, description="ISO-8601 with offset; default: now (UTC, to the minute)"
    )

    @field_validator("assets")
    @classmethod
    def _known_and_unique(cls, assets: list[str] | None) -> list[str] | None:
        if assets is None:
            return None
        unique_assets(assets)
        for asset in assets:
            asset_class_of(asset)  # InvalidInputError (a ValueError) naming the unknown asset
        return assets

    @field_validator("as_of")
    @classmethod
    def _not_in_the_future(cls, as_of: datetime | None) -> datetime | None:
        return None if as_of is None else check_as_of(as_of)  # the rule the state machine's cycles apply too

    def resolved_as_of(self) -> datetime:
        return self.as_of or datetime.now(UTC).replace(second=0, microsecond=0)


# --- responses: decisions -----------------------------------------------------------------------------


class DecisionSummary(_Frozen):
    id: int
    cycle_id: str
    execution_id: str | None
    stage: str | None
    asset: str
    timeframe: str
    as_of: datetime
    bar_time: datetime | None
    action: Action
    confidence: float
    size: float | None
    stale: bool
    reason: str
    data_age_seconds: float | None
    staleness_threshold_seconds: int | None
    model: str
    model_version: str
    regime: str | None
    created_at: datetime
    experiment_id: str | None = Field(default=None, description="the experiment that covered the asset, if any")
    arm: Literal["control", "treatment"] | None = Field(default=None, description="the experiment's arm that acted")


class RiskEvent(_Frozen):
    id: int
    rule: str
    blocked: bool
    detail: dict[str, Any]
    created_at: datetime


class Execution(_Frozen):
    id: int
    venue: str
    mode: Literal["paper", "live"]
    client_order_id: str
    venue_order_id: str | None
    side: Literal["BUY", "SELL"]
    quantity: float
    price: float | None
    status: str
    detail: dict[str, Any]
    created_at: datetime


class DecisionDetail(DecisionSummary):
    reasons: dict[str, Any] = Field(description="signals, route, gate verdicts")
    source: dict[str, Any] = Field(description="where the bars came from (provider, dataset, route)")
    input_sha256: str
    bar_close: float | None = Field(default=None, description="the decided bar's close")
    decision_latency_ms: float | None = Field(
        default=None, description="fetch start to record, less the LLM's time; null for a replayed record"
    )
    arms: dict[str, Any] | None = Field(
        default=None, description="under an experiment: both arms' model outputs before the risk gate"
    )
    risk_events: list[RiskEvent]
    execution: Execution | None = Field(description="the latest order sent for this decision; null when none")


class DecisionPage(_Frozen):
    items: list[DecisionSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


# --- responses: cycles --------------------------------------------------------------------------------


class CycleAccepted(_Frozen):
    cycle_id: str
    execution_arn: str


class DecisionOutcome(_Frozen):
    outcome: Literal["decision"] = "decision"
    decision_id: int
    action: Action
    confidence: float
    reason: str
    stale: bool


class FailureOutcome(_Frozen):
    outcome: Literal["failure"] = "failure"
    error_class: str
    message: str


Outcome = Annotated[DecisionOutcome | FailureOutcome, Field(discriminator="outcome")]


class ExecutionStatus(_Frozen):
    execution_arn: str
    status: str = Field(description="RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING_REDRIVE")
    started_at: datetime | None
    stopped_at: datetime | None
    error: str | None
    cause: str | None


class CycleView(_Frozen):
    cycle_id: str
    status: str | None = Field(
        description="SKIPPED (another cycle of its stage and timeframe was running), ABORTED or TIMED_OUT (closed by "
        "the next cycle: its execution ended without closing it) as recorded; otherwise the live execution status "
        "when known, else the recorded one"
    )
    reason: str | None = Field(default=None, description="why the cycle was skipped, aborted or timed out")
    stage: str | None
    timeframe: str | None
    as_of: datetime | None
    assets: list[str] = Field(description="the assets the cycle was asked to decide on, when known")
    started_at: datetime | None
    finished_at: datetime | None
    execution_arn: str | None
    execution: ExecutionStatus | None = Field(description="from Step Functions; null when unknown")
    outcomes: dict[str, Outcome] = Field(description="per asset: its decision or its failure")
    pending_assets: list[str] = Field(description="requested assets with neither a decision nor a failure yet")
    cycle_failure: FailureOutcome | None = Field(description="a failure of the whole cycle (e.g. malformed input)")


# --- responses: health --------------------------------------------------------------------------------


class DatabaseHealth(_Frozen):
    ok: bool
    latency_ms: float | None
    error: str | None


class HealthReport(_Frozen):
    status: Literal["ok", "degraded"]
    database: DatabaseHealth
    market_data: MarketDataHealth | None = Field(description="null when it could not be read")
    last_cycle_age_seconds: float | None = Field(description="since the last cycle finished; null when none has")
    breakers: list[BreakerStatus] | None = Field(
        description="every shared circuit breaker, as `ffe breakers` lists them (empty when the stage has no breaker "
        "table); null when they could not be read"
    )
