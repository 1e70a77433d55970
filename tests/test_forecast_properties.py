"""Property tests for the forecast core and reorder timing (hypothesis)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.domain import Unit
from agent.forecast import Away, ConsumableSpec, Observation, forecast
from agent.policy import LeadTime, plan_reorder

T0 = datetime(2026, 1, 5, tzinfo=UTC)
CAP = 4000.0
SPEC = ConsumableSpec(Unit.GRAMS, capacity=CAP, pack_size=1000.0)
MILK = ConsumableSpec(Unit.GRAMS, capacity=CAP, pack_size=1000.0, perishable=True,
                      shelf_life_days=10.0)
FAST = settings(max_examples=40, deadline=None)


def trace(start: float, rate: float, days: float, *, every_h: int = 2, noise: float = 0.0,
          seed: int = 0) -> list[Observation]:
    rng = random.Random(seed)
    out = []
    for i in range(int(days * 24 / every_h) + 1):
        level = start - rate * i * every_h / 24 + (rng.gauss(0, noise) if noise else 0.0)
        out.append(Observation(T0 + timedelta(hours=i * every_h), max(0.0, level)))
    return out


@FAST
@given(rate=st.floats(20.0, 300.0), start=st.floats(2000.0, 4000.0),
       days=st.floats(2.0, 12.0), later=st.floats(0.5, 5.0))
def test_time_to_empty_shrinks_as_the_level_falls(rate: float, start: float, days: float,
                                                  later: float) -> None:
    total = days + later
    if start - rate * total < 0.05 * CAP:
        total = days  # never run the trace dry: then both forecasts are "empty now"
    obs = trace(start, rate, total)
    t1 = T0 + timedelta(days=days)
    t2 = T0 + timedelta(days=total)
    early = forecast([o for o in obs if o.ts <= t1], SPEC, t1).time_to_empty_days[1]
    late = forecast(obs, SPEC, t2).time_to_empty_days[1]
    assert early is not None and late is not None
    assert late <= early + 1e-6
    assert late == pytest.approx(early - (total - days), abs=0.05 * early + 0.2)


@FAST
@given(rate=st.floats(20.0, 200.0), days=st.floats(3.0, 20.0), fill=st.floats(0.8, 1.0),
       lead=st.floats(0.5, 4.0), sd=st.floats(0.0, 1.0), confirmed=st.booleans(),
       seed=st.integers(0, 1000))
def test_a_refill_never_triggers_an_order(rate: float, days: float, fill: float, lead: float,
                                          sd: float, confirmed: bool, seed: int) -> None:
    # Use falls to near empty, then someone refills: a jump the agent did not order.
    start = min(CAP, rate * days + 200.0)
    obs = trace(start, rate, days, noise=5.0, seed=seed)
    t = obs[-1].ts + timedelta(hours=1)
    obs.append(Observation(t, CAP * fill))
    if confirmed:
        t += timedelta(hours=1)
        obs.append(Observation(t, CAP * fill - rate / 24))
    # Only cases where the refill really covers lead time plus review with room to spare.
    if CAP * fill / rate < 3.0 * (lead + 1.0 + 3.0 * sd):
        return
    fc = forecast(obs, SPEC, t)
    plan = plan_reorder(fc, SPEC, t, LeadTime(lead, sd))
    assert not plan.order_now, plan.reason


@FAST
@given(rate=st.floats(50.0, 400.0), days=st.floats(3.0, 15.0), start_in=st.floats(-3.0, 8.0),
       length=st.floats(0.5, 20.0), lead=st.floats(0.5, 5.0), sd=st.floats(0.0, 2.0),
       seed=st.integers(0, 1000))
def test_away_never_gets_a_perishable_delivery(rate: float, days: float, start_in: float,
                                               length: float, lead: float, sd: float,
                                               seed: int) -> None:
    obs = trace(CAP, rate, days, noise=5.0, seed=seed)
    now = obs[-1].ts
    trip = Away(now + timedelta(days=start_in), now + timedelta(days=start_in + length))
    fc = forecast(obs, MILK, now, away=[trip])
    plan = plan_reorder(fc, MILK, now, LeadTime(lead, sd), away=[trip])
    if plan.order_now:
        assert plan.expected_arrival is not None
        assert not trip.start <= plan.expected_arrival < trip.end


@FAST
@given(rate=st.floats(1.0, 500.0), days=st.floats(0.5, 30.0), noise=st.floats(0.0, 80.0),
       spikes=st.integers(0, 5), refills=st.integers(0, 3), every_h=st.integers(1, 48),
       seed=st.integers(0, 1000))
def test_quantiles_are_ordered(rate: float, days: float, noise: float, spikes: int,
                               refills: int, every_h: int, seed: int) -> None:
    rng = random.Random(seed)
    obs = trace(CAP, rate, days, every_h=every_h, noise=noise, seed=seed)
    for _ in range(spikes):
        i = rng.randrange(len(obs))
        obs[i] = Observation(obs[i].ts, 0.0)
    for _ in range(refills):
        i = rng.randrange(len(obs))
        obs = obs[:i] + [Observation(o.ts, min(CAP, o.level + 1000.0 if o.level else 1000.0))
                         for o in obs[i:]]
    rng.shuffle(obs)
    fc = forecast(obs, SPEC, T0 + timedelta(days=days))
    p10, p50, p90 = fc.time_to_empty_days
    if p10 is None:
        assert p50 is None and p90 is None
    if p50 is None:
        assert p90 is None
    if p10 is not None and p50 is not None:
        assert 0.0 <= p10 <= p50
    if p50 is not None and p90 is not None:
        assert p50 <= p90
