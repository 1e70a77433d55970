"""Realised service as a gateway can judge it: of our deliveries, how many arrived
before the stock ran out, each judged over its own delivery-to-delivery cycle.

Pure: readings, deliveries and the times our orders went out in; (served, judged) out.
A cycle the gateway could not see through is left out, not counted as served.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import accumulate, chain, compress, count, repeat
from operator import attrgetter, ge, gt, is_not, sub

from agent.domain import CoarseState
from agent.forecast.stats import median
from agent.forecast.types import Away, ConsumableSpec, Delivery, Observation

_TS = attrgetter("ts")
_LEVEL = attrgetter("level")

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


@dataclass(slots=True)
class ServiceMemo:
    """One consumable's cycle verdicts from the last :func:`realised_service` call (kept by
    the caller): a cycle is judged again only when the readings it rests on (its own, or
    its :data:`ZERO_DAYS` of context too) are not the same as last time."""

    key: tuple[object, ...] | None = None  # (spec, away) the verdicts were judged with
    # (since, delivered, after a delivery) -> (the readings judged, 2 served, 1 missed
    # or 0 left out, whether the cycle's own readings were all it rested on)
    cycles: dict[tuple[datetime, datetime, bool], tuple[list[Observation], int, bool]] = (
        field(default_factory=dict))
    judged: int = 0  # cycles judged (not taken from the memo): what it saved is in the count


def realised_service(observations: Sequence[Observation], spec: ConsumableSpec,
                     deliveries: Sequence[Delivery], ordered: Sequence[datetime],
                     away: Sequence[Away] = (), *, memo: ServiceMemo | None = None,
                     ) -> tuple[int, int]:
    """(cycles served, cycles judged) for our delivered orders: ``ordered[i]`` is when
    the order behind ``deliveries[i]`` was sent. A cycle runs from the previous delivery
    (on a one-pack device, from its order if sent later) to this one, so a run-out
    counts against the one cycle it fell in, not every order out at the time. A cycle
    with a run-out (:func:`_ran_out`) is missed; one the gateway could not see through
    (:func:`_blind`) is left out; the rest were served. With ``memo`` (kept per
    consumable by the caller) a cycle whose readings are as last time keeps its verdict."""
    obs = sorted(observations, key=_TS)
    away_iv = [(a.start, a.end) for a in away]
    series: _Levels | None = None
    good = total = 0
    start: datetime | None = None
    shelved = spec.pack_size >= spec.capacity
    known: dict[tuple[datetime, datetime, bool], tuple[list[Observation], int, bool]] = {}
    if memo is not None:
        key = (spec, tuple(away))
        if memo.key == key:
            known = memo.cycles
        memo.key, memo.cycles = key, {}
    ts = list(map(_TS, obs))
    base = 0  # where ``series`` starts in ``obs``
    above: float | None = None
    nan: bool | None = None  # whether a level is not a number (worked out when needed)
    for d, sent in sorted(zip(deliveries, ordered, strict=True), key=lambda p: p[0].ts):
        if d.pending:
            continue
        # A device that holds one pack (a cartridge): a delivered pack waits on the
        # shelf, so the cycle's stock is ours only from when its order went out.
        lo_ts = sent if start is None else max(start, sent) if shelved else start
        after_delivery = start is not None and lo_ts == start
        start = d.ts
        lo = bisect.bisect_left(ts, lo_ts)
        hi = bisect.bisect_left(ts, d.ts, lo=lo)
        ctx_lo = bisect.bisect_left(ts, d.ts - timedelta(days=ZERO_DAYS))
        window = obs[lo:hi]
        cycle = (lo_ts, d.ts, after_delivery)
        got = known.get(cycle)
        # A kept verdict holds while the readings it rests on are the same: the cycle's
        # own (a clear one, see below) or its context's too.
        if got is not None and got[0] == (window if got[2] else obs[min(lo, ctx_lo):hi]):
            seen_obs, verdict, clear = got
        else:
            if nan is None:  # no empty a context sets is above (as _Levels.cycle adds it)
                nan = any(map(math.isnan, filter(partial(is_not, None), map(_LEVEL, obs))))
                cap = spec.capacity
                above = None if nan else FLAT_CEILING * cap + ZERO_BAND * cap
            # Levels all above any empty a context can set show no run-out (_ran_out
            # needs one at or below both): the verdict rests on the cycle's own readings.
            clear = above is not None and all(map(gt, filter(partial(is_not, None),
                                                             map(_LEVEL, window)),
                                                  repeat(above)))
            seen_obs = window if clear else obs[min(lo, ctx_lo):hi]
            if series is None and not clear:
                base = ctx_lo  # later contexts start no earlier: the same figures
                series = _Levels(obs[base:], spec)
            verdict = _verdict(None if clear else series, window, spec, ctx_lo - base,
                               hi - base, lo_ts, d.ts, away_iv, after_delivery)
            if memo is not None:
                memo.judged += 1
        if memo is not None:
            memo.cycles[cycle] = (seen_obs, verdict, clear)
        total += verdict > 0
        good += verdict == 2
    return good, total


def _verdict(series: _Levels | None, window: list[Observation], spec: ConsumableSpec,
             ctx_lo: int, hi: int, since: datetime, end: datetime,
             away_iv: list[tuple[datetime, datetime]], after_delivery: bool) -> int:
    """One cycle, from its readings ``window`` (``since`` to the delivery at ``end``)
    against its context, the readings ``ctx_lo:hi`` of those ``series`` was built from
    (None: a cycle that cannot have run out, whatever its context): 2 served, 1 missed,
    0 left out (unknown, or blind)."""
    if any(o.state is CoarseState.EMPTY for o in window):
        seen: bool | None = True
    else:
        seen = False if series is None else _ran_out(series.cycle(ctx_lo, hi, since, end),
                                                     spec, away_iv)
    if seen is not False:
        return 1 if seen is True else 0
    return 0 if _blind(window, spec, since, end, away_iv, after_delivery) else 2


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


class _Levels:
    """The level readings of ``obs`` with what every cycle's context needs of them worked
    out once: a cycle's :data:`ZERO_DAYS` of context overlaps its neighbours' (deliveries
    every few days), so per cycle only slices of these are taken (C loops), never a
    Python loop over the context. :meth:`cycle` is, float for float, the per-reading
    definition: the lowest level held over two readings, plus :data:`ZERO_BAND` of
    capacity, is empty; readings that dip to it and come back without a rise of half a
    pack over the reading before the dip are dropped (an excursion: a lifted jug, a
    glitch); the household's use per hour is the net fall plus every rise of half a pack
    or more over the time spanned; the cell's noise is the median change between
    readings up to :data:`NOISE_HOURS` apart (a third of :data:`ZERO_BAND` of capacity
    without ten such pairs: folded history)."""

    def __init__(self, obs: list[Observation], spec: ConsumableSpec) -> None:
        self.spec = spec
        self.half = 0.5 * spec.pack_size
        self.points: list[_Level] = [(o.ts, o.level) for o in obs if o.level is not None]
        # How many level readings precede each index of ``obs`` (None: all are levels).
        self.before = (None if len(self.points) == len(obs) else
                       list(accumulate((o.level is not None for o in obs), initial=0)))
        ts = [p[0] for p in self.points]
        vals = self.vals = [p[1] for p in self.points]
        # Per pair of neighbouring readings (k, k + 1): the higher of the two (as max()
        # picks it, three times faster), the change, and where the change is a rise of
        # half a pack, or the two are close in time.
        self.held = [b if b > a else a for a, b in zip(vals, vals[1:], strict=False)]
        diffs = list(map(sub, vals[1:], vals))
        self.rise_at = list(compress(count(), map(ge, diffs, repeat(self.half))))
        self.rise = [diffs[k] for k in self.rise_at]
        close = list(map(ge, repeat(timedelta(hours=NOISE_HOURS)), map(sub, ts[1:], ts)))
        self.close_at = list(compress(count(), close))
        self.step = [abs(diffs[k]) for k in self.close_at]

    def cycle(self, ctx_lo: int, ctx_hi: int, since: datetime, end: datetime) -> Cycle:
        """The cycle from ``since`` to the delivery at ``end``, judged against its context
        ``obs[ctx_lo:ctx_hi]``."""
        a, b = ((ctx_lo, ctx_hi) if self.before is None
                else (self.before[ctx_lo], self.before[ctx_hi]))
        cap = self.spec.capacity
        held = min(self.held[a:max(a, b - 1)], default=0.0)
        floor = min(held, FLAT_CEILING * cap) + ZERO_BAND * cap
        kept = self._kept(a, b, floor)
        levels = (list(chain.from_iterable(self.points[s:e] for s, e in kept))
                  if len(kept) > 1 else self.points[a:b])
        return Cycle(levels[bisect.bisect_left(levels, since, key=_first):], floor,
                     self._use_per_hour(kept, levels), self._noise(kept), end)

    def _kept(self, a: int, b: int, floor: float) -> list[tuple[int, int]]:
        """Index ranges of the readings in ``[a, b)`` that are not excursions."""
        vals = self.vals
        low = list(compress(range(a + 1, b), map(ge, repeat(floor), vals[a + 1:b])))
        kept: list[tuple[int, int]] = []
        s = a
        k = 0
        while k < len(low):
            i = j = low[k]
            while k < len(low) and low[k] == j:
                j += 1
                k += 1
            if j < b and not vals[j] >= vals[i - 1] + self.half:
                kept.append((s, i))  # it came back without a delivery: drop [i, j)
                s = j
        if s < b:
            kept.append((s, b))
        return kept

    def _use_per_hour(self, kept: list[tuple[int, int]], levels: list[_Level]) -> float:
        if len(levels) < 2:
            return 0.0
        vals, at, half = self.vals, self.rise_at, self.half
        rises: list[float] = []
        for n, (s, e) in enumerate(kept):
            if n:  # the pair across a dropped excursion
                gap = vals[s] - vals[kept[n - 1][1] - 1]
                if gap >= half:
                    rises.append(gap)
            rises += self.rise[bisect.bisect_left(at, s):bisect.bisect_left(at, e - 1)]
        hours = (levels[-1][0] - levels[0][0]) / timedelta(hours=1)
        return (max(0.0, levels[0][1] - levels[-1][1] + sum(rises)) / hours if hours > 0
                else 0.0)

    def _noise(self, kept: list[tuple[int, int]]) -> float:
        at = self.close_at
        steps: list[float] = []
        for n, (s, e) in enumerate(kept):
            if n:
                p, q = kept[n - 1][1] - 1, s
                if self.points[q][0] - self.points[p][0] <= timedelta(hours=NOISE_HOURS):
                    steps.append(abs(self.vals[q] - self.vals[p]))
            steps += self.step[bisect.bisect_left(at, s):bisect.bisect_left(at, e - 1)]
        return median(steps) if len(steps) >= 10 else ZERO_BAND * self.spec.capacity / 3


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
    # A use so slow that crossing the band outlasts the cycle can never qualify; the cap
    # keeps a near-zero rate from overflowing timedelta.
    cycle_hours = (cycle.end - levels[0][0]) / timedelta(hours=1) if levels else 0.0
    need = timedelta(hours=min(RUN_OUT_HOURS + ZERO_BAND * spec.capacity / rate,
                               RUN_OUT_HOURS + max(cycle_hours, 0.0) + 1.0))
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
