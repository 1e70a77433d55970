"""Depletion forecasting: readings of one consumable and ``now`` in, a :class:`Forecast` out.

Pure: no I/O, no clock. The caller passes every reading it holds (in any order: late
readings are fine), the consumable's :class:`ConsumableSpec`, the agent's own deliveries
and the household's away periods.

Method, in order of preference:

1. page counter x declared yield (printers that count pages), anchored at the last
   detected replacement or LOW;
2. numeric levels: spikes rejected, refills cut out, away time cut out, then Theil-Sen on
   cumulative use (fine sensors) or on the times each step was crossed (10 % devices,
   whole sensors); a recent-window check follows step changes in behaviour and
   weekday factors shape the projection;
3. OK/LOW states only: replacement-to-LOW cycle lengths, or just "LOW".

With too little data the forecast says ``insufficient_data`` instead of guessing.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter

from agent.domain import CoarseState, Unit
from agent.forecast.anchor import AnchorMemo, anchor
from agent.forecast.counter import counter_fit
from agent.forecast.dayshape import ShapeMemo, day_shape
from agent.forecast.learn import yield_cv
from agent.forecast.methods import (
    COARSE_HISTORY_DAYS,
    LONG_WINDOW_DAYS,
    Estimate,
    Fit,
    Fixed,
    level_fit,
)
from agent.forecast.project import (
    CurveMemo,
    build_curve,
    run_out_quantiles,
)
from agent.forecast.refills import (
    LOW_STATES,
    RefillMemo,
    fresh_batches,
    low_signal,
    refills,
    spare_packs,
    usable_level,
)
from agent.forecast.series import Interval, merge_intervals
from agent.forecast.stamps import EpochSeconds
from agent.forecast.states import state_fit
from agent.forecast.types import (
    Away,
    Confidence,
    ConsumableSpec,
    Delivery,
    EstimateKind,
    Forecast,
    Observation,
)

DAY = 86_400.0
MAX_READINGS_PER_DAY = 4  # more than this is thinned before fitting (budget: < 1 ms)
_TS = attrgetter("ts")
HISTORY_DAYS = 366.0  # nothing older matters: coarse steps look back a year at most



@dataclass(slots=True)
class FitMemo:
    """One consumable's last fit and the inputs it was fitted from (:func:`forecast`),
    its readings as last sorted, its last steady demand curve, what the last forecast's
    scans found with the readings they read (the counter's anchor, the refills after
    deliveries, the day's shape) and its readings' epoch seconds: each reused only where
    its inputs are equal, so the forecast is the same as without."""

    key: tuple[object, ...] | None = None
    fit: Fit | None = None
    fits: int = 0  # fits computed: what a cached pass saved is in the count
    obs: list[Observation] | None = None
    curve: CurveMemo = field(default_factory=CurveMemo)
    anchor: AnchorMemo = field(default_factory=AnchorMemo)
    stamps: EpochSeconds = field(default_factory=EpochSeconds)
    refills: RefillMemo = field(default_factory=RefillMemo)
    shape: ShapeMemo = field(default_factory=ShapeMemo)


def to_days(ts: datetime) -> float:
    """Epoch days of an aware datetime."""
    return ts.timestamp() / DAY


def _days(obs: list[Observation], stamps: EpochSeconds) -> list[float]:
    """Epoch days of each reading (:func:`to_days`, its seconds from ``stamps``; a new
    time is added in C, not through :meth:`EpochSeconds.__missing__`)."""
    get, keep = stamps.get, stamps.setdefault
    return [(s if (s := get(o.ts)) is not None else keep(o.ts, o.ts.timestamp())) / DAY
            for o in obs]


def away_days(away: Sequence[Away]) -> list[Interval]:
    """Away periods as merged epoch-day intervals."""
    return merge_intervals([(to_days(a.start), to_days(a.end)) for a in away])


def _thin(obs: list[Observation], days: float) -> list[Observation]:
    """Keep at most MAX_READINGS_PER_DAY per day on average. The newest few readings are
    all kept: whether a drop is confirmed or a lifted jug depends on each of them."""
    limit = int(max(days, 1.0) * MAX_READINGS_PER_DAY)
    if len(obs) <= limit:
        return obs
    keep = 6
    head = obs[:-keep]
    step = len(head) / (limit - keep)
    last = len(head) - 1
    return [head[last - int(i * step)] for i in range(limit - keep - 1, -1, -1)] + obs[-keep:]


def forecast(
    observations: Sequence[Observation],
    spec: ConsumableSpec,
    now: datetime,
    *,
    deliveries: Sequence[Delivery] = (),
    away: Sequence[Away] = (),
    memo: FitMemo | None = None,
) -> Forecast:
    """Forecast one consumable's level and run-out from its readings (see module doc).
    With ``memo`` (kept per consumable by the caller) the fit is reused while its inputs
    are equal: the result is the same as without."""
    if memo is not None and memo.obs == observations:
        # The same readings as last time (the same objects: a cache's), so sorted already.
        obs = memo.obs
    else:
        obs = sorted(observations, key=_TS)
        if memo is not None:
            memo.obs = obs
    obs = obs[bisect.bisect_left(obs, now - timedelta(days=HISTORY_DAYS), key=_TS):
              bisect.bisect_right(obs, now, key=_TS)]
    now_d = to_days(now)
    aw = away_days(away)
    stamps = EpochSeconds() if memo is None else memo.stamps.bound()
    past = sorted([stamps[d.ts] / DAY for d in deliveries if d.ts <= now and not d.pending])
    incoming = tuple(sorted((d for d in deliveries if d.ts > now or d.pending),
                            key=lambda d: d.ts))
    low = low_signal(obs)
    reads = _reads_low(obs, spec)
    # Perishables need every refill within their shelf life; the same scan tells which
    # of our recent deliveries have shown up.
    life = timedelta(days=spec.shelf_life_days) if spec.shelf_life_days else None
    fresh = refills(obs, spec, now - life) if spec.perishable and life else None
    if fresh == [] and life is not None and obs and obs[0].ts >= now - life:
        # Stock of unknown age, first seen within its shelf life: it is at least as old
        # as the first reading, so it spoils no later than a shelf life after that.
        first = next((o for o in obs if o.level is not None), None)
        if first is not None and first.level is not None:
            fresh = [(first.ts, first.level)]
    known = (now - life, fresh) if life is not None and fresh is not None else None
    spare = spare_packs(obs, spec, deliveries, now, known,
                        None if memo is None else memo.refills.start())
    start, ctr_from, lv_from = _windows(obs, now)
    key = (obs[start:], ctr_from - start, lv_from - start, spec, aw, past)
    if memo is not None and memo.key == key:
        fit = memo.fit
    else:
        fit = _fit(*key, stamps, anchors=None if memo is None else memo.anchor)
        if memo is not None:
            memo.key, memo.fit, memo.fits = key, fit, memo.fits + 1
    est = None if fit is None else fit.at(now_d, aw)
    if est is None:
        # Too little to estimate use, but the newest reading still says where the stock
        # stands: a decision without a level can only wait, and waiting on an empty jug
        # is how a household goes a year without milk.
        last = next((o for o in reversed(obs) if o.level is not None), None)
        return Forecast(now=now, level=None if last is None else last.level, level_sd=0.0,
                        rate_per_day=None, rate_sd=0.0, time_to_empty_days=(None, None, None),
                        confidence=Confidence.INSUFFICIENT_DATA, score=0.0,
                        basis="too few readings to estimate use"
                        + ("" if last is None else "; level from the last reading"),
                        low_signal=low, incoming=incoming, spare_packs=spare, reads_low=reads,
                        kind=EstimateKind.NONE if last is None else EstimateKind.LAST_READING)
    if est.rate is None or est.level is None:
        level = est.level
        return Forecast(now=now, level=level, level_sd=est.level_sd, rate_per_day=None,
                        rate_sd=0.0, time_to_empty_days=(None, None, None),
                        confidence=Confidence.INSUFFICIENT_DATA, score=0.1, basis=est.basis,
                        low_signal=low, incoming=incoming, spare_packs=spare, reads_low=reads,
                        kind=est.kind)
    level = min(est.level, spec.capacity * 1.1)
    curve = build_curve(now=now_d, level=level, level_sd=est.level_sd, rate=est.rate,
                        rate_sd=est.rate_sd, daily_sd=est.daily_sd, weekday=est.weekday,
                        away=aw, memo=None if memo is None else memo.curve,
                        weekday_var=est.weekday_var, persist=est.persist, carry=est.carry)
    if est.kind is EstimateKind.FINE:
        shape = day_shape(obs, spec, now, None if memo is None else memo.shape)
        if shape is not None:
            curve = dataclasses.replace(curve, hours=shape)
    usable = level
    batches = fresh_batches(fresh, life, now, level) if fresh and life else None
    if batches is not None:
        usable = usable_level(batches, curve)
    tte = run_out_quantiles(curve, usable, est.level_sd)
    conf, score = _confidence(est)
    basis = est.basis if usable >= level - 1e-9 else f"{est.basis}; {level - usable:.4g} spoils"
    return Forecast(now=now, level=level, level_sd=est.level_sd, rate_per_day=est.rate,
                    rate_sd=est.rate_sd, time_to_empty_days=tte, confidence=conf, score=score,
                    basis=basis, low_signal=low, incoming=incoming, spare_packs=spare,
                    curve=curve, usable_level=usable, reads_low=reads, kind=est.kind)


@dataclass(slots=True, frozen=True)
class _Blend:
    """A counter's rate with the level of another signal (a counter without an anchor)."""

    rate: Fit
    level: Fit

    has_level = True

    def at(self, now: float, away: list[Interval]) -> Estimate:
        r, lv = self.rate.at(now, away), self.level.at(now, away)
        return Estimate(lv.level, lv.level_sd, r.rate, r.rate_sd, r.daily_sd, None, r.points,
                        f"{r.basis}; level from {lv.basis}", EstimateKind.COUNTER)


def _windows(obs: list[Observation], now: datetime) -> tuple[int, int, int]:
    """Where the estimators' windows start in ``obs``: a year (coarse steps, anchors, states),
    the counter's ten weeks and the levels' five weeks."""
    return (bisect.bisect_left(obs, now - timedelta(days=COARSE_HISTORY_DAYS), key=_TS),
            bisect.bisect_left(obs, now - timedelta(days=2 * LONG_WINDOW_DAYS), key=_TS),
            bisect.bisect_left(obs, now - timedelta(days=LONG_WINDOW_DAYS + 1), key=_TS))


def _fit(
    year: list[Observation],
    ctr_from: int,
    lv_from: int,
    spec: ConsumableSpec,
    aw: list[Interval],
    past: list[float],
    stamps: EpochSeconds,
    *,
    anchors: AnchorMemo | None = None,
) -> Fit | None:
    """Pick the best signal the readings carry and fit its estimator: ``year`` is the
    readings of the last year, its counter window from ``ctr_from`` and its level window
    from ``lv_from``. Nothing here reads ``now``: the fit is the same while these are
    (``stamps`` and ``anchors`` only save work)."""
    lv = [o for o in year[lv_from:] if o.level is not None]
    if spec.yield_per_pack:
        ctr = _thin([o for o in year[ctr_from:] if o.counter is not None],
                    2 * LONG_WINDOW_DAYS)
        if len(ctr) >= 2:
            est = counter_fit(
                _days(ctr, stamps), [float(o.counter or 0) for o in ctr],
                spec.pack_size / spec.yield_per_pack, aw, anchor(year, spec, anchors),
                spec.yield_cv if spec.yield_cv is not None else yield_cv(0),
                spec.burst_ratio or 0.0)
            if est is not None and est.has_level:
                return est
            if est is not None:
                fallback = _level_or_state(year, spec, aw, past, stamps)
                if fallback is not None and fallback.has_level:
                    return _Blend(est, fallback)
    if len(lv) >= 2:
        lv = _thin(lv, LONG_WINDOW_DAYS + 1)
        fit = level_fit(_days(lv, stamps), [float(o.level or 0.0) for o in lv],
                        spec.capacity, aw, past, _counted(spec), _life(spec),
                        spec.pack_size)
        if (isinstance(fit, Fixed) and fit.est.rate is None
                and fit.est.kind is EstimateKind.STEPS):
            # Coarse and nothing crossed lately: look back further for crossings.
            lv = [o for o in year if o.level is not None]
            fit = level_fit(_days(lv, stamps), [float(o.level or 0.0) for o in lv],
                            spec.capacity, aw, past, _counted(spec), _life(spec),
                            spec.pack_size)
        if fit is not None:
            return fit
    return _level_or_state(year, spec, aw, past, stamps, levels=False)


def _level_or_state(
    year: list[Observation],
    spec: ConsumableSpec,
    aw: list[Interval],
    past: list[float],
    stamps: EpochSeconds,
    *,
    levels: bool = True,
) -> Fit | None:
    """Level evidence without a counter: numeric levels if any, else OK/LOW states."""
    if levels:
        lv = [o for o in year if o.level is not None]
        if len(lv) >= 2:
            fit = level_fit(_days(lv, stamps), [float(o.level or 0.0) for o in lv],
                            spec.capacity, aw, past, _counted(spec), _life(spec),
                            spec.pack_size)
            if fit is not None:
                return fit
        if lv:
            last = float(lv[-1].level or 0.0)
            return Fixed(Estimate(last, 0.05 * spec.capacity, None, 0.0, 0.0, None, 1,
                                  "last reading", EstimateKind.LAST_READING))
    st = [o for o in year if o.state is not None and o.state is not CoarseState.UNKNOWN]
    if not st:
        return None
    return state_fit(_days(st, stamps), [o.state in LOW_STATES for o in st],
                     spec.capacity, spec.low_level, aw)


def _reads_low(obs: list[Observation], spec: ConsumableSpec) -> bool:
    """Whether the two newest level readings are both at or below the LOW threshold (one
    alone may be a lifted jug)."""
    seen = 0
    for o in reversed(obs):
        if o.level is None:
            continue
        if o.level > spec.low_level + 1e-9:
            return False
        seen += 1
        if seen == 2:
            return True
    return False


def _life(spec: ConsumableSpec) -> float | None:
    return spec.shelf_life_days if spec.perishable else None


def _counted(spec: ConsumableSpec) -> bool:
    return spec.unit is Unit.COUNT


def _confidence(est: Estimate) -> tuple[Confidence, float]:
    """Turn point count and relative rate spread into a label and a score."""
    if est.rate is None or est.rate <= 0:
        return Confidence.LOW, 0.3
    rel = est.rate_sd / est.rate
    score = max(0.0, min(1.0, (1.0 - min(rel, 1.0)) * min(1.0, est.points / 14.0)))
    if est.points >= 10 and rel < 0.15:
        return Confidence.HIGH, score
    if est.points >= 4 and rel < 0.4:
        return Confidence.MEDIUM, score
    return Confidence.LOW, score


__all__ = [
    "Away",
    "ConsumableSpec",
    "Confidence",
    "Delivery",
    "Forecast",
    "Observation",
    "away_days",
    "forecast",
    "spare_packs",
    "to_days",
]
