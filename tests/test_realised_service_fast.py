"""Realised service judges each cycle from slices worked out once per call
(``service._Levels``); these are the per-reading definitions it replaced, kept here as
the reference. The cycles (levels, empty floor, use per hour, noise) and the result must
be equal float for float on random histories: no tolerance, so no judgement can move."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from operator import attrgetter

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.domain import CoarseState, Unit
from agent.forecast import Away, ConsumableSpec, Delivery, Observation
from agent.forecast.service import (
    FLAT_CEILING,
    NOISE_HOURS,
    ZERO_BAND,
    ZERO_DAYS,
    Cycle,
    _blind,
    _Levels,
    _ran_out,
    realised_service,
)
from agent.forecast.stats import median

T0 = datetime(2026, 3, 1, tzinfo=UTC)
_TS = attrgetter("ts")
_Level = tuple[datetime, float]


def ref_empty_reads(obs: list[Observation], spec: ConsumableSpec) -> float:
    levels = [o.level for o in obs if o.level is not None]
    held = min((max(a, b) for a, b in zip(levels, levels[1:], strict=False)), default=0.0)
    return min(held, FLAT_CEILING * spec.capacity) + ZERO_BAND * spec.capacity


def ref_without_excursions(levels: list[_Level], floor: float, spec: ConsumableSpec,
                           ) -> list[_Level]:
    out: list[_Level] = []
    i = 0
    while i < len(levels):
        if levels[i][1] > floor or not out:
            out.append(levels[i])
            i += 1
            continue
        j = i
        while j < len(levels) and levels[j][1] <= floor:
            j += 1
        if j == len(levels) or levels[j][1] >= out[-1][1] + 0.5 * spec.pack_size:
            out += levels[i:j]
        i = j
    return out


def ref_use_per_hour(levels: list[_Level], spec: ConsumableSpec) -> float:
    if len(levels) < 2:
        return 0.0
    rises = sum(b - a for (_, a), (_, b) in zip(levels, levels[1:], strict=False)
                if b - a >= 0.5 * spec.pack_size)
    hours = (levels[-1][0] - levels[0][0]) / timedelta(hours=1)
    return max(0.0, levels[0][1] - levels[-1][1] + rises) / hours if hours > 0 else 0.0


def ref_noise(levels: list[_Level], spec: ConsumableSpec) -> float:
    close = timedelta(hours=NOISE_HOURS)
    steps = [abs(b - a) for (t0, a), (t1, b) in zip(levels, levels[1:], strict=False)
             if t1 - t0 <= close]
    return median(steps) if len(steps) >= 10 else ZERO_BAND * spec.capacity / 3


def ref_cycle(ctx: list[Observation], spec: ConsumableSpec, since: datetime,
              end: datetime) -> Cycle:
    floor = ref_empty_reads(ctx, spec)
    levels = ref_without_excursions([(o.ts, o.level) for o in ctx if o.level is not None],
                                    floor, spec)
    return Cycle(levels[bisect.bisect_left(levels, since, key=lambda p: p[0]):], floor,
                 ref_use_per_hour(levels, spec), ref_noise(levels, spec), end)


def ref_realised_service(observations: list[Observation], spec: ConsumableSpec,
                         deliveries: list[Delivery], ordered: list[datetime],
                         away: list[Away]) -> tuple[int, int]:
    """The loop of :func:`realised_service` before ``_Levels``, over :func:`ref_cycle`."""
    obs = sorted(observations, key=_TS)
    away_iv = [(a.start, a.end) for a in away]
    good = total = 0
    start: datetime | None = None
    shelved = spec.pack_size >= spec.capacity
    for d, sent in sorted(zip(deliveries, ordered, strict=True), key=lambda p: p[0].ts):
        if d.pending:
            continue
        lo_ts = sent if start is None else max(start, sent) if shelved else start
        after_delivery = start is not None and lo_ts == start
        start = d.ts
        lo = bisect.bisect_left(obs, lo_ts, key=_TS)
        hi = bisect.bisect_left(obs, d.ts, lo=lo, key=_TS)
        window = obs[lo:hi]
        ctx = obs[bisect.bisect_left(obs, d.ts - timedelta(days=ZERO_DAYS), key=_TS):hi]
        cycle = ref_cycle(ctx, spec, lo_ts, d.ts)
        seen = (True if any(o.state is CoarseState.EMPTY for o in window)
                else _ran_out(cycle, spec, away_iv))
        if seen is not False:
            total += seen is True
        elif not _blind(window, spec, lo_ts, d.ts, away_iv, after_delivery):
            total += 1
            good += 1
    return good, total


# A history: runs of readings, each (hours between readings, count, level moves): level
# steps that fall (use), jump up (a delivery, a refill), dive to near empty and come back
# (a lifted jug) or sit at the bottom (a run-out); some readings carry a state only.
step = st.tuples(st.sampled_from([0.25, 1.0, 1.0, 2.0, 3.0, 7.0, 13.0]),
                 st.integers(1, 40),
                 st.sampled_from(["fall", "rise", "dive", "bottom", "flat", "state"]))


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Observation], ConsumableSpec]:
    cap = draw(st.sampled_from([100.0, 2000.0, 8000.0]))
    pack = cap * draw(st.sampled_from([0.25, 0.5, 1.0]))
    spec = ConsumableSpec(Unit.MILLILITRES, cap, pack)
    level = round(cap * draw(st.floats(0.0, 1.0)), 1)
    t = T0
    out: list[Observation] = []
    for hours, n, kind in draw(st.lists(step, min_size=1, max_size=25)):
        for _ in range(n):
            t += timedelta(hours=hours)
            if kind == "fall":
                level = max(0.0, level - cap * draw(st.floats(0.0, 0.05)))
            elif kind == "rise" and draw(st.booleans()):
                level = min(cap, level + pack * draw(st.floats(0.3, 1.0)))
            elif kind == "bottom":
                level = round(cap * draw(st.floats(0.0, 0.03)), 1)
            level = round(level, 1)  # a sensor's resolution (and no use of 1e-160 an hour)
            if kind == "dive" and draw(st.booleans()):
                out.append(Observation(t, round(cap * draw(st.floats(0.0, 0.02)), 1)))
            elif kind == "state":
                out.append(Observation(t, None, draw(st.sampled_from(list(CoarseState)))))
            else:
                out.append(Observation(t, level))
    return out, spec


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_cycles_and_service_equal_the_per_reading_definitions(
        hist: tuple[list[Observation], ConsumableSpec], data: st.DataObject) -> None:
    obs, spec = hist
    last = obs[-1].ts
    span = (last - T0) / timedelta(hours=1)
    hours = sorted(data.draw(st.lists(st.floats(0.0, span + 5.0), min_size=1, max_size=12)))
    dels = [Delivery(T0 + timedelta(hours=h), pending=data.draw(st.booleans()) and k % 3 == 0)
            for k, h in enumerate(hours)]
    sent = [d.ts - timedelta(hours=data.draw(st.floats(0.0, 120.0))) for d in dels]
    away = ([Away(T0 + timedelta(hours=a), T0 + timedelta(hours=a + 30.0))
             for a in data.draw(st.lists(st.floats(0.0, span), max_size=2))])
    srt = sorted(obs, key=_TS)
    levels = _Levels(srt, spec)
    for d, s in zip(dels, sent, strict=True):
        lo = bisect.bisect_left(srt, d.ts - timedelta(days=ZERO_DAYS), key=_TS)
        hi = bisect.bisect_left(srt, d.ts, key=_TS)
        for since in (s, d.ts - timedelta(days=40), d.ts):
            want = ref_cycle(srt[lo:hi], spec, since, d.ts)
            got = levels.cycle(lo, hi, since, d.ts)
            assert repr(got) == repr(want)
    assert (realised_service(obs, spec, dels, sent, away)
            == ref_realised_service(obs, spec, dels, sent, away))


def test_an_excursion_is_dropped_from_every_figure_of_its_cycle() -> None:
    # Twenty close readings falling slowly, a lifted jug (two readings at 0) and back:
    # the dip is dropped, and the pair across it counts as one close step, not two big.
    spec = ConsumableSpec(Unit.MILLILITRES, 2000.0, 1000.0)
    vals = [1500.0 - 2.0 * k for k in range(20)] + [0.0, 0.0] + [1455.0 - 2.0 * k
                                                                for k in range(20)]
    obs = [Observation(T0 + timedelta(hours=k), v) for k, v in enumerate(vals)]
    got = _Levels(obs, spec).cycle(0, len(obs), T0, obs[-1].ts)
    want = ref_cycle(obs, spec, T0, obs[-1].ts)
    assert repr(got) == repr(want)
    assert len(got.levels) == len(obs) - 2 and got.noise == 2.0


def test_a_near_zero_use_rate_does_not_overflow() -> None:
    # Crossing the empty band at 1e-170 a hour would take longer than timedelta holds
    # (it raised OverflowError): that rule can never hold, and the flat one still does
    # (42 hours at empty).
    from agent.forecast.service import Cycle, _stayed_empty  # noqa: PLC0415

    spec = ConsumableSpec(Unit.MILLILITRES, 1000.0, 1000.0)
    levels = [(T0 + timedelta(hours=h), 1e-160 if h == 0 else 0.0) for h in range(0, 48, 6)]
    cycle = Cycle(levels, floor=0.0, use_per_hour=1e-170, noise=0.0,
                  end=T0 + timedelta(days=3))
    assert _stayed_empty(cycle, spec, []) is True
