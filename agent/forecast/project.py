"""Projecting use forward: a day-by-day demand curve and run-out quantiles from it.

Demand over the next ``h`` days is treated as normal with mean ``rate * A(h)`` (``A`` is
active days, weighted by weekday factors and zero while away) and variance
``daily_sd^2 * A(h) + rate_sd^2 * A(h)^2``: day-to-day noise averages out, an error in the
rate does not. A household whose days persist (guests stay the weekend) carries the
newest day's excess on, fading, and its days' variances add their covariances (AR(1));
weekdays that vary more weigh more of the day-to-day variance; within a day, use follows
the household's own shape of the day.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.forecast.series import Interval, overlap

MAX_HORIZON_DAYS = 400
Z = {0.1: -1.2815516, 0.5: 0.0, 0.9: 1.2815516}
_SQRT2 = math.sqrt(2.0)  # as in stats.norm_cdf


@dataclass(slots=True, frozen=True)
class DemandCurve:
    """Mean and variance of cumulative use at whole days 0..n from ``now``; within a
    day, ``hours`` (if known) is the share of a day's use done by each whole hour
    0..24 after ``now`` (:func:`agent.forecast.dayshape.day_shape`), else linear."""

    mean: tuple[float, ...]
    var: tuple[float, ...]
    hours: tuple[float, ...] | None = None

    def share(self, f: float) -> float:
        """Share of a day's use done ``f`` (0..1) of a day after the curve's start."""
        h = self.hours
        if h is None:
            return f
        x = f * 24.0
        i = int(x)
        return h[i] + (h[i + 1] - h[i]) * (x - i) if i < 24 else 1.0

    def at(self, days: float) -> tuple[float, float]:
        """Mean and variance of use over the next ``days`` (between whole days by the
        shape of the day, :meth:`share`)."""
        if days <= 0:
            return 0.0, 0.0
        last = len(self.mean) - 1
        if days >= last:
            # Past the curve: extend with its last day's increments.
            if last == 0:
                return 0.0, 0.0
            dm = self.mean[last] - self.mean[last - 1]
            dv = self.var[last] - self.var[last - 1]
            extra = days - last
            return self.mean[last] + dm * extra, self.var[last] + dv * extra
        k = int(days)
        f = self.share(days - k)
        m = self.mean[k] + (self.mean[k + 1] - self.mean[k]) * f
        v = self.var[k] + (self.var[k + 1] - self.var[k]) * f
        return m, v

    def p_empty(self, level: float, ls2: float, days: float) -> float:
        """P(use over the next ``days`` reaches ``level``, its variance ``ls2``): the
        planner's inner loop (~100 per plan), :meth:`at` inlined, the same numbers."""
        if days <= 0:
            m = v = 0.0
        else:
            mean, var = self.mean, self.var
            last = len(mean) - 1
            if days >= last:
                if last == 0:
                    m = v = 0.0
                else:
                    extra = days - last
                    m = mean[last] + (mean[last] - mean[last - 1]) * extra
                    v = var[last] + (var[last] - var[last - 1]) * extra
            else:
                k = int(days)
                f = days - k if self.hours is None else self.share(days - k)
                m = mean[k] + (mean[k + 1] - mean[k]) * f
                v = var[k] + (var[k + 1] - var[k]) * f
        sd = math.sqrt(v + ls2)
        if sd <= 1e-12:
            return 1.0 if m >= level else 0.0
        return 0.5 * math.erfc(-((m - level) / sd) / _SQRT2)


@dataclass(slots=True)
class CurveMemo:
    """One consumable's last steady curve (no weekdays, no away time) and the rate, the
    sign of its zero, the rate's variance and the daily variance it was built from. A
    kept fit gives these every pass while only the level moves with ``now``, and the
    level sets only the curve's length, not its days: a curve at least as long is cut,
    its days the same floats (see :func:`build_curve`)."""

    key: tuple[float, float, float, float] | None = None
    curve: DemandCurve | None = None


def build_curve(
    *,
    now: float,
    level: float,
    level_sd: float,
    rate: float,
    rate_sd: float,
    daily_sd: float,
    weekday: tuple[float, ...] | None,
    away: list[Interval],
    memo: CurveMemo | None = None,
    weekday_var: tuple[float, ...] | None = None,
    persist: float = 0.0,
    carry: float = 0.0,
) -> DemandCurve:
    """Day-by-day demand curve, long enough to pass the pessimistic run-out. With
    ``memo`` (kept per consumable by the caller) a steady curve is cut from the last one
    built from the same rates: the same curve as without."""
    mean = [0.0]
    var = [0.0]
    active = 0.0
    cum = 0.0
    # Stop once run-out is beyond doubt (mean past level by 4 sd) or at the horizon.
    var_day = daily_sd * daily_sd
    if not away and weekday is None and weekday_var is None and persist <= 0:
        return _steady_curve(level, level_sd, rate, rate_sd, var_day, memo)
    spread = 0.0  # day-to-day variance so far (weekday_var weights each day's)
    echo = 1.0  # persist ** k
    lagged = 0.0  # persist + persist^2 + ... + persist^(k-1)
    for k in range(1, MAX_HORIZON_DAYS + 1):
        t0 = now + k - 1
        a = 1.0 - overlap(t0, t0 + 1.0, away) if away else 1.0
        # Epoch day 0 (1970-01-01) was a Thursday: weekday index 3.
        wd = (int(t0 + 0.5) + 3) % 7
        if weekday is not None:
            cum += rate * a * weekday[wd]
        else:
            cum += rate * a
        active += a
        day_var = var_day * a * (weekday_var[wd] if weekday_var is not None else 1.0)
        if persist > 0:
            # Persistent days (AR(1) about the rate): yesterday's excess lives on, fading,
            # and each day adds its covariance with the days before it.
            echo *= persist
            cum += carry * echo * a
            day_var *= 1.0 + 2.0 * lagged
            lagged += echo
        spread += day_var
        v = spread + (rate_sd * active) ** 2
        mean.append(cum)
        var.append(v)
        if cum - level > 4.0 * math.sqrt(v + level_sd * level_sd) + 1e-9 and k >= 2:
            break
    return DemandCurve(tuple(mean), tuple(var))


def _steady_curve(level: float, level_sd: float, rate: float, rate_sd: float,
                  var_day: float, memo: CurveMemo | None) -> DemandCurve:
    """:func:`build_curve` without weekdays or away time: every day alike (the common
    case). Its length comes from the closed form, its days from one comprehension each:
    the same numbers as a day-by-day loop, without the loop (every pass builds one)."""
    rs2 = rate_sd * rate_sd
    n = _steady_end(level, level_sd * level_sd, rate, rs2, var_day)
    # -0.0 == 0.0, but rate * k keeps the sign: it is part of the key.
    key = (rate, math.copysign(1.0, rate), rs2, var_day)
    if memo is not None and memo.key == key and memo.curve is not None:
        kept = memo.curve
        if len(kept.mean) == n + 1:
            return kept
        if len(kept.mean) > n + 1:
            return DemandCurve(kept.mean[:n + 1], kept.var[:n + 1])
    ks = range(1, n + 1)
    curve = DemandCurve((0.0, *[rate * k for k in ks]),
                        (0.0, *[var_day * k + rs2 * k * k for k in ks]))
    if memo is not None:
        memo.key, memo.curve = key, curve
    return curve


def _steady_end(level: float, ls2: float, rate: float, rs2: float, var_day: float) -> int:
    """The first day ``k >= 2`` at which run-out is beyond doubt (use past the level by 4
    sd), or the horizon. Past the level the test only turns true once (the quadratic in
    ``k`` is negative at ``k = level / rate``), so the root is a start and the exact test
    at its neighbours the answer."""

    def done(k: int) -> bool:
        cum = rate * k
        return cum - level > 0 and (cum - level) ** 2 > 16.0 * (var_day * k + rs2 * k * k
                                                                 + ls2) + 1e-9

    a = rate * rate - 16.0 * rs2
    if a <= 0 or rate <= 0:
        if _never_done(level, ls2, rate, rs2, var_day):
            return MAX_HORIZON_DAYS
        return next((k for k in range(2, MAX_HORIZON_DAYS + 1) if done(k)), MAX_HORIZON_DAYS)
    b = 2.0 * rate * level + 16.0 * var_day
    c = level * level - 16.0 * ls2
    root = (b + math.sqrt(max(b * b - 4.0 * a * c, 0.0))) / (2.0 * a)
    # A root past the horizon (or none in floats: a near-zero rate) starts at the horizon.
    k = max(math.ceil(root), 2) if root < MAX_HORIZON_DAYS else MAX_HORIZON_DAYS
    while k > 2 and done(k - 1):
        k -= 1
    while k < MAX_HORIZON_DAYS and not done(k):
        k += 1
    return k


_RATE_MARGIN = 1.0 + 1e-12  # far above the few roundings of the test (each 2^-53)
_TINY = 1e-100  # squares of rates above this stay normal floats


def _never_done(level: float, ls2: float, rate: float, rs2: float, var_day: float) -> bool:
    """Whether ``done(k)`` of :func:`_steady_end` is false for every ``k``, in floats:
    the rate's spread is clearly over a quarter of the rate (``16 rs2 > rate^2``), so
    ``16 rs2 k^2`` alone outgrows the squared excess of use over a level at least 0.

    Float for float: ``fl(rate k) - level`` is at most ``rate k (1 + u)^2`` (``u =
    2^-53``) when positive, its square at most ``rate^2 k^2 (1 + u)^6``; the test's
    right side, a sum of terms at least 0 times 16 plus 1e-9, is at least ``16 rs2 k^2
    (1 - u)^2`` (rounding is monotone). The check below gives ``16 rs2 > rate^2 (1 +
    1e-12) (1 - u)^3``, more than the ``(1 + u)^6 / (1 - u)^2`` the test would need.
    Anything else (a rate near a quarter, NaN, a level below 0) is scanned."""
    return (rate > _TINY and level >= 0.0 and ls2 >= 0.0 and var_day >= 0.0
            and 16.0 * rs2 > rate * rate * _RATE_MARGIN)


def prob_empty_by(curve: DemandCurve, level: float, level_sd: float, days: float) -> float:
    """P(use over the next ``days`` reaches the current level)."""
    return curve.p_empty(level, level_sd * level_sd, days)


def run_out_quantiles(
    curve: DemandCurve, level: float, level_sd: float
) -> tuple[float | None, float | None, float | None]:
    """Days until run-out at the 10th, 50th and 90th percentile (None: beyond horizon)."""
    if level <= 0:
        return 0.0, 0.0, 0.0
    out: dict[float, float | None] = {0.1: None, 0.5: None, 0.9: None}
    pending = sorted(Z.items(), key=lambda kv: kv[1])
    ls2 = level_sd * level_sd
    prev_g = -level / level_sd if level_sd > 0 else -math.inf
    mean, var, sqrt = curve.mean, curve.var, math.sqrt
    z_next = pending[0][1]
    for k in range(1, len(mean)):
        sd = sqrt(var[k] + ls2)
        g = (mean[k] - level) / sd if sd > 0 else (math.inf if mean[k] >= level
                                                   else -math.inf)
        if g < z_next:  # the common day: no quantile crossed yet
            prev_g = g
            continue
        while pending and g >= pending[0][1]:
            q, z = pending.pop(0)
            if math.isinf(prev_g) or g == prev_g:
                out[q] = float(k)
            else:
                # Interpolate where g crosses z inside day k.
                out[q] = k - 1 + max(0.0, min(1.0, (z - prev_g) / (g - prev_g)))
        if not pending:
            break
        z_next = pending[0][1]
        prev_g = g
    return out[0.1], out[0.5], out[0.9]


def risk_by(curve: DemandCurve, level: float, ls2: float,
            nodes: Sequence[tuple[float, float]]) -> Callable[[float], float]:
    """``horizon`` -> the ``(days, weight)`` nodes' weighted P(use over ``horizon`` +
    days reaches ``level``, its variance ``ls2``): the planner asks ~20 horizons per
    plan, some twice (the review interval is its search's first bracket), each a sum of
    :meth:`DemandCurve.p_empty` over the lead time's nodes, inlined here (the same
    arithmetic in the same order) with what does not move with the horizon taken once."""
    mean, var = curve.mean, curve.var
    last = len(mean) - 1
    sqrt, erfc = math.sqrt, math.erfc
    share = None if curve.hours is None else curve.share
    seen: dict[float, float] = {}

    def risk(horizon: float) -> float:
        got = seen.get(horizon)
        if got is not None:
            return got
        total = 0.0
        for lt, w in nodes:
            days = horizon + lt
            if days <= 0 or last == 0:
                m = v = 0.0
            elif days >= last:
                more = days - last
                m = mean[last] + (mean[last] - mean[last - 1]) * more
                v = var[last] + (var[last] - var[last - 1]) * more
            else:
                k = int(days)
                f = days - k if share is None else share(days - k)
                m = mean[k] + (mean[k + 1] - mean[k]) * f
                v = var[k] + (var[k + 1] - var[k]) * f
            sd = sqrt(v + ls2)
            if sd <= 1e-12:
                total += w * (1.0 if m >= level else 0.0)
            else:
                total += w * (0.5 * erfc(-((m - level) / sd) / _SQRT2))
        seen[horizon] = total
        return total

    return risk
