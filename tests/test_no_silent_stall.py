"""Never a silent stall (ARCHITECTURE invariant 7): stock that is low or empty with
nothing on order is ordered, proposed or reminded within one review, whatever the
forecast makes of its history."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.domain import CoarseState, Unit
from agent.forecast import Away, Confidence, ConsumableSpec, Observation, forecast
from agent.policy import LeadTime, is_low, plan_reorder

T0 = datetime(2026, 3, 2, tzinfo=UTC)
FAST = settings(max_examples=120, deadline=None)

SPECS = (
    ConsumableSpec(Unit.GRAMS, 6000.0, 1000.0, perishable=True, shelf_life_days=10.0),
    ConsumableSpec(Unit.MILLILITRES, 1000.0, 1000.0, perishable=True, shelf_life_days=7.0),
    ConsumableSpec(Unit.COUNT, 9.0, 3.0),
    ConsumableSpec(Unit.COUNT, 48.0, 12.0, perishable=True, shelf_life_days=28.0),
    ConsumableSpec(Unit.PERCENT, 100.0, 100.0),
    ConsumableSpec(Unit.PERCENT, 100.0, 100.0, yield_per_pack=3000.0),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[ConsumableSpec, list[Observation], datetime]:
    """Any shape of history (short or long, steady, noisy, refilled, gappy, lifted, coarse,
    states only, counters) that ends with stock at or below the LOW threshold."""
    spec = draw(st.sampled_from(SPECS))
    rng = random.Random(draw(st.integers(0, 10_000)))
    hours = draw(st.integers(1, 24 * 60))
    every = draw(st.sampled_from((1, 2, 6, 24)))
    kind = draw(st.sampled_from(("level", "state", "counter")))
    if spec.yield_per_pack is None and kind == "counter":
        kind = "level"
    rate = draw(st.floats(0.0, 0.6)) * spec.capacity / 24.0  # per hour
    level = draw(st.floats(0.0, 1.0)) * spec.capacity
    step = draw(st.sampled_from((None, 1.0, 10.0)))
    obs: list[Observation] = []
    pages = 0
    for h in range(0, hours, every):
        level = max(0.0, level - rate * every * rng.uniform(0.0, 2.0))
        if rng.random() < 0.02:
            level = spec.capacity * rng.uniform(0.5, 1.0)  # a refill nobody ordered
        if rng.random() < 0.1:
            continue  # a gap
        ts = T0 + timedelta(hours=h)
        shown = level if step is None else step * round(level / step)
        if spec.unit is Unit.COUNT:
            shown = float(round(level))
        if rng.random() < 0.03:
            shown = 0.0  # a lifted jug
        pages += int(rate * every * 30)
        if kind == "state":
            state = CoarseState.LOW if level <= spec.low_level else CoarseState.OK
            obs.append(Observation(ts, None, state))
        elif kind == "counter":
            obs.append(Observation(ts, shown, None, pages))
        else:
            obs.append(Observation(ts, shown))
    end = T0 + timedelta(hours=hours)
    low = draw(st.floats(0.0, 1.0)) * spec.low_level
    if spec.unit is Unit.COUNT:
        low = float(int(low))
    final = draw(st.sampled_from(("level", "low", "empty")))
    for k in range(3):  # the newest readings agree: the stock is low now
        ts = end + timedelta(hours=6 * k)
        if kind == "state" or final != "level":
            state = CoarseState.EMPTY if final == "empty" else CoarseState.LOW
            obs.append(Observation(ts, None if kind == "state" else low, state, pages))
        else:
            obs.append(Observation(ts, low, None, pages if kind == "counter" else None))
    now = end + timedelta(hours=12 + draw(st.integers(0, 30)))
    rng.shuffle(obs)  # late readings arrive in any order
    return spec, obs, now


@FAST
@given(h=histories(), lead=st.floats(0.5, 10.0), sd=st.floats(0.0, 4.0),
       service=st.floats(0.8, 0.995))
def test_low_stock_with_nothing_on_order_is_always_ordered(
        h: tuple[ConsumableSpec, list[Observation], datetime], lead: float, sd: float,
        service: float) -> None:
    spec, obs, now = h
    fc = forecast(obs, spec, now)
    assert is_low(fc, spec), (fc.level, fc.low_signal, fc.basis)
    if fc.confidence is Confidence.INSUFFICIENT_DATA and any(o.level is not None for o in obs):
        assert fc.level is not None  # the last level, not None
    plan = plan_reorder(fc, spec, now, LeadTime(lead, sd), service_level=service)
    assert plan.order_now and plan.packs >= 1, plan.reason


@FAST
@given(h=histories(), start=st.floats(-2.0, 3.0), length=st.floats(0.5, 20.0))
def test_while_away_the_order_is_moved_to_the_return_not_dropped(
        h: tuple[ConsumableSpec, list[Observation], datetime], start: float,
        length: float) -> None:
    spec, obs, now = h
    a = now + timedelta(days=start)
    away = [Away(a, a + timedelta(days=length))]
    fc = forecast(obs, spec, now, away=away)
    plan = plan_reorder(fc, spec, now, LeadTime(2.0, 0.5), away=away)
    if not plan.order_now:
        assert plan.latest_order_at is not None and plan.packs >= 1, plan.reason
        assert plan.latest_order_at <= away[0].end


def test_cold_start_empty_jug_is_ordered_on_the_first_review() -> None:
    # A family of five empties the 1 l starting jug within hours: no full day of use.
    spec = ConsumableSpec(Unit.MILLILITRES, 1000.0, 1000.0, perishable=True,
                          shelf_life_days=7.0)
    obs = [Observation(T0 + timedelta(hours=h), max(0.0, 1000.0 - 120.0 * h))
           for h in range(24)]
    now = T0 + timedelta(hours=30)
    fc = forecast(obs, spec, now)
    assert fc.confidence is Confidence.INSUFFICIENT_DATA and fc.level == 0.0
    plan = plan_reorder(fc, spec, now, LeadTime(2.0, 0.5))
    assert plan.order_now


def test_two_sensors_left_of_nine_are_ordered_at_cold_start() -> None:
    spec = ConsumableSpec(Unit.COUNT, 9.0, 3.0)
    obs = [Observation(T0 + timedelta(hours=h), 2.0) for h in range(0, 48, 6)]
    now = T0 + timedelta(days=2)
    fc = forecast(obs, spec, now)
    assert fc.level == 2.0
    assert plan_reorder(fc, spec, now, LeadTime(3.0, 1.0)).order_now


def test_a_48_egg_tray_is_counted_like_a_40_egg_one() -> None:
    bases = []
    for cap in (40.0, 48.0):
        spec = ConsumableSpec(Unit.COUNT, cap, 12.0, perishable=True, shelf_life_days=28.0)
        obs = [Observation(T0 + timedelta(hours=6 * k), float(30 - k // 2)) for k in range(40)]
        bases.append(forecast(obs, spec, T0 + timedelta(days=10)).basis.split(",")[0])
    assert bases[0] == bases[1] and "step-crossing" in bases[0]


def test_a_cold_start_order_fills_the_slot_up_to_the_mandate() -> None:
    # Without a rate there is nothing to size an order by: one more litre for a family
    # that empties one within hours only runs out again; fill what fits, within the cap.
    spec = ConsumableSpec(Unit.MILLILITRES, 14000.0, 1000.0, perishable=True,
                          shelf_life_days=8.0)
    obs = [Observation(T0 + timedelta(hours=h), max(0.0, 1000.0 - 200.0 * h))
           for h in range(12)]
    now = T0 + timedelta(hours=20)
    fc = forecast(obs, spec, now)
    assert fc.confidence is Confidence.INSUFFICIENT_DATA
    assert plan_reorder(fc, spec, now, LeadTime(2.0, 0.5)).packs == 14
    assert plan_reorder(fc, spec, now, LeadTime(2.0, 0.5), max_packs=7).packs == 7
