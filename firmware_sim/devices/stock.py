"""Ground-truth stock of one consumable, household usage factors and self-refill habits.

Pure bookkeeping shared by the simulated devices in :mod:`firmware_sim.devices.appliances`: no clock
reads, no I/O. A :class:`Stock` holds the true amount inside the device as FIFO batches
(each with its own expiry, so perishables spoil batch by batch) plus a ``spare`` amount
that was delivered but does not fit yet (a second cartridge on the shelf, milk cartons
waiting for room on the scale shelf). A :class:`Usage` answers "is the household away"
and "how much do they use compared to the baseline" for any instant.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from agent.domain import Unit


@dataclass(slots=True)
class ConsumableTruth:
    """Ground truth for one consumable, as a benchmark sees it (a copy, safe to keep).

    ``level`` is what is inside the device now (cartridge %, grams on the scale, sensors
    in the household's stock); ``spare`` is delivered stock that is not in the device yet
    (in the same unit). ``rate_per_day`` is the current true mean use (0 while away).
    """

    id: str
    unit: Unit
    capacity: float
    level: float
    rate_per_day: float
    pack_size: float
    perishable: bool
    shelf_life_days: float | None
    sku: str
    spare: float = 0.0


class RefillMode(StrEnum):
    """How the household restocks on its own, without the agent."""

    NONE = "none"
    EVERY = "every"  # a shopping trip every N days
    WHEN_EMPTY = "when_empty"  # buys after running out
    WHEN_LOW = "when_low"  # buys once the level falls below a threshold


@dataclass(slots=True, frozen=True)
class RefillHabit:
    """The household's own buying habit for one consumable.

    ``delay_days`` is the (min, max) time from deciding to buy until it is home; for
    ``every`` the trips happen every ``every_days`` at ``hour`` local time and buy
    ``packs`` packs, or only what fits under the capacity when ``fill`` is set.
    """

    mode: RefillMode = RefillMode.NONE
    every_days: float = 7.0
    hour: float = 17.0
    packs: int = 1
    fill: bool = False
    threshold: float = 0.2
    delay_days: tuple[float, float] = (0.5, 2.0)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RefillHabit:
        """Build from the scenario table ``refill = {mode = "every", every_days = 7, ...}``."""
        if not data:
            return cls()
        delay = data.get("delay_days", (0.5, 2.0))
        if isinstance(delay, int | float):
            delay = (float(delay), float(delay))
        lo, hi = (float(v) for v in delay)
        return cls(
            mode=RefillMode(str(data.get("mode", "none"))),
            every_days=float(data.get("every_days", 7.0)),
            hour=float(data.get("hour", 17.0)),
            packs=int(data.get("packs", 1)),
            fill=bool(data.get("fill", False)),
            threshold=float(data.get("threshold", 0.2)),
            delay_days=(lo, hi),
        )


@dataclass(slots=True)
class Usage:
    """Household-wide factors: away periods, step changes in usage, local time offset."""

    away: list[tuple[datetime, datetime]] = field(default_factory=list)
    changes: list[tuple[datetime, float]] = field(default_factory=list)
    utc_offset: timedelta = timedelta(0)

    def is_away(self, t: datetime) -> bool:
        """True while nobody is home (consumption stops)."""
        return any(start <= t < end for start, end in self.away)

    def away_until(self, t: datetime) -> datetime:
        """When the household is back, or ``t`` itself if they are home."""
        for start, end in self.away:
            if start <= t < end:
                return self.away_until(end)
        return t

    def factor(self, t: datetime) -> float:
        """Product of every step change in usage that has happened by ``t``."""
        f = 1.0
        for at, mult in self.changes:
            if at <= t:
                f *= mult
        return f

    def local_hour(self, t: datetime) -> float:
        """Hour of day (0..24) in the household's local time."""
        lt = t + self.utc_offset
        return lt.hour + lt.minute / 60 + lt.second / 3600

    def local_weekday(self, t: datetime) -> int:
        """Monday 0 .. Sunday 6, in local time."""
        return (t + self.utc_offset).weekday()


@dataclass(slots=True)
class Batch:
    """One delivery inside the device: what is left of it and when it spoils."""

    amount: float
    expires: datetime | None


@dataclass(slots=True)
class Stock:
    """True amount of one consumable: FIFO batches in the device plus spare outside it."""

    id: str
    unit: Unit
    capacity: float
    pack_size: float
    sku: str
    shelf_life: timedelta | None = None
    refill: RefillHabit = field(default_factory=RefillHabit)
    batches: list[Batch] = field(default_factory=list)  # oldest first
    spare: float = 0.0
    level: float = 0.0
    empty_since: datetime | None = None
    run_outs: list[datetime] = field(default_factory=list)
    stockouts: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    self_order_open: bool = False
    history: list[tuple[datetime, float]] = field(default_factory=list)  # (time, level)

    def put(self, amount: float, at: datetime) -> None:
        """Add ``amount`` to the device (spoils ``shelf_life`` after ``at``)."""
        expires = at + self.shelf_life if self.shelf_life is not None else None
        self.batches.append(Batch(amount, expires))
        self.level += amount
        self._mark(at)

    def take(self, amount: float, at: datetime) -> float:
        """Use up to ``amount``, oldest batch first; returns how much was really used."""
        want = amount
        batches = self.batches
        while want > 1e-12 and batches:
            head = batches[0]
            if head.amount > want:
                head.amount -= want
                want = 0.0
            else:
                want -= head.amount
                batches.pop(0)
        used = amount - want
        self.level = max(0.0, self.level - used)
        if not batches:
            self.level = 0.0
        self._mark(at)
        return used

    def spoil(self, at: datetime) -> float:
        """Throw away every batch expired by ``at``; returns the amount discarded."""
        lost = 0.0
        keep: list[Batch] = []
        for batch in self.batches:
            if batch.expires is not None and batch.expires <= at:
                lost += batch.amount
            else:
                keep.append(batch)
        if lost:
            self.batches = keep
            self.level = max(0.0, sum(b.amount for b in keep))
            self._mark(at)
        return lost

    def room(self) -> float:
        """How much more fits into the device."""
        return max(0.0, self.capacity - self.level)

    def _mark(self, at: datetime) -> None:
        """Keep the level history and the run-out log in step with the level."""
        if self.level <= 1e-9:
            self.level = 0.0
        self.history.append((at, self.level))
        if self.level <= 0:
            if self.empty_since is None:
                self.empty_since = at
                self.run_outs.append(at)
                self.stockouts.append((at, None))
        elif self.empty_since is not None:
            self.stockouts[-1] = (self.empty_since, at)
            self.empty_since = None

    def truth(self, rate_per_day: float) -> ConsumableTruth:
        """A detached copy of the ground truth."""
        return ConsumableTruth(
            id=self.id,
            unit=self.unit,
            capacity=self.capacity,
            level=self.level,
            rate_per_day=rate_per_day,
            pack_size=self.pack_size,
            perishable=self.shelf_life is not None,
            shelf_life_days=(
                self.shelf_life / timedelta(days=1) if self.shelf_life is not None else None
            ),
            sku=self.sku,
            spare=self.spare,
        )


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, rounded normal above 30)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def noisy(rng: random.Random, sigma: float) -> float:
    """A lognormal factor with mean 1 (day-to-day variation)."""
    if sigma <= 0:
        return 1.0
    return math.exp(rng.gauss(-sigma * sigma / 2, sigma))


def normalised(factors: list[float] | None) -> list[float]:
    """Seven weekday factors scaled to average 1, so they shape use without changing it."""
    if not factors:
        return [1.0] * 7
    if len(factors) != 7 or min(factors) < 0 or sum(factors) <= 0:
        raise ValueError("weekday_factors needs 7 non-negative numbers")
    mean = sum(factors) / 7
    return [f / mean for f in factors]
