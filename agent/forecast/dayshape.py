"""The household's day: the share of a day's use that falls in each hour, from a level
sensor's own readings (a family's breakfast is a third of its milk in one hour).

Pure: readings in, cumulative shares out. A demand curve is kept at whole days; between
them use was taken to grow evenly, so a delivery due at noon after a 06:00 review was
planned against a quarter of a day's use where the household had poured over half
(bench-decisions: most of the milk run-outs at 07:00 and 19:00).
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter

from agent.forecast.refills import refill_tol
from agent.forecast.types import ConsumableSpec, Observation

SHAPE_DAYS = 14.0  # the recent days the shape is read from (each costs ~15 us a pass)
MIN_SEEN = 7  # falls seen in each hour of the day, at least
CLOSE = timedelta(hours=1.5)  # readings further apart do not say which hour use fell in
_TS = attrgetter("ts")


@dataclass(slots=True)
class ShapeMemo:
    """The last :func:`day_shape` pass of one consumable (kept in the forecast's memo):
    the level readings it read (the first counted as number ``base``), each hour's falls
    in the order counted with the number of their interval's first reading, and where it
    stopped (the last reading's time and level, the fall waiting on the next reading).
    A fall is counted or not by its interval's two readings and the one after, so while
    those are the same readings the next pass counts it the same: it adds the kept falls
    in the same order (the same sums) and reads only the newer readings. Arrays, not
    lists: a gateway keeps two weeks of minute readings (8 bytes a fall, not 32)."""

    tol: float = math.nan
    base: int = 0
    readings: list[Observation] = field(default_factory=list)
    falls: list[array[float]] = field(default_factory=list)
    starts: list[array[int]] = field(default_factory=list)
    waiting: tuple[float, float, int, int, float, float] = (-math.inf, 0.0, -1, -1, 0.0, 0.0)


def day_shape(observations: Sequence[Observation], spec: ConsumableSpec,
              now: datetime, memo: ShapeMemo | None = None) -> tuple[float, ...] | None:
    """The share of a day's use done by each whole hour 0..24 after ``now``'s hour (0
    to 1), from the fall between readings at most :data:`CLOSE` apart over the last
    :data:`SHAPE_DAYS`, by the hour of day (UTC) of the middle of the interval it fell
    in; None with under :data:`MIN_SEEN` of them in some hour, or no use. A rise of a
    refill's tolerance is a refill, and a fall of one the next reading undoes is a
    lifted jug: neither is use. ``observations`` sorted by time. One pass: it runs on
    every forecast of a fine sensor (about 340 readings); with ``memo`` (the forecast's)
    it reads only the readings the last pass did not."""
    lo = bisect.bisect_left(observations, now - timedelta(days=SHAPE_DAYS), key=_TS)
    hi = bisect.bisect_right(observations, now, key=_TS)
    tol = refill_tol(spec)
    close = CLOSE.total_seconds()
    use = [0.0] * 24
    seen = [0] * 24
    readings = [o for o in observations[lo:hi] if o.level is not None]
    falls = [array("d") for _ in range(24)]
    starts = [array("q") for _ in range(24)]
    # (time and level of the reading before, the hour of a fall waiting for the next
    # reading (-1: none), where its interval starts, that fall and the level after it)
    prev_t, prev, held, held_at, fall, after = -math.inf, 0.0, -1, -1, 0.0, 0.0
    start = base = 0  # the readings before ``start`` were read by the last pass
    if memo is not None and memo.tol == tol and readings and memo.readings:
        old = memo.readings
        k = bisect.bisect_left(old, readings[0].ts, key=_TS)
        if old[k:] == readings[:len(old) - k] and len(old) > k:
            # The same readings from this window's first on: each hour's falls counted
            # from its first interval on, in order, and where the last pass stopped.
            base = memo.base + k
            for h in range(24):
                at = memo.starts[h]
                cut = bisect.bisect_left(at, base)
                starts[h] = at[cut:]
                kept = falls[h] = memo.falls[h][cut:]
                acc = 0.0
                for f in kept:
                    acc += f
                use[h] = acc
                seen[h] = len(kept)
            prev_t, prev, held, held_at, fall, after = memo.waiting
            if held_at < base:  # its interval began before this window: not a fall here
                held = -1
            start = len(old) - k
    # Epoch seconds: the epoch began at midnight UTC, so the hour of day is the hour
    # count mod 24 (datetime arithmetic here cost as much as the rest of a forecast).
    for k in range(start, len(readings)):
        o = readings[k]
        level = o.level
        if level is None:
            continue
        t = o.ts.timestamp()
        if held >= 0:
            if fall <= tol or level - after <= tol:  # not a lifted jug put back
                use[held] += fall
                seen[held] += 1
                falls[held].append(fall)
                starts[held].append(held_at)
            held = -1
        if t - prev_t <= close and level - prev <= tol:
            # The hour the fall most likely happened in: its interval's middle.
            held = int((prev_t + t) * 0.5 // 3600.0) % 24
            held_at, fall, after = base + k - 1, prev - level, level
        prev_t, prev = t, level
    if memo is not None:
        memo.tol, memo.base, memo.readings = tol, base, readings
        memo.falls, memo.starts = falls, starts
        memo.waiting = (prev_t, prev, held, held_at, fall, after)
    if held >= 0:
        use[held] += fall
        seen[held] += 1
    if min(seen) < MIN_SEEN:
        return None
    per = [max(0.0, use[h] / seen[h]) for h in range(24)]
    total = sum(per)
    if total <= 0:
        return None
    out = [0.0]
    for j in range(24):
        out.append(out[-1] + per[(now.hour + j) % 24] / total)
    out[-1] = 1.0
    return tuple(out)
