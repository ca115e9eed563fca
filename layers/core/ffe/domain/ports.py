"""The ports: every Protocol the steps (and the market-data router) need from the outside world, in one place,
with the small values that cross them. Adapters implement these; nothing here does any I/O.

- market data: ``MarketDataProvider`` (what FetchMarketData asks), ``LiveProvider`` (one venue's candles API,
  behind the router);
- the venue account: ``Broker``;
- the risk gate's memory: ``Reservations`` / ``AccountBook`` (orders on their way, under the account lock) and
  ``EquityMemory`` (the kill switches' start-of-day and peak equity);
- the record: ``DecisionStore`` and ``ExecutionLog``;
- the models: ``InferenceClient``, ``ExperimentStore`` (experiments, their recorded transitions and the champion;
  ``ExperimentLifecycle`` is the part the review after a cycle uses) and ``ExperimentResults`` (the arms' figures).

The request/response contracts some of them take are imported for type checking only: the domain does not
depend on ``ffe.contracts`` at run time.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from ffe.domain.experiments import Champion, Experiment, ExperimentStatus, Transition, Trigger
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.portfolio import (
    Balance,
    OrderRequest,
    OrderResult,
    OrderSide,
    PendingOrder,
    Position,
    ProductRules,
)

if TYPE_CHECKING:
    from ffe.contracts import (
        CycleHeader,
        CycleModels,
        DecisionRecord,
        ExecuteOrderInput,
        FailureRecord,
        InferenceRequest,
        InferenceResponse,
    )
    from ffe.domain.experiment_stats import Comparison  # numpy: types only, the ports stay light to import

# --- market data ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One provider tried for a fetch: ``ok``, ``failed`` (with the error) or ``skipped`` (breaker open)."""

    provider: str
    outcome: str
    error: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FetchedSeries:
    bars: Sequence[Bar]
    dataset: str
    synthetic: bool
    simulated_clock: bool
    route: tuple[RouteStep, ...] = ()
    cached_bars: int = 0  # how many of ``bars`` came from the bar cache, not the provider


class MarketDataProvider(Protocol):
    name: str

    def fetch(
        self, asset: str, timeframe: Timeframe, as_of: datetime, lookback: int, asset_class: AssetClass | None = None
    ) -> FetchedSeries:
        """Completed bars of ``asset`` closing at or before ``as_of``, at most ``lookback`` of them; ``asset_class``
        is the universe file's (None: the built-in table's)."""
        ...


class LiveProvider(Protocol):
    """A venue's candles API. The router adds caching, breakers, fallbacks and validation around it."""

    name: str

    def supports(self, asset_class: AssetClass) -> bool: ...

    def candles(
        self,
        asset: str,
        timeframe: Timeframe,
        start: datetime | None,
        end: datetime,
        asset_class: AssetClass | None = None,
    ) -> list[Bar]:
        """Bars of ``asset`` opening in [start, end), oldest first; ``start=None`` asks for the venue's
        most recent page. May include a bar still in progress; the router drops it. ``asset_class``: the universe
        file's (None: the built-in table's)."""
        ...

    def probe(self) -> None:
        """The smallest real authenticated request; raises the classified error when it fails."""
        ...


# --- the venue account ------------------------------------------------------------------------------------------


class Broker(Protocol):
    """A venue account. Every method raises the engine's classified errors (AuthError with a fix hint,
    TransientError, InvalidInputError); none of them ever returns a default in place of a failed read."""

    name: str
    account_id: str  # the venue account: what the risk gate's lock, reservations and kill switches key on

    def balance(self) -> Balance: ...

    def positions(self) -> list[Position]: ...

    def account(self) -> tuple[Balance, list[Position]]:
        """``(balance(), positions())`` in one read where the venue allows it (what the risk gate needs)."""
        ...

    def product_rules(self, asset: str, asset_class: AssetClass | None = None) -> ProductRules:
        """The venue's size rules for ``asset``; ``asset_class`` is the universe file's (None: the table's)."""
        ...

    def open_orders(self) -> list[PendingOrder]:
        """Every order of the account the venue has accepted and not yet filled, cancelled or rejected."""
        ...

    def place_order(self, order: OrderRequest) -> OrderResult: ...

    def order_status(self, client_order_id: str) -> OrderResult | None: ...

    def settle(self, asset: str, bars: Sequence[Bar]) -> list[OrderResult]:
        """Bring the account up to ``bars`` (the asset's newest bars) before it is read: the paper venue fills
        its pending orders of ``asset`` at their next bar's open and marks the position to the last close; a
        live venue fills its own orders, so there it does nothing and returns ``[]``. Returns the orders it
        filled or rejected."""
        ...


# --- the risk gate's memory -------------------------------------------------------------------------------------

RESERVED, PLACED, RELEASED = "RESERVED", "PLACED", "RELEASED"  # a reservation's status


@dataclass(frozen=True, slots=True)
class Reservation:
    """Headroom the risk gate spent on an approved order that is not yet at the venue."""

    client_order_id: str
    asset: str
    bar_time: datetime | None
    side: OrderSide
    quantity: Decimal
    price: Decimal
    cycle_id: str
    assessment: dict[str, Any]  # the gate's verdict (RiskAssessment as JSON)
    status: str = RESERVED
    live: bool = True  # RESERVED and not expired, or PLACED

    def pending(self) -> PendingOrder:
        return PendingOrder(self.client_order_id, self.asset, self.side, self.quantity, self.price)


class AccountBook(Protocol):
    """One venue account's reservations, inside its lock."""

    def live_for_bar(self, asset: str, bar_time: datetime | None) -> Reservation | None: ...

    def get(self, client_order_id: str) -> Reservation | None: ...

    def reserved(self) -> list[PendingOrder]: ...

    def prices(self, client_order_ids: list[str]) -> dict[str, Decimal]: ...

    def reserve(self, reservation: Reservation) -> None: ...

    def mark(self, client_order_id: str, status: str, note: str) -> None: ...


class Reservations(Protocol):
    def account(self, account: str) -> AbstractContextManager[AccountBook]:
        """The account's reservations, locked against every other gate or order of the same account."""
        ...


class EquityMemory(Protocol):
    def marks(self, account: str, day: date, equity: Decimal) -> tuple[Decimal, Decimal]:
        """(start-of-day equity, peak equity) of ``account`` after seeing ``equity`` on ``day``."""
        ...


# --- the record -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    created: bool


@dataclass(frozen=True, slots=True)
class Opened:
    """A cycle registered RUNNING, or SKIPPED because another of its stage and timeframe runs (``reason``)."""

    created: bool  # False: a retried task found it registered
    status: str
    reason: str = ""
    closed: tuple[tuple[str, str], ...] = ()  # (cycle id, status) of earlier cycles it found ended and closed


# An execution's status from Step Functions (RUNNING, SUCCEEDED, ...), None when there is no such execution;
# raises TransientError when it cannot be read.
ExecutionStatus = Callable[[str], str | None]


class DecisionStore(Protocol):
    def record_decision(self, record: DecisionRecord) -> Stored: ...

    def record_failure(self, record: FailureRecord, message: str) -> Stored: ...

    def record_batch(self, records: Sequence[tuple[DecisionRecord | FailureRecord, str]]) -> list[Stored]: ...

    def open_cycle(
        self, cycle: CycleHeader, execution_id: str, execution_status: ExecutionStatus | None = None
    ) -> Opened: ...

    def close_cycle(self, cycle_id: str, status: str, reason: str = "") -> bool: ...


class ExecutionLog(Protocol):
    def record_execution(
        self, inp: ExecuteOrderInput, order: OrderRequest, result: OrderResult, venue: str, mode: str
    ) -> bool: ...


# --- the models -------------------------------------------------------------------------------------------------


class InferenceClient(Protocol):
    def infer(self, request: InferenceRequest, trace_header: str | None = None) -> InferenceResponse: ...


class ExperimentLifecycle(Protocol):
    """The experiments' lifecycle: list them, read and record their transitions (what the review after a cycle
    needs, ``ffe.experiment_review``). Every change runs in one transaction that locks the experiment, lets
    ``ffe.domain.experiments`` decide, and records the transition."""

    def list(self, status: ExperimentStatus | None = None) -> builtins.list[Experiment]:
        """Every experiment (or those in ``status``), oldest first."""
        ...

    def transition(
        self,
        experiment_id: str,
        to: ExperimentStatus,
        actor: str,
        trigger: Trigger,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
    ) -> Experiment:
        """Move the experiment to ``to``; raises ``InvalidTransitionError`` (nothing written) or
        ``UnknownExperimentError``."""
        ...

    def advance(
        self,
        experiment_id: str,
        actor: str,
        trigger: Trigger,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
        expected_step: int | None = None,
    ) -> Experiment:
        """Move a running split experiment to its canary's next step (recorded as a running-to-running transition);
        with ``expected_step``, refused (``InvalidTransitionError``) when the canary is no longer there."""
        ...

    def transitions(self, experiment_id: str) -> builtins.list[Transition]:
        """The experiment's recorded transitions, oldest first."""
        ...


class ExperimentStore(ExperimentLifecycle, Protocol):
    """Experiments, their transitions and the champion; a start is refused while another running or paused
    experiment shares an asset."""

    def create(self, experiment: Experiment) -> Experiment:
        """Store a new draft; raises ``ConflictError`` when the id is taken."""
        ...

    def get(self, experiment_id: str) -> Experiment | None: ...

    def champion(self) -> Champion:
        """The stage's champion now (the bundled one while none was ever set)."""
        ...

    def set_champion(self, version: str, actor: str, reason: str = "") -> Champion:
        """Make ``version`` the champion; the one it replaces is recorded as the previous champion."""
        ...

    def champions(self, limit: int = 50) -> builtins.list[Champion]:
        """The champion's history, newest first."""
        ...

    def cycle_models(self) -> CycleModels:
        """The champion and the running experiments, in one snapshot: what a cycle serves."""
        ...


class ExperimentResults(Protocol):
    """Both arms' figures of an experiment, read off the recorded decisions (``ffe.adapters.experiment_results``)."""

    def compare(
        self,
        experiment_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        recorded_since: datetime | None = None,
    ) -> Comparison:
        """The arms' comparison over the window (default: the experiment's whole life)."""
        ...

    def cycle_latency_p95(self, experiment_id: str, cycles: int) -> builtins.list[float]:
        """The treatment's decision-path latency p95 in each of the last ``cycles`` cycles that had treatment-path
        decisions, oldest first."""
        ...
