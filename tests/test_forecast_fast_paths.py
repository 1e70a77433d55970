"""The forecast's fast paths against the plain definitions they replaced, kept here as
the reference: refills found by bisection and one rise test over all readings, the
spike and jump tests taken before the call, active days as a running sum without away
time, ``Learned.as_dict`` without ``asdict``. Equal on random histories, no tolerance:
a speed change may move no decision."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.domain import CoarseState, Unit
from agent.forecast import ConsumableSpec, Delivery, Observation
from agent.forecast.counter import active_days
from agent.forecast.learn import Learned
from agent.forecast.refills import (
    LOW_STATES,
    Point,
    _jump,
    first_refill_after,
    refill_tol,
    refills,
    spare_packs,
)
from agent.forecast.series import Interval, _is_spike, clean_levels, overlap

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def ref_refills(obs: list[Observation], spec: ConsumableSpec, stop: datetime,
                first_only: bool = False) -> list[tuple[datetime, float]]:
    """:func:`refills` as one scan back from the newest reading, a _jump per level."""
    tol = refill_tol(spec)
    pts: list[Point] = []
    later_state: Observation | None = None
    out: list[tuple[datetime, float]] = []
    extra = 0
    for o in reversed(obs):
        if o.ts < stop and o.level is not None:
            extra += 1
            if extra > 3:
                break
        if o.level is not None:
            pts.append((o.ts, o.level))
        if o.state is not None and o.state is not CoarseState.UNKNOWN and o.ts >= stop:
            if (o.state in LOW_STATES and later_state is not None
                    and later_state.state not in LOW_STATES):
                out.append((later_state.ts, spec.pack_size))
                if first_only:
                    return out
            later_state = o
    pts.reverse()
    found: list[tuple[datetime, float]] = []
    for a in range(len(pts) - 1, 0, -1):
        if pts[a][0] < stop:
            break
        amount = _jump(pts, a, tol)
        if amount is not None:
            found.append((pts[a][0], amount))
            if first_only:
                break
    out = sorted(out + found, reverse=True)
    return out[:1] if first_only else out


def ref_first_refill_after(obs: list[Observation], spec: ConsumableSpec, at: datetime,
                           memo: object = None) -> tuple[datetime, float] | None:
    """:func:`first_refill_after` with every candidate handed to _jump (``memo``, the
    fast one's, unused)."""
    import bisect  # noqa: PLC0415

    tol = refill_tol(spec)
    i = bisect.bisect_left(obs, at, key=lambda o: o.ts)
    j = i
    before = 0
    while j > 0 and before < 3:
        j -= 1
        before += obs[j].level is not None or obs[j].state is not None
    pts: list[Point] = []
    was_low: bool | None = None
    checked = 0
    for o in obs[j:]:
        if o.level is not None:
            pts.append((o.ts, o.level))
            while checked < len(pts) - 3:
                if checked >= 1 and pts[checked][0] >= at:
                    amount = _jump(pts, checked, tol)
                    if amount:
                        return pts[checked][0], amount
                checked += 1
        if o.state is not None and o.state is not CoarseState.UNKNOWN:
            is_low = o.state in LOW_STATES
            if was_low and not is_low and o.ts >= at:
                return o.ts, spec.pack_size
            was_low = is_low
    for a in range(max(checked, 1), len(pts)):
        if pts[a][0] >= at:
            amount = _jump(pts, a, tol)
            if amount:
                return pts[a][0], amount
    return None


def ref_active_days(times: list[float], away: list[Interval]) -> list[float]:
    tau = [0.0]
    for a, b in zip(times, times[1:], strict=False):
        tau.append(tau[-1] + (b - a) - overlap(a, b, away))
    return tau


def ref_kept(times: list[float], levels: list[float], deliveries: list[float],
             tol: float) -> list[float]:
    """The readings :func:`clean_levels` keeps past its spike test, _is_spike called for
    every reading (the newest aside)."""
    keep_t: list[float] = []
    keep_l: list[float] = []
    for i, cur in enumerate(levels):
        if keep_l and i + 1 < len(levels) and _is_spike(keep_l[-1], levels, i, tol):
            k = bisect_right(deliveries, keep_t[-1])
            if not (k < len(deliveries) and deliveries[k] <= times[i]):
                continue
        keep_t.append(times[i])
        keep_l.append(cur)
    return keep_t


def bisect_right(xs: list[float], x: float) -> int:
    import bisect  # noqa: PLC0415

    return bisect.bisect_right(xs, x)


STATES = [None, None, CoarseState.OK, CoarseState.LOW, CoarseState.EMPTY,
          CoarseState.UNKNOWN, CoarseState.SOME_REMAINING]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Observation], ConsumableSpec]:
    """Levels (a gauge, a count or a load cell), states, or both; use, refills, lifted
    jugs and replacements, at uneven hours."""
    cap = draw(st.sampled_from([100.0, 12.0, 2000.0]))
    spec = ConsumableSpec(Unit.COUNT if cap == 12.0 else Unit.MILLILITRES, cap,
                          cap * draw(st.sampled_from([1.0, 0.5, 0.25])))
    kind = draw(st.sampled_from(["level", "state", "both", "mixed"]))
    level, t = cap, T0
    out: list[Observation] = []
    for _ in range(draw(st.integers(0, 150))):
        t += timedelta(hours=draw(st.sampled_from([0.5, 1.0, 1.0, 2.0, 6.0, 13.0])))
        move = draw(st.sampled_from(["use", "use", "use", "refill", "dip", "empty"]))
        if move == "refill":
            level = min(cap, level + cap * draw(st.floats(0.0, 1.0)))
        elif move == "empty":
            level = 0.0
        else:
            level = max(0.0, level - cap * draw(st.floats(0.0, 0.1)))
        shown = 0.0 if move == "dip" else level
        if cap == 12.0:
            shown = float(round(shown))
        has_level = kind in ("level", "both") or (kind == "mixed" and draw(st.booleans()))
        state = draw(st.sampled_from(STATES)) if kind != "level" else None
        out.append(Observation(t, round(shown, 1) if has_level else None, state,
                               draw(st.one_of(st.none(), st.integers(0, 10_000)))))
    return out, spec


def _at(data: st.DataObject) -> datetime:
    return T0 + timedelta(hours=data.draw(st.floats(-10.0, 1000.0)))


@settings(max_examples=120, deadline=None)
@given(histories(), st.data())
def test_refills_and_shelf_stock_equal_the_plain_scans(
        hist: tuple[list[Observation], ConsumableSpec], data: st.DataObject) -> None:
    obs, spec = hist
    at = _at(data)
    for first_only in (False, True):
        assert refills(obs, spec, at, first_only) == ref_refills(obs, spec, at, first_only)
    assert first_refill_after(obs, spec, at) == ref_first_refill_after(obs, spec, at)
    dels = [Delivery(_at(data), data.draw(st.sampled_from([1.0, 2.0])),
                     data.draw(st.booleans()) and data.draw(st.booleans()))
            for _ in range(data.draw(st.integers(0, 6)))]
    now = _at(data)
    import agent.forecast.refills as refills_module  # noqa: PLC0415

    want = spare_packs_with(refills_module, ref_first_refill_after, obs, spec, dels, now)
    assert spare_packs(obs, spec, dels, now) == want


def spare_packs_with(module: object, scan: object, obs: list[Observation],
                     spec: ConsumableSpec, dels: list[Delivery], now: datetime) -> float:
    """:func:`spare_packs` over the plain forward scan (swapped in for the call)."""
    fast = module.first_refill_after  # type: ignore[attr-defined]
    module.first_refill_after = scan  # type: ignore[attr-defined]
    try:
        return spare_packs(obs, spec, dels, now)
    finally:
        module.first_refill_after = fast  # type: ignore[attr-defined]


@settings(max_examples=120, deadline=None)
@given(histories(), st.data())
def test_the_spike_test_before_the_call_keeps_the_same_readings(
        hist: tuple[list[Observation], ConsumableSpec], data: st.DataObject) -> None:
    obs, spec = hist
    lv = [o for o in obs if o.level is not None]
    times = [o.ts.timestamp() / 86_400.0 for o in lv]
    levels = [float(o.level or 0.0) for o in lv]
    dels = sorted(times[k] for k in data.draw(st.lists(st.integers(0, max(len(times) - 1, 0)),
                                                     max_size=3)) if times)
    tol = refill_tol(spec)
    got = clean_levels(times, levels, spec.capacity, [], dels, tol)
    # The cleaning after the spike test only holds out the newest drop(s): what it kept
    # is the reference's readings, those aside.
    want = ref_kept(times, levels, dels, tol)
    assert got.real == want[:len(got.real)]
    assert len(want) - len(got.real) <= 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 400.0), max_size=60), st.booleans())
def test_active_days_without_away_is_the_running_sum(times: list[float], srt: bool) -> None:
    if srt:
        times = sorted(times)
    assert active_days(times, []) == ref_active_days(times, [])
    away = [(100.0, 130.5)]
    assert active_days(times, away) == ref_active_days(times, away)


def test_a_refill_at_the_first_reading_after_stop_is_found() -> None:
    # The rise into the window is measured from the readings before it (three kept).
    spec = ConsumableSpec(Unit.MILLILITRES, 100.0, 100.0)
    obs = [Observation(T0 + timedelta(hours=h), v)
           for h, v in enumerate([50.0, 12.0, 10.0, 10.0, 90.0, 88.0, 87.0])]
    stop = obs[4].ts
    assert refills(obs, spec, stop) == ref_refills(obs, spec, stop) == [(stop, 80.0)]
    assert refills(obs, spec, stop + timedelta(minutes=1)) == []
    assert first_refill_after(obs, spec, stop) == ref_first_refill_after(obs, spec, stop)


@settings(max_examples=150, deadline=None)
@given(histories(), st.sampled_from([None, 3000.0]), st.booleans())
def test_learning_without_low_readings_skips_a_walk_that_finds_nothing(
        hist: tuple[list[Observation], ConsumableSpec], yld: float | None,
        no_lows: bool) -> None:
    obs, spec = hist
    spec = dataclasses.replace(spec, yield_per_pack=yld)
    if no_lows:
        obs = [o if o.state not in LOW_STATES else dataclasses.replace(o, state=None)
               for o in obs]
    import agent.forecast.learn as learn_module  # noqa: PLC0415

    fast = learn_module._STATE
    learn_module._STATE = lambda o: CoarseState.LOW  # every history walked
    try:
        want = learn_module.learn(obs, spec)
    finally:
        learn_module._STATE = fast
    assert learn_module.learn(obs, spec) == want


@settings(max_examples=150, deadline=None)
@given(st.floats(0.0, 10.0), st.floats(0.0, 5.0),
       st.lists(st.floats(0.0, 20.0), max_size=12),
       st.lists(st.sampled_from([0.5, 0.9, 0.933, 0.98, 0.99, 0.1]), min_size=1))
def test_a_kept_lead_time_quantile_is_the_plain_one(mean: float, sd: float,
                                                     observed: list[float],
                                                     qs: list[float]) -> None:
    from agent.policy import LeadTime, _mixture, _quantile, _z  # noqa: PLC0415

    lead = LeadTime.learned(LeadTime(mean, sd), observed)
    for q in qs:
        plain = (max(0.0, lead.mean_days + _z(q) * lead.sd_days) if not lead.observed
                 else _quantile(_mixture(lead.mean_days, lead.sd_days, lead.observed), q))
        assert lead.quantile(q) == plain
    assert lead == LeadTime.learned(LeadTime(mean, sd), observed)


def test_learned_as_dict_is_asdict() -> None:
    got = Learned(2800.0, 3, 4.5, 2, 2600.0, 0.7)
    assert got.as_dict() == dataclasses.asdict(got)
    assert list(got.as_dict()) == list(dataclasses.asdict(got))
    assert Learned().as_dict() == dataclasses.asdict(Learned())
