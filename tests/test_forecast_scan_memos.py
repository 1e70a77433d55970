"""The scans a forecast memo lets the next review cut short (issue 18) give what a fresh
scan gives, and the exact shortcuts beside them equal the definitions they replace:

* the counter's anchor (``anchor.AnchorMemo``), the refills after deliveries
  (``refills.RefillMemo``) and the day's shape (``dayshape.ShapeMemo``), each over
  readings that change the way a gateway's do between reviews: newer ones come, older
  ones are thinned, some drop out of the window, one is replaced;
* a whole forecast with a memo over a season of daily reviews (milk with deliveries,
  a printer with a counter, a gauge and states), curve and all;
* ``_steady_end``'s closed "never done" test, the lead time's kept mixture,
  Theil-Sen's slope alone and the table of epoch seconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

import agent.forecast.dayshape as dayshape
from agent.domain import CoarseState, Unit
from agent.forecast import ConsumableSpec, Delivery, FitMemo, Forecast, Observation, forecast
from agent.forecast.anchor import AnchorMemo, anchor
from agent.forecast.dayshape import ShapeMemo, day_shape
from agent.forecast.project import MAX_HORIZON_DAYS, _steady_end
from agent.forecast.refills import RefillMemo, first_refill_after
from agent.forecast.stamps import STAMPS_KEPT, EpochSeconds
from agent.forecast.stats import theil_sen, theil_sen_slope
from agent.policy import LeadTime, _mixture, _quantile

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TONER = ConsumableSpec(unit=Unit.PERCENT, capacity=100.0, pack_size=100.0,
                       yield_per_pack=3000.0)
STATES = (CoarseState.OK, CoarseState.OK, CoarseState.OK, CoarseState.LOW,
          CoarseState.EMPTY, CoarseState.UNKNOWN)


def _change(obs: list[Observation], rng: random.Random) -> None:
    """What happens to a consumable's readings between two reviews, besides new ones."""
    r = rng.random()
    if r < 0.3 and len(obs) > 4:  # a stretch thinned (compaction)
        a = rng.randrange(len(obs))
        b = min(len(obs), a + rng.randint(1, 20))
        obs[a:b] = obs[a:b:rng.randint(2, 4)]
    elif r < 0.4 and obs:  # the oldest leave the window
        del obs[:rng.randint(1, 10)]
    elif r < 0.5 and obs:  # one replaced by another reading at the same time
        k = rng.randrange(len(obs))
        obs[k] = Observation(obs[k].ts, rng.uniform(0, 100), obs[k].state, obs[k].counter)


def _printer_reading(h: int, rng: random.Random, kind: int, level: float) -> Observation:
    """kind 0: gauge only, 1: states only, 2: both, some missing, 3: both."""
    lv = None if kind == 1 or (kind == 2 and rng.random() < 0.2) else level
    st = None if kind == 0 or rng.random() < 0.1 else rng.choice(STATES)
    return Observation(T0 + timedelta(hours=h), lv, st, counter=h)


def _evolve(check: Callable[[list[Observation], int], None], seed: int,
            trials: int = 300, steps: int = 20) -> None:
    rng = random.Random(seed)
    for trial in range(trials):
        kind = rng.randint(0, 3)
        obs: list[Observation] = []
        h, level = 0, 50.0
        for _ in range(steps):
            for _ in range(rng.randint(0, 25)):
                h += 1
                level = (max(0.0, level - rng.uniform(0, 3)) if rng.random() > 0.05
                         else rng.choice([rng.uniform(40, 100), 90.0]))
                obs.append(_printer_reading(h, rng, kind, level))
            _change(obs, rng)
            check(obs, trial)


def test_anchor_with_a_memo_is_a_fresh_scan() -> None:
    memos: dict[int, AnchorMemo] = {}
    rng = random.Random(1)
    specs = [TONER, ConsumableSpec(unit=Unit.PERCENT, capacity=100.0, pack_size=100.0,
                                   yield_per_pack=3000.0, low_threshold_level=7.0)]

    def check(obs: list[Observation], trial: int) -> None:
        spec = specs[rng.random() < 0.05]
        memo = memos.setdefault(trial, AnchorMemo())
        assert anchor(obs, spec, memo) == anchor(obs, spec)

    _evolve(check, seed=3)


def test_a_memo_knows_when_the_reading_it_compared_against_is_gone() -> None:
    # A replacement found between a low reading and the full one after it; the full
    # one and the rest are thinned out and only a reading without a level came since.
    # The scan from here has no newer level to compare the low one with: no anchor.
    r0 = Observation(T0, 50.0, counter=1)
    low = Observation(T0 + timedelta(hours=1), 10.0, counter=2)
    full = Observation(T0 + timedelta(hours=2), 90.0, counter=3)
    later = Observation(T0 + timedelta(hours=3), 85.0, counter=4)
    memo = AnchorMemo()
    assert anchor([r0, low, full, later], TONER, memo) == anchor([r0, low, full, later], TONER)
    assert memo.found is not None
    now = [r0, low, Observation(T0 + timedelta(hours=4), None, counter=5)]
    assert anchor(now, TONER, memo) is None is anchor(now, TONER)


def test_refills_with_a_memo_are_a_fresh_scan() -> None:
    memos: dict[int, RefillMemo] = {}
    rng = random.Random(2)
    since = [T0 + timedelta(hours=rng.uniform(0, 300)) for _ in range(3)]
    spec = ConsumableSpec(unit=Unit.PERCENT, capacity=100.0, pack_size=30.0)

    def check(obs: list[Observation], trial: int) -> None:
        memo = memos.setdefault(trial, RefillMemo()).start()
        for at in [*since, T0 + timedelta(hours=rng.uniform(0, 400))]:
            for s in (TONER, spec):
                assert first_refill_after(obs, s, at, memo) == first_refill_after(obs, s, at)

    _evolve(check, seed=5)


def test_day_shape_with_a_memo_is_a_fresh_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every hour counts from one fall on, so the sums themselves are compared.
    monkeypatch.setattr(dayshape, "MIN_SEEN", 1)
    rng = random.Random(11)
    shapes = 0
    for trial in range(120):
        spec = ConsumableSpec(unit=Unit.MILLILITRES, capacity=2000.0,
                              pack_size=rng.choice([1000.0, 300.0]))
        obs: list[Observation] = []
        memo = ShapeMemo()
        minute, level = 0.0, 1500.0
        for _ in range(30):
            for _ in range(rng.randint(0, 40)):
                # 0: the same time; two weeks: a gap as long as the window
                minute += rng.choice([60, 60, 30, 120, 200, 0, 60, 60, 60, 60] * 10
                                     + [20_000])
                r = rng.random()
                level = rng.uniform(1000, 2000) if r < 0.03 else max(
                    0.0, level - rng.expovariate(1 / 20))
                seen: float | None = 0.0 if r < 0.06 else level  # a lifted jug
                obs.append(Observation(T0 + timedelta(minutes=minute),
                                       None if rng.random() < 0.05 else seen))
            _change(obs, rng)
            obs.sort(key=lambda o: o.ts)
            now = T0 + timedelta(minutes=minute + rng.choice([0, 1, 30, -30]))
            got = day_shape(obs, spec, now, memo)
            fresh = ShapeMemo()
            assert got == day_shape(obs, spec, now, fresh), trial
            assert memo.falls == fresh.falls  # each hour's falls, not only the shares
            shapes += got is not None
    assert shapes > 500


def test_a_window_that_kept_one_reading_counts_no_fall_from_before() -> None:
    spec = ConsumableSpec(unit=Unit.MILLILITRES, capacity=2000.0, pack_size=1000.0)
    obs = [Observation(T0 + timedelta(hours=k), 1500.0 - 10.0 * k) for k in range(48)]
    memo = ShapeMemo()
    day_shape(obs, spec, obs[-1].ts, memo)
    # Two weeks on, less half an hour: of the last pass's readings only the newest is
    # in the window, and the fall into it (still waiting then) began before it.
    now = obs[-1].ts + timedelta(days=14, minutes=-30)
    obs.append(Observation(now, 1000.0))
    fresh = ShapeMemo()
    assert day_shape(obs, spec, now, memo) == day_shape(obs, spec, now, fresh)
    assert memo.falls == fresh.falls


def full(fc: Forecast) -> str:
    return repr(fc) + repr(fc.curve)


def test_daily_reviews_with_a_memo_are_fresh_forecasts() -> None:
    rng = random.Random(7)
    milk = ConsumableSpec(unit=Unit.MILLILITRES, capacity=4000.0, pack_size=1000.0,
                          perishable=True, shelf_life_days=8.0)
    for spec in (milk, TONER):
        obs: list[Observation] = []
        deliveries: list[Delivery] = []
        memo = FitMemo()
        level, pages, h = 3000.0 if spec is milk else 80.0, 0, 0
        for day in range(90):
            for _ in range(24):
                h += 1
                if spec is milk:
                    level = max(0.0, level - rng.expovariate(1 / 40))
                    obs.append(Observation(T0 + timedelta(hours=h), round(level, 1)))
                else:
                    pages += rng.choice([0, 0, 3, 10])
                    level = max(0.0, level - pages % 7 * 0.05)
                    state = CoarseState.LOW if level < 10 else CoarseState.OK
                    obs.append(Observation(T0 + timedelta(hours=h), float(int(level) // 10 * 10),
                                           state, counter=pages))
            if day % 9 == 4:  # a delivery, seen as a refill
                deliveries.append(Delivery(T0 + timedelta(hours=h), 1))
                level = min(spec.capacity, level + spec.pack_size)
            if day > 35:  # older readings thinned to one in four, a day at a time
                cut = T0 + timedelta(days=day - 35)
                old = [o for o in obs if o.ts < cut]
                obs[:len(old)] = old[::4] if day % 5 == 0 else old
            now = T0 + timedelta(hours=h, minutes=30)
            assert full(forecast(obs, spec, now, deliveries=deliveries, memo=memo)) == full(
                forecast(obs, spec, now, deliveries=deliveries)), (spec.unit, day)


def _steady_end_scan(level: float, ls2: float, rate: float, rs2: float,
                     var_day: float) -> int:
    """``_steady_end`` when the closed form does not apply, by its definition: the scan."""
    def done(k: int) -> bool:
        cum = rate * k
        return cum - level > 0 and (cum - level) ** 2 > 16.0 * (var_day * k + rs2 * k * k
                                                                 + ls2) + 1e-9

    return next((k for k in range(2, MAX_HORIZON_DAYS + 1) if done(k)), MAX_HORIZON_DAYS)


def test_a_spread_over_a_quarter_of_the_rate_is_never_done_as_the_scan_says() -> None:
    rng = random.Random(5)
    for _ in range(20_000):
        rate = 10 ** rng.uniform(-6, 6) * rng.choice([1.0, 1.0, -1.0, 0.0])
        quarter = rng.choice([0.25, 0.25 * (1 + 1e-15), 0.25 * (1 - 1e-15),
                              rng.uniform(0.25, 0.5), 0.2500000001])
        rs2 = (abs(rate) * quarter) ** 2
        if rate * rate - 16.0 * rs2 > 0 and rate > 0:
            continue  # the closed form's case, checked in test_forecast_curve
        level = rng.choice([0.0, 1e-12, rng.uniform(0, 1) * abs(rate) * rng.uniform(0, 500)])
        ls2 = rng.choice([0.0, rng.uniform(0, 1) * abs(rate)]) ** 2
        var_day = rng.choice([0.0, (abs(rate) * rng.uniform(0, 1)) ** 2])
        assert _steady_end(level, ls2, rate, rs2, var_day) == _steady_end_scan(
            level, ls2, rate, rs2, var_day)


def test_a_lead_time_keeps_its_mixture() -> None:
    rng = random.Random(2)
    for _ in range(500):
        observed = [rng.uniform(0, 10) for _ in range(rng.randint(1, 50))]
        lead = LeadTime.learned(LeadTime(rng.uniform(0, 5), rng.choice([0.0, 1.0])), observed)
        pts = _mixture(lead.mean_days, lead.sd_days, lead.observed)
        assert lead.points() == tuple((_quantile(pts, 0.5 * (a + b)), b - a) for a, b in zip(
            (0.0, 0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 0.99),
            (0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 0.99, 1.0), strict=True))
        assert lead.quantile(0.9) == _quantile(pts, 0.9)


def test_theil_sen_slope_is_theil_sens() -> None:
    rng = random.Random(1)
    for _ in range(2_000):
        xs = sorted(rng.choice([rng.uniform(0, 35), round(rng.uniform(0, 3), 2)])
                    for _ in range(rng.randint(0, 40)))
        ys = [3.0 * x + rng.gauss(0, 1) for x in xs]
        assert repr(theil_sen_slope(xs, ys)) == repr(theil_sen(xs, ys)[0])


def test_epoch_seconds_are_timestamps_and_bounded() -> None:
    table = EpochSeconds()
    times = [T0 + timedelta(seconds=7.3 * k) for k in range(STAMPS_KEPT)]
    assert [table[t] for t in times] == [t.timestamp() for t in times]
    again = times[1000].replace(tzinfo=UTC)  # an equal time, another object
    assert again is not times[1000] and table[again] == times[1000].timestamp()
    assert len(table) == STAMPS_KEPT and len(table.bound()) == 0
