"""The estimators behind :func:`agent.forecast.forecast`, one per kind of signal (the
page counter's in :mod:`agent.forecast.counter`).

Each returns an :class:`Estimate` (level now, rate per active day, their spreads, a
``basis`` text) or None when its signal is too thin to say anything. Times are float
days; ``away`` is a merged interval list.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Protocol

from agent.forecast.days import persistence, weekday_factors
from agent.forecast.series import (
    Interval,
    UseSeries,
    clean_levels,
    crossings,
    detect_quantum,
    overlap,
)
from agent.forecast.stats import median, robust_daily_variance, theil_sen_slope
from agent.forecast.types import EstimateKind

LONG_WINDOW_DAYS = 35.0  # enough weeks for weekday factors, short enough to follow a move
# Recent windows checked for a step change in use: (days, only rises count).
RECENT_WINDOWS = ((8.0, False), (4.0, False), (2.5, True))
COARSE_HISTORY_DAYS = 365.0  # coarse steps are rare: look back further for crossings
DAILY_CV_FLOOR = 0.35  # least day-to-day spread of use, relative to the rate
MAX_POINTS = 36  # points fed to Theil-Sen (pairs grow as n^2)
_FEW_DAYS = 4  # daily points under which the window's first reading is one too
WEEK_DAYS = 7.0


@dataclass(slots=True, frozen=True)
class Estimate:
    """What one estimator concluded."""

    level: float | None
    level_sd: float
    rate: float | None  # level units per active day
    rate_sd: float
    daily_sd: float
    weekday: tuple[float, ...] | None
    points: int
    basis: str
    kind: EstimateKind
    # Per-weekday factors on the day-to-day variance (at least 1; None: every day alike).
    weekday_var: tuple[float, ...] | None = None
    # Day-to-day persistence of use (lag-one correlation of whole days' use about the
    # rate, 0: days independent) and the newest whole day's excess use it carries on.
    persist: float = 0.0
    carry: float = 0.0


class Fit(Protocol):
    """An estimator's result before ``now``: everything it fitted from the readings, and
    :meth:`at` to say where the level stands at ``now`` (days; cheap). Two fits of the
    same inputs are equal, so a caller may keep one while its inputs stay the same."""

    @property
    def has_level(self) -> bool: ...
    def at(self, now: float, away: list[Interval]) -> Estimate: ...


@dataclass(slots=True, frozen=True)
class Fixed:
    """A fit that ``now`` does not move (too few crossings, one reading)."""

    est: Estimate

    @property
    def has_level(self) -> bool:
        return self.est.level is not None

    def at(self, now: float, away: list[Interval]) -> Estimate:
        return self.est


def active_since(t: float, now: float, away: list[Interval]) -> float:
    """Active (not away) days from ``t`` to ``now``, none if ``now`` is earlier."""
    return max(0.0, (now - t) - overlap(t, now, away))


def daily_points(xs: list[float], ys: list[float], since: float) -> tuple[list[float],
                                                                          list[float]]:
    """The last point of each active day from ``since`` on, at most MAX_POINTS of them."""
    out_x: list[float] = []
    out_y: list[float] = []
    last_day = None
    for x, y in zip(xs, ys, strict=True):
        if x < since:
            continue
        day = math.floor(x)
        if day == last_day:
            out_x[-1] = x
            out_y[-1] = y
        else:
            out_x.append(x)
            out_y.append(y)
            last_day = day
    if len(out_x) > MAX_POINTS:
        step = len(out_x) / MAX_POINTS
        idx = sorted({len(out_x) - 1 - int(i * step) for i in range(MAX_POINTS)})
        out_x = [out_x[i] for i in idx]
        out_y = [out_y[i] for i in idx]
    return out_x, out_y


def _daily_sd(xs: list[float], ys: list[float], rate: float, capacity: float) -> float:
    """Day-to-day spread of use, from the daily points' increments."""
    uses = [b - a for a, b in zip(ys, ys[1:], strict=False)]
    spans = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    var = robust_daily_variance(uses, spans, rate)
    return math.sqrt(var) if var is not None else 0.3 * abs(rate) + 0.002 * capacity


def _confirmed(xs: list[float], ys: list[float], since: float, rate: float, shift: float,
               margin: float) -> bool:
    """Whether whole days since ``since`` agree with a shift of the rate: the median of
    their per-day use moved the same way by at least ``margin``. A lifted jug or two can
    bend a few days' slope; they do not move the median day."""
    i = bisect.bisect_left(xs, since)
    per_day = [(ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k]) for k in range(max(i - 1, 0),
                                                                       len(xs) - 1)
               if xs[k + 1] - xs[k] > 0.3]
    if not per_day:
        return False
    moved = median(per_day) - rate
    return moved > margin if shift > 0 else -moved > margin


def level_fit(
    times: list[float],
    levels: list[float],
    capacity: float,
    away: list[Interval],
    deliveries: list[float],
    counted: bool = False,
    shelf_life: float | None = None,
    pack: float | None = None,
) -> Fit | None:
    """Rate and level from numeric level readings (fine sensors or coarse steps).
    ``counted``: the device counts whole items (see :func:`detect_quantum`);
    ``shelf_life`` (days): perishable, spoiled stock may be thrown out; ``pack``: what
    one pack adds (level units)."""
    quantum = detect_quantum(levels[-60:], capacity, counted)
    refill_tol = 0.5 * quantum if quantum is not None else 0.08 * capacity
    step = None
    if quantum is None and pack is not None:
        # A fridge that holds many packs: one jug the household brings home rises by
        # less than 8 % of it, and read as use it took a litre back (five people, 14 l:
        # 749 ml/day at 1,650 on the third day). One pack, even partly used at once, is
        # a refill (as in ``refills.refill_tol``) unless it is only put back.
        step = min(refill_tol, 0.6 * pack)
    s = clean_levels(times, levels, capacity, away, deliveries, refill_tol,
                     shelf_life if quantum is None else None, step)
    if quantum is not None:
        return _coarse(s, quantum, capacity, exact=counted and quantum == 1.0)
    return _fine(s, capacity)


@dataclass(slots=True, frozen=True)
class FineFit:
    """A fine sensor's rate; the level falls at it from the newest kept reading."""

    est: Estimate  # level: the newest kept reading
    last: float  # its real time (days)
    capacity: float

    has_level = True

    def at(self, now: float, away: list[Interval]) -> Estimate:
        e = self.est
        elapsed = active_since(self.last, now, away)
        level = max(0.0, (e.level or 0.0) - (e.rate or 0.0) * elapsed)
        level_sd = max(0.004 * self.capacity, e.daily_sd * math.sqrt(elapsed))
        return Estimate(level, level_sd, e.rate, e.rate_sd, e.daily_sd, e.weekday,
                        e.points, e.basis, e.kind, e.weekday_var, e.persist, e.carry)


def _fine(s: UseSeries, capacity: float) -> Fit | None:
    if len(s.tau) < 3 or s.tau[-1] - s.tau[0] < 1.0:
        return None
    tau_end = s.tau[-1]
    xs, ys = daily_points(s.tau, s.cum, tau_end - LONG_WINDOW_DAYS)
    first = bisect.bisect_left(s.tau, tau_end - LONG_WINDOW_DAYS)
    if len(xs) < _FEW_DAYS and s.tau[first] < xs[0]:
        # The first reading is a point too while there are few days: a day's last
        # reading drops the use before it, and on a first day and a night (a review at
        # 06:00) the two daily points left span only the night (a cold start read 31
        # ml/day at 330). Later, points at one hour of the day each are better alone.
        xs, ys = [s.tau[first], *xs], [s.cum[first], *ys]
    if len(xs) < 2:
        xs, ys = s.tau[-3:], s.cum[-3:]
    rate = theil_sen_slope(xs, ys)
    span = xs[-1] - xs[0]
    daily_sd = _daily_sd(xs, ys, rate, capacity)
    basis = "theil-sen on refill-adjusted use"
    # Step changes: a recent window that clearly disagrees with the long one. Longer
    # windows are more reliable; the shortest only counts rises (running out costs more
    # than ordering a little early).
    for window, rises_only in RECENT_WINDOWS:
        # A week has enough daily points; shorter windows need every reading.
        px, py = (xs, ys) if window >= 7 else (s.tau, s.cum)
        i = bisect.bisect_left(px, tau_end - window)
        rx = px[i:]
        if len(rx) < 4 or rx[-1] - rx[0] < 0.8 * window or span < window + 3:
            continue
        ry = py[i:]
        recent = theil_sen_slope(rx, ry)
        r_span = rx[-1] - rx[0]
        # Noise judged within the window: around the old rate a step looks like noise.
        noise = min(daily_sd, _daily_sd(rx, ry, recent, capacity))
        limit = 3.0 * noise / math.sqrt(r_span) + 0.15 * abs(rate)
        shift = recent - rate
        if (shift > limit or (not rises_only and -shift > limit)) and _confirmed(
                xs, ys, tau_end - window, rate, shift, 0.5 * limit):
            rate = recent
            span = r_span
            daily_sd = max(noise, _daily_sd(rx, ry, recent, capacity))
            basis = "theil-sen on use since a step change"
            break
    rate = max(rate, 0.0)
    weekday, weekday_var = weekday_factors(s, rate, s.real[-1] - LONG_WINDOW_DAYS)
    if weekday is not None:
        basis += ", weekday pattern"
    if weekday_var is not None:
        basis += ", weekday spread"
    # Households are rarely steadier than this from one day to the next; a sample of a
    # few calm weeks would otherwise promise more than the next week keeps.
    daily_sd = max(daily_sd, DAILY_CV_FLOOR * rate)
    rate_sd = max(daily_sd / math.sqrt(max(span, 1.0)), 0.03 * rate)
    persist, carry = persistence(xs, ys, rate, xs[-1] - span)
    if persist > 0:
        basis += ", days persist"
    return FineFit(Estimate(s.level[-1], 0.0, rate, rate_sd, daily_sd, weekday, len(xs),
                            f"{basis}, {len(xs)} points{_cleaning_note(s)}",
                            EstimateKind.FINE, weekday_var, persist, carry), s.real[-1],
                   capacity)


def _cleaning_note(s: UseSeries) -> str:
    """What the cleaning did, for the household-facing basis text."""
    notes = []
    if s.refills:
        notes.append(f"{len(s.refills)} refills cut out")
    if s.spikes:
        notes.append(f"{s.spikes} odd readings ignored")
    if s.pending_drop:
        notes.append("newest drop awaits confirmation")
    return "".join(f", {n}" for n in notes)


@dataclass(slots=True, frozen=True)
class CoarseFit:
    """Step-crossing times of a coarse gauge (or counted items); ``now`` bounds the rate
    of a gauge that has not stepped for long, so the spread is judged at :meth:`at`."""

    q: float
    capacity: float
    exact: bool
    xs: list[float]  # active days of the crossings (at most MAX_POINTS)
    ys: list[float]
    after: float  # the level just after the newest crossing
    reported: float  # the newest kept reading
    tau_last: float  # its active day
    real_last: float  # its real day
    theil: float  # Theil-Sen rate of the crossings
    daily_x: list[float]  # counted items: daily points of cumulative use
    daily_y: list[float]

    has_level = True

    def at(self, now: float, away: list[Interval]) -> Estimate:
        q, xs, ys, exact = self.q, self.xs, self.ys, self.exact
        reported = self.reported
        tau_now = self.tau_last + active_since(self.real_last, now, away)
        rate = self.theil
        since = tau_now - xs[-1]
        gaps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
        if not exact and since > 0 and rate * since > q:
            # A rounded gauge that has not stepped for a long time bounds the rate: the
            # next step is at least that far away now. (Counted items are used in lumps,
            # so a quiet day says little about them.)
            rate = q / since
        rate = max(rate, 0.0)
        if exact:
            # Counted items: daily increments are the real use; at least Poisson noise.
            daily_sd = max(_daily_sd(self.daily_x, self.daily_y, rate, self.capacity),
                           math.sqrt(rate))
        else:
            steps = [b - a for a, b in zip(ys, ys[1:], strict=False)]
            spread = median([abs(st - rate * g) for st, g in zip(steps, gaps, strict=True)])
            daily_sd = 1.4826 * spread / math.sqrt(max(median(gaps), 0.5))
        rate_sd = max(daily_sd / math.sqrt(max(xs[-1] - xs[0], 1.0)), 0.05 * rate)
        # At the last crossing the true level sat on the step boundary: the new reading
        # if the gauge rounds up (the cautious guess: a gauge that rounds down only makes
        # us order a step early), then it fell at the rate. The reading bounds the level
        # when it was taken (a step either way, rounding unknown); use since then comes
        # on top.
        at_reading = self.after - rate * max(0.0, self.tau_last - xs[-1])
        lo = reported if exact else max(0.0, reported - q)
        at_reading = min(max(at_reading, lo), reported + q) if reported > 0 else 0.0
        stale = tau_now - self.tau_last
        level = max(0.0, at_reading - rate * stale)
        # The newest reading bounds the level to within a step whatever the rate did
        # since the last crossing: after a month's idle office the drift term would
        # otherwise swamp it and put p10 at zero for a fresh cartridge.
        drift = rate_sd * max(0.0, since)
        level_sd = ((0.0 if exact else q / math.sqrt(12.0))
                    + (drift if exact else min(drift, 0.5 * q))
                    + daily_sd * math.sqrt(stale))
        return Estimate(level, level_sd, rate, rate_sd, daily_sd, None, len(xs),
                        f"step-crossing times ({q:g}-unit steps), {len(xs)} crossings",
                        EstimateKind.STEPS)


def _coarse(s: UseSeries, q: float, capacity: float, *, exact: bool = False) -> Fit:
    """``exact``: whole items counted exactly, not a rounded gauge."""
    xs, ys, after = crossings(s)
    reported = s.level[-1]
    if len(xs) < 2 or xs[-1] - xs[0] < 0.5:
        # A count is the level (two sensors left are two, not 2.5); a rounded gauge
        # sits anywhere within its step.
        level = reported if exact else (reported + 0.5 * q if reported > 0 else 0.0)
        return Fixed(Estimate(level, 0.0 if exact else q / math.sqrt(12.0),
                              None, 0.0, 0.0, None, len(xs),
                              f"{q:g}-unit steps, too few crossings", EstimateKind.STEPS))
    xs = xs[-MAX_POINTS:]
    ys = ys[-MAX_POINTS:]
    rate = theil_sen_slope(xs, ys)
    dx, dy = (daily_points(s.tau, s.cum, s.tau[-1] - LONG_WINDOW_DAYS) if exact
              else ([], []))
    return CoarseFit(q, capacity, exact, xs, ys, after[-1], reported, s.tau[-1],
                     s.real[-1], rate, dx, dy)
