"""Turning raw level readings into refill-adjusted cumulative use on an active-time axis.

Times are float days. ``away`` is a sorted list of non-overlapping ``(start, end)`` day
intervals during which nobody uses anything; those stretches are cut out of the time
axis ("active time") so a vacation does not drag the rate down.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

Interval = tuple[float, float]


@dataclass(slots=True, frozen=True)
class UseSeries:
    """Cumulative use on an active-time axis, plus what the cleaning saw on the way."""

    tau: list[float]  # active days since the first kept reading
    cum: list[float]  # cumulative use (level units) up to each kept reading
    real: list[float]  # real time (days) of each kept reading
    level: list[float]  # the kept readings themselves
    uses: list[float]  # use in each kept interval (refill intervals excluded)
    spans: list[float]  # active days of each such interval
    ends: list[float]  # real end time of each such interval
    refills: list[float]  # real times at which a refill was detected
    spikes: int  # readings dropped as spikes, and drops taken as discarded stock
    pending_drop: bool  # the newest reading is an unconfirmed drop (held out)


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    """Sort and merge overlapping intervals, dropping empty ones."""
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def overlap(t0: float, t1: float, away: list[Interval]) -> float:
    """Days of ``[t0, t1]`` covered by ``away``."""
    if not away or t1 <= t0:
        return 0.0
    total = 0.0
    # Intervals are sorted by start; skip those that end before t0.
    i = max(0, bisect.bisect_left(away, (t0, t0)) - 1)
    while i < len(away):
        a, b = away[i]
        if a >= t1:
            break
        lo = a if a > t0 else t0
        hi = b if b < t1 else t1
        if hi > lo:
            total += hi - lo
        i += 1
    return total


def _is_spike(prev: float, levels: list[float], i: int, tol: float) -> bool:
    """Reading ``i`` is off from ``prev`` while the next one, or the one after that, is
    back: a lifted jug (one or two readings) rather than use or a refill."""
    cur = levels[i]
    if abs(cur - prev) <= tol:
        return False
    n = len(levels)
    if i + 1 < n and (cur - prev) * (levels[i + 1] - cur) < 0 and abs(levels[i + 1] - cur) > tol:
        # A V (or inverted V): far more gone in one interval than anyone uses, and back
        # up at once: the jug was lifted out while new milk went in.
        return True
    for j in (i + 1, i + 2):
        if j >= n:
            return False
        if abs(levels[j] - prev) <= tol:
            return True
    return False


def clean_levels(
    times: list[float],
    levels: list[float],
    capacity: float,
    away: list[Interval],
    deliveries: list[float],
    refill_tol: float,
    shelf_life: float | None = None,
    step_tol: float | None = None,
) -> UseSeries:
    """Reject spikes, detect refills, and accumulate use over active time.

    An upward jump larger than ``refill_tol`` is a refill when the next reading confirms
    it (or when it is the newest reading, or a known delivery came in just before it);
    a lone excursion that the next reading undoes is a spike. A big drop in the newest
    reading, inside a short gap, is held out until the next reading confirms it: a
    lifted milk jug reads zero once.

    ``step_tol`` (below ``refill_tol``): a smaller rise that is a refill too (one pack in
    a device that holds many), unless it only undoes the drop of the one or two readings
    before it (a jug lifted off a shelf of several and put back: that drop was no use).

    With a ``shelf_life`` (perishables on a fine sensor), a fast drop (larger than a
    refill, within a few hours) is spoiled stock thrown out, not use, only when a batch
    the agent knows of is due to spoil then: one of our deliveries, a refill seen, or the
    stock first seen, a shelf life earlier (see :func:`_near_expiry`); or just after new
    stock came in (the old is thrown out when the new arrives). Any other fast drop is
    use: a family's breakfast is as fast as a discard.
    """
    n = len(times)
    keep_t: list[float] = []
    keep_l: list[float] = []
    spikes = 0
    pending = False
    for i in range(n):
        cur = levels[i]
        if keep_l:
            prev = keep_l[-1]
            if i + 1 < n:
                # A reading within the tolerance of the last kept one is no spike (the
                # first test of :func:`_is_spike`, taken here: most readings pass it).
                if (not abs(cur - prev) <= refill_tol and _is_spike(prev, levels, i, refill_tol)
                        and not _delivered(deliveries, keep_t[-1], times[i])):
                    spikes += 1
                    continue
            elif (prev - cur > refill_tol and cur <= 0.02 * capacity
                  and times[i] - keep_t[-1] < 0.5):
                # Newest reading near zero right after a normal one: hold it out.
                pending = True
                continue
        keep_t.append(times[i])
        keep_l.append(cur)
    if (not pending and len(keep_l) >= 3 and keep_l[-1] <= 0.02 * capacity
            and keep_l[-2] <= 0.02 * capacity and keep_l[-3] - keep_l[-2] > refill_tol
            and keep_t[-1] - keep_t[-3] < 0.5):
        # The two newest readings near zero right after a normal one: a jug lifted out
        # for a while. Hold both out until a third confirms the drop.
        del keep_t[-2:], keep_l[-2:]
        pending = True

    tau = [0.0]
    cum = [0.0]
    uses: list[float] = []
    spans: list[float] = []
    ends: list[float] = []
    refills: list[float] = []
    discards = 0
    empty = 0.01 * capacity
    for k in range(1, len(keep_t)):
        t0 = keep_t[k - 1]
        t1 = keep_t[k]
        active = (t1 - t0) - overlap(t0, t1, away) if away else t1 - t0
        d = keep_l[k] - keep_l[k - 1]
        if keep_l[k] <= empty and keep_l[k - 1] <= empty:
            # Out of stock: nothing could be used, so the time says nothing about demand.
            tau.append(tau[-1])
            cum.append(cum[-1])
            continue
        if (shelf_life is not None and -d > refill_tol and t1 - t0 < 0.25
                and _near_expiry(t0, t1, shelf_life, keep_t[0], deliveries, refills)):
            # A batch gone within a few hours is spoiled stock thrown out, not use.
            discards += 1
            tau.append(tau[-1] + active)
            cum.append(cum[-1])
            continue
        if d > refill_tol or (step_tol is not None and d > step_tol
                              and not _put_back(keep_t, keep_l, k, step_tol)):
            # Use inside a refill interval is unknowable: cut it out of the time axis too,
            # so the slope is not biased by a stretch of "no use".
            refills.append(t1)
            tau.append(tau[-1])
            cum.append(cum[-1])
            continue
        tau.append(tau[-1] + active)
        cum.append(cum[-1] - d)
        if active > 0:
            uses.append(-d)
            spans.append(active)
            ends.append(t1)
    return UseSeries(tau, cum, keep_t, keep_l, uses, spans, ends, refills, spikes + discards,
                     pending)


def _put_back(keep_t: list[float], keep_l: list[float], k: int, tol: float) -> bool:
    """Whether the rise to ``keep_l[k]`` brings the level back to within half ``tol``
    of where it stood one or two readings earlier, within six hours: something lifted
    and put back, not stock added."""
    return any(keep_t[k] - keep_t[j] < 0.25 and abs(keep_l[k] - keep_l[j]) <= 0.5 * tol
               for j in (k - 2, k - 3) if j >= 0)


# A discard is expected from this long before a batch's expiry to this long after it.
_EXPIRY_WINDOW = (-1.5, 2.0)
_AFTER_NEW_STOCK = 0.5  # days after new stock came in that old stock is thrown out


def _near_expiry(t0: float, t1: float, life: float, first: float, deliveries: list[float],
                 refills: list[float]) -> bool:
    """Whether a drop in ``[t0, t1]`` falls when a known batch spoils, or just after new
    stock came in."""
    lo, hi = _EXPIRY_WINDOW
    later = [b for b in (*deliveries, *refills) if b > first]
    # Stock of unknown age, first seen at ``first``, spoils no later than a shelf life
    # after that; once newer stock came in before then, that bound says nothing.
    born_all = later if later and min(later) < first + life + lo else [first, *later]
    for born in born_all:
        if born + life + lo <= t1 and t0 <= born + life + hi:
            return True
        if born <= t1 and t0 <= born + _AFTER_NEW_STOCK and born > first:
            return True
    return False


def _delivered(deliveries: list[float], t0: float, t1: float) -> bool:
    """Whether one of our own deliveries arrived in ``(t0, t1]``."""
    i = bisect.bisect_right(deliveries, t0)
    return i < len(deliveries) and deliveries[i] <= t1


def detect_quantum(levels: list[float], capacity: float, counted: bool = False,
                   ) -> float | None:
    """The step of a coarse device (10 % printers, whole sensors), or None if fine-grained.

    Whole-number stocks of a counting device (sensors, eggs: ``counted``) are counted in
    ones, whatever the capacity (a 48-egg tray is no different from a 40-egg one).
    Otherwise coarse means: most consecutive readings are unchanged and every level is a
    multiple of the smallest change seen, which is at least 5 % of capacity.
    """
    if len(levels) < 4:
        return None
    if counted and all(float(v).is_integer() for v in levels):
        return 1.0
    diffs = [abs(b - a) for a, b in zip(levels, levels[1:], strict=False) if a != b]
    if not diffs or len(diffs) > 0.5 * (len(levels) - 1):
        return None
    q = min(diffs)
    if q < 0.05 * capacity - 1e-9:
        return None
    if all(abs(v / q - round(v / q)) < 1e-6 for v in levels):
        return q
    return None


def crossings(series: UseSeries) -> tuple[list[float], list[float], list[float]]:
    """Step crossings of a coarse series: (active time, cumulative use, level after).

    The level crossed a step somewhere between two readings; the midpoint in active time
    is the best guess, and it removes the zero slope Theil-Sen sees on raw steps.
    """
    xs: list[float] = []
    ys: list[float] = []
    after: list[float] = []
    for k in range(1, len(series.tau)):
        drop = series.cum[k] - series.cum[k - 1]
        if drop > 0:
            xs.append(0.5 * (series.tau[k - 1] + series.tau[k]))
            ys.append(series.cum[k])
            after.append(series.level[k])
    return xs, ys, after
