"""How a household's days go, from whole days of use: the mean and spread of each
weekday, and how far one day's use carries into the next. Pure helpers for the fine
estimator (:mod:`agent.forecast.methods`); times are float days.
"""

from __future__ import annotations

import math

from agent.forecast.series import UseSeries

SPREAD_PSEUDO = 4.0  # degrees of freedom a weekday's spread is shrunk with
SPREAD_MIN = 1.5  # a weekday's variance factor that counts (below: every day alike)
PERSIST_MAX = 0.7  # the most persistence a household's days are credited with


def weekday_factors(s: UseSeries, rate: float, since_real: float,
                    ) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """Per-weekday use factors (mean 1) and per-weekday spread factors, from whole-day
    intervals; either None if flat or thin (see :func:`weekday_spread`)."""
    if rate <= 0:
        return None, None
    day_use: dict[int, float] = {}
    day_span: dict[int, float] = {}
    for u, sp, end in zip(s.uses, s.spans, s.ends, strict=True):
        if end < since_real:
            continue
        d = math.floor(end - 1e-9)
        day_use[d] = day_use.get(d, 0.0) + u
        day_span[d] = day_span.get(d, 0.0) + sp
    by_day: list[list[float]] = [[] for _ in range(7)]
    for d, u in day_use.items():
        if 0.9 <= day_span[d] <= 1.1:
            by_day[(d + 3) % 7].append(u)
    counts = [len(u) for u in by_day]
    if sum(counts) < 21 or min(counts) < 2:
        return None, None
    # Shrink each weekday towards 1 by two pseudo-weeks: five Saturdays are not a law.
    raw = [(sum(by_day[w]) / rate + 2.0) / (counts[w] + 2.0) for w in range(7)]
    mean = sum(raw) / 7.0
    factors = tuple(f / mean for f in raw)
    spread = weekday_spread(by_day, rate)
    if max(abs(f - 1.0) for f in factors) < 0.2:
        return None, spread
    return factors, spread


def weekday_spread(by_day: list[list[float]], rate: float) -> tuple[float, ...] | None:
    """Per-weekday factors (at least 1) on the day-to-day variance: each weekday's own
    spread of use around its own mean, against what the days' common relative spread
    gives at that weekday's mean (use spreads in proportion to it), shrunk by
    :data:`SPREAD_PSEUDO` degrees of freedom; None unless some weekday reaches
    :data:`SPREAD_MIN`. Guests one weekend in three double a Saturday now and then: its
    mean barely moves, its spread does, and a plan at one daily spread runs out on those
    weekends (bench-decisions, families of three and five)."""
    means = [sum(u) / len(u) for u in by_day]
    ss = [sum((x - m) ** 2 for x in u) for u, m in zip(by_day, means, strict=True)]
    dof = [len(u) - 1 for u in by_day]
    scale = [max(m, 0.05 * rate) ** 2 for m in means]  # a weekday's mean use, squared
    rel = sum(q / sc for q, sc in zip(ss, scale, strict=True)) / sum(dof)
    if rel <= 0:
        return None
    var = [(q + SPREAD_PSEUDO * rel * sc) / (n + SPREAD_PSEUDO)
           for q, n, sc in zip(ss, dof, scale, strict=True)]
    # Relative to an average day's: the daily sd is set for one.
    avg = sum(var) / 7.0
    factors = tuple(max(1.0, v / avg) for v in var)
    return factors if max(factors) >= SPREAD_MIN else None


def persistence(xs: list[float], ys: list[float], rate: float, since: float,
                 ) -> tuple[float, float]:
    """Lag-one correlation of whole days' use about ``rate`` (daily points from
    ``since``) and the newest whole day's excess: guests stay the weekend, a cold keeps
    a family home for days, so a day of heavy use says the next is likely heavy too, and
    two days' use spreads more than twice one day's. Zero unless the correlation is
    clear of chance (two standard errors) and positive (a lifted jug makes it
    negative); at most :data:`PERSIST_MAX`."""
    res: list[tuple[float, float]] = []  # (end, excess) of each whole day
    for k in range(len(xs) - 1):
        if xs[k] < since:
            continue
        span = xs[k + 1] - xs[k]
        if 0.7 <= span <= 1.3:
            res.append((xs[k + 1], ys[k + 1] - ys[k] - rate * span))
    if len(res) < 7:
        return 0.0, 0.0
    num = 0.0
    pairs = 0
    for (t0, e0), (t1, e1) in zip(res, res[1:], strict=False):
        if t1 - t0 <= 1.3:
            num += e0 * e1
            pairs += 1
    den = sum(e * e for _, e in res)
    if den <= 0 or pairs < 7:
        return 0.0, 0.0
    rho = num / den
    if rho < 2.0 / math.sqrt(pairs):
        return 0.0, 0.0
    return min(rho, PERSIST_MAX), res[-1][1]
