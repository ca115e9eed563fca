"""What market data a stage may decide and order on (issue 17).

staging and prod decide for real: on live market data only. The template refuses to deploy them otherwise (Rule
DecidingStagesUseLiveMarketData); FetchMarketData refuses again at start-up (``refuse_simulated_provider``, for a
stack deployed before the Rule or changed by hand), and GateRisk never lets bars that are not the market lead to an
order (``unfit_for_orders``): a synthetic series (``ffe.adapters.synthetic``, ``DataSource.synthetic``) in any
deployed stage, replayed history (``DataSource.simulated_clock``) in staging and prod. The offline runtime (``ffe
run``, stage dev, not a deployed Lambda) keeps deciding on replayed and synthetic bars as before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ffe.domain.errors import PermanentError

if TYPE_CHECKING:
    from ffe.contracts import DataSource

DECIDING_STAGES = frozenset({"staging", "prod"})  # the stages whose decisions count (samconfig.toml: live providers)


def deployed() -> bool:
    """Whether this runs in a deployed Lambda function: the Lambda runtime sets ``AWS_EXECUTION_ENV`` to
    ``AWS_Lambda_<runtime>``; the offline runtime and the tests do not."""
    return os.environ.get("AWS_EXECUTION_ENV", "").startswith("AWS_Lambda_")


def refuse_simulated_provider(stage: str, provider: str) -> None:
    """Raise when ``stage`` decides for real but is configured to fetch anything but live market data.

    Raises:
        PermanentError: MARKET_DATA_PROVIDER is not ``live`` in staging or prod.
    """
    if stage in DECIDING_STAGES and provider != "live":
        raise PermanentError(
            f"MARKET_DATA_PROVIDER={provider} in stage {stage}: staging and prod decide on live market data only, "
            "never on bundled history or synthetic series; deploy with MarketDataProvider=live (samconfig.toml)"
        )


def unfit_for_orders(source: DataSource, stage: str, in_lambda: bool) -> str | None:
    """Why bars from ``source`` may not lead to an order in ``stage``, or None when they may."""
    if source.synthetic and (in_lambda or stage in DECIDING_STAGES):
        return (
            f"the bars are a synthetic series ({source.dataset}), not the market: a deployed stage never orders on them"
        )
    if source.simulated_clock and stage in DECIDING_STAGES:
        return (
            f"the bars are replayed history ({source.provider}: {source.dataset}): {stage} orders on live market "
            "data only"
        )
    return None
