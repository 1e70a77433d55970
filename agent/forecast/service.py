"""Realised service as a gateway can judge it: of our deliveries, how many arrived
before the stock ran out, each judged over its own delivery-to-delivery cycle.

Pure: readings, deliveries and the times our orders went out in; (served, judged) out.
A cycle the gateway could not see through is left out, not counted as served.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from agent.domain import CoarseState
from agent.forecast.stats import median
from agent.forecast.types import Away, ConsumableSpec, Delivery, Observation

_TS = attrgetter("ts")

# A cycle's run-out, as a gateway can tell it. A load cell's empty wanders (drift, a
# random walk of its zero), so empty is the lowest level sustained over ZERO_DAYS
# (two readings running) plus ZERO_BAND of capacity (its noise). Readings that dip
# below it and come back without a rise of half a pack are an excursion (a jug lifted
# to pour, a glitch), not stock gone: they are dropped before judging. Stock gone
# stays gone until a delivery or a refill, so a run-out is a stretch that stays down
# to one and changes by under FLAT_USE of the household's own use in that time:
# RUN_OUT_HOURS plus the time that use takes to cross ZERO_BAND at or below empty (a
# slow household sits near its lowest level for hours before a delivery without
# running out), or FLAT_HOURS (longer than a night without use) within FLAT_BAND at
# or below FLAT_CEILING of capacity; outside away periods. The first reading after a
# gap of GAP_HOURS that reads empty is a run-out the gateway did not see. Below empty
# otherwise, too briefly to tell, leaves the cycle unknown.
ZERO_DAYS = 30.0
ZERO_BAND = 0.015
RUN_OUT_HOURS = 3.0
FLAT_HOURS = 12.0
FLAT_BAND = 0.02
FLAT_USE = 0.25
FLAT_CEILING = 0.1
# No reading for longer (an outage, a gap): the gateway could not see whether the stock
# ran out then; with a low level beside the gap, the cycle is unknown, not served.
GAP_HOURS = 12.0
# A flat stretch may spread by NOISE_SPREAD times the cell's noise (the median change
# between readings at most NOISE_HOURS apart).
NOISE_HOURS = 2.0
NOISE_SPREAD = 4.0

_Level = tuple[datetime, float]


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
        ctx = obs[bisect.bisect_left(obs, d.ts - timedelta(days=ZERO_DAYS), key=_TS):hi]
        floor = _empty_reads(ctx, spec)
        levels = _without_excursions([(o.ts, o.level) for o in ctx if o.level is not None],
                                     floor, spec)
        cycle = Cycle(levels[bisect.bisect_left(levels, lo_ts, key=_first):], floor,
                      _use_per_hour(levels, spec), _noise(levels, spec), d.ts)
        seen = (True if any(o.state is CoarseState.EMPTY for o in window)
                else _ran_out(cycle, spec, away_iv))
        if seen is not False:
            total += seen is True
        elif not _blind(window, spec, lo_ts, d.ts, away_iv, after_delivery):
            total += 1
            good += 1
    return good, total


@dataclass(frozen=True, slots=True)
class Cycle:
    """One cycle's levels (excursions dropped), the level the cell reads empty, the
    household's use per hour and the cell's noise over the last :data:`ZERO_DAYS`, and
    the delivery ending it."""

    levels: list[_Level]
    floor: float
    use_per_hour: float
    noise: float
    end: datetime


def _first(p: _Level) -> datetime:
    return p[0]


def _empty_reads(obs: list[Observation], spec: ConsumableSpec) -> float:
    """The level at or below which the device reads empty: its lowest level held over
    two readings, plus :data:`ZERO_BAND` of capacity."""
    levels = [o.level for o in obs if o.level is not None]
    held = min((max(a, b) for a, b in zip(levels, levels[1:], strict=False)), default=0.0)
    return min(held, FLAT_CEILING * spec.capacity) + ZERO_BAND * spec.capacity


def _without_excursions(levels: list[_Level], floor: float, spec: ConsumableSpec,
                        ) -> list[_Level]:
    """``levels`` without runs at or below ``floor`` that the level comes back from
    with no rise of half a pack over the reading before them: stock that was there
    all along (a lifted jug, a glitch), however far apart the readings are."""
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
            out += levels[i:j]  # it stayed down, or came back by a delivery or a refill
        i = j
    return out


def _use_per_hour(levels: list[_Level], spec: ConsumableSpec) -> float:
    """The household's use per hour over ``levels``: the net fall plus every rise of
    half a pack or more (deliveries, its own shopping), over the time spanned."""
    if len(levels) < 2:
        return 0.0
    rises = sum(b - a for (_, a), (_, b) in zip(levels, levels[1:], strict=False)
                if b - a >= 0.5 * spec.pack_size)
    hours = (levels[-1][0] - levels[0][0]) / timedelta(hours=1)
    return max(0.0, levels[0][1] - levels[-1][1] + rises) / hours if hours > 0 else 0.0


def _noise(levels: list[_Level], spec: ConsumableSpec) -> float:
    """How far a reading strays from the last when nothing was used: the median change
    between readings up to :data:`NOISE_HOURS` apart (most hours see no pour); a third
    of :data:`ZERO_BAND` of capacity without ten such pairs (folded history)."""
    close = timedelta(hours=NOISE_HOURS)
    steps = [abs(b - a) for (t0, a), (t1, b) in zip(levels, levels[1:], strict=False)
             if t1 - t0 <= close]
    return median(steps) if len(steps) >= 10 else ZERO_BAND * spec.capacity / 3


def _away_at(a: datetime, b: datetime, away: list[tuple[datetime, datetime]]) -> bool:
    return any(s < b and a < e for s, e in away)


def _ran_out(cycle: Cycle, spec: ConsumableSpec,
             away: list[tuple[datetime, datetime]]) -> bool | None:
    """True: a low reading after a gap of :data:`GAP_HOURS`, or a run-out's shape
    (:func:`_stayed_empty`), outside away periods. None: below empty too briefly to
    tell. False: no sign of a run-out."""
    levels, floor = cycle.levels, cycle.floor
    if not levels:
        return False
    gap = timedelta(hours=GAP_HOURS)
    brief = False
    for (t0, l0), (ts, lv) in zip([(levels[0][0], math.inf), *levels], levels,
                                  strict=False):
        if lv > floor or _away_at(ts, ts + timedelta(hours=RUN_OUT_HOURS), away):
            continue
        if l0 > floor and ts - t0 >= gap and not _away_at(t0, ts, away):
            return True  # the first reading after a gap reads empty: ran out unseen
        brief = True
    if _stayed_empty(cycle, spec, away):
        return True
    return None if brief else False


def _stayed_empty(cycle: Cycle, spec: ConsumableSpec,
                  away: list[tuple[datetime, datetime]]) -> bool:
    """Stock gone stays gone until a delivery: the tail of a stretch (up to the cycle's
    end or a rise of half a pack) that changed by under :data:`FLAT_USE` of what the
    household uses in that time, and lasted :data:`RUN_OUT_HOURS` plus the time its use
    takes to cross :data:`ZERO_BAND` of capacity at or below empty, or
    :data:`FLAT_HOURS` within :data:`FLAT_BAND` reaching :data:`FLAT_CEILING`. A level
    that goes on falling afterwards was a slow day, not a run-out."""
    levels, floor, rate, noise = cycle.levels, cycle.floor, cycle.use_per_hour, cycle.noise
    if rate <= 0:
        return False
    need = timedelta(hours=RUN_OUT_HOURS + ZERO_BAND * spec.capacity / rate)
    flat = timedelta(hours=FLAT_HOURS)
    band, ceiling = FLAT_BAND * spec.capacity, FLAT_CEILING * spec.capacity
    ends = [k for k in range(len(levels) - 1)
            if levels[k + 1][1] - levels[k][1] >= 0.5 * spec.pack_size]
    last = len(levels) - 1
    for end in [*ends, last]:
        t_end, hi, lo = levels[end][0], -math.inf, math.inf
        # Two readings at empty as the cycle's last: empty until the delivery.
        until = cycle.end if end == last else t_end
        for k in range(end, -1, -1):
            ts, lv = levels[k]
            hi, lo = max(hi, lv), min(lo, lv)
            if hi > max(floor, lo + band) or _away_at(ts, until, away):
                break
            span = t_end - ts
            if hi - lo > FLAT_USE * rate * (span / timedelta(hours=1)) + NOISE_SPREAD * noise:
                continue
            if lo <= ceiling and span >= flat:
                return True
            if hi <= floor and k < end and until - _emptied(levels, k, floor, rate) >= need:
                return True
    return False


def _emptied(levels: list[_Level], k: int, floor: float, rate: float) -> datetime:
    """When the stock ran out, ``levels[k]`` the first reading at empty: the reading
    before it run down at the household's use, if that comes sooner."""
    ts = levels[k][0]
    if k == 0 or levels[k - 1][1] <= floor:
        return ts
    t0, l0 = levels[k - 1]
    return min(ts, t0 + timedelta(hours=(l0 - floor) / rate))


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
    once at least ``min_cycles`` deliveries are known. Misses tighten at once (the rate
    estimated with a pseudo-count at the target); a clean record loosens only as far as
    the miss rate it still allows (:func:`miss_rate_bound`) is below the target's risk:
    58 cycles without a miss happen one time in three at a 2 % miss rate, and planning
    at 4 % on them (the estimate, 0.6 %) was the run-outs that followed
    (bench-decisions, one person's milk)."""
    if total < min_cycles:
        return target
    risk = 1.0 - target
    missed = (total - good + 0.5) / (total + 0.5 / risk)  # a pseudo-count at the target
    if missed < risk:
        missed = min(risk, miss_rate_bound(total - good, total))
    scale = min(2.0, max(0.25, risk / max(missed, 1e-9)))
    return 1.0 - risk * scale


def miss_rate_bound(misses: int, total: int, chance: float = 0.1) -> float:
    """The highest miss rate at which ``misses`` or fewer of ``total`` cycles happen
    with at least ``chance`` (a one-sided upper bound; bisection on the binomial)."""
    lo, hi = misses / total, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        term = (1.0 - mid) ** total  # P(k = 0), then each next term of the sum
        cdf = term
        for k in range(misses):
            term *= (total - k) / (k + 1) * mid / (1.0 - mid)
            cdf += term
        if cdf >= chance:
            lo = mid
        else:
            hi = mid
    return lo
