"""The OK/LOW state estimator: replacement-to-LOW cycle lengths give the rate, the newest
replacement or start of LOW the level. Times are float days."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from agent.forecast.methods import Estimate, Fit
from agent.forecast.series import Interval, overlap
from agent.forecast.stats import median
from agent.forecast.types import EstimateKind


@dataclass(slots=True, frozen=True)
class StateFit:
    """Replacement-to-LOW cycles: the level falls at their rate from a known moment."""

    rate: float | None
    cycles: int
    capacity: float
    low_level: float
    since: float  # the start of LOW (is_low) or the newest replacement
    is_low: bool

    has_level = True

    def at(self, now: float, away: list[Interval]) -> Estimate:
        el = (now - self.since) - overlap(self.since, now, away)
        rate, cap = self.rate, self.capacity
        if self.is_low:
            lvl = max(0.0, self.low_level - (rate or 0.0) * el)
            basis = "LOW state, cycle length" if rate is not None else "LOW state only"
            sd = 0.02 * cap + (0.1 * (rate or 0.0) * el)
            return Estimate(lvl, sd, rate, 0.2 * (rate or 0.0), 0.0, None, self.cycles,
                            basis, EstimateKind.STATE)
        assert rate is not None
        lvl = max(self.low_level, cap - rate * el)
        return Estimate(lvl, 0.1 * cap, rate, 0.2 * rate, 0.0, None, self.cycles,
                        f"replacement-to-LOW cycles, {self.cycles} cycles", EstimateKind.STATE)


def state_fit(
    times: list[float],
    low: list[bool],
    capacity: float,
    low_level: float,
    away: list[Interval],
) -> Fit | None:
    """Level and rate from OK/LOW states only, using full replacement-to-LOW cycles."""
    reps: list[float] = []
    lows: list[float] = []
    for i in range(1, len(times)):
        if low[i - 1] and not low[i]:
            reps.append(times[i])
        elif low[i] and not low[i - 1]:
            lows.append(times[i])
    if low and low[0]:
        lows.insert(0, times[0])
    cycles: list[float] = []
    for r in reps:
        j = bisect.bisect_right(lows, r)
        if j < len(lows):
            active = (lows[j] - r) - overlap(r, lows[j], away)
            if active > 0.5:
                cycles.append(active)
    rate = (capacity - low_level) / median(cycles[-5:]) if cycles else None
    if low and low[-1]:
        return StateFit(rate, len(cycles), capacity, low_level,
                        lows[-1] if lows else times[-1], True)
    if rate is None or not reps:
        return None
    return StateFit(rate, len(cycles), capacity, low_level, reps[-1], False)
