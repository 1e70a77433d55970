"""Reorder policies compared by the forecast benchmark.

Each policy sees an :class:`ItemView` once per daily review and answers a
:class:`Decision`: packs to order now (0 for none) and, where it has one, its median
time-to-empty estimate for the device's current stock (for the accuracy metric).
Only the oracle reads the simulator's ground truth.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent.domain import CoarseState, Unit
from agent.forecast import (
    Away,
    Confidence,
    ConsumableSpec,
    Delivery,
    FitMemo,
    Forecast,
    Observation,
    forecast,
    to_days,
)
from agent.forecast.learn import Learned, learn
from agent.forecast.project import DemandCurve, build_curve, run_out_quantiles
from agent.forecast.refills import spare_packs
from agent.forecast.series import merge_intervals
from agent.forecast.service import ServiceMemo, realised_service, service_target
from agent.policy import LeadTime, plan_reorder

REVIEW = timedelta(days=1)
LEARN_EVERY = timedelta(days=7)
SERVICE_LEVEL = 0.98  # the agent's target: P(no run-out before a delivery) per order
ORACLE_SERVICE_LEVEL = 0.95  # the oracle's only uncertainty is lead time and daily noise


@dataclass
class ItemView:
    """What a policy may know about one consumable at a review."""

    now: datetime
    spec: ConsumableSpec
    packs_per_order: int
    lead: LeadTime
    obs: list[Observation]
    deliveries: list[Delivery]  # arrived (past ts) and pending (expected ts, future)
    away: list[Away]
    true_level: float = 0.0  # oracle only: in the device plus spare
    true_rate: float = 0.0  # oracle only: use per day at home
    batches: list[tuple[float, float | None]] = field(default_factory=list)  # oracle only
    lead_history: list[float] = field(default_factory=list)  # lead times of our deliveries
    sent: list[datetime] = field(default_factory=list)  # when each of ``deliveries`` was ordered
    # Oracle only, where the world knows its schedule: (mean, variance) of use on each
    # day ahead (workdays, closures, busy weeks), in place of a flat ``true_rate``.
    true_use: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Decision:
    packs: int
    tte: tuple[float | None, float | None, float | None] = (None, None, None)
    extra: dict[str, Any] = field(default_factory=dict)


def _pending(view: ItemView) -> bool:
    """Something ordered has not arrived, or arrived and is not in the device yet."""
    if any(d.ts > view.now or d.pending for d in view.deliveries):
        return True
    return spare_packs(view.obs, view.spec, view.deliveries, view.now) > 0


def _last_level(view: ItemView) -> tuple[datetime, float] | None:
    for o in reversed(view.obs):
        if o.level is not None:
            return o.ts, o.level
    return None


def _last_low(view: ItemView) -> bool:
    for o in reversed(view.obs):
        if o.state is not None and o.state is not CoarseState.UNKNOWN:
            return o.state in (CoarseState.LOW, CoarseState.EMPTY)
    return False


def _current_level(view: ItemView) -> float | Decision:
    """The level a threshold rule compares, or its decision without one: nothing while
    an order is pending, and order on LOW for a device that reports states only."""
    if _pending(view):
        return Decision(0)
    last = _last_level(view)
    if last is None or (view.obs and view.obs[-1].level is None):
        return Decision(view.packs_per_order if _last_low(view) else 0)
    return last[1]


class AgentPolicy:
    """The project's own forecast and reorder timing."""

    name = "agent"

    def __init__(self) -> None:
        # What the agent learned from each item's readings, re-learned weekly like the
        # planner's stored ``learned`` rows (id of the item's reading list -> (when, it)).
        self._learned: dict[int, tuple[datetime, Learned, float]] = {}
        self._leads: dict[tuple[int, int], LeadTime] = {}
        # Each item's cycle verdicts, kept like the fit memo the planner keeps per
        # consumable: a weekly judgement redoes only the cycles whose readings changed.
        self._service: dict[int, ServiceMemo] = {}
        # Each item's forecast memo, as the planner keeps one per consumable (its fit,
        # sorted readings, curve and anchor scan: reused only while their inputs are
        # equal, so the forecast is the same as without).
        self._fits: dict[int, FitMemo] = {}

    def forget_fits(self) -> None:
        """Drop the forecast memos (the next decision fits from scratch)."""
        self._fits.clear()

    def _learn(self, view: ItemView) -> tuple[Learned, float]:
        """Learned values and the service level to plan at (realised service against
        the target, from the readings between each of our orders and its delivery)."""
        got = self._learned.get(id(view.obs))
        if got is None or view.now - got[0] >= LEARN_EVERY:
            service = SERVICE_LEVEL
            if len(view.sent) == len(view.deliveries):
                memo = self._service.setdefault(id(view.obs), ServiceMemo())
                good, total = realised_service(view.obs, view.spec, view.deliveries[-60:],
                                               view.sent[-60:], view.away, memo=memo)
                service = service_target(SERVICE_LEVEL, good, total)
            got = (view.now, learn(view.obs, view.spec), service)
            self._learned[id(view.obs)] = got
        return got[1], got[2]

    def decide(self, view: ItemView) -> Decision:
        learned, service = self._learn(view)
        spec = learned.apply(view.spec)
        fc = forecast(view.obs, spec, view.now, deliveries=view.deliveries,
                      away=view.away, memo=self._fits.setdefault(id(view.obs), FitMemo()))
        key = (id(view.lead_history), len(view.lead_history))
        lead = self._leads.get(key)
        if lead is None:  # a new delivery came in since the last review
            lead = self._leads[key] = LeadTime.learned(view.lead, view.lead_history)
        plan = plan_reorder(fc, spec, view.now, lead, review_interval=REVIEW,
                            service_level=service, away=view.away,
                            max_packs=view.packs_per_order)
        return Decision(plan.packs if plan.order_now else 0, fc.time_to_empty_days,
                        {"confidence": fc.confidence.value, "level": fc.level,
                         "learned": learned.as_dict(), "service": service})


class ThresholdPolicy:
    """Order when the reported level is at or below 20 % (or the device says LOW)."""

    name = "order_at_20pct"

    def decide(self, view: ItemView) -> Decision:
        level = _current_level(view)
        if isinstance(level, Decision):
            return level
        return Decision(view.packs_per_order if level <= 0.2 * view.spec.capacity else 0)


class NaiveLinearPolicy:
    """Least-squares line through the last 7 days of raw readings; order when run-out
    falls within lead time plus review (no refill handling, no safety stock)."""

    name = "naive_linear_7d"

    def decide(self, view: ItemView) -> Decision:
        pts = [(to_days(o.ts), o.level) for o in view.obs[-24 * 7 * 4:]
               if o.level is not None and o.ts >= view.now - timedelta(days=7)]
        if len(pts) < 2:
            if not _pending(view) and _last_low(view):
                return Decision(view.packs_per_order)
            return Decision(0)
        n = len(pts)
        mx = sum(p[0] for p in pts) / n
        my = sum(p[1] for p in pts) / n
        sxx = sum((p[0] - mx) ** 2 for p in pts)
        slope = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx > 0 else 0.0
        if slope >= 0:
            return Decision(0)
        level_now = my + slope * (to_days(view.now) - mx)
        tte = max(0.0, level_now / -slope)
        if _pending(view):
            return Decision(0, (None, tte, None))
        horizon = view.lead.mean_days + REVIEW / timedelta(days=1)
        return Decision(view.packs_per_order if tte <= horizon else 0, (None, tte, None))


class OraclePolicy:
    """The agent's decision rule fed the true level and the true rate at home."""

    name = "oracle"

    def decide(self, view: ItemView) -> Decision:
        rate = view.true_rate
        if rate <= 0:
            return Decision(0)
        in_device, outside = _usable(view, rate)
        level = in_device + outside
        daily_sd = 0.4 * rate + (math.sqrt(rate) if view.spec.unit is Unit.COUNT else 0.0)
        now_d = to_days(view.now)
        aw = merge_intervals([(to_days(a.start), to_days(a.end)) for a in view.away])
        curve = (_scheduled_curve(view.true_use) if view.true_use else
                 build_curve(now=now_d, level=level, level_sd=0.0, rate=rate, rate_sd=0.0,
                             daily_sd=daily_sd, weekday=None, away=aw))
        # Time to empty of what is in the device (the accuracy metric's definition).
        tte = run_out_quantiles(curve, in_device, 0.0)
        incoming = tuple(d for d in view.deliveries if d.ts > view.now)
        fc = Forecast(now=view.now, level=level, level_sd=0.0, rate_per_day=rate, rate_sd=0.0,
                      time_to_empty_days=tte, confidence=Confidence.HIGH, score=1.0,
                      basis="truth", low_signal=False, incoming=incoming, curve=curve)
        plan = plan_reorder(fc, view.spec, view.now, view.lead, review_interval=REVIEW,
                            service_level=ORACLE_SERVICE_LEVEL, away=view.away,
                            max_packs=view.packs_per_order)
        return Decision(plan.packs if plan.order_now else 0, tte)


def _scheduled_curve(days: list[tuple[float, float]]) -> DemandCurve:
    """Cumulative mean and variance of the known day-by-day use ahead."""
    mean = [0.0]
    var = [0.0]
    for m, v in days:
        mean.append(mean[-1] + m)
        var.append(var[-1] + v)
    return DemandCurve(tuple(mean), tuple(var))


def _usable(view: ItemView, rate: float) -> tuple[float, float]:
    """True stock in the device that will be used before it spoils (FIFO batches at the
    true rate), and whatever is outside the device."""
    in_device = sum(a for a, _ in view.batches)
    tau = to_days(view.now)
    usable = 0.0
    for amount, expires in view.batches:
        if expires is None:
            usable += amount
            tau += amount / rate
            continue
        if tau >= expires:
            continue
        can = min(amount, (expires - tau) * rate)
        usable += can
        tau += can / rate
    return usable, max(0.0, view.true_level - in_device)


class AutoETSPolicy:
    """statsforecast AutoETS on daily use (from end-of-day readings); order when the
    upper 90 % forecast of use over lead time plus review reaches the level."""

    name = "autoets"

    def __init__(self) -> None:
        import numpy as np
        from statsforecast.models import AutoETS

        self._np = np
        self._model = AutoETS
        self._cache: dict[int, tuple[float, list[float]]] = {}

    def decide(self, view: ItemView) -> Decision:
        level = _current_level(view)
        if isinstance(level, Decision):
            return level
        if level > 0.6 * view.spec.capacity:
            return Decision(0)
        ends: dict[int, float] = {}
        cutoff = view.now - timedelta(days=56)
        for o in view.obs[-24 * 56 * 4:]:
            if o.level is not None and o.ts >= cutoff:
                ends[int(to_days(o.ts))] = o.level
        days = sorted(ends)
        use = [max(0.0, ends[a] - ends[b]) for a, b in zip(days, days[1:], strict=False)
               if b == a + 1]
        if len(use) < 14:
            return Decision(0)
        horizon = math.ceil(view.lead.mean_days + REVIEW / timedelta(days=1))
        with warnings.catch_warnings():
            # Flat stretches of use make its variance estimate divide by zero: harmless.
            warnings.simplefilter("ignore", RuntimeWarning)
            res = self._model(season_length=7).forecast(
                y=self._np.asarray(use, dtype=float), h=horizon, level=[90])
        hi = float(sum(max(0.0, v) for v in res["hi-90"]))
        mean = float(sum(max(0.0, v) for v in res["mean"]))
        tte = min(level / (mean / horizon), 400.0) if mean > 1e-9 * horizon else None
        return Decision(view.packs_per_order if hi >= level else 0, (None, tte, None))


def policies(with_ets: bool) -> list[Any]:
    out: list[Any] = [AgentPolicy(), ThresholdPolicy(), NaiveLinearPolicy(), OraclePolicy()]
    if with_ets:
        out.append(AutoETSPolicy())
    return out


def ets_available() -> bool:
    try:
        import statsforecast.models  # noqa: F401
    except ImportError:
        return False
    return True
