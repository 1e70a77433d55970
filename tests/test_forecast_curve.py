"""The steady demand curve and the run-out probability are the day-by-day definitions,
computed faster: equal to them float for float (not within a tolerance), so a forecast
or a plan cannot change with the shortcut."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.forecast.project import (
    MAX_HORIZON_DAYS,
    CurveMemo,
    DemandCurve,
    build_curve,
    prob_empty_by,
)
from agent.forecast.stats import norm_cdf


def day_by_day(level: float, level_sd: float, rate: float, rate_sd: float,
               daily_sd: float) -> DemandCurve:
    """The definition: add day after day until run-out is beyond doubt (4 sd)."""
    mean, var = [0.0], [0.0]
    ls2, rs2, var_day = level_sd * level_sd, rate_sd * rate_sd, daily_sd * daily_sd
    for k in range(1, MAX_HORIZON_DAYS + 1):
        cum = rate * k
        v = var_day * k + rs2 * k * k
        mean.append(cum)
        var.append(v)
        if k >= 2 and cum - level > 0 and (cum - level) ** 2 > 16.0 * (v + ls2) + 1e-9:
            break
    return DemandCurve(tuple(mean), tuple(var))


def p_by_definition(curve: DemandCurve, level: float, level_sd: float, days: float) -> float:
    m, v = curve.at(days)
    sd = math.sqrt(v + level_sd * level_sd)
    if sd <= 1e-12:
        return 1.0 if m >= level else 0.0
    return norm_cdf((m - level) / sd)


pos = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False)
small = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)


@settings(max_examples=600, deadline=None)
@given(level=pos, level_sd=small, rate=st.floats(min_value=0.0, max_value=500.0),
       rel_sd=st.floats(min_value=0.0, max_value=0.5), daily=st.floats(0.0, 200.0),
       days=st.lists(st.floats(-1.0, 450.0), min_size=1, max_size=5))
def test_steady_curve_is_the_day_by_day_curve(level: float, level_sd: float, rate: float,
                                              rel_sd: float, daily: float,
                                              days: list[float]) -> None:
    ref = day_by_day(level, level_sd, rate, rate * rel_sd, daily)
    got = build_curve(now=20_000.0, level=level, level_sd=level_sd, rate=rate,
                      rate_sd=rate * rel_sd, daily_sd=daily, weekday=None, away=[])
    assert got == ref
    for d in days:
        assert prob_empty_by(got, level, level_sd, d) == p_by_definition(ref, level,
                                                                         level_sd, d)


@settings(max_examples=600, deadline=None)
@given(cover=st.floats(0.0, 40.0), rate=st.floats(0.01, 500.0),
       rel_sd=st.floats(0.0, 0.3), daily_cv=st.floats(0.0, 1.0), level_cv=st.floats(0.0, 0.2),
       days=st.lists(st.floats(0.0, 60.0), min_size=1, max_size=5))
def test_short_curves_too(cover: float, rate: float, rel_sd: float, daily_cv: float,
                          level_cv: float, days: list[float]) -> None:
    """Stock for a few days (the curves a decision is made on), down to one day."""
    level = rate * cover
    args = (level, level * level_cv, rate, rate * rel_sd, rate * daily_cv)
    ref = day_by_day(*args)
    got = build_curve(now=20_000.0, level=args[0], level_sd=args[1], rate=rate,
                      rate_sd=args[3], daily_sd=args[4], weekday=None, away=[])
    assert got == ref
    for d in days:
        assert prob_empty_by(got, level, args[1], d) == p_by_definition(ref, level, args[1], d)


def test_household_cases() -> None:
    """A litre a day with a 2 l jug, a slow cartridge (past the horizon), no use."""
    for args in ((2000.0, 8.0, 260.0, 7.8, 91.0), (100.0, 3.0, 0.2, 0.006, 0.07),
                 (50.0, 0.0, 0.0, 0.0, 0.0), (1.0, 0.0, 3.0, 0.0, 0.0)):
        got = build_curve(now=20_000.0, level=args[0], level_sd=args[1], rate=args[2],
                          rate_sd=args[3], daily_sd=args[4], weekday=None, away=[])
        assert got == day_by_day(*args)



def steady(level: float, level_sd: float, rate: float, rate_sd: float, daily_sd: float,
           memo: CurveMemo | None = None) -> DemandCurve:
    return build_curve(now=20_000.0, level=level, level_sd=level_sd, rate=rate,
                       rate_sd=rate_sd, daily_sd=daily_sd, weekday=None, away=[], memo=memo)


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(st.tuples(pos, small, st.sampled_from([0.0, -0.0, 0.2, 3.0, 260.0]),
                                st.sampled_from([0.0, 0.03, 0.1]), st.sampled_from([0.0, 0.35])),
                      min_size=1, max_size=12))
def test_a_kept_curve_is_the_curve_built_afresh(
        calls: list[tuple[float, float, float, float, float]]) -> None:
    """One consumable's passes share a memo: the curve cut from the kept one (or the
    kept one itself) is the one built without it, down to the sign of a zero."""
    memo = CurveMemo()
    for level, level_sd, rate, rel_sd, daily_cv in calls:
        args = (level, level_sd, rate, rate * rel_sd, rate * daily_cv)
        assert repr(steady(*args, memo=memo)) == repr(steady(*args))


def test_a_kept_curve_is_cut_or_rebuilt_as_the_level_moves() -> None:
    memo = CurveMemo()
    rates = (8.0, 260.0, 7.8, 91.0)
    first = steady(2000.0, *rates, memo=memo)
    assert steady(2000.0, *rates, memo=memo) is first
    shorter = steady(600.0, *rates, memo=memo)
    assert len(shorter.mean) < len(first.mean) and memo.curve is first
    assert shorter == steady(600.0, *rates)
    longer = steady(5000.0, *rates, memo=memo)
    assert memo.curve is longer and longer == steady(5000.0, *rates)
    # A zero rate of the other sign is another curve (its days are -0.0).
    assert repr(steady(50.0, 0.0, -0.0, 0.0, 0.0, memo=memo)) == repr(
        steady(50.0, 0.0, -0.0, 0.0, 0.0))
    assert repr(steady(50.0, 0.0, 0.0, 0.0, 0.0, memo=memo)) == repr(
        steady(50.0, 0.0, 0.0, 0.0, 0.0))
