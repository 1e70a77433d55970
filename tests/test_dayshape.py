"""The household's shape of the day (agent.forecast.dayshape) and the demand curve that
plans by it between whole days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.domain import Unit
from agent.forecast import ConsumableSpec, Observation, forecast
from agent.forecast.dayshape import day_shape

T0 = datetime(2026, 3, 2, tzinfo=UTC)
MILK = ConsumableSpec(Unit.MILLILITRES, capacity=8000.0, pack_size=1000.0,
                      perishable=True, shelf_life_days=8.0)
# A breakfast household: a third of its milk in the hour to 07:00, a quarter to 19:00.
POURS = {7: 0.35, 8: 0.1, 12: 0.1, 16: 0.1, 19: 0.25, 21: 0.1}
RATE = 990.0


def _household(days: int, *, refill_every: int = 4) -> list[Observation]:
    level, out = 5000.0, []
    for h in range(days * 24 + 7):
        ts = T0 + timedelta(hours=h)
        level -= RATE * POURS.get(ts.hour, 0.0)
        if ts.hour == 14 and (h // 24) % refill_every == 0:
            level += 4000.0  # a delivery: a rise, not use
        out.append(Observation(ts, level))
    return out


def test_the_shape_is_the_households_day_from_the_review_hour() -> None:
    obs = _household(21)
    now = obs[-1].ts  # 06:00
    shape = day_shape(obs, MILK, now)
    assert shape is not None and len(shape) == 25
    assert shape[0] == 0.0 and shape[-1] == 1.0
    assert shape[1] == pytest.approx(0.35, abs=0.01)  # breakfast, by 07:00
    assert shape[6] == pytest.approx(0.55, abs=0.01)  # by noon
    assert list(shape) == sorted(shape)


def test_too_few_days_to_see_every_hour_leaves_it_even() -> None:
    obs = _household(3)
    assert day_shape(obs, MILK, obs[-1].ts) is None


def test_the_curve_counts_the_mornings_use_before_noon() -> None:
    obs = _household(21)
    fc = forecast(obs, MILK, obs[-1].ts)
    assert fc.curve is not None and fc.rate_per_day is not None
    by_noon, _ = fc.curve.at(0.25)
    # Evenly, a quarter of a day's use (what a delivery due at noon was planned against).
    assert by_noon == pytest.approx(0.55 * fc.rate_per_day, rel=0.05)
    day, _ = fc.curve.at(1.0)
    assert day == pytest.approx(fc.rate_per_day, rel=1e-6)
