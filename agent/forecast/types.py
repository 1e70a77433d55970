"""The forecast's value types: what goes in (observations, spec, deliveries, away) and
what comes out (:class:`Forecast`). Kept apart from the estimators so that every module
of the package can use them without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from agent.domain import CoarseState, Unit
from agent.forecast.project import DemandCurve, prob_empty_by


class EstimateKind(StrEnum):
    """Which signal an estimate rests on: code branches on this, never on the
    household-facing ``basis`` text."""

    FINE = "fine"  # numeric levels from a fine sensor (a load cell)
    STEPS = "steps"  # coarse levels: a rounded gauge's steps or whole items counted
    COUNTER = "counter"  # a usage counter times the yield per pack
    STATE = "state"  # OK/LOW states only
    LAST_READING = "last_reading"  # one level reading, no rate
    NONE = "none"  # nothing to estimate from


class Confidence(StrEnum):
    """How much the household should trust a forecast."""

    INSUFFICIENT_DATA = "insufficient_data"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(slots=True, frozen=True)
class Observation:
    """One stored reading of one consumable."""

    ts: datetime
    level: float | None = None
    state: CoarseState | None = None
    counter: int | None = None


@dataclass(slots=True, frozen=True)
class ConsumableSpec:
    """What the agent knows about a consumable besides its readings.

    ``pack_size`` is in level units (a 2 l jug on a millilitre scale is 2000; a toner
    cartridge on a percent gauge is 100). ``yield_per_pack`` is in counter units (pages
    per cartridge). ``low_threshold_level`` is the level a LOW state stands for
    (CUPS treats "low" as about 5 %).
    """

    unit: Unit
    capacity: float
    pack_size: float
    perishable: bool = False
    shelf_life_days: float | None = None
    yield_per_pack: float | None = None
    low_threshold_level: float | None = None
    # Relative spread of the next pack's yield as known (None: a datasheet figure no
    # cycle has checked yet, see ``learn.yield_cv``); each learned cycle narrows it.
    yield_cv: float | None = None
    # Busy weeks of a counted device's last year, as per-day variance over the squared
    # typical rate (learned weekly, ``learn.burst_ratio``; None: not learned).
    burst_ratio: float | None = None

    @property
    def low_level(self) -> float:
        """The level a LOW state stands for."""
        if self.low_threshold_level is not None:
            return self.low_threshold_level
        return 0.05 * self.capacity


@dataclass(slots=True, frozen=True)
class Delivery:
    """A delivery of ``packs`` at ``ts``: past (arrived) or expected (on order).

    ``pending``: not delivered yet, whatever ``ts`` says. An order past its expected
    date is overdue, still on order; it is not stock on the shelf."""

    ts: datetime
    packs: float = 1.0
    pending: bool = False


@dataclass(slots=True, frozen=True)
class Away:
    """A period nobody is home: nothing is used, nothing should be delivered."""

    start: datetime
    end: datetime


@dataclass(slots=True, frozen=True, kw_only=True)
class Forecast:
    """Where a consumable stands at ``now`` and when it will run out."""

    now: datetime
    level: float | None
    level_sd: float
    rate_per_day: float | None  # level units per day at home
    rate_sd: float
    time_to_empty_days: tuple[float | None, float | None, float | None]  # p10, p50, p90
    confidence: Confidence
    score: float  # 0..1, the same judgement as a number
    basis: str
    low_signal: bool  # the device itself says LOW or EMPTY
    incoming: tuple[Delivery, ...] = ()  # packs on order, not yet arrived
    spare_packs: float = 0.0  # our deliveries that arrived but are not in the device yet
    curve: DemandCurve | None = field(default=None, repr=False)
    usable_level: float | None = None  # perishables: what gets used before it spoils
    # The two newest level readings are both at or below the LOW threshold: what the
    # device says, whatever an estimate (a counter, a rate) makes of it.
    reads_low: bool = False
    kind: EstimateKind = EstimateKind.NONE  # the signal behind level and rate

    @property
    def usable(self) -> bool:
        """Whether level, rate and run-out quantiles are all known."""
        return self.confidence is not Confidence.INSUFFICIENT_DATA

    def empty_at(self, which: int = 1) -> datetime | None:
        """Run-out moment at p10 (0), p50 (1) or p90 (2); None when unknown or far away."""
        days = self.time_to_empty_days[which]
        return None if days is None else self.now + timedelta(days=days)

    def prob_empty_within(self, days: float, extra_level: float = 0.0) -> float | None:
        """P(running out within ``days``), optionally with ``extra_level`` more on hand."""
        if self.curve is None or self.level is None:
            return None
        level = self.level if self.usable_level is None else self.usable_level
        return prob_empty_by(self.curve, level + extra_level, self.level_sd, days)


