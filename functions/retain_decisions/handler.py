"""RetainDecisions: the daily decision retention (export month partitions past the window to S3, then drop them)."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe import utc
from ffe.adapters.database import Database, configured
from ffe.adapters.decision_archive import S3DecisionArchive
from ffe.observability import emit, logger
from ffe.settings import get_settings
from ffe.steps.retain import RetentionSettings, retain_decisions


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings(RetentionSettings)
    database = Database(
        configured(settings),
        name="decision store",
        statement_timeout_ms=settings.retention_statement_timeout_ms,
        # DROP of a partition waits for its parent's lock: a short wait, retried tomorrow, never a stalled cycle
        lock_timeout_ms=settings.retention_lock_timeout_ms,
    )
    archive = None
    if settings.decision_archive_bucket:
        archive = S3DecisionArchive(
            boto3.client("s3"), settings.decision_archive_bucket, settings.decision_archive_prefix, settings.stage
        )
    try:
        result = retain_decisions(
            database, retention_days=settings.decision_retention_days, now=utc.now(), export=archive
        )
    finally:
        database.close()
    emit("retention_partitions_dropped", len(result.dropped), {"cutoff": result.as_dict()["cutoff"]})
    return result.as_dict()
