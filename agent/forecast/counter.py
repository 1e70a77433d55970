"""The page-counter estimator and what it shares with learning: a counter times a
yield gives use (and, from a known level, the level now); busy weeks and busy days give
its spread and its rate when use runs high. Times are float days."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from itertools import accumulate
from operator import sub

from agent.forecast.methods import (
    LONG_WINDOW_DAYS,
    WEEK_DAYS,
    Estimate,
    daily_points,
)
from agent.forecast.series import Interval, overlap
from agent.forecast.stats import median, robust_daily_variance, theil_sen_slope
from agent.forecast.types import EstimateKind


def counter_estimate(
    times: list[float],
    counters: list[float],
    per_unit: float,
    now: float,
    away: list[Interval],
    anchor: tuple[float, float, float | None] | None,
    yield_cv: float = 0.0,
    burst_ratio: float = 0.0,
) -> Estimate | None:
    """The counter estimate at ``now`` (see :func:`counter_fit`)."""
    fit = counter_fit(times, counters, per_unit, away, anchor, yield_cv, burst_ratio)
    return None if fit is None else fit.at(now, away)


@dataclass(slots=True, frozen=True)
class CounterFit:
    """A counter's rate; from an anchor, the level falls by the counted use since and,
    after the newest reading, at the rate."""

    est: Estimate  # level and level_sd unset
    last: float  # the newest reading's time (days)
    used: float | None  # level units counted since the anchor (None: no anchor)
    anchor_level: float
    yield_cv: float

    @property
    def has_level(self) -> bool:
        return self.used is not None

    def at(self, now: float, away: list[Interval]) -> Estimate:
        e = self.est
        if self.used is None:
            return e
        rate = e.rate or 0.0
        elapsed = max(0.0, (now - self.last) - overlap(self.last, now, away))
        used = self.used + rate * elapsed
        level = max(0.0, self.anchor_level - used)
        level_sd = (e.daily_sd * math.sqrt(max(elapsed, 0.5)) + 0.01 * self.anchor_level
                    + self.yield_cv * used)
        return Estimate(level, level_sd, e.rate, e.rate_sd, e.daily_sd, None, e.points,
                        e.basis, e.kind)


def counter_fit(
    times: list[float],
    counters: list[float],
    per_unit: float,
    away: list[Interval],
    anchor: tuple[float, float, float | None] | None,
    yield_cv: float = 0.0,
    burst_ratio: float = 0.0,
) -> CounterFit | None:
    """Rate (and level, given an anchor) from a usage counter times declared yield.

    ``per_unit`` converts one counter unit to level units (capacity / yield).
    ``anchor`` is ``(time, level, counter then)`` of a known level, e.g. a full cartridge
    at a detected replacement; the level now is the anchor minus the counted use since.
    ``yield_cv``: relative spread of the yield behind ``per_unit``; the counted use since
    the anchor is that uncertain. ``burst_ratio``: the busy weeks of a longer history
    (see :func:`weekly_semivariance`) over the squared rate, learned weekly: ten weeks
    often hold none of them.
    """
    times, counters = since_reset(times, counters)
    if len(times) < 2 or times[-1] - times[0] < 1.0:
        return None
    tau = active_days(times, away)
    xs, ys = daily_points(tau, counters, tau[-1] - 2 * LONG_WINDOW_DAYS)
    ppd = theil_sen_slope(xs, ys)
    ppd = max(ppd, 0.0)
    uses = [b - a for a, b in zip(counters, counters[1:], strict=False)]
    spans = [b - a for a, b in zip(tau, tau[1:], strict=False)]
    var = robust_daily_variance(uses[-200:], spans[-200:], ppd, trim=False)
    busy = _busy_day(tau, counters, ppd)
    week = weekly_semivariance(tau, counters, ppd)
    if burst_ratio > 0:
        week = max(week or 0.0, burst_ratio * ppd * ppd)
    if week is not None:
        var = week if var is None else max(var, week)
    daily = math.sqrt(var) if var is not None else 0.5 * ppd
    basis = f"counter x declared yield, {len(xs)} points"
    if busy is not None:
        # A busy week has begun: it lasts days, and the order it calls for is now.
        ppd = busy
        basis += ", a busy day"
    rate = ppd * per_unit
    daily_sd = daily * per_unit
    rate_sd = max(daily_sd / math.sqrt(max(xs[-1] - xs[0], 1.0)), 0.03 * rate)
    used: float | None = None
    lvl_a = 0.0
    if anchor is not None:
        t_a, lvl_a, c_known = anchor
        i = bisect.bisect_left(times, t_a)
        c_a = c_known if c_known is not None else counters[min(i, len(counters) - 1)]
        used = (counters[-1] - c_a) * per_unit
    return CounterFit(Estimate(None, 0.0, rate, rate_sd, daily_sd, None, len(xs), basis,
                               EstimateKind.COUNTER), times[-1], used, lvl_a, yield_cv)


def _busy_day(tau: list[float], counters: list[float], ppd: float) -> float | None:
    """The last active day's use when it is at least twice a typical working day's (the
    median of the last five weeks' days with any use: weekends and closures are not
    days of work), else None. A busy week has begun: running out is made of busy weeks,
    the reorder point is crossed fastest in one, and its first day says more about the
    next few than ten weeks' rate does."""
    if ppd <= 0 or tau[-1] - tau[0] < 2.0:
        return None

    def at(x: float) -> float:
        i = bisect.bisect_left(tau, x)
        if i <= 0:
            return counters[0]
        a, b = tau[i - 1], tau[i]
        f = (x - a) / (b - a) if b > a else 1.0
        return counters[i - 1] + (counters[i] - counters[i - 1]) * f

    end = tau[-1]
    days = int(min(end - tau[0], LONG_WINDOW_DAYS))
    cum = [at(end - j) for j in range(days + 1)]
    worked = [u for u in (cum[j] - cum[j + 1] for j in range(1, days)) if u > 0]
    if len(worked) < 5:
        return None
    used = cum[0] - cum[1]
    return used if used >= 2.0 * median(worked) else None


def since_reset(times: list[float], counters: list[float]) -> tuple[list[float],
                                                                  list[float]]:
    """The readings after the newest counter reset (a new device or firmware)."""
    start = 0
    for i in range(1, len(counters)):
        if counters[i] < counters[i - 1]:
            start = i
    return times[start:], counters[start:]


def active_days(times: list[float], away: list[Interval]) -> list[float]:
    """Active (not away) days since ``times[0]`` at each time."""
    if not away:
        # Nothing to cut out (overlap is 0.0 and x - 0.0 is x): the running sum of the
        # gaps, in C, the same floats.
        return list(accumulate(map(sub, times[1:], times), initial=0.0))
    tau = [0.0]
    for a, b in zip(times, times[1:], strict=False):
        tau.append(tau[-1] + (b - a) - overlap(a, b, away))
    return tau


def weekly_semivariance(tau: list[float], counters: list[float], ppd: float,
                        span: float = 2 * LONG_WINDOW_DAYS) -> float | None:
    """Per-day variance of use judged over whole weeks of active time (sliding a day at a
    time over the last ``span`` days): a busy week in an office is one burst, not seven
    independent days, and day-to-day noise would promise a steadier week than comes."""
    end = tau[-1]
    if end - tau[0] < 3 * WEEK_DAYS:
        return None

    def at(x: float) -> float:
        i = bisect.bisect_left(tau, x)
        if i <= 0:
            return counters[0]
        if i >= len(tau):
            return counters[-1]
        a, b = tau[i - 1], tau[i]
        f = (x - a) / (b - a) if b > a else 1.0
        return counters[i - 1] + (counters[i] - counters[i - 1]) * f

    week = int(WEEK_DAYS)
    days = int(min(end - tau[0], span))
    cum = [at(end - j) for j in range(days + 1)]  # counter j active days ago
    total = 0.0
    for j in range(days - week + 1):
        # Only weeks above the rate count (twice: a semivariance): running out is made
        # of busy weeks, and one busy week in nine is a long upper tail, not a spread.
        excess = cum[j] - cum[j + week] - ppd * WEEK_DAYS
        if excess > 0:
            total += 2.0 * excess * excess
    return total / (days - week + 1) / WEEK_DAYS
