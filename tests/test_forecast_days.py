"""How a household's days go (issue 18): weekdays that vary more than others, and days
whose use persists into the next."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from agent.domain import Unit
from agent.forecast import ConsumableSpec, Observation, forecast

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
MILK = ConsumableSpec(Unit.MILLILITRES, capacity=6000.0, pack_size=1000.0)


def guests(days: int, seed: int = 5, every: int = 5) -> list[Observation]:
    """Six-hourly readings of 300 ml a day, doubled on the Saturday and Sunday of the
    second week in ``every`` (guests; 0: never), refilled by two packs when under a litre."""
    rng = random.Random(seed)
    level, out = 5000.0, []
    for q in range(days * 4):
        day = q // 4
        weekend = day % 7 in (5, 6)
        use = 300.0 / 4 * (2.0 if weekend and every and (day // 7) % every == 1 else 1.0)
        level -= use * rng.uniform(0.85, 1.15)
        if level < 1000.0:
            level += 2000.0
        out.append(Observation(T0 + timedelta(hours=6 * q + 6), round(level, 1)))
    return out


def test_weekends_that_vary_more_carry_more_of_the_spread() -> None:
    # Guests one weekend in five barely move a Saturday's mean use (no weekday pattern),
    # but Saturdays spread far more than Tuesdays: the curve's variance over a weekend
    # is larger than over the same span of weekdays, and so is the risk.
    obs = guests(40)
    friday = T0 + timedelta(days=39, hours=6)  # Friday 06:00: Fri, Sat, Sun ahead
    fri = forecast(obs, MILK, friday)
    tuesday = T0 + timedelta(days=36, hours=6)
    tue = forecast(obs, MILK, tuesday)
    assert fri.curve is not None and tue.curve is not None
    assert "weekday pattern" not in fri.basis
    assert fri.curve.var[3] > 1.5 * tue.curve.var[3]


BIG = ConsumableSpec(Unit.MILLILITRES, capacity=20000.0, pack_size=1000.0)


def spells(days: int, seed: int = 7) -> list[Observation]:
    """Six-hourly readings of a 20 l tank using 300 ml a day, doubled for three days in
    a row every ten days (a visit)."""
    rng = random.Random(seed)
    level, out = 19000.0, []
    for q in range(days * 4):
        day = q // 4
        use = 300.0 / 4 * (2.0 if day % 10 in (7, 8, 9) else 1.0)
        level -= use * rng.uniform(0.85, 1.15)
        out.append(Observation(T0 + timedelta(hours=6 * q + 6), round(level, 1)))
    return out


def test_a_heavy_day_in_a_household_whose_days_persist_says_the_next_is_heavy() -> None:
    # Visits last three days: the morning after the first heavy day, the next days are
    # likely heavy too, and three days' use spreads more than three independent days.
    obs = spells(40)
    now = T0 + timedelta(days=38, hours=6)  # day 38 (8 of 10): the visit's second day
    fc = forecast(obs, BIG, now)
    assert fc.curve is not None and fc.rate_per_day is not None
    assert "days persist" in fc.basis
    assert fc.curve.at(1.0)[0] > 1.15 * fc.rate_per_day
    assert fc.curve.var[3] > 3.3 * fc.curve.var[1]
    # Independent days carry nothing on.
    calm = guests(38, every=0)
    fc = forecast(calm, MILK, now)
    assert fc.curve is not None and fc.rate_per_day is not None
    assert "days persist" not in fc.basis
