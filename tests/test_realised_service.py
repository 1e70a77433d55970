"""Realised service as a gateway can judge it: each delivery-to-delivery cycle served,
missed (a run-out seen) or left out (time the gateway could not see)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.domain import Unit
from agent.forecast import Away, ConsumableSpec, Delivery, Observation
from agent.forecast.service import realised_service

T0 = datetime(2026, 1, 5, tzinfo=UTC)
MILK = ConsumableSpec(Unit.MILLILITRES, 8000.0, 1000.0, perishable=True, shelf_life_days=8.0)


def hourly(*segments: tuple[float, float, float], empty: float = 20.0) -> list[Observation]:
    """Hourly readings from T0: each (hours, from level, to level) a straight run; a
    week before, ten hours of what this load cell reads when the jug is empty."""
    out = [Observation(T0 - timedelta(days=7, hours=k), empty) for k in range(10)]
    h = 0
    for hours, a, b in segments:
        n = int(hours)
        out += [Observation(T0 + timedelta(hours=h + k), a + (b - a) * k / max(n - 1, 1))
                for k in range(n)]
        h += n
    return out


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_one_run_out_counts_against_its_own_cycle_not_every_order_out() -> None:
    # Three orders out at once (sent at 0, 10, 20 h), delivered at 48, 96 and 144 h; the
    # stock ran out for 20 h before the second delivery only.
    obs = hourly((48, 3000.0, 500.0), (28, 4500.0, 600.0), (20, 0.0, 0.0),
                 (48, 4000.0, 900.0))
    dels = [Delivery(at(48)), Delivery(at(96)), Delivery(at(144))]
    sent = [at(0), at(10), at(20)]
    # The old rule (each order's own order-to-arrival window) read (0, 3).
    assert realised_service(obs, MILK, dels, sent) == (2, 3)


def test_a_lifted_jug_is_not_a_run_out_and_a_pending_order_is_not_judged() -> None:
    obs = hourly((30, 3000.0, 1000.0), (1, 0.0, 0.0), (17, 1000.0, 600.0),
                 (24, 4000.0, 3000.0))
    dels = [Delivery(at(48)), Delivery(at(100), pending=True)]
    assert realised_service(obs, MILK, dels, [at(0), at(60)]) == (1, 1)


def test_a_drifting_load_cell_runs_out_at_its_own_empty_not_a_fixed_floor() -> None:
    # Empty reads 300 ml (3.75 %) on a cell that crept: a day at the bottom.
    drift = hourly((40, 3000.0, 600.0), (30, 300.0, 305.0), (10, 4300.0, 4000.0),
                   empty=295.0)
    assert realised_service(drift, MILK, [Delivery(at(70))], [at(0)]) == (0, 1)
    # The same day there while the household is away: nothing used, nothing missed.
    away = [Away(at(38), at(72))]
    assert realised_service(drift, MILK, [Delivery(at(70))], [at(0)], away) == (1, 1)
    # A day flat near the bottom, above what the cell reads empty: the shape of a
    # run-out (no use through a day's meals) still counts.
    flat = hourly((40, 3000.0, 900.0), (30, 700.0, 705.0), (10, 4300.0, 4000.0))
    assert realised_service(flat, MILK, [Delivery(at(70))], [at(0)]) == (0, 1)
    # A night without use (10 h flat) near the bottom is not a run-out.
    night = hourly((40, 3000.0, 900.0), (10, 600.0, 600.0), (5, 300.0, 200.0))
    assert realised_service(night, MILK, [Delivery(at(55))], [at(0)]) == (1, 1)


def test_time_the_gateway_could_not_see_is_unknown_not_served() -> None:
    # An outage from 40 h to 70 h with a low level before it: the cycle is left out.
    low = hourly((40, 3000.0, 500.0)) + [Observation(at(70 + h), 1500.0 - 50 * h)
                                         for h in range(20)]
    assert realised_service(low, MILK, [Delivery(at(90))], [at(0)]) == (0, 0)
    # The same gap with plenty on both sides is still served.
    full = hourly((40, 6000.0, 5000.0)) + [Observation(at(70 + h), 4000.0 - 50 * h)
                                           for h in range(20)]
    assert realised_service(full, MILK, [Delivery(at(90))], [at(0)]) == (1, 1)


def test_a_dip_below_empty_too_brief_to_tell_leaves_the_cycle_unknown() -> None:
    # Six-hourly readings (folded history): one reading at empty just before delivery.
    obs = hourly(empty=20.0) + [Observation(at(6 * k), lv) for k, lv in
                                enumerate([3000.0, 2200.0, 1500.0, 800.0, 30.0])]
    assert realised_service(obs, MILK, [Delivery(at(27))], [at(0)]) == (0, 0)


def test_a_gap_that_ends_at_empty_is_a_run_out_not_unknown() -> None:
    # Falling steadily, then 20 h without readings (an outage), and the first reading
    # after it reads empty: the stock ran out unseen. d72fc4c left it out: (0, 0).
    obs = hourly((30, 3000.0, 800.0)) + [Observation(at(50), 25.0)]
    assert realised_service(obs, MILK, [Delivery(at(51))], [at(0)]) == (0, 1)
    # The same gap ending at a level with stock left is no run-out (and not blind).
    full = hourly((30, 6000.0, 4000.0)) + [Observation(at(50), 3000.0)]
    assert realised_service(full, MILK, [Delivery(at(51))], [at(0)]) == (1, 1)


def six_hourly(levels: list[float]) -> list[Observation]:
    """Folded history (a reading every 6 h) from T0, after the cell's empty a week
    before."""
    return hourly(empty=20.0) + [Observation(at(6 * k), lv) for k, lv in enumerate(levels)]


def test_a_lifted_jug_does_not_end_a_cycle_however_far_apart_the_readings() -> None:
    # Two readings in a row at zero, 6 h apart, and the level comes back where it was:
    # the jug was out to pour, the milk never ran out. d72fc4c read a 6 h run-out: (0, 1).
    obs = six_hourly([3000.0, 2800.0, 5.0, 8.0, 2500.0, 2300.0, 2100.0])
    assert realised_service(obs, MILK, [Delivery(at(42))], [at(0)]) == (1, 1)
    # At zero for a day, back by a rise of a pack (the household's own shopping): that
    # was a run-out.
    refill = six_hourly([3000.0, 2000.0, 900.0, 5.0, 8.0, 6.0, 4.0, 1900.0, 1700.0])
    assert realised_service(refill, MILK, [Delivery(at(54))], [at(0)]) == (0, 1)


def test_a_slow_household_at_its_lowest_level_is_not_a_run_out() -> None:
    # One person, 5 ml an hour, never ran out: the last day before the delivery is the
    # lowest the cell read in 30 days, still falling at the household's own rate.
    # d72fc4c took the cell's empty for that low and read a run-out: (0, 1).
    obs = [Observation(at(h), 1000.0 - 5.0 * h) for h in range(150)]
    assert realised_service(obs, MILK, [Delivery(at(150))], [at(0)]) == (0, 0)
