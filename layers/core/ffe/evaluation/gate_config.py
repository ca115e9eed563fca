"""The promotion gate's settings (``ffe.evaluation.gate``, re-exported there): the standard library only, so the
CLI's parser can name the defaults without importing numpy. See docs/models.md, "Promotion gate".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

METRICS = ("sharpe", "sortino", "total_return")
DEFAULT_METRIC, DEFAULT_CONFIDENCE = "sharpe", 0.9
METRIC_ENV, CONFIDENCE_ENV = "FFE_PROMOTION_METRIC", "FFE_PROMOTION_CONFIDENCE"


@dataclass(frozen=True)
class GateConfig:
    """What the gate compares on and how sure it must be: P(candidate beats the bar) >= ``confidence``.

    Defaults here; ``from_env`` lets a project override them (``FFE_PROMOTION_METRIC``,
    ``FFE_PROMOTION_CONFIDENCE``); the ``ffe models promote`` flags override both.
    """

    metric: str = DEFAULT_METRIC
    confidence: float = DEFAULT_CONFIDENCE
    n_boot: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"the gate's metric is one of {', '.join(METRICS)}, not {self.metric!r}")
        if not 0.5 < self.confidence < 1.0:  # at 0.5 or below, a version more likely worse than the bar would pass
            raise ValueError(f"the gate's confidence lies strictly between 0.5 and 1, not {self.confidence}")
        if self.n_boot < 1:
            raise ValueError(f"the gate needs at least one bootstrap resample, not {self.n_boot}")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, metric: str | None = None, confidence: float | None = None
    ) -> GateConfig:
        """The defaults, overridden by the environment, overridden by ``metric``/``confidence`` when given.

        Raises:
            ValueError: a bad value, naming the variable it came from.
        """
        env = os.environ if environ is None else environ
        metric_from = "--metric" if metric is not None else METRIC_ENV
        if metric is None:
            metric = env.get(METRIC_ENV) or DEFAULT_METRIC
        if metric not in METRICS:
            raise ValueError(f"{metric_from} is one of {', '.join(METRICS)}, not {metric!r}")
        confidence_from = "--confidence" if confidence is not None else CONFIDENCE_ENV
        if confidence is None:
            text = env.get(CONFIDENCE_ENV) or str(DEFAULT_CONFIDENCE)
            try:
                confidence = float(text)
            except ValueError:
                raise ValueError(f"{CONFIDENCE_ENV} is a number in (0.5, 1), not {text!r}") from None
        if not 0.5 < confidence < 1.0:  # at 0.5 or below, a version more likely worse than the bar would pass
            raise ValueError(f"{confidence_from} lies strictly between 0.5 and 1, not {confidence}")
        return cls(metric=metric, confidence=confidence)
