"""Learning from the household's own history: what each completed cycle says about a
consumable that its declared figures do not.

Pure: readings (what a gateway sees) in, learned values out. The declared figures are
the prior; each completed cycle moves the value (the prior counts as
:data:`PRIOR_CYCLES` cycles), so one odd cartridge does not overturn a datasheet and
three consistent ones do.

* pages from a replacement to the device's LOW (and to EMPTY, when it says so): the
  effective yield per cartridge, and the LOW threshold the device actually uses;
* on a printer with a gauge, pages per gauge step within each cartridge: a yield from
  the first cartridge on, unbiased by the gauge's rounding (each first reading of a new
  step is a crossing, whichever way the gauge rounds);
* the level at which a device with a gauge first says LOW;
* realised service (:mod:`agent.forecast.service`): of our deliveries, how many
  arrived before the stock ran out.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import repeat
from operator import attrgetter, contains

from agent.domain import CoarseState
from agent.forecast.counter import active_days, since_reset, weekly_semivariance
from agent.forecast.methods import WEEK_DAYS
from agent.forecast.stats import median
from agent.forecast.types import ConsumableSpec, Observation

# One cartridge's pages stray from the household's mean yield by about this much
# (coverage differs from job to job); a datasheet yield (ISO 5 % coverage pages) is
# further from it: a quarter either way is common. The prior then counts as
# (0.05 / 0.25)^2 = 0.04 cycles, so one cycle of the household's own outweighs it 25 to
# 1 (at a quarter cycle its pull left learned yields 5-9 % high after two cycles and
# the counted level that much too full, bench-decisions' LOW-only printers).
PACK_YIELD_CV = 0.05
DATASHEET_YIELD_CV = 0.25
PRIOR_CYCLES = (PACK_YIELD_CV / DATASHEET_YIELD_CV) ** 2
_GAUGE_SPAN = 0.3  # least share of a cartridge a gauge must cross to tell its yield
_TS = attrgetter("ts")
_STATE = attrgetter("state")
_LOW = (CoarseState.LOW, CoarseState.EMPTY)


@dataclass(slots=True, frozen=True)
class Learned:
    """What the readings of one consumable taught, with how many cycles each rests on."""

    yield_per_pack: float | None = None  # effective counter units (pages) per pack
    yield_cycles: int = 0
    low_level: float | None = None  # the level the device's LOW stands for
    low_cycles: int = 0
    pages_to_low: float | None = None  # median counter units from replacement to LOW
    burst_ratio: float | None = None  # busy weeks' per-day variance / typical rate^2

    def apply(self, spec: ConsumableSpec) -> ConsumableSpec:
        """The spec with learned values in place of the declared ones."""
        yld = (self.yield_per_pack if self.yield_per_pack is not None and spec.yield_per_pack
               else spec.yield_per_pack)
        low = self.low_level if self.low_level is not None else spec.low_threshold_level
        return dataclasses.replace(spec, yield_per_pack=yld, low_threshold_level=low,
                                   yield_cv=(yield_cv(self.yield_cycles) if self.yield_cycles
                                             else spec.yield_cv),
                                   burst_ratio=(self.burst_ratio if self.burst_ratio is not None
                                                else spec.burst_ratio))

    def as_dict(self) -> dict[str, float | int | None]:
        # dataclasses.asdict without its deep copy (every field is a number or None):
        # the same dict, a tenth of the time (the planner asks once per decision).
        return {f: getattr(self, f) for f in _LEARNED_FIELDS}


_LEARNED_FIELDS = tuple(f.name for f in dataclasses.fields(Learned))


def yield_cv(cycles: int) -> float:
    """Relative spread of the next pack's yield after ``cycles`` learned cycles: its own
    spread plus that of the mean, whose prior (the datasheet) counts as
    :data:`PRIOR_CYCLES` cycles. 0.25 on a datasheet alone, 0.07 after one cycle."""
    return PACK_YIELD_CV * math.sqrt(1.0 + 1.0 / (PRIOR_CYCLES + cycles))


def _blend(prior: float | None, samples: list[float]) -> float | None:
    """The prior moved by each sample; without a prior, the median of the samples."""
    if not samples:
        return prior
    if prior is None:
        return median(samples)
    return (prior * PRIOR_CYCLES + sum(samples)) / (PRIOR_CYCLES + len(samples))


def learn(observations: Sequence[Observation], spec: ConsumableSpec) -> Learned:
    """Cycles of one consumable's readings: replacement (LOW/EMPTY to OK, or a level jump
    of at least half the capacity) to its next LOW and EMPTY."""
    obs = sorted(observations, key=_TS)
    gauge = _gauge_yields(obs, spec) if spec.yield_per_pack else []
    to_low: list[float] = []
    to_empty: list[float] = []
    low_levels: list[float] = []
    rep_counter: float | None = None
    seen_low = seen_empty = False
    prev_state: CoarseState | None = None
    prev_level: float | None = None
    # Every sample below is taken at a LOW or EMPTY reading: without one (a load cell, a
    # count) the walk through the year finds none.
    lows = any(map(contains, repeat(_LOW), map(_STATE, obs)))
    for o in obs if lows else ():
        state = o.state if o.state is not CoarseState.UNKNOWN else None
        replaced = ((state is not None and state not in _LOW and prev_state in _LOW)
                    or (o.level is not None and prev_level is not None
                        and o.level - prev_level >= 0.5 * spec.capacity))
        if replaced:
            rep_counter = None if o.counter is None else float(o.counter)
            seen_low = seen_empty = False
        elif state in _LOW and prev_state is not None and prev_state not in _LOW:
            if o.level is not None:
                low_levels.append(o.level)
        if state in _LOW and not seen_low:
            seen_low = True
            if rep_counter is not None and o.counter is not None:
                to_low.append(float(o.counter) - rep_counter)
        if state is CoarseState.EMPTY and not seen_empty:
            seen_empty = True
            if rep_counter is not None and o.counter is not None:
                to_empty.append(float(o.counter) - rep_counter)
        if state is not None:
            prev_state = state
        if o.level is not None:
            prev_level = o.level
    to_low = [p for p in to_low if p > 0]
    to_empty = [p for p in to_empty if p > 0]
    low_level = _blend(spec.low_level, low_levels) if low_levels else None
    yld: float | None = None
    cycles = 0
    if to_low and gauge and not to_empty:
        # A gauge's reading at LOW is rounded (0 or 5 % at a true 7 %); its pages are not.
        per_pack = median(gauge)
        low_level = _blend(spec.low_level, [spec.capacity * max(0.0, 1.0 - p / per_pack)
                                            for p in to_low])
    if spec.yield_per_pack and (to_empty or to_low or gauge):
        if to_empty:
            samples = to_empty
        elif gauge:
            samples = gauge
        else:
            # Pages to LOW cover the capacity above the LOW threshold.
            lo = low_level if low_level is not None else spec.low_level
            samples = [p * spec.capacity / max(spec.capacity - lo, 1e-9) for p in to_low]
        yld = _blend(spec.yield_per_pack, samples)
        cycles = len(samples)
    if to_empty and to_low:
        # Pages tell the threshold better than a gauge that rounds (it reads 0 or 5 % when
        # it first says LOW): the share of a cartridge's own pages left at LOW (the
        # cycles' own figures, not the yield blended with the prior).
        low_level = _blend(spec.low_level, [spec.capacity * max(0.0, 1.0 - p / median(to_empty))
                                            for p in to_low])
    low_cycles = (len(to_low) if (to_empty or gauge) and to_low else len(low_levels))
    return Learned(yld, cycles, low_level, low_cycles if low_level is not None else 0,
                   median(to_low) if to_low else None,
                   burst_ratio(obs) if spec.yield_per_pack else None)


def burst_ratio(obs: list[Observation]) -> float | None:
    """Busy weeks of a counter's history (a reading a day, after its newest reset): their
    per-day semivariance (:func:`weekly_semivariance`) over the squared typical rate,
    the median week's. Relative, so it scales with today's rate; None with under three
    weeks of counts or no use. The forecast's ten-week window often holds no busy week
    (one in nine came at three times the pages in bench-decisions)."""
    times, counters = since_reset(*_daily_counters(obs))
    if len(times) < 2 or times[-1] - times[0] < 3 * WEEK_DAYS:
        return None
    tau = active_days(times, [])
    week = int(WEEK_DAYS)
    sums = [counters[i + week] - counters[i] for i in range(len(counters) - week)
            if abs(tau[i + week] - tau[i] - WEEK_DAYS) < 0.5]
    typical = median(sums) / WEEK_DAYS if sums else 0.0
    if typical <= 0:
        return None
    var = weekly_semivariance(tau, counters, typical, span=tau[-1])
    return None if var is None else var / (typical * typical)


def _daily_counters(obs: list[Observation]) -> tuple[list[float], list[float]]:
    """The last counter reading before each midnight (UTC), as (epoch days, counter):
    by bisection, not a walk through a year of readings."""
    times: list[float] = []
    counters: list[float] = []
    if not obs:
        return times, counters
    day = timedelta(days=1)
    edge = obs[0].ts.replace(hour=0, minute=0, second=0, microsecond=0) + day
    lo = 0
    while lo < len(obs):
        i = bisect.bisect_left(obs, edge, lo=lo, key=_TS) - 1
        k = i
        while k >= lo and obs[k].counter is None:
            k -= 1
        if k >= lo:
            times.append(obs[k].ts.timestamp() / 86_400.0)
            counters.append(float(obs[k].counter or 0))
        lo = i + 1
        if lo < len(obs):
            edge = max(edge, obs[lo].ts.replace(hour=0, minute=0, second=0,
                                                microsecond=0)) + day
    return times, counters


def _gauge_yields(obs: list[Observation], spec: ConsumableSpec) -> list[float]:
    """Pages per cartridge from a gauge and a page counter, one sample per cartridge
    whose gauge crossed at least :data:`_GAUGE_SPAN` of it between 10 % and 90 %: pages
    between the first readings of its highest and lowest steps there, over the levels
    crossed."""
    out: list[float] = []
    first: tuple[float, float] | None = None  # (level, counter) of the first crossing
    last: tuple[float, float] | None = None
    prev: float | None = None
    cap = spec.capacity

    def close() -> None:
        if first is not None and last is not None and first[0] - last[0] >= _GAUGE_SPAN * cap:
            pages = last[1] - first[1]
            if pages > 0:
                out.append(pages * cap / (first[0] - last[0]))

    for o in obs:
        if o.level is None or o.counter is None:
            continue
        if prev is not None and o.level - prev >= 0.5 * cap:  # a new cartridge
            close()
            first = last = None
        elif (prev is not None and o.level < prev and 0.1 * cap <= o.level <= 0.9 * cap):
            point = (o.level, float(o.counter))
            first = first or point
            last = point
        prev = o.level
    close()
    return out
