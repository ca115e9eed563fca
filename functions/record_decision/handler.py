"""RecordDecision: store a decision, an asset's failure or a cycle's opening/closing in PostgreSQL, exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe import utc
from ffe.adapters.cycle_files import CycleFiles
from ffe.adapters.executions import execution_status
from ffe.adapters.experiments import get_experiments
from ffe.adapters.store import get_store
from ffe.adapters.universe import UniverseStore
from ffe.containers import container_cached
from ffe.contracts import CycleClosed, RecordBatch, RecordBatchResult, RecordDecisionResult, parse_record
from ffe.decision_metrics import record_metrics
from ffe.domain.errors import InvalidInputError
from ffe.observability import emit, logger, timed, tracer
from ffe.settings import ExperimentSettings, UniverseSettings, get_settings
from ffe.steps.record import CycleUniverse, record, with_map_run_outcomes
from ffe.universe_file import UniverseEntry

if TYPE_CHECKING:
    from ffe.experiment_review import ReviewOutcome


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("record")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rec = parse_record(event)
    logger.append_keys(cycle_id=getattr(rec, "cycle_id", None), asset=getattr(rec, "asset", None))
    universe = cycle_universe()
    try:
        if isinstance(rec, CycleClosed) and rec.results is not None and universe is not None:
            rec = with_map_run_outcomes(rec, universe.files)  # the Distributed Map's outcomes, from its results
        result = record(
            rec,
            store=get_store(),
            execution_status=execution_status,
            models=get_experiments().cycle_models,
            review=review,
            universe=universe,
        )
    except InvalidInputError:
        raise  # a record that can never be stored (a cycle opened without assets, say): not the store's failure
    except Exception as exc:  # the store could not take it: the state machine defers it to the dead-letter queue
        emit("failures", 1, {"error": type(exc).__name__, "kind": rec.kind}, step="record")
        raise
    if isinstance(rec, RecordBatch) and isinstance(result, RecordBatchResult):
        for one, stored in zip(rec.records, result.results, strict=True):
            record_metrics(one, stored)
        logger.info("recorded a batch", extra={"records": len(rec.records), "orders": len(result.orders)})
        return result.model_dump(mode="json")
    assert isinstance(result, RecordDecisionResult)
    record_metrics(rec, result)
    logger.info("recorded", extra={"kind": result.kind, "record_id": result.id, "duplicate": not result.created})
    return result.model_dump(mode="json")


@container_cached
def cycle_universe() -> CycleUniverse | None:
    """The stage's universe file, default universe and cycles bucket (None: no bucket, e.g. a bare test run)."""
    settings = get_settings(UniverseSettings)
    if not settings.cycles_bucket:
        return None
    store = UniverseStore(settings.cycles_bucket)

    def read_file(timeframe: str) -> tuple[list[UniverseEntry], str] | None:
        entries = store.read(timeframe)
        return None if entries is None else (entries, store.uri(timeframe))

    return CycleUniverse(read_file, tuple(settings.default_assets), CycleFiles(settings.cycles_bucket))


def review() -> list[ReviewOutcome]:
    """The running experiments judged after a cycle: guardrails, automatic rollback, canary steps.

    Imported here, at "Close the cycle" only: the experiments' statistics need numpy, which no other record does
    (the cold import of the other records skips it: bench/bench_cold_start.py)."""
    from ffe.adapters.experiment_results import get_experiment_results
    from ffe.experiment_review import review_experiments

    return review_experiments(
        get_experiments(),
        get_experiment_results(),
        utc.now(),
        actor="guardrail:close-the-cycle",
        settings=get_settings(ExperimentSettings),
    )
