"""Reorder timing (agent.policy) on short fixed traces with known answers."""

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
    Forecast,
    Observation,
    forecast,
)
from agent.policy import LeadTime, plan_reorder

T0 = datetime(2026, 3, 2, tzinfo=UTC)
SPEC = ConsumableSpec(Unit.GRAMS, capacity=4000.0, pack_size=1000.0)
MILK = ConsumableSpec(Unit.GRAMS, capacity=4000.0, pack_size=1000.0, perishable=True,
                      shelf_life_days=10.0)
LEAD = LeadTime(2.0, 0.5)


def falling(start: float, rate: float, days: float, *, seed: int = 1,
            t0: datetime = T0) -> list[Observation]:
    """Hourly readings falling at ``rate`` per day, with some day-to-day variation."""
    rng = random.Random(seed)
    out = []
    level = start
    for h in range(int(days * 24) + 1):
        out.append(Observation(t0 + timedelta(hours=h), max(0.0, level + rng.gauss(0, 3))))
        level -= rate / 24 * rng.uniform(0.5, 1.5)
    return out


def test_orders_when_run_out_falls_inside_lead_time_plus_review() -> None:
    obs = falling(3500.0, 200.0, 14.0)  # ~700 g left: 3.5 days of use
    now = obs[-1].ts
    fc = forecast(obs, SPEC, now)
    plan = plan_reorder(fc, SPEC, now, LEAD)
    assert plan.order_now
    assert plan.packs >= 1
    assert plan.expected_arrival == now + timedelta(days=2)
    assert plan.prob_stockout is not None and plan.prob_stockout > 0.05


def test_waits_when_stock_lasts_and_names_the_latest_safe_moment() -> None:
    obs = falling(3900.0, 100.0, 10.0)  # ~2900 g left: 29 days of use
    now = obs[-1].ts
    fc = forecast(obs, SPEC, now)
    plan = plan_reorder(fc, SPEC, now, LEAD)
    assert not plan.order_now
    assert plan.latest_order_at is not None
    days = (plan.latest_order_at - now) / timedelta(days=1)
    # Run-out in ~29 days, minus 2 days lead time and some safety stock.
    assert 18.0 < days < 27.0


def test_stock_on_order_or_on_the_shelf_prevents_a_second_order() -> None:
    obs = falling(3500.0, 200.0, 14.0)
    now = obs[-1].ts
    on_order = [Delivery(now + timedelta(days=1), packs=2)]
    fc = forecast(obs, SPEC, now, deliveries=on_order)
    assert not plan_reorder(fc, SPEC, now, LEAD).order_now
    # Delivered an hour ago and not in the device yet (no rise in the readings).
    shelf = [Delivery(now - timedelta(hours=1), packs=2)]
    fc = forecast(obs, SPEC, now, deliveries=shelf)
    assert fc.spare_packs == 2.0
    assert not plan_reorder(fc, SPEC, now, LEAD).order_now


def test_higher_service_level_and_less_reliable_vendor_order_earlier() -> None:
    obs = falling(3900.0, 150.0, 10.0)
    now = obs[-1].ts
    fc = forecast(obs, SPEC, now)

    def latest(level: float, lead: LeadTime) -> datetime:
        plan = plan_reorder(fc, SPEC, now, lead, service_level=level)
        assert plan.latest_order_at is not None
        return plan.latest_order_at

    assert latest(0.99, LEAD) < latest(0.80, LEAD)
    assert latest(0.95, LeadTime(2.0, 2.0)) < latest(0.95, LeadTime(2.0, 0.0))


def test_delivery_is_moved_out_of_an_away_period() -> None:
    obs = falling(3500.0, 200.0, 17.0)  # about half a day left
    now = obs[-1].ts
    home = forecast(obs, MILK, now)
    assert plan_reorder(home, MILK, now, LEAD).order_now
    # Leaving tomorrow for five days: the order would arrive while nobody is home.
    trip = Away(now + timedelta(days=1), now + timedelta(days=6))
    fc = forecast(obs, MILK, now, away=[trip])
    plan = plan_reorder(fc, MILK, now, LEAD, away=[trip])
    assert not plan.order_now
    assert plan.expected_arrival is not None and plan.latest_order_at is not None
    assert abs(plan.expected_arrival - trip.end) < timedelta(seconds=1)
    assert abs(plan.latest_order_at - (trip.end - timedelta(days=2))) < timedelta(seconds=1)
    assert "away" in plan.reason


def test_perishable_pack_count_is_capped_by_shelf_life() -> None:
    spec = ConsumableSpec(Unit.GRAMS, capacity=10_000.0, pack_size=200.0, perishable=True,
                          shelf_life_days=5.0)
    obs = falling(2000.0, 100.0, 17.5)
    now = obs[-1].ts
    fc = forecast(obs, spec, now)
    plan = plan_reorder(fc, spec, now, LEAD)
    assert plan.order_now
    # About 100 g a day for 5 days: two packs, although forty would fit.
    assert plan.packs == 2
    assert plan_reorder(fc, spec, now, LEAD, max_packs=1).packs == 1


def test_stock_about_to_spoil_triggers_an_order() -> None:
    obs = falling(1000.0, 50.0, 2.0, t0=T0)  # before the refill
    refill_at = obs[-1].ts + timedelta(hours=1)
    obs += falling(3000.0, 50.0, 9.0, t0=refill_at)  # 9 days after a 2 kg refill
    now = obs[-1].ts
    fc = forecast(obs, MILK, now)
    # Everything spoils in a day: only about a day's use of it is usable.
    assert fc.level is not None and fc.level > 2000.0
    assert fc.usable_level == pytest.approx(50.0, abs=25.0)
    assert fc.time_to_empty_days[1] == pytest.approx(1.0, abs=0.15)
    assert "spoils" in fc.basis
    assert plan_reorder(fc, MILK, now, LEAD).order_now
    # The same trace for a product that keeps: plenty left, no order.
    fc_keeps = forecast(obs, SPEC, now)
    assert not plan_reorder(fc_keeps, SPEC, now, LEAD).order_now


def test_without_history_orders_only_at_low() -> None:
    spec = ConsumableSpec(Unit.PERCENT, 100.0, 100.0, low_threshold_level=10.0)
    ok = [Observation(T0 + timedelta(days=d), state=CoarseState.SOME_REMAINING)
          for d in range(3)]
    now = T0 + timedelta(days=3)
    plan = plan_reorder(forecast(ok, spec, now), spec, now, LEAD)
    assert not plan.order_now
    assert "insufficient" in plan.reason
    low = [*ok, Observation(now, state=CoarseState.LOW)]
    plan = plan_reorder(forecast(low, spec, now), spec, now, LEAD)
    assert plan.order_now
    assert plan.packs == 1
    assert "LOW" in plan.reason
    delivered = [Delivery(now - timedelta(hours=2))]
    plan = plan_reorder(forecast(low, spec, now, deliveries=delivered), spec, now, LEAD)
    assert not plan.order_now


def test_no_use_means_no_order() -> None:
    flat = [Observation(T0 + timedelta(hours=h), 2500.0) for h in range(24 * 10)]
    now = flat[-1].ts
    plan = plan_reorder(forecast(flat, SPEC, now), SPEC, now, LEAD)
    assert not plan.order_now


def test_device_low_warning_is_a_floor_even_when_use_looks_slow() -> None:
    spec = ConsumableSpec(Unit.PERCENT, 100.0, 100.0, yield_per_pack=2000.0,
                          low_threshold_level=10.0)
    # Two pages a day: 0.1 % a day, so 10 % left would last a hundred days.
    obs = [Observation(T0 + timedelta(days=d), state=CoarseState.SOME_REMAINING,
                       counter=1000 + 2 * d) for d in range(40)]
    now = T0 + timedelta(days=40)
    obs.append(Observation(now, state=CoarseState.LOW, counter=1080))
    fc = forecast(obs, spec, now)
    assert fc.usable and fc.low_signal
    assert fc.level == pytest.approx(10.0, abs=0.5)
    plan = plan_reorder(fc, spec, now, LEAD)
    assert plan.order_now
    assert "LOW" in plan.reason


def stocked_milk(days: float = 12.0, rate: float = 250.0, seed: int = 3) -> list[Observation]:
    """A fridge topped up with a litre every two days while using 250 g a day: more milk
    than gets drunk within its ten-day shelf life."""
    rng = random.Random(seed)
    out = []
    level = 1200.0
    for h in range(int(days * 24) + 1):
        if h and h % 48 == 0:
            level += 1000.0
        out.append(Observation(T0 + timedelta(hours=h), max(0.0, level + rng.gauss(0, 3))))
        level -= rate / 24 * rng.uniform(0.5, 1.5)
    return out


def test_no_reorder_while_milk_spoils_and_the_rest_outlasts_a_late_delivery() -> None:
    obs = stocked_milk()
    now = obs[-1].ts
    fc = forecast(obs, MILK, now)
    assert fc.level is not None and fc.usable_level is not None
    assert fc.level - fc.usable_level > 500  # some of it will be thrown away
    plan = plan_reorder(fc, MILK, now, LeadTime(4.0, 2.5), service_level=0.995)
    assert not plan.order_now and "spoils before it is used" in plan.reason


def test_spoiling_milk_is_still_reordered_when_the_rest_runs_out_first() -> None:
    obs = stocked_milk()
    now = obs[-1].ts
    fc = forecast(obs, MILK, now)
    plan = plan_reorder(fc, MILK, now, LeadTime(6.0, 2.5), service_level=0.995)
    assert plan.order_now and plan.packs >= 1


def test_observed_heavy_tail_is_kept_not_smoothed_into_a_normal() -> None:
    # Usually two days, a week late one time in seven.
    observed = [2.0] * 17 + [9.0] * 3
    lt = LeadTime.learned(LeadTime(2.0, 0.5), observed)
    assert lt.quantile(0.5) == pytest.approx(2.0, abs=0.5)
    assert lt.quantile(0.95) == pytest.approx(9.0)
    normal = LeadTime(lt.mean_days, lt.sd_days)
    assert normal.quantile(0.95) < 8.0  # a normal with the same moments misses the tail
    assert sum(w for _, w in lt.points()) == pytest.approx(1.0)
    assert LeadTime.learned(LeadTime(3.0, 1.0), []) == LeadTime(3.0, 1.0)


def test_with_no_history_the_vendor_prior_is_the_distribution() -> None:
    lt = LeadTime(4.0, 1.0)
    assert lt.quantile(0.5) == pytest.approx(4.0, abs=1e-6)
    assert lt.quantile(0.9) == pytest.approx(4.0 + 1.2816, abs=1e-3)
    # One delivery moves the prior by a fifth of the way (prior counts as four).
    one = LeadTime.learned(lt, [9.0])
    assert one.mean_days == pytest.approx(5.0, abs=0.01)


def test_an_overdue_order_is_on_order_not_on_the_shelf_until_presumed_lost() -> None:
    t0 = datetime(2026, 2, 2, tzinfo=UTC)
    spec = ConsumableSpec(Unit.PERCENT, 100.0, 100.0)
    lead = LeadTime(3.0, 1.0)

    def fc_at(start: float, *deliveries: Delivery) -> tuple[Forecast, datetime]:
        obs = [Observation(t0 + timedelta(hours=6 * k), max(0.0, start - 1.5 * k))
               for k in range(30)]
        now = obs[-1].ts + timedelta(hours=1)
        return forecast(obs, spec, now, deliveries=list(deliveries)), now

    probe, now = fc_at(70.0)
    late = Delivery(now - timedelta(hours=12), 1.0, pending=True)
    fc, now = fc_at(70.0, late)  # a week of toner left: the late order is still coming
    assert fc.spare_packs == 0 and fc.incoming == (late,)
    assert not plan_reorder(fc, spec, now, lead).order_now
    fc, now = fc_at(44.0, late)  # empty now: it will not come in time, order again
    assert plan_reorder(fc, spec, now, lead).order_now
    lost = Delivery(now - timedelta(days=5), 1.0, pending=True)
    fc, now = fc_at(44.0, lost)
    assert plan_reorder(fc, spec, now, lead).order_now
    assert fc.confidence is not Confidence.INSUFFICIENT_DATA and probe.level is not None
    # The same date as a delivery that arrived (not pending) is a spare on the shelf.
    fc, now = fc_at(70.0, Delivery(now - timedelta(days=1), 1.0))
    assert fc.spare_packs == 1.0 and fc.incoming == ()


def test_a_rounding_printer_at_zero_percent_still_has_its_spare_on_the_shelf() -> None:
    t0 = datetime(2026, 2, 2, tzinfo=UTC)
    spec = ConsumableSpec(Unit.PERCENT, 100.0, 100.0, yield_per_pack=3000.0)
    # 10 % a day, 30 pages a day; the gauge rounds down to 0 % for the last two days
    # while the counter keeps moving: a few percent are left, the spare waits.
    obs = [Observation(t0 + timedelta(hours=6 * k), max(0.0, 10.0 * ((40 - k) // 4)), None,
                       30 * k // 4) for k in range(48)]
    spare = Delivery(t0 + timedelta(days=7), 1.0)
    now = obs[-1].ts + timedelta(hours=1)
    fc = forecast(obs, spec, now, deliveries=[spare])
    assert fc.spare_packs == 1.0
    plan = plan_reorder(fc, spec, now, LeadTime(3.0, 1.0))
    assert not plan.order_now, plan.reason


def test_after_a_month_idle_a_fresh_cartridge_is_not_forecast_empty() -> None:
    t0 = datetime(2026, 2, 2, tzinfo=UTC)
    spec = ConsumableSpec(Unit.PERCENT, 100.0, 100.0)
    # 10 % steps, a step every two days, then replaced and an office closed four weeks.
    obs = [Observation(t0 + timedelta(hours=12 * k), float(100 - 10 * (k // 4)))
           for k in range(36)]
    t = obs[-1].ts
    obs += [Observation(t + timedelta(days=k), 100.0) for k in range(1, 29)]
    now = obs[-1].ts + timedelta(hours=1)
    fc = forecast(obs, spec, now)
    assert "steps" in fc.basis
    p10 = fc.time_to_empty_days[0]
    assert p10 is None or p10 > 5.0, fc
