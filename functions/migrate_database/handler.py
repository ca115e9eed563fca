"""MigrateDatabase: the deploy-time schema migration (a CloudFormation custom resource), the only code that
migrates in AWS; then the login roles get LOGIN and their secrets' passwords (ffe.store.roles)."""

from typing import Any

import psycopg
from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.database import conninfo_from_settings, refused_login
from ffe.observability import logger
from ffe.settings import MigrationSettings, get_settings
from ffe.steps.migrate import handle_custom_resource
from ffe.store.migrate import migrate
from ffe.store.roles import ensure_login


def apply_migrations() -> list[str]:
    settings = get_settings(MigrationSettings)
    master = conninfo_from_settings(settings, fresh=True)  # RDS rotates the master password: never a cached one
    with psycopg.connect(master, autocommit=True) as conn:
        applied = migrate(conn)
        for arn in settings.role_secret_arns:
            secret = _secret(arn)

            def logs_in(user: str, password: str) -> bool:
                try:
                    psycopg.connect(master, user=user, password=password).close()
                except psycopg.OperationalError as exc:
                    if refused_login(exc):
                        return False
                    raise
                return True

            if ensure_login(conn, secret["username"], secret["password"], logs_in):
                logger.info("database role password set from its secret", extra={"role": secret["username"]})
    return applied


def _secret(arn: str) -> dict[str, Any]:
    from aws_lambda_powertools.utilities import parameters

    value: dict[str, Any] = parameters.get_secret(arn, transform="json", force_fetch=True)
    return value


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.info("migration requested", extra={"request_type": event.get("RequestType")})
    return handle_custom_resource(event, apply_migrations, context.log_stream_name)
