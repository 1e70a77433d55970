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
* realised service: of our deliveries, how many arrived before the stock ran out.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from agent.domain import CoarseState
from agent.forecast.counter import active_days, since_reset, weekly_semivariance
from agent.forecast.methods import WEEK_DAYS
from agent.forecast.stats import median
from agent.forecast.types import Away, ConsumableSpec, Delivery, Observation

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
        return dataclasses.asdict(self)


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
    for o in obs:
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


# A cycle's run-out, as a gateway can tell it. A load cell's empty wanders (drift, a
# random walk of its zero), so empty is the lowest level sustained over ZERO_DAYS
# (two readings running: a lifted jug reads 0 once) plus ZERO_BAND of capacity (its
# noise). Below that for RUN_OUT_HOURS is a run-out; below it at all, too briefly to
# tell, leaves the cycle unknown (a dip between readings SPIKE_HOURS apart is a jug
# lifted to pour). A flat stretch of FLAT_HOURS (longer than a night without use)
# within FLAT_BAND at or below FLAT_CEILING of capacity is a run-out too, outside away
# periods.
ZERO_DAYS = 30.0
ZERO_BAND = 0.015
RUN_OUT_HOURS = 3.0
SPIKE_HOURS = 2.0
FLAT_HOURS = 12.0
FLAT_BAND = 0.02
FLAT_CEILING = 0.1
# No reading for longer (an outage, a gap): the gateway could not see whether the stock
# ran out then; with a low level beside the gap, the cycle is unknown, not served.
GAP_HOURS = 12.0


def realised_service(observations: Sequence[Observation], spec: ConsumableSpec,
                     deliveries: Sequence[Delivery], ordered: Sequence[datetime],
                     away: Sequence[Away] = ()) -> tuple[int, int]:
    """(cycles served, cycles judged) for our delivered orders: ``ordered[i]`` is when
    the order behind ``deliveries[i]`` was sent. A cycle runs from the previous delivery
    (on a one-pack device, from its order if sent later) to this one, so a run-out
    counts against the one cycle it fell in, not every order out at the time. A cycle
    with a run-out
    (:func:`_ran_out`) is missed; one the gateway could not see through
    (:func:`_blind`) is left out; the rest were served."""
    obs = sorted(observations, key=_TS)
    away_iv = [(a.start, a.end) for a in away]
    good = total = 0
    start: datetime | None = None
    shelved = spec.pack_size >= spec.capacity
    for d, sent in sorted(zip(deliveries, ordered, strict=True), key=lambda p: p[0].ts):
        if d.pending:
            continue
        # A device that holds one pack (a cartridge): a delivered pack waits on the
        # shelf, so the cycle's stock is ours only from when its order went out.
        lo_ts = sent if start is None else max(start, sent) if shelved else start
        after_delivery = start is not None and lo_ts == start
        start = d.ts
        lo = bisect.bisect_left(obs, lo_ts, key=_TS)
        hi = bisect.bisect_left(obs, d.ts, lo=lo, key=_TS)
        window = obs[lo:hi]
        floor = _empty_reads(obs[bisect.bisect_left(obs, d.ts - timedelta(days=ZERO_DAYS),
                                                    key=_TS):hi], spec)
        seen = _ran_out(window, spec, floor, away_iv)
        if seen is not False:
            total += seen is True
        elif not _blind(window, spec, lo_ts, d.ts, away_iv, after_delivery):
            total += 1
            good += 1
    return good, total


def _empty_reads(obs: list[Observation], spec: ConsumableSpec) -> float:
    """The level at or below which the device reads empty: its lowest level held over
    two readings, plus :data:`ZERO_BAND` of capacity."""
    levels = [o.level for o in obs if o.level is not None]
    held = min((max(a, b) for a, b in zip(levels, levels[1:], strict=False)), default=0.0)
    return min(held, FLAT_CEILING * spec.capacity) + ZERO_BAND * spec.capacity


def _away_at(a: datetime, b: datetime, away: list[tuple[datetime, datetime]]) -> bool:
    return any(s < b and a < e for s, e in away)


def _ran_out(window: list[Observation], spec: ConsumableSpec, floor: float,
             away: list[tuple[datetime, datetime]]) -> bool | None:
    """True: an EMPTY state, a stretch at or below ``floor`` lasting
    :data:`RUN_OUT_HOURS` or a flat stretch near the bottom lasting :data:`FLAT_HOURS`,
    either outside away periods. None: below ``floor`` too briefly to tell (not a lone
    dip between close readings, a lifted jug). False: no sign of a run-out."""
    if any(o.state is CoarseState.EMPTY for o in window):
        return True
    levels = [(o.ts, o.level) for o in window if o.level is not None]
    low_since: datetime | None = None
    brief = False
    spike = timedelta(hours=SPIKE_HOURS)
    for k, (ts, lv) in enumerate(levels):
        if lv > floor or _away_at(ts, ts + spike, away):
            low_since = None
            continue
        if low_since is None and 0 < k < len(levels) - 1:
            (t0, l0), (t1, l1) = levels[k - 1], levels[k + 1]
            if l0 > floor and l1 > floor and ts - t0 <= spike and t1 - ts <= spike:
                continue  # a lone dip between close readings: a lifted jug
        brief = True
        low_since = low_since or ts
        if ts - low_since >= timedelta(hours=RUN_OUT_HOURS):
            return True
    band, ceiling = FLAT_BAND * spec.capacity, FLAT_CEILING * spec.capacity
    flat = timedelta(hours=FLAT_HOURS)
    # Two pointers with monotone deques of indices: the window's max and min levels.
    hi_q: list[int] = []
    lo_q: list[int] = []
    i = h0 = l0 = 0
    for j, (ts, lv) in enumerate(levels):
        while len(hi_q) > h0 and levels[hi_q[-1]][1] <= lv:
            hi_q.pop()
        hi_q.append(j)
        while len(lo_q) > l0 and levels[lo_q[-1]][1] >= lv:
            lo_q.pop()
        lo_q.append(j)
        while levels[hi_q[h0]][1] - levels[lo_q[l0]][1] > band:
            i += 1
            h0 += hi_q[h0] < i
            l0 += lo_q[l0] < i
        if (ts - levels[i][0] >= flat and levels[lo_q[l0]][1] <= ceiling
                and not _away_at(levels[i][0], ts, away)):
            return True
    return None if brief else False


def _blind(window: list[Observation], spec: ConsumableSpec, start: datetime,
           end: datetime, away: list[tuple[datetime, datetime]], stocked: bool) -> bool:
    """A gap of :data:`GAP_HOURS` without readings (outside away periods) with a level
    at or below :data:`FLAT_CEILING` of capacity, or none, on either side of it (the
    cycle's end is unseen; its start is full when ``stocked``, a delivery)."""
    gap = timedelta(hours=GAP_HOURS)
    ceiling = FLAT_CEILING * spec.capacity
    prev_ts, prev_low = start, not stocked
    for o in [*window, None]:
        ts = end if o is None else o.ts
        low = o is None or o.level is None or o.level <= ceiling
        if (ts - prev_ts >= gap and (prev_low or low)
                and not _away_at(prev_ts, ts, away)):
            return True
        prev_ts, prev_low = ts, low
    return False


def service_target(target: float, good: int, total: int, min_cycles: int = 5) -> float:
    """The service level to plan at, so realised service meets ``target``: the target's
    risk scaled by how far realised misses exceeded it (at most 4x tighter, 2x looser),
    once at least ``min_cycles`` deliveries are known."""
    if total < min_cycles:
        return target
    risk = 1.0 - target
    missed = (total - good + 0.5) / (total + 0.5 / risk)  # a pseudo-count at the target
    scale = min(2.0, max(0.25, risk / max(missed, 1e-9)))
    return 1.0 - risk * scale
