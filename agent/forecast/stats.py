"""Small robust statistics for the forecast core, in pure Python (no numpy on the gateway).

Everything works on plain float sequences; times are in days.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Mean of a chi-square with one degree of freedom below its 90th percentile: rescales a
# trimmed mean of squared residuals back to a variance.
_TRIMMED_CHI2_MEAN = 0.6232
_SQRT2 = math.sqrt(2.0)


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


def theil_sen(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Theil-Sen line fit: (slope, intercept) from the median of pairwise slopes.

    Pairs closer than an hour apart are skipped: their slope is mostly sensor noise.
    Callers cap the number of points (daily aggregates), so the O(n^2) pairs stay cheap.
    """
    slopes = _pair_slopes(xs, ys)
    if not slopes:
        return 0.0, median(ys) if ys else 0.0
    slope = median(slopes)
    intercept = median([y - slope * x for x, y in zip(xs, ys, strict=True)])
    return slope, intercept


def theil_sen_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The slope of :func:`theil_sen` alone, for callers without a use for the
    intercept (its median is a sort of its own)."""
    slopes = _pair_slopes(xs, ys)
    return median(slopes) if slopes else 0.0


def _pair_slopes(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    """The slopes of every pair of points at least an hour apart."""
    n = len(xs)
    slopes: list[float] = []
    append = slopes.append
    for i in range(n - 1):
        xi = xs[i]
        yi = ys[i]
        for j in range(i + 1, n):
            dx = xs[j] - xi
            if dx > 0.04:
                append((ys[j] - yi) / dx)
    return slopes


def robust_daily_variance(
    uses: Sequence[float], spans: Sequence[float], rate: float, trim: bool = True
) -> float | None:
    """Variance of one day's use, from interval uses against the fitted rate.

    Each interval of ``span`` days that used ``use`` contributes ``(use - rate*span)^2 /
    span`` (a per-day variance if days are independent). The largest tenth is dropped so
    one refill that slipped through, or one lifted jug, cannot dominate; the rest is
    rescaled to what a normal variable would give. A median would be more robust but
    badly underestimates lumpy use (eggs, pages), which is what safety stock is for.
    Without ``trim`` (counters cannot glitch), rare bursts stay in: they are the risk.
    """
    terms = sorted(
        (u - rate * s) ** 2 / s for u, s in zip(uses, spans, strict=True) if s >= 0.25
    )
    if len(terms) < 3:
        return None
    if not trim:
        return sum(terms) / len(terms)
    keep = terms[: max(2, math.ceil(0.9 * len(terms)))]
    return sum(keep) / len(keep) / _TRIMMED_CHI2_MEAN


def norm_cdf(x: float) -> float:
    """Standard normal cumulative distribution."""
    return 0.5 * math.erfc(-x / _SQRT2)
