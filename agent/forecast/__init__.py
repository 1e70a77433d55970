"""Depletion forecasting, the pure core: readings and ``now`` in, a :class:`Forecast` out.

``types`` holds the values in and out, ``series`` turns readings into refill-adjusted
use, ``methods`` the estimators, ``refills`` deliveries and spoilage, ``project`` run-out
quantiles, ``estimate`` the one entry point :func:`forecast`.
"""

from agent.forecast.estimate import FitMemo, away_days, forecast, to_days
from agent.forecast.types import (
    Away,
    Confidence,
    ConsumableSpec,
    Delivery,
    EstimateKind,
    Forecast,
    Observation,
)

__all__ = [
    "Away", "Confidence", "ConsumableSpec", "Delivery", "EstimateKind", "FitMemo", "Forecast",
    "Observation",
    "away_days", "forecast", "to_days",
]
