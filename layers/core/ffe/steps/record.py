"""RecordDecision: write a decision or a failure exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ffe.contracts import (
    INLINE_MAX_ASSETS,
    AssetOutcome,
    CycleClosed,
    CycleHeader,
    CycleInput,
    CycleModels,
    CycleOpened,
    DecisionRecord,
    ExecuteOrderInput,
    FailureRecord,
    Record,
    RecordBatch,
    RecordBatchResult,
    RecordDecisionResult,
    UniverseItem,
    parse,
)
from ffe.domain.errors import InvalidInputError, PermanentError
from ffe.domain.models import Action, Timeframe
from ffe.domain.ports import DecisionStore, ExecutionStatus, Stored
from ffe.observability import logger
from ffe.universe_file import UniverseEntry, enabled

if TYPE_CHECKING:
    from ffe.adapters.cycle_files import CycleFiles


@dataclass(frozen=True)
class CycleUniverse:
    """Where a cycle's assets come from when its input names none, and where a cycle too big for the inline Map
    puts its snapshot for the Distributed Map (docs/scaling.md).

    ``read_file(timeframe)``: the stage's universe file for the timeframe and its URI, or None without one;
    ``default_assets``: the stage's default (the AssetUniverseJson parameter), used when there is no file;
    ``files``: the cycles bucket (snapshots, the Map's results)."""

    read_file: Callable[[str], tuple[list[UniverseEntry], str] | None]
    default_assets: Sequence[str]
    files: CycleFiles


def record(
    rec: Record,
    store: DecisionStore,
    execution_status: ExecutionStatus | None = None,
    models: Callable[[], CycleModels] | None = None,
    review: Callable[[], Sequence[object]] | None = None,
    universe: CycleUniverse | None = None,
) -> RecordDecisionResult | RecordBatchResult:
    """Store ``rec`` idempotently; a retried task gets the first write's id with ``created=False``.

    A cycle opens RUNNING, or SKIPPED (with the reason) while another cycle of its stage and timeframe runs;
    ``execution_status`` tells whether an earlier cycle's execution still runs (Step Functions). A RUNNING
    cycle gets the model versions it serves from ``models`` (the champion and the running experiments, read
    once here, so every asset of the cycle is decided by the versions resolved at its start). A cycle that
    closes SUCCEEDED then has ``review`` judge the running experiments (guardrails, rollback, canary steps:
    ``ffe.experiment_review``); a review that fails is logged and never fails the cycle, whose records are in.

    Raises:
        InvalidInputError: a cycle opened without an id or assets (the execution records why and stops).
    """
    if isinstance(rec, CycleOpened):
        return _open(rec, store, execution_status, models, universe)
    if isinstance(rec, RecordBatch):
        return record_batch(rec, store)
    if isinstance(rec, CycleClosed):
        created = store.close_cycle(rec.cycle_id, rec.status, _lost_reason(rec))
        if review is not None and rec.status == "SUCCEEDED":
            try:
                outcomes = review()
            except Exception as exc:  # the next cycle's close reviews again
                logger.warning("experiment review failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            else:
                logger.info("experiments reviewed", extra={"outcomes": [repr(o) for o in outcomes]})
        return RecordDecisionResult(
            kind=rec.kind, id=None, created=created, cycle_id=rec.cycle_id, asset=None, timeframe=rec.timeframe
        )
    if isinstance(rec, DecisionRecord):
        return _recorded(rec, store.record_decision(rec))
    rec, message = explain_failure(rec)
    stored = store.record_failure(rec, message)
    if (rec.cycle_failure or rec.cycle_input is not None) and rec.cycle_id:  # the cycle failed: close it if opened
        store.close_cycle(rec.cycle_id, "FAILED")
    return _recorded(rec, stored)


def _open(
    rec: CycleOpened,
    store: DecisionStore,
    execution_status: ExecutionStatus | None,
    models: Callable[[], CycleModels] | None,
    universe: CycleUniverse | None,
) -> RecordDecisionResult:
    """Register the cycle, and choose its Map: a cycle of at most INLINE_MAX_ASSETS assets named in its input (or
    the stage's default) runs inline; the universe file's, or a longer list, runs on the Distributed Map over a
    snapshot of its assets written to the cycles bucket."""
    cycle = parse(CycleHeader, rec.cycle)
    items, source = _assets(cycle, universe)
    if cycle.assets is None:
        cycle = cycle.model_copy(update={"assets": [item.asset for item in items]})
    opened = store.open_cycle(cycle, rec.execution_id, execution_status)
    running = opened.status != "SKIPPED"
    mode: Literal["inline", "distributed"] | None = None
    snapshot = None
    if running:
        mode = "inline" if source != "file" and len(items) <= INLINE_MAX_ASSETS else "distributed"
        if mode == "distributed":
            if universe is None:
                raise PermanentError(f"a cycle of {len(items)} assets needs the cycles bucket, and none is set")
            snapshot = universe.files.write_snapshot(str(cycle.timeframe), cycle.cycle_id, items, source)
    return RecordDecisionResult(
        models=models() if running and models is not None else None,
        kind=rec.kind,
        id=None,
        created=opened.created,
        cycle_id=cycle.cycle_id,
        asset=None,
        cycle_status="RUNNING" if running else "SKIPPED",
        reason=opened.reason,
        timeframe=cycle.timeframe,
        mode=mode,
        assets=cycle.assets if mode == "inline" else None,
        universe=snapshot,
    )


def _assets(cycle: CycleHeader, universe: CycleUniverse | None) -> tuple[list[UniverseItem], str]:
    """The cycle's assets and where they came from: ``input``, ``file`` or ``default``.

    Raises:
        InvalidInputError: no assets in the input and no timeframe to find the universe file by, or a universe
            file with no enabled asset (the execution records why and stops).
    """
    if cycle.assets is not None:
        return [UniverseItem(asset=asset, item=i) for i, asset in enumerate(cycle.assets)], "input"
    try:
        timeframe = Timeframe(cycle.timeframe or "")
    except ValueError:
        raise InvalidInputError(
            f"a cycle that names no assets decides its stage's universe file for its timeframe, and timeframe "
            f"{cycle.timeframe!r} is not one of {', '.join(t.value for t in Timeframe)}"
        ) from None
    found = universe.read_file(str(timeframe)) if universe is not None else None
    if found is None:
        default = list(universe.default_assets) if universe is not None else []
        if not default:
            raise InvalidInputError(
                f"the cycle names no assets, the stage has no universe file for {timeframe} (ffe universe put) "
                "and no default universe (AssetUniverseJson)"
            )
        return [UniverseItem(asset=asset, item=i) for i, asset in enumerate(default)], "default"
    entries, uri = found
    chosen = enabled(entries)
    if not chosen:
        raise InvalidInputError(f"{uri}: no enabled asset ({len(entries)} disabled)")
    items = [
        UniverseItem(asset=e.asset, asset_class=e.asset_class, venue=e.venue, item=i) for i, e in enumerate(chosen)
    ]
    return items, "file"


def record_batch(batch: RecordBatch, store: DecisionStore) -> RecordBatchResult:
    """Store a batch's records in one transaction; each asset ``recorded``, and the approved orders to place."""
    pairs = [(r, "") if isinstance(r, DecisionRecord) else explain_failure(r) for r in batch.records]
    stored = store.record_batch(pairs)
    results = [_recorded(rec, s) for (rec, _), s in zip(pairs, stored, strict=True)]
    orders = [
        ExecuteOrderInput.model_validate({**rec.model_dump(), "recorded": result})
        for (rec, _), result in zip(pairs, results, strict=True)
        if result.execute
    ]
    return RecordBatchResult(
        outcomes=[AssetOutcome(asset=rec.asset, outcome="recorded") for rec, _ in pairs],
        orders=orders,
        results=results,
    )


def _recorded(rec: DecisionRecord | FailureRecord, stored: Stored) -> RecordDecisionResult:
    if isinstance(rec, DecisionRecord):
        return RecordDecisionResult(
            kind="decision",
            id=stored.id,
            created=stored.created,
            cycle_id=rec.cycle_id,
            asset=rec.asset,
            action=rec.action,
            execute=rec.risk is not None and rec.risk.approved and rec.action is not Action.HOLD,
        )
    return RecordDecisionResult(
        kind="failure", id=stored.id, created=stored.created, cycle_id=rec.cycle_id, asset=rec.asset, error=rec.error
    )


def with_map_run_outcomes(rec: CycleClosed, files: CycleFiles) -> CycleClosed:
    """A Distributed Map cycle's close with every asset's outcome, read from the Map's ResultWriter files."""
    if rec.results is None:
        return rec
    return rec.model_copy(update={"outcomes": [*rec.outcomes, *files.read_results(rec.results)]})


def _lost_reason(rec: CycleClosed) -> str:
    lost, unconfirmed = rec.lost(), rec.unconfirmed()
    reasons = []
    if lost:
        names = ", ".join(str(o.asset) for o in lost)
        reasons.append(
            f"{len(lost)} record(s) neither the decision store nor the dead-letter queue accepted ({names}): each "
            f"is kept only in execution {rec.execution_id}'s history, as the input of its Record decision state"
        )
    if unconfirmed:
        names = ", ".join(str(o.asset) for o in unconfirmed[:50]) + (" ..." if len(unconfirmed) > 50 else "")
        errors = sorted({o.error or "?" for o in unconfirmed})[:5]
        reasons.append(
            f"{len(unconfirmed)} asset(s) whose Distributed Map child execution failed ({names}; {'; '.join(errors)})"
            ": their records may be missing (the Map Run's FAILED result files name each execution)"
        )
    return "; ".join(reasons)


def explain_failure(rec: FailureRecord) -> tuple[FailureRecord, str]:
    """The failure's human message. A cycle whose input was malformed (not even an object, say) is re-validated
    to name the problem, and recorded under its cycle id or, without one, its execution's name; a field that had
    to be recorded under a sanitized label is named as it was given."""
    given = "; ".join(f"{name} given as {value[:300]!r}" for name, value in rec.given.items())
    suffix = f" ({given})" if given else ""
    if not (rec.cycle_failure or rec.cycle_input is not None):
        return rec, (lambda_error_message(rec.cause) or rec.error) + suffix
    raw = rec.cycle_input
    if not rec.cycle_id:
        named = raw.get("cycle_id") if isinstance(raw, dict) else None
        if isinstance(named, str) and named:
            rec = FailureRecord.model_validate({**rec.model_dump(), "cycle_id": named})
        elif rec.execution_id:
            rec = rec.model_copy(update={"cycle_id": f"execution:{rec.execution_id.rsplit(':', 1)[-1]}"})
    try:
        parse(CycleInput, raw)
    except InvalidInputError as exc:
        return rec.model_copy(update={"error": InvalidInputError.__name__}), str(exc) + suffix
    return rec, (lambda_error_message(rec.cause) or rec.error) + suffix


def lambda_error_message(cause: str) -> str:
    """Lambda reports ``{"errorType", "errorMessage", "stackTrace"}`` as the Step Functions cause."""
    try:
        payload = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(payload, dict) and isinstance(payload.get("errorMessage"), str):
        return payload["errorMessage"]
    return cause
