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
from collections.abc import Sequence
from datetime import datetime, timedelta
from operator import attrgetter

from agent.forecast.refills import refill_tol
from agent.forecast.types import ConsumableSpec, Observation

SHAPE_DAYS = 14.0  # the recent days the shape is read from (each costs ~15 us a pass)
MIN_SEEN = 7  # falls seen in each hour of the day, at least
CLOSE = timedelta(hours=1.5)  # readings further apart do not say which hour use fell in
_TS = attrgetter("ts")


def day_shape(observations: Sequence[Observation], spec: ConsumableSpec,
              now: datetime) -> tuple[float, ...] | None:
    """The share of a day's use done by each whole hour 0..24 after ``now``'s hour (0
    to 1), from the fall between readings at most :data:`CLOSE` apart over the last
    :data:`SHAPE_DAYS`, by the hour of day (UTC) of the middle of the interval it fell
    in; None with under :data:`MIN_SEEN` of them in some hour, or no use. A rise of a
    refill's tolerance is a refill, and a fall of one the next reading undoes is a
    lifted jug: neither is use. ``observations`` sorted by time. One pass: it runs on
    every forecast of a fine sensor (about 340 readings)."""
    lo = bisect.bisect_left(observations, now - timedelta(days=SHAPE_DAYS), key=_TS)
    hi = bisect.bisect_right(observations, now, key=_TS)
    tol = refill_tol(spec)
    close = CLOSE.total_seconds()
    use = [0.0] * 24
    seen = [0] * 24
    prev_t = -math.inf
    prev = 0.0
    held = -1  # the hour of a fall waiting for the next reading (-1: none)
    fall = after = 0.0
    # Epoch seconds: the epoch began at midnight UTC, so the hour of day is the hour
    # count mod 24 (datetime arithmetic here cost as much as the rest of a forecast).
    for o in observations[lo:hi]:
        level = o.level
        if level is None:
            continue
        t = o.ts.timestamp()
        if held >= 0:
            if fall <= tol or level - after <= tol:  # not a lifted jug put back
                use[held] += fall
                seen[held] += 1
            held = -1
        if t - prev_t <= close and level - prev <= tol:
            # The hour the fall most likely happened in: its interval's middle.
            held = int((prev_t + t) * 0.5 // 3600.0) % 24
            fall, after = prev - level, level
        prev_t, prev = t, level
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
