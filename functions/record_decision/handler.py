"""RecordDecision: store a decision, an asset's failure or a cycle's opening/closing in PostgreSQL, exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe import utc
from ffe.adapters.executions import execution_status
from ffe.adapters.experiments import get_experiments
from ffe.adapters.store import get_store
from ffe.contracts import parse_record
from ffe.decision_metrics import record_metrics
from ffe.domain.errors import InvalidInputError
from ffe.observability import emit, logger, timed, tracer
from ffe.settings import ExperimentSettings, get_settings
from ffe.steps.record import record

if TYPE_CHECKING:
    from ffe.experiment_review import ReviewOutcome


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("record")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rec = parse_record(event)
    logger.append_keys(cycle_id=getattr(rec, "cycle_id", None), asset=getattr(rec, "asset", None))
    try:
        result = record(
            rec,
            store=get_store(),
            execution_status=execution_status,
            models=get_experiments().cycle_models,
            review=review,
        )
    except InvalidInputError:
        raise  # a record that can never be stored (a cycle opened without assets, say): not the store's failure
    except Exception as exc:  # the store could not take it: the state machine defers it to the dead-letter queue
        emit("failures", 1, {"error": type(exc).__name__, "kind": rec.kind}, step="record")
        raise
    record_metrics(rec, result)
    logger.info("recorded", extra={"kind": result.kind, "record_id": result.id, "duplicate": not result.created})
    return result.model_dump(mode="json")


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
