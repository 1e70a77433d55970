"""The household's day: the share of a day's use that falls in each hour, from a level
sensor's own readings (a family's breakfast is a third of its milk in one hour).

Pure: readings in, cumulative shares out. A demand curve is kept at whole days; between
them use was taken to grow evenly, so a delivery due at noon after a 06:00 review was
planned against a quarter of a day's use where the household had poured over half
(bench-decisions: most of the milk run-outs at 07:00 and 19:00).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta
from operator import attrgetter

from agent.forecast.refills import refill_tol
from agent.forecast.types import ConsumableSpec, Observation

SHAPE_DAYS = 28.0  # the recent weeks the shape is read from
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
    every forecast of a fine sensor (about 700 readings)."""
    lo = bisect.bisect_left(observations, now - timedelta(days=SHAPE_DAYS), key=_TS)
    hi = bisect.bisect_right(observations, now, key=_TS)
    tol = refill_tol(spec)
    use = [0.0] * 24
    seen = [0] * 24
    prev_t: datetime | None = None
    prev = 0.0
    held: tuple[int, float, float] | None = None  # a fall waiting for the next reading
    for o in observations[lo:hi]:
        level = o.level
        if level is None:
            continue
        t = o.ts
        if held is not None:
            h, fall, after = held
            if fall <= tol or level - after <= tol:  # not a lifted jug put back
                use[h] += fall
                seen[h] += 1
            held = None
        if prev_t is not None:
            gap = t - prev_t
            if gap <= CLOSE and level - prev <= tol:
                # The hour the fall most likely happened in: its interval's middle.
                held = ((prev_t + gap / 2).hour, prev - level, level)
        prev_t, prev = t, level
    if held is not None:
        use[held[0]] += held[1]
        seen[held[0]] += 1
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
