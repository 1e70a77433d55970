"""Scenario tests for agent.forecast on short fixed traces with known answers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from agent.domain import CoarseState, Unit
from agent.forecast import (
    Away,
    Confidence,
    ConsumableSpec,
    Delivery,
    Observation,
    forecast,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
MILK = ConsumableSpec(Unit.GRAMS, capacity=4000.0, pack_size=2000.0, perishable=True,
                      shelf_life_days=10.0)
TONER = ConsumableSpec(Unit.PERCENT, capacity=100.0, pack_size=100.0, yield_per_pack=2000.0,
                       low_threshold_level=10.0)


def linear(start: float, rate: float, days: float, *, every_h: float = 1.0,
           t0: datetime = T0, noise: float = 0.0, seed: int = 0) -> list[Observation]:
    """Readings of a level falling at ``rate`` per day."""
    rng = random.Random(seed)
    out = []
    n = int(days * 24 / every_h)
    for i in range(n + 1):
        t = t0 + timedelta(hours=i * every_h)
        level = start - rate * i * every_h / 24 + (rng.gauss(0, noise) if noise else 0.0)
        out.append(Observation(t, max(0.0, level)))
    return out


def test_steady_use_gives_rate_level_and_run_out() -> None:
    obs = linear(3800.0, 150.0, 14.0, noise=5.0)
    now = T0 + timedelta(days=14)
    fc = forecast(obs, MILK, now)
    assert fc.rate_per_day == pytest.approx(150.0, rel=0.03)
    assert fc.level == pytest.approx(3800.0 - 14 * 150.0, abs=30.0)
    p10, p50, p90 = fc.time_to_empty_days
    assert p10 is not None and p50 is not None and p90 is not None
    assert p50 == pytest.approx((3800.0 - 14 * 150.0) / 150.0, rel=0.05)
    assert p10 < p50 < p90
    assert fc.confidence in (Confidence.HIGH, Confidence.MEDIUM)
    assert "theil-sen" in fc.basis
    empty = fc.empty_at(1)
    assert empty is not None and empty > now


def test_too_few_readings_says_so_instead_of_guessing() -> None:
    obs = linear(3000.0, 100.0, 0.2, every_h=2.0)
    fc = forecast(obs, MILK, T0 + timedelta(hours=5))
    assert fc.confidence is Confidence.INSUFFICIENT_DATA
    assert fc.rate_per_day is None
    assert fc.time_to_empty_days == (None, None, None)
    assert not fc.usable


def test_no_readings_at_all() -> None:
    fc = forecast([], MILK, T0)
    assert fc.confidence is Confidence.INSUFFICIENT_DATA
    assert fc.level is None


def test_lifted_jug_zero_is_a_spike_not_use() -> None:
    obs = linear(3800.0, 100.0, 10.0)
    clean = forecast(obs, MILK, T0 + timedelta(days=10))
    obs[100] = Observation(obs[100].ts, 0.0)
    obs[180] = Observation(obs[180].ts, 0.0)
    fc = forecast(obs, MILK, T0 + timedelta(days=10))
    assert fc.rate_per_day == pytest.approx(clean.rate_per_day or 0.0, rel=0.02)
    assert "odd readings ignored" in fc.basis


def test_newest_reading_zero_is_held_until_confirmed() -> None:
    obs = linear(3800.0, 100.0, 10.0)
    last = obs[-1]
    obs[-1] = Observation(last.ts, 0.0)
    fc = forecast(obs, MILK, last.ts)
    assert fc.level is not None and fc.level > 2500.0
    # Two readings at zero can still be a jug left out on the table; a third confirms.
    obs.append(Observation(last.ts + timedelta(hours=1), 0.0))
    fc2 = forecast(obs, MILK, last.ts + timedelta(hours=1))
    assert fc2.level is not None and fc2.level > 2500.0
    obs.append(Observation(last.ts + timedelta(hours=2), 0.0))
    fc3 = forecast(obs, MILK, last.ts + timedelta(hours=2))
    assert fc3.level == pytest.approx(0.0, abs=1.0)


def test_refill_the_agent_did_not_order_keeps_the_rate() -> None:
    obs = linear(3000.0, 120.0, 10.0)
    t_refill = obs[-1].ts
    # The household brought home 2 kg: the level jumps and keeps falling.
    after = linear(obs[-1].level + 2000.0 - 5.0, 120.0, 5.0, t0=t_refill + timedelta(hours=1))
    fc = forecast(obs + after, MILK, after[-1].ts)
    assert fc.rate_per_day == pytest.approx(120.0, rel=0.05)
    assert "1 refills cut out" in fc.basis
    assert fc.level == pytest.approx(after[-1].level, abs=20.0)


def test_late_out_of_order_sparse_readings() -> None:
    obs = linear(3900.0, 80.0, 30.0, every_h=72.0)
    shuffled = obs[:]
    random.Random(3).shuffle(shuffled)
    fc = forecast(shuffled, MILK, obs[-1].ts)
    assert fc.rate_per_day == pytest.approx(80.0, rel=0.03)
    # A reading from the future (clock skew) is ignored.
    fc2 = forecast([*shuffled, Observation(obs[-1].ts + timedelta(days=2), 0.0)], MILK,
                   obs[-1].ts)
    assert fc2.level == pytest.approx(fc.level or 0.0)


def test_away_days_are_dropped_from_the_rate_and_extend_the_run_out() -> None:
    before = linear(3900.0, 100.0, 10.0)
    away = Away(T0 + timedelta(days=10), T0 + timedelta(days=17))
    flat = [Observation(T0 + timedelta(days=10, hours=h), before[-1].level)
            for h in range(1, 7 * 24)]
    after = linear(before[-1].level, 100.0, 5.0, t0=T0 + timedelta(days=17))
    now = after[-1].ts
    obs = before + flat + after
    fc = forecast(obs, MILK, now, away=[away])
    assert fc.rate_per_day == pytest.approx(100.0, rel=0.05)
    trip = Away(now + timedelta(days=2), now + timedelta(days=6))
    fc_trip = forecast(obs, MILK, now, away=[away, trip])
    p50 = fc.time_to_empty_days[1]
    p50_trip = fc_trip.time_to_empty_days[1]
    assert p50 is not None and p50_trip is not None
    assert p50_trip == pytest.approx(p50 + 4.0, abs=0.2)


def test_step_change_in_behaviour_is_followed() -> None:
    first = linear(3900.0, 60.0, 30.0, every_h=4.0)
    second = linear(first[-1].level, 180.0, 10.0, every_h=4.0, t0=first[-1].ts)[1:]
    fc = forecast(first + second, MILK, second[-1].ts)
    assert fc.rate_per_day == pytest.approx(180.0, rel=0.12)
    assert "step change" in fc.basis


def test_weekday_pattern_shapes_the_projection() -> None:
    # Three times the use on Saturday and Sunday, read once a day at midnight.
    obs = []
    level = 3900.0
    for d in range(36):
        t = T0 + timedelta(days=d)
        obs.append(Observation(t, level))
        level -= 90.0 if t.weekday() >= 5 else 30.0
        if level < 500.0:
            level += 2000.0
    fc = forecast(obs, MILK, obs[-1].ts)
    assert "weekday" in fc.basis
    assert fc.rate_per_day == pytest.approx(330.0 / 7, rel=0.1)


def test_ten_percent_steps_use_crossing_times() -> None:
    # Rounded up to 10 %, falling 1.5 %/day, read every 6 h.
    obs = []
    for i in range(0, 40 * 4):
        t = T0 + timedelta(hours=6 * i)
        true = 98.0 - 1.5 * i / 4
        obs.append(Observation(t, float(max(0, -(-true // 10)) * 10)))
    fc = forecast(obs, ConsumableSpec(Unit.PERCENT, 100.0, 100.0), obs[-1].ts)
    assert fc.rate_per_day == pytest.approx(1.5, rel=0.15)
    assert "step-crossing" in fc.basis
    true_now = 98.0 - 1.5 * (len(obs) - 1) / 4
    assert fc.level == pytest.approx(true_now, abs=6.0)


def test_page_counter_times_declared_yield() -> None:
    obs = []
    pages = 5000
    for d in range(30):
        pct = 100.0 - pages_since(d) * 100.0 / 2000.0
        obs.append(Observation(T0 + timedelta(days=d), float(-(-pct // 10) * 10),
                               counter=pages + 20 * d))
    replaced = [Observation(T0 - timedelta(days=1), 0.0, counter=pages),
                Observation(T0 - timedelta(hours=12), 100.0, counter=pages)]
    fc = forecast(replaced + obs, TONER, obs[-1].ts)
    assert "counter" in fc.basis
    assert fc.rate_per_day == pytest.approx(1.0, rel=0.05)
    assert fc.level == pytest.approx(100.0 - 29 * 1.0, abs=2.0)


def pages_since(day: int) -> int:
    return 20 * day


def test_low_only_printer_without_counter_orders_on_what_is_known() -> None:
    spec = ConsumableSpec(Unit.PERCENT, 100.0, 100.0, low_threshold_level=10.0)
    obs = [Observation(T0 + timedelta(days=d), state=CoarseState.SOME_REMAINING)
           for d in range(20)]
    fc = forecast(obs, spec, obs[-1].ts)
    assert fc.confidence is Confidence.INSUFFICIENT_DATA
    assert not fc.low_signal
    obs.append(Observation(T0 + timedelta(days=21), state=CoarseState.LOW))
    fc = forecast(obs, spec, T0 + timedelta(days=21))
    assert fc.low_signal
    assert fc.level == pytest.approx(10.0)
    assert fc.basis == "LOW state only"


def test_low_only_printer_learns_the_cycle_length() -> None:
    spec = ConsumableSpec(Unit.PERCENT, 100.0, 100.0, low_threshold_level=10.0)
    states = []
    # Replaced on day 0, LOW on day 45 (90 % in 45 days), replaced on day 50.
    for d in range(0, 70):
        low = 45 <= d < 50
        states.append(Observation(T0 + timedelta(days=d),
                                  state=CoarseState.LOW if low else CoarseState.OK))
    fc = forecast([Observation(T0 - timedelta(days=1), state=CoarseState.LOW), *states], spec,
                  T0 + timedelta(days=69))
    assert fc.rate_per_day == pytest.approx(2.0, rel=0.05)
    assert fc.level == pytest.approx(100.0 - 2.0 * 19, abs=3.0)


def test_discrete_sensor_count() -> None:
    spec = ConsumableSpec(Unit.COUNT, capacity=30.0, pack_size=3.0)
    obs = []
    for h in range(0, 60 * 24, 2):
        count = 9 - (h // 240)  # one sensor every 10 days
        obs.append(Observation(T0 + timedelta(hours=h), float(count)))
    fc = forecast(obs, spec, obs[-1].ts)
    assert fc.rate_per_day == pytest.approx(0.1, rel=0.1)
    assert fc.level is not None and 3.0 <= fc.level <= 4.0


def test_delivered_cartridge_on_the_shelf_counts_as_spare() -> None:
    obs = []
    for d in range(20):
        obs.append(Observation(T0 + timedelta(days=d), 40.0 - 2.0 * d, counter=1000 + 40 * d))
    deliveries = [Delivery(T0 + timedelta(days=15))]
    fc = forecast(obs, TONER, obs[-1].ts, deliveries=deliveries)
    assert fc.spare_packs == 1.0
    # Once the printer shows the new cartridge, the spare is used up.
    obs.append(Observation(T0 + timedelta(days=21), 100.0, counter=1840))
    obs.append(Observation(T0 + timedelta(days=22), 98.0, counter=1880))
    fc = forecast(obs, TONER, obs[-1].ts, deliveries=deliveries)
    assert fc.spare_packs == 0.0
    pending = [Delivery(T0 + timedelta(days=30), packs=2)]
    fc = forecast(obs, TONER, obs[-1].ts, deliveries=pending)
    assert [d.packs for d in fc.incoming] == [2]


def _breakfasts(days: int, per_day: float, start: float, spoil_at: float | None = None,
                ) -> list[Observation]:
    """Hourly readings of a 6 kg milk shelf: a family pours most of a day's milk at one
    7:00 breakfast (a drop bigger than 8 % of the shelf inside an hour), the rest over
    the day; ``spoil_at`` (hours) throws out 900 g at once."""
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    level = start
    out = []
    for h in range(days * 24):
        if h % 24 == 7:
            level -= 0.7 * per_day
        elif 8 <= h % 24 < 20:
            level -= 0.3 * per_day / 12
        if spoil_at is not None and h == spoil_at:
            level -= 900.0
        out.append(Observation(t0 + timedelta(hours=h), max(0.0, level)))
    return out


def test_a_family_breakfast_is_use_not_spoilage() -> None:
    spec = ConsumableSpec(Unit.GRAMS, 6000.0, 1000.0, perishable=True, shelf_life_days=30.0)
    obs = _breakfasts(6, 800.0, 6000.0)
    fc = forecast(obs, spec, obs[-1].ts + timedelta(minutes=30))
    assert fc.rate_per_day == pytest.approx(800.0, rel=0.15), fc.basis


def test_a_drop_when_a_delivered_batch_expires_is_spoilage_not_use() -> None:
    spec = ConsumableSpec(Unit.GRAMS, 6000.0, 1000.0, perishable=True, shelf_life_days=3.0)
    obs = _breakfasts(6, 300.0, 6000.0, spoil_at=24 * 4 + 13)
    delivered = Delivery(obs[0].ts + timedelta(days=1, hours=13), 1.0)
    fc = forecast(obs, spec, obs[-1].ts + timedelta(minutes=30), deliveries=[delivered])
    assert fc.rate_per_day == pytest.approx(300.0, rel=0.15), fc.basis


def test_two_cartridges_delivered_around_one_replacement_leave_one_on_the_shelf() -> None:
    # A LOW-only printer: a late order's cartridge arrives at LOW (day 3) and waits; the
    # printer empties and is replaced at day 5 12:00; the reorder's cartridge arrives
    # half an hour later. One replacement, two deliveries: one is on the shelf.
    from agent.forecast.refills import spare_packs

    obs = []
    for h in range(0, 8 * 24, 6):
        t = T0 + timedelta(hours=h)
        state = (CoarseState.OK if h < 2 * 24 or h >= 5 * 24 + 12 else
                 CoarseState.EMPTY if h >= 4 * 24 else CoarseState.LOW)
        obs.append(Observation(t, None, state, 100 * h))
    first = Delivery(T0 + timedelta(days=3))
    second = Delivery(T0 + timedelta(days=5, hours=12, minutes=30))
    assert spare_packs(obs, TONER, [first, second], obs[-1].ts) == 1.0
    # Either one alone has shown up.
    assert spare_packs(obs, TONER, [first], obs[-1].ts) == 0.0
    assert spare_packs(obs, TONER, [second], obs[-1].ts) == 0.0


def test_a_first_day_and_a_night_of_pours_measure_the_day_not_the_night() -> None:
    # One person's milk poured at meals from midnight on, the review at 06:00 the next
    # morning: the last reading of each day spans only the night (no pours), so daily
    # points alone read almost no use (31 ml/day at 330 in bench-decisions).
    pours = {7: 0.35, 8: 0.1, 12: 0.1, 16: 0.1, 19: 0.25, 21: 0.1}
    level, obs = 1000.0, []
    for h in range(31):
        level -= 330.0 * pours.get(h % 24, 0.0)
        obs.append(Observation(T0 + timedelta(hours=h), level))
    fc = forecast(obs, MILK, T0 + timedelta(hours=30))
    assert fc.rate_per_day is not None
    assert fc.rate_per_day == pytest.approx(330.0 * 24 / 30, rel=0.25)



def _shelf(levels: list[tuple[float, float]], hours: int, start: float = 600.0,
           ) -> list[Observation]:
    """Hourly readings of a milk shelf using 150 g a day from ``start``, with ``(hour,
    grams)`` added at those hours."""
    out, level = [], start
    add = dict(levels)
    for h in range(hours):
        level = max(0.0, level - 150.0 / 24) + add.get(h, 0.0)
        out.append(Observation(T0 + timedelta(hours=h), round(level, 1)))
    return out


FIRST = Delivery(T0 + timedelta(hours=49, minutes=40))
SECOND = Delivery(T0 + timedelta(hours=49, minutes=50))


def test_a_pack_the_fridge_had_room_for_is_in_it_not_on_the_shelf() -> None:
    # Two 1 kg orders came ten minutes apart; the scale rose by one litre only (old milk
    # thrown out as the new went in). The 6 kg shelf had room for the other: it is in
    # the fridge, not waiting outside (the old rule kept it "on the shelf" for its shelf
    # life, and the planner counted a phantom litre while the milk ran out).
    from agent.forecast.refills import spare_packs

    spec = ConsumableSpec(Unit.GRAMS, 6000.0, 1000.0)
    obs = _shelf([(50, 1000.0)], 24 * 5)
    assert spare_packs(obs, spec, [FIRST, SECOND], obs[-1].ts) == 0.0
    # A printer holds one cartridge: the second waits on the shelf until it is empty.
    toner = [Observation(T0 + timedelta(hours=h), 100.0 - h / 10) for h in range(24 * 5)]
    toner[50] = Observation(toner[50].ts, 100.0)
    assert spare_packs(toner, TONER, [FIRST], toner[-1].ts) == 1.0


def test_two_orders_in_one_rise_are_both_in_the_device() -> None:
    # A 2 kg shelf: two 1 kg orders show up as one rise of two packs, and there is no
    # room for a third: both are in, none on the shelf (one rise used to hold one).
    from agent.forecast.refills import spare_packs

    spec = ConsumableSpec(Unit.GRAMS, 2000.0, 1000.0)
    obs = _shelf([(50, 2000.0)], 24 * 3, start=300.0)
    assert spare_packs(obs, spec, [FIRST, SECOND], obs[-1].ts) == 0.0
    milk = ConsumableSpec(Unit.GRAMS, 2000.0, 1000.0, perishable=True, shelf_life_days=10.0)
    fc = forecast(obs, milk, obs[-1].ts, deliveries=[FIRST, SECOND])
    assert fc.spare_packs == 0.0
    # A rise of one pack with no room for the other: that one waits.
    one = _shelf([(50, 1000.0)], 24 * 3, start=900.0)
    assert spare_packs(one, spec, [FIRST, SECOND], one[-1].ts) == 1.0


def test_a_perishable_pack_not_seen_within_its_shelf_life_is_not_waiting() -> None:
    # A litre delivered to a full 2 kg shelf never showed up: after its shelf life it is
    # not stock on the shelf, whatever happened to it (the scale never read empty).
    milk = ConsumableSpec(Unit.GRAMS, 2000.0, 1000.0, perishable=True, shelf_life_days=4.0)
    obs = _shelf([], 24 * 6, start=2000.0)
    came = Delivery(T0 + timedelta(hours=6))
    assert forecast(obs, milk, T0 + timedelta(days=3), deliveries=[came]).spare_packs == 1.0
    assert forecast(obs, milk, obs[-1].ts, deliveries=[came]).spare_packs == 0.0
