"""The estimate kind the forecast reports, and Forecast built by keyword only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.domain import CoarseState, Unit
from agent.forecast import (
    Confidence,
    ConsumableSpec,
    EstimateKind,
    Forecast,
    Observation,
    forecast,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)
MILK = ConsumableSpec(Unit.GRAMS, capacity=4000.0, pack_size=2000.0)
GAUGE = ConsumableSpec(Unit.PERCENT, capacity=100.0, pack_size=100.0)
TONER = ConsumableSpec(Unit.PERCENT, capacity=100.0, pack_size=100.0, yield_per_pack=2000.0)


def _hours(n: int) -> list[datetime]:
    return [T0 + timedelta(hours=h) for h in range(n)]


def test_fine_sensor_is_fine() -> None:
    obs = [Observation(t, 3000.0 - 10.0 * i) for i, t in enumerate(_hours(24 * 5))]
    assert forecast(obs, MILK, T0 + timedelta(days=5)).kind is EstimateKind.FINE


def test_rounded_gauge_is_steps_even_without_crossings() -> None:
    # A 10 % gauge that stepped once: too few crossings for a rate, but the kind says
    # steps (the code that looks back further for crossings branches on this, not on
    # the basis text).
    obs = [Observation(t, 70.0 if i < 48 else 60.0) for i, t in enumerate(_hours(24 * 3))]
    fc = forecast(obs, GAUGE, T0 + timedelta(days=3))
    assert fc.kind is EstimateKind.STEPS
    assert fc.confidence is Confidence.INSUFFICIENT_DATA


def test_counter_and_states() -> None:
    obs = [Observation(t, None, CoarseState.LOW if i > 100 else CoarseState.OK, 20 * i)
           for i, t in enumerate(_hours(24 * 6))]
    assert forecast(obs, TONER, T0 + timedelta(days=6)).kind is EstimateKind.COUNTER
    states = [Observation(t, None, CoarseState.LOW) for t in _hours(5)]
    assert forecast(states, GAUGE, T0 + timedelta(hours=5)).kind is EstimateKind.STATE


def test_single_reading_and_nothing() -> None:
    one = forecast([Observation(T0, 1500.0)], MILK, T0 + timedelta(hours=1))
    assert one.kind is EstimateKind.LAST_READING and one.level == 1500.0
    assert forecast([], MILK, T0).kind is EstimateKind.NONE


def test_forecast_takes_keywords_only() -> None:
    with pytest.raises(TypeError):
        Forecast(T0, 1.0, 0.0, None, 0.0, (None, None, None),  # type: ignore[misc]
                 Confidence.LOW, 0.0, "x", False)
