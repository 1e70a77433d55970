"""Reorder timing: given a :class:`~agent.forecast.Forecast`, when to order and how much.

Pure: no I/O, no clock. The consent/mandate layer (``agent.consent``) decides whether an
order may go out; this module only says when it should.

Rule: order now when waiting until the next review would make P(running out before the
delivery arrives) exceed ``1 - service_level``. The protection horizon is therefore lead
time plus review interval, with the lead time's own spread integrated in (a
continuous-review formula with daily review under-protects). Perishables are never
ordered so early they spoil, and no delivery is planned to arrive while the household is
away: the order is moved so it arrives on their return.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.forecast import Away, ConsumableSpec, Delivery, Forecast, to_days
from agent.forecast.project import risk_by

# Gauss-Hermite nodes and weights (5 points) for integrating over a normal lead time.
_GH = (
    (-2.0201829, 0.0112574),
    (-0.9585725, 0.2220759),
    (0.0, 0.5333333),
    (0.9585725, 0.2220759),
    (2.0201829, 0.0112574),
)
_SEARCH_DAYS = 400.0
_FALLBACK_FRACTION = 0.25  # order at 25 % when there is no usable rate yet
# A delivery this many lead-time standard deviations late still finds usable stock when
# a perishable's reorder is held back for spoilage (bench-forecast: 1 sd let stockouts
# through with a 4 +- 2.5 day lead, 2 sd kept most of the over-ordering).
_LATE_LEAD_SDS = 1.5
_LOST_QUANTILE = 0.99  # an overdue order later than this is presumed lost (see _lost)
_LATE_QUANTILE = 0.933  # the same, for an empirical lead time (1.5 sd of a normal)


# Empirical lead times are summarised by these probability bins (finer in the tail a
# 98 % target lives in), one representative quantile per bin: 8 evaluations per risk.
_BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 0.99, 1.0)
PRIOR_WEIGHT = 4.0  # the vendor's declared lead time counts as this many deliveries


@dataclass(slots=True, frozen=True)
class LeadTime:
    """Lead time in days: the vendor's mean and standard deviation (the prior) and,
    once orders have been delivered, the observed lead times. With observations the
    distribution is empirical (prior nodes weighted as :data:`PRIOR_WEIGHT` deliveries
    plus each observed lead time), so a heavy tail (usually fast, a week late one time
    in seven) is kept instead of being smoothed into a normal."""

    mean_days: float
    sd_days: float = 0.0
    observed: tuple[float, ...] = ()
    _nodes: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)
    # With observations: the mixture (:func:`_mixture`), worked out once.
    _pts: list[tuple[float, float]] = field(init=False, repr=False, compare=False)
    # quantile() by its argument: the planner asks the same few (an overdue order's
    # grace, a late delivery) for every order on the way, every pass.
    _quantiles: dict[float, float] = field(init=False, repr=False, compare=False,
                                           default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pts", _mixture(self.mean_days, self.sd_days, self.observed)
                           if self.observed else [])
        object.__setattr__(self, "_nodes", self._build_points())

    @classmethod
    def learned(cls, prior: LeadTime, observed: Sequence[float]) -> LeadTime:
        """The prior moved by observed lead times: mean and sd of the mixture."""
        obs = tuple(sorted(max(0.0, x) for x in observed))
        if not obs:
            return prior
        pts = _mixture(prior.mean_days, prior.sd_days, obs)
        mean = sum(x * w for x, w in pts)
        var = sum(w * (x - mean) ** 2 for x, w in pts)
        return cls(mean, math.sqrt(var), obs)

    def points(self) -> tuple[tuple[float, float], ...]:
        """(days, weight) nodes summing to 1 to integrate a risk over the lead time."""
        return self._nodes

    def _build_points(self) -> tuple[tuple[float, float], ...]:
        if not self.observed:
            if self.sd_days <= 0:
                return ((self.mean_days, 1.0),)
            return tuple((max(0.0, self.mean_days + z * self.sd_days), w) for z, w in _GH)
        return tuple((_quantile(self._pts, 0.5 * (a + b)), b - a)
                     for a, b in zip(_BINS, _BINS[1:], strict=False))

    def quantile(self, q: float) -> float:
        """The lead time not exceeded with probability ``q``."""
        got = self._quantiles.get(q)
        if got is None:
            got = self._quantiles[q] = (
                max(0.0, self.mean_days + _z(q) * self.sd_days) if not self.observed
                else _quantile(self._pts, q))
        return got


def _z(q: float) -> float:
    lo, hi = -6.0, 6.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _mixture(mean: float, sd: float, observed: tuple[float, ...],
             ) -> list[tuple[float, float]]:
    """Weighted points: the prior's Gauss-Hermite nodes (weight PRIOR_WEIGHT in all)
    and the observed lead times (weight 1 each), sorted, weights summing to 1."""
    total = PRIOR_WEIGHT + len(observed)
    prior = ([(mean, PRIOR_WEIGHT / total)] if sd <= 0 else
             [(max(0.0, mean + z * sd), w * PRIOR_WEIGHT / total) for z, w in _GH])
    return sorted(prior + [(x, 1.0 / total) for x in observed])


def _quantile(pts: list[tuple[float, float]], q: float) -> float:
    acc = 0.0
    for x, w in pts:
        acc += w
        if acc >= q - 1e-12:
            return x
    return pts[-1][0]


@dataclass(slots=True, frozen=True)
class ReorderPlan:
    """What to do about one consumable at ``now``."""

    order_now: bool
    packs: int
    expected_arrival: datetime | None  # if ordered now (or at ``latest_order_at``)
    latest_order_at: datetime | None  # the last moment an order still meets the target
    reason: str
    prob_stockout: float | None  # if we wait until the next review


def _stockout_risk(fc: Forecast, extra: float, lead: LeadTime) -> Callable[[float], float]:
    """P(run-out before ``horizon`` + lead time) as a function of ``horizon``, averaged
    over the lead time's spread: :meth:`Forecast.prob_empty_within` at each lead-time
    node (see :func:`agent.forecast.project.risk_by`)."""
    if fc.curve is None or fc.level is None:
        return lambda horizon: 0.0
    level = (fc.level if fc.usable_level is None else fc.usable_level) + extra
    return risk_by(fc.curve, level, fc.level_sd * fc.level_sd, lead.points())


def _in_away(t: float, away: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    for a, b in away:
        if a - 0.25 <= t < b:
            return a, b
    return None


def _packs(fc: Forecast, spec: ConsumableSpec, pack: float, lead: LeadTime,
           extra: float, max_packs: int | None) -> int:
    """Packs to order: enough to last until the next delivery could matter, no more than
    fits, and for perishables no more than gets used before it spoils."""
    rate = fc.rate_per_day or 0.0
    level = (fc.level or 0.0) + extra
    at_arrival = max(0.0, level - rate * lead.mean_days)
    fits = max(1, math.floor((spec.capacity - at_arrival) / pack + 1e-9))
    n = fits
    if spec.perishable and spec.shelf_life_days is not None and rate > 0:
        n = min(n, max(1, math.floor(rate * spec.shelf_life_days / pack)))
    if max_packs is not None:
        n = min(n, max_packs)
    return max(1, n)


def plan_reorder(
    fc: Forecast,
    spec: ConsumableSpec,
    now: datetime,
    lead_time: LeadTime,
    *,
    review_interval: timedelta = timedelta(days=1),
    service_level: float = 0.98,
    pack_size: float | None = None,
    away: Sequence[Away] = (),
    max_packs: int | None = None,
) -> ReorderPlan:
    """Decide whether to order now, how many packs, and the latest safe order moment.

    Packs on order (``fc.incoming``) and delivered packs not yet in the device
    (``fc.spare_packs``, a cartridge on the shelf) both count as stock on hand.

    Never a silent stall: whatever the forecast says, stock that is low or empty with
    nothing on order or on the shelf is ordered now (or, when the household is away, on
    their return). ``service_level`` defaults to the agent's own (``forecast.service_level``).
    """
    plan = _plan(fc, spec, now, lead_time, review_interval, service_level, pack_size, away,
                 max_packs)
    if plan.order_now or not _stalled(fc, spec, now, lead_time):
        return plan
    pack = pack_size if pack_size is not None else spec.pack_size
    packs = (_packs(fc, spec, pack, lead_time, 0.0, max_packs) if fc.rate_per_day
             else _fill(fc, spec, pack, max_packs))
    order = ReorderPlan(True, max(1, packs), now + timedelta(days=lead_time.mean_days), now,
                        f"stock is low and nothing is on order ({fc.basis}); "
                        f"the forecast said: {plan.reason}", plan.prob_stockout)
    aw = sorted((to_days(a.start), to_days(a.end)) for a in away)
    return _avoid_away(order, aw, now, lead_time)


def is_low(fc: Forecast, spec: ConsumableSpec) -> bool:
    """Whether the last trusted level or state says low or empty: the device's own LOW or
    EMPTY, its two newest level readings, or the estimated level at or below the LOW
    threshold."""
    return (fc.low_signal or fc.reads_low
            or (fc.level is not None and fc.level <= spec.low_level + 1e-9))


def _stalled(fc: Forecast, spec: ConsumableSpec, now: datetime, lead: LeadTime) -> bool:
    """Low stock with nothing on order (or only orders presumed lost) and no spare
    waiting (see :func:`plan_reorder`)."""
    return (is_low(fc, spec) and fc.spare_packs <= 0
            and all(_lost(d, now, lead) for d in fc.incoming))


def _too_late(fc: Forecast, d: Delivery, now: datetime, lead: LeadTime, extra: float,
              risk: float) -> bool:
    """Whether the stock without the overdue order ``d`` (plus ``extra``) likely runs out
    before ``d`` comes: P(empty within the 90th percentile of its remaining wait, the
    lead time given that it has already taken this long) above ``risk``."""
    elapsed = lead.mean_days + (now - d.ts) / timedelta(days=1)
    tail = [(x, w) for x, w in lead.points() if x > elapsed]
    total = sum(w for _, w in tail)
    if total <= 0:
        # Later than any lead time we know of, not yet presumed lost: a day more.
        return (fc.prob_empty_within(1.0, extra) or 0.0) > risk
    acc = 0.0
    wait = tail[-1][0] - elapsed
    for x, w in tail:
        acc += w
        if acc >= 0.9 * total:
            wait = x - elapsed
            break
    return (fc.prob_empty_within(max(wait, 0.0), extra) or 0.0) > risk


def _lost(d: Delivery, now: datetime, lead: LeadTime) -> bool:
    """An overdue order later than the lead time's 99th percentile allows, and a day
    more: no longer counted as coming, so a low stock is ordered again rather than
    waiting on a parcel that may never come. Until then an overdue order is on order.
    (At the 90th percentile one order in ten was ordered twice: bench-forecast's
    printers arrived with a whole spare cartridge.)"""
    if not d.pending or d.ts >= now:
        return False
    grace = max(0.0, lead.quantile(_LOST_QUANTILE) - lead.mean_days) + 1.0
    return now - d.ts > timedelta(days=grace)


def _plan(
    fc: Forecast,
    spec: ConsumableSpec,
    now: datetime,
    lead_time: LeadTime,
    review_interval: timedelta,
    service_level: float,
    pack_size: float | None,
    away: Sequence[Away],
    max_packs: int | None,
) -> ReorderPlan:
    """The forecast's own decision (:func:`plan_reorder` adds the stall guard)."""
    pack = pack_size if pack_size is not None else spec.pack_size
    coming = [d for d in fc.incoming if not _lost(d, now, lead_time)]
    overdue = [d for d in coming if d.pending and d.ts < now]
    if overdue and fc.usable and fc.curve is not None:
        sure = sum(d.packs for d in coming if d not in overdue) + fc.spare_packs
        # An overdue order is counted only if the stock bridges its likely further wait.
        coming = [d for d in coming if d not in overdue
                  or not _too_late(fc, d, now, lead_time, sure * pack, 1.0 - service_level)]
    on_order = sum(d.packs for d in coming)
    extra = (on_order + fc.spare_packs) * pack
    review = review_interval / timedelta(days=1)
    aw = sorted((to_days(a.start), to_days(a.end)) for a in away)
    arrival = now + timedelta(days=lead_time.mean_days)

    if not fc.usable or fc.rate_per_day is None or fc.curve is None:
        return _avoid_away(_fallback(fc, spec, arrival, extra, pack, max_packs), aw, now,
                           lead_time)
    if fc.rate_per_day <= 0:
        return ReorderPlan(False, 0, None, None, f"no use measured ({fc.basis})", 0.0)

    risk = 1.0 - service_level
    p_empty = _stockout_risk(fc, extra, lead_time)
    p_wait = p_empty(review)
    # Latest order moment: the largest delay x with P(empty before x + lead) <= risk.
    if p_empty(0.0) > risk:
        latest = 0.0
    else:
        # Bracket by doubling, then bisect to about an hour (the latest order moment is
        # shown to the household, not acted on): about 15 evaluations.
        lo, hi = 0.0, 1.0
        while p_empty(hi) <= risk:
            lo, hi = hi, 2.0 * hi
            if hi > _SEARCH_DAYS:
                return ReorderPlan(False, 0, None, None, "no run-out within a year", p_wait)
        while hi - lo > 0.04:
            mid = 0.5 * (lo + hi)
            if p_empty(mid) > risk:
                hi = mid
            else:
                lo = mid
        latest = lo
    latest_at = now + timedelta(days=latest)
    if latest >= review and fc.low_signal and extra <= 0:
        # The device's own LOW warning is a floor no forecast overrides: bursts of use
        # (a long print job) are what the forecast sees least.
        plan = ReorderPlan(True, _packs(fc, spec, pack, lead_time, extra, max_packs), arrival,
                           latest_at, f"device reports LOW ({fc.basis})", p_wait)
        return _avoid_away(plan, aw, now, lead_time)
    late = (lead_time.mean_days + _LATE_LEAD_SDS * lead_time.sd_days
            if not lead_time.observed else lead_time.quantile(_LATE_QUANTILE))
    if latest < review and _spoils_anyway(fc, pack, extra, late + review):
        return ReorderPlan(False, 0, None, latest_at,
                           "part of the stock spoils before it is used, and the rest lasts "
                           f"until a late delivery ordered next review ({fc.basis})", p_wait)
    if latest >= review:
        return ReorderPlan(False, 0, latest_at + timedelta(days=lead_time.mean_days),
                           latest_at,
                           f"P(run out before delivery if ordered next review) = {p_wait:.2f}",
                           p_wait)
    packs = _packs(fc, spec, pack, lead_time, extra, max_packs)
    plan = ReorderPlan(True, packs, arrival, latest_at,
                       f"P(run out before delivery if ordered next review) = {p_wait:.2f} > "
                       f"{risk:.2f} ({fc.basis})", p_wait)
    return _avoid_away(plan, aw, now, lead_time)


def _spoils_anyway(fc: Forecast, pack: float, extra: float, horizon_days: float) -> bool:
    """Whether ordering now would only add to what spoils: at least a whole pack of the
    stock spoils before it is used, and the usable rest lasts ``horizon_days``.

    Without this, a wide lead-time spread at a high service level keeps more perishable
    stock than gets used, the forecast rightly counts the spoiling part as gone, and the
    planner orders again: a loop that fills the fridge (bench-forecast, variable lead)."""
    if fc.usable_level is None or fc.level is None or fc.rate_per_day is None:
        return False
    spoiling = fc.level - fc.usable_level
    return (spoiling >= pack
            and fc.usable_level + extra >= fc.rate_per_day * horizon_days)


def _avoid_away(plan: ReorderPlan, aw: list[tuple[float, float]], now: datetime,
                lead: LeadTime) -> ReorderPlan:
    """Move an order whose delivery would land in an away period to arrive on return.

    Nothing is used while away, so waiting costs no stock; a parcel on the doorstep or
    milk in the fridge of an empty house does.
    """
    if not plan.order_now or plan.expected_arrival is None:
        return plan
    hit = _in_away(to_days(plan.expected_arrival), aw)
    if hit is None:
        return plan
    order_at = now + timedelta(days=hit[1] - to_days(now) - lead.mean_days)
    return ReorderPlan(False, plan.packs, order_at + timedelta(days=lead.mean_days),
                       max(order_at, now),
                       "delivery would arrive while away: order to arrive on return",
                       plan.prob_stockout)


def _fill(fc: Forecast, spec: ConsumableSpec, pack: float, max_packs: int | None) -> int:
    """Packs that fit on top of the last level when there is no rate to size an order:
    a family of five that empties its first litre within a day is not helped by one
    more litre (bench-decisions, cold start: ordered one pack, out twice more)."""
    n = max(1, math.floor((spec.capacity - (fc.level or 0.0)) / pack + 1e-9))
    return n if max_packs is None else max(1, min(n, max_packs))


def _fallback(fc: Forecast, spec: ConsumableSpec, arrival: datetime,
              extra: float, pack: float, max_packs: int | None) -> ReorderPlan:
    """No usable rate: order at LOW, or below a quarter full, like a threshold rule."""
    if extra > 0:
        return ReorderPlan(False, 0, None, None, "insufficient data; stock on order", None)
    if fc.low_signal:
        return ReorderPlan(True, _fill(fc, spec, pack, max_packs), arrival, None,
                           f"device reports LOW; too little history to time it ({fc.basis})",
                           None)
    if fc.level is not None and fc.level <= max(spec.low_level,
                                                _FALLBACK_FRACTION * spec.capacity):
        return ReorderPlan(True, _fill(fc, spec, pack, max_packs), arrival, None,
                           f"level below {_FALLBACK_FRACTION:.0%} with too little history "
                           f"to forecast ({fc.basis})", None)
    return ReorderPlan(False, 0, None, None, f"insufficient data ({fc.basis})", None)
