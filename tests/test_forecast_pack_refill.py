"""One pack brought home into a device that holds many: a refill, not negative use.

A fridge shelf for a family of five holds 14 one-litre jugs; 8 % of it (the general
refill tolerance) is more than the litre the household adds after a shopping trip, which
was read as a litre taken back, so the rate fell short (bench-decisions family_cold_start:
749 ml/day at 1,650 on the third day). A jug lifted off the shelf and put back is still
no use and no refill.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.domain import Unit
from agent.forecast import ConsumableSpec, Observation, forecast

T0 = datetime(2026, 3, 2, tzinfo=UTC)
FRIDGE = ConsumableSpec(Unit.MILLILITRES, capacity=14000.0, pack_size=1000.0,
                        perishable=True, shelf_life_days=8.0)
RATE = 1650.0  # ml a day, used evenly over the 16 waking hours 07:00-23:00
PER_HOUR = RATE / 16.0


def _readings(days: int, start: float, added: dict[int, float]) -> list[Observation]:
    """Hourly readings from ``start`` ml; ``added``: hour -> ml that reading is off by
    from then on (a jug brought home, a jug lifted and put back)."""
    out = []
    level = start
    for h in range(days * 24 + 1):
        if h and 7 <= (h - 1) % 24 < 23:
            level -= PER_HOUR
        level += added.get(h, 0.0)
        out.append(Observation(T0 + timedelta(hours=h), round(level, 1)))
    return out


def test_one_jug_brought_home_is_a_refill_not_use_taken_back() -> None:
    # On the second day at 17:00 the household brings home a litre; the review is at 06:00
    # the morning after.
    obs = _readings(3, 6000.0, {41: 1000.0})[:3 * 24 - 17]
    fc = forecast(obs, FRIDGE, obs[-1].ts)
    assert fc.rate_per_day is not None
    assert fc.rate_per_day == pytest.approx(RATE, rel=0.1)  # was 836: a litre taken back
    assert fc.level == pytest.approx(obs[-1].level, abs=50)


def test_a_jug_lifted_and_put_back_is_neither_use_nor_refill() -> None:
    # One jug off the shelf for an hour at 19:00 every day, a week long.
    lifted = {}
    for d in range(7):
        lifted[d * 24 + 19] = -1000.0
        lifted[d * 24 + 20] = 1000.0
    obs = _readings(7, 13000.0, lifted)
    fc = forecast(obs, FRIDGE, obs[-1].ts)
    assert fc.rate_per_day is not None
    assert fc.rate_per_day == pytest.approx(RATE, rel=0.1)
