"""The household's shape of the day (issue 18): what the planner sees between whole
days."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from agent.domain import Unit
from agent.forecast import ConsumableSpec, Observation, forecast
from agent.forecast.dayshape import day_shape

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
MILK = ConsumableSpec(Unit.MILLILITRES, capacity=6000.0, pack_size=1000.0)


def breakfasts(days: int, per_day: float = 600.0, seed: int = 3) -> list[Observation]:
    """Hourly readings of a household pouring 70 % of its milk at 07:00 and the rest at
    19:00, refilled by two packs when under a litre."""
    rng = random.Random(seed)
    level, out = 4000.0, []
    for h in range(days * 24):
        hour = h % 24
        if hour == 7:
            level -= 0.7 * per_day * rng.uniform(0.8, 1.2)
        elif hour == 19:
            level -= 0.3 * per_day * rng.uniform(0.8, 1.2)
        if level < 1000.0:
            level += 2000.0
        out.append(Observation(T0 + timedelta(hours=h, minutes=30),
                               round(level + rng.gauss(0.0, 4.0), 1)))
    return out


def test_the_shape_of_the_day_is_read_from_the_falls_between_close_readings() -> None:
    obs = breakfasts(30)
    now = T0 + timedelta(days=30, hours=6)
    shape = day_shape(obs, MILK, now)
    assert shape is not None and len(shape) == 25
    assert shape[0] == 0.0 and shape[24] == 1.0
    # By 08:00 (two hours after a 06:00 review) breakfast is done: 70 % of the day.
    assert shape[2] == pytest.approx(0.7, abs=0.05)
    assert shape[13] == pytest.approx(0.7, abs=0.05)  # nothing more until 19:00
    # Too few days to have seen every hour: no shape.
    assert day_shape(obs[: 24 * 5], MILK, T0 + timedelta(days=5)) is None


def test_a_review_before_breakfast_plans_against_breakfast_not_an_even_day() -> None:
    # Half a day's use left at 06:00: linear between whole days put 2 h later at 1/12
    # of a day's use; breakfast pours 70 % by then, so the stock is likely gone.
    obs = breakfasts(30)
    now = T0 + timedelta(days=30, hours=6)
    fc = forecast(obs, MILK, now)
    assert fc.curve is not None and fc.rate_per_day is not None
    rate = fc.rate_per_day
    mean, _ = fc.curve.at(2.0 / 24.0)
    assert mean == pytest.approx(0.7 * rate, rel=0.1)
    assert fc.curve.at(1.0)[0] == pytest.approx(rate, rel=1e-9)  # whole days as before
    p = fc.prob_empty_within(2.0 / 24.0, extra_level=0.5 * rate - (fc.level or 0.0))
    assert p is not None and p > 0.5
