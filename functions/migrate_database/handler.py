"""MigrateDatabase: the deploy-time schema migration (a CloudFormation custom resource)."""

from typing import Any

import psycopg
from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.database import conninfo_from_settings
from ffe.observability import logger
from ffe.settings import DatabaseSettings, get_settings
from ffe.steps.migrate import handle_custom_resource
from ffe.store.migrate import migrate


def apply_migrations() -> list[str]:
    with psycopg.connect(conninfo_from_settings(get_settings(DatabaseSettings)), autocommit=True) as conn:
        return migrate(conn)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.info("migration requested", extra={"request_type": event.get("RequestType")})
    return handle_custom_resource(event, apply_migrations, context.log_stream_name)
