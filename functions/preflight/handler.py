"""Preflight: a per-provider report (ok / auth failed / rate limited / unreachable), run daily."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.brokers_factory import venue_brokers
from ffe.adapters.market_data import live_providers
from ffe.observability import emit, logger, tracer
from ffe.settings import ProviderSettings, RiskSettings, get_settings
from ffe.steps.preflight import run_preflight


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    brokers = venue_brokers(get_settings(RiskSettings), now)
    report = run_preflight(live_providers(get_settings(ProviderSettings)), clock=lambda: now, brokers=brokers)
    for check in report.providers:
        if check.status != "not_configured":  # one metric per provider, dimensioned by provider
            emit("provider_healthy", int(check.status == "ok"), {"status": check.status}, provider=check.provider)
    logger.info(
        "preflight", extra={"healthy": report.healthy, "providers": report.model_dump(mode="json")["providers"]}
    )
    return report.model_dump(mode="json")
