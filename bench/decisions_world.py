"""A second household generator for the decisions benchmark, written from other
assumptions than ``firmware_sim`` (which it does not import).

Event level, hour by hour: milk is poured in events around meals (a family's breakfast
is one fast drop), eggs taken a few at a time, pages printed in office bursts with
undeclared closures, CGM sensors changed every ten days (some fail early). The household
shops weekly on its own, has guests, throws milk out at expiry. Devices lie in their own
ways: load cells drift, printers round down (0 % with up to 5 % left) or report LOW only,
at a vendor-specific threshold, on cartridges whose yield is off the declared one. The
gateway has outages after which readings arrive late and out of order. Lead times are
heavy-tailed (usually fast, a week late one time in seven). Use trends slowly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agent.domain import CoarseState, Unit
from agent.forecast import ConsumableSpec, Observation

START = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class Lead:
    """Lead time: a lognormal main mode, and with ``p_late`` a week more."""

    mean: float = 2.0
    sd: float = 0.5
    p_late: float = 0.0
    late_days: float = 7.0

    def draw(self, rng: random.Random) -> float:
        s2 = math.log(1.0 + (self.sd / self.mean) ** 2)
        d = rng.lognormvariate(math.log(self.mean) - s2 / 2, math.sqrt(s2))
        return d + (self.late_days * rng.uniform(0.7, 1.3) if rng.random() < self.p_late else 0.0)


@dataclass
class World:
    """One consumable in one household, with the truth and the device's view of it."""

    name: str
    kind: str  # milk, eggs, toner, cgm
    spec: ConsumableSpec  # what the agent is told (declared yield, LOW threshold)
    packs_per_order: int
    rate: float  # true use per day at the start (level units)
    rng: random.Random
    level: float
    shelf: int = 0  # spare packs waiting (toner, cgm)
    batches: list[list[float]] = field(default_factory=list)  # [amount, expires (days)]
    trend: float = 0.0  # relative change of use over the year
    true_yield: float | None = None  # pages per cartridge (toner)
    low_at: float = 0.05  # the device's own LOW threshold (fraction)
    report: str = "level"  # level, rounding, low_only, count
    drift_per_day: float = 0.0  # load-cell drift (fraction of capacity per day)
    drift: float = 0.0
    counter: int = 0
    shops_weekly: bool = False
    guests: bool = False
    office: bool = False
    closures: list[tuple[float, float]] = field(default_factory=list)  # days since start
    sensor_left: float = 10.0  # cgm: days left on the worn sensor
    wearing: bool = True
    stockout_hours: float = 0.0
    empty_since: float | None = None
    stockouts: list[tuple[float, float]] = field(default_factory=list)

    # ---- truth -------------------------------------------------------------------

    def _hour_scale(self, t: float, week: float | None = None) -> float:
        """The schedule behind the hour starting at ``t`` days since start, before any
        draw: toner, the pages scale c (half the hours print Exp(1) x c); milk, the
        mean use; eggs, the chance of taking two; 0 when nothing is used. ``week``: the
        week number to take busy weeks and guests from, and no closure (an oracle's
        average over weeks)."""
        day = t
        rate = self.rate * (1.0 + self.trend * day / 365.0)
        hour = int(round((t % 1.0) * 24)) % 24
        wd = int(day) % 7
        wk = int(day / 7) if week is None else int(week)
        if self.kind == "toner":
            closed = week is None and any(a <= day < b for a, b in self.closures)
            if closed or wd >= 5 or not 8 <= hour < 18:
                return 0.0
            burst = 3.0 if wk % 9 == 4 else 1.0  # a busy week now and then
            return 2 * rate / 10 * burst
        if self.kind == "cgm":
            return 0.0
        guests = 2.0 if self.guests and wd in (5, 6) and wk % 3 == 0 else 1.0
        if self.kind == "milk":
            weights = {7: 0.35, 8: 0.1, 12: 0.1, 16: 0.1, 19: 0.25, 21: 0.1}
        else:  # eggs, taken a few at a time at breakfast and dinner
            weights = {8: 0.5, 19: 0.5}
        w = weights.get(hour, 0.0)
        if self.kind == "eggs":
            return min(1.0, rate * guests * w / 2.0)
        return rate * guests * w

    def usage_now(self, t: float) -> float:
        """Use in the hour starting at ``t`` days since start (level units)."""
        scale = self._hour_scale(t)
        if scale == 0.0:
            return 0.0
        if self.kind == "toner":
            pages = self.rng.random() < 0.5 and self.rng.expovariate(1.0) * scale
            return float(pages or 0.0)  # pages; converted by the caller
        if self.kind == "eggs":
            return float(2 * (self.rng.random() < scale))
        return scale * self.rng.lognormvariate(-0.08, 0.4)

    def expected_use(self, day: float) -> tuple[float, float]:
        """Mean and variance of use (level units) over the 24 hours from ``day``: the
        true rate and spread of that weekday, averaged over the nine-week cycle of busy
        weeks and guest weekends (an oracle knows how often they come, not when, and
        knows no closure). Pages get their true variance; the rest the 40 % day-to-day
        spread (plus Poisson for counted items) the oracle assumed."""
        if self.kind == "cgm":
            return 0.1, 0.04 ** 2 + 0.1
        moments = [self._day_moments(day, week) for week in range(9)]
        mean = sum(m for m, _ in moments) / 9
        # A mixture: the spread within each kind of week plus that between them.
        var = sum(v + (m - mean) ** 2 for m, v in moments) / 9
        return mean, var

    def _day_moments(self, day: float, week: int) -> tuple[float, float]:
        mean = var = 0.0
        for k in range(24):
            scale = self._hour_scale(day + k / 24.0, week)
            if self.kind == "toner":
                c = scale / (self.true_yield or 1.0) * self.spec.capacity
                mean += 0.5 * c  # P(print) x E[Exp(1)] x c
                var += 0.75 * c * c  # E[X^2] - E[X]^2 = c^2 - c^2 / 4
            else:
                mean += 2 * scale if self.kind == "eggs" else scale
        if self.kind != "toner":
            var = (0.4 * mean) ** 2 + (mean if self.spec.unit is Unit.COUNT else 0.0)
        return mean, var

    def take(self, amount: float, t: float) -> None:
        """Use ``amount`` from the device, oldest batch first."""
        if self.batches:
            for b in self.batches:
                got = min(b[0], amount)
                b[0] -= got
                amount -= got
                if amount <= 0:
                    break
            self.batches = [b for b in self.batches if b[0] > 1e-9]
            self.level = sum(b[0] for b in self.batches)
        else:
            self.level = max(0.0, self.level - amount)

    def add(self, amount: float, t: float) -> None:
        if self.spec.perishable and self.spec.shelf_life_days:
            life = self.spec.shelf_life_days * self.rng.uniform(0.8, 1.1)
            self.batches.append([amount, t + life])
            self.level = sum(b[0] for b in self.batches)
        else:
            self.level = min(self.spec.capacity, self.level + amount)

    def step(self, t: float) -> None:
        """Advance one hour at ``t`` days."""
        cap = self.spec.capacity
        if self.kind == "toner":
            pages = self.usage_now(t)
            self.counter += int(pages)
            assert self.true_yield is not None
            self.level = max(0.0, self.level - pages / self.true_yield * cap)
            if self.level <= 0 and self.shelf > 0 and self.rng.random() < 0.3:
                self.shelf -= 1
                self.level = cap
        elif self.kind == "cgm":
            self.sensor_left -= 1.0 / 24
            if self.sensor_left <= 0 or (self.wearing and self.rng.random() < 0.12 / 240):
                if self.level >= 1:
                    self.level -= 1
                    self.sensor_left = 10.0
                    self.wearing = True
                else:
                    self.wearing = False
            if not self.wearing and self.level >= 1:
                self.level -= 1
                self.sensor_left = 10.0
                self.wearing = True
        else:
            use = self.usage_now(t)
            if use > 0:
                self.take(use, t)
            for b in self.batches:
                if b[1] <= t:  # past its date: thrown out at once
                    b[0] = 0.0
            self.batches = [b for b in self.batches if b[0] > 1e-9]
            if self.batches or self.spec.perishable:
                self.level = sum(b[0] for b in self.batches)
            if (self.shops_weekly and int(round(t * 24)) % (24 * 7) == 17
                    and self.level < 0.4 * cap and self.rng.random() < 0.7):
                self.add(self.spec.pack_size, t)  # the household's own shopping trip
        # Out: nothing to use. A cartridge waiting on the shelf while the household gets
        # round to changing it is the household's delay, not a stockout.
        out = ((self.level <= 1e-6 and not (self.kind == "toner" and self.shelf > 0))
               if self.kind != "cgm" else not self.wearing)
        if out:
            self.stockout_hours += 1
            if self.empty_since is None:
                self.empty_since = t
        elif self.empty_since is not None:
            self.stockouts.append((self.empty_since, t))
            self.empty_since = None

    def deliver(self, packs: int, t: float) -> None:
        if self.kind == "toner":
            self.shelf += packs
            if self.level <= 0 and self.shelf > 0:
                self.shelf -= 1
                self.level = self.spec.capacity
            return
        for _ in range(packs):
            self.add(self.spec.pack_size, t)

    @property
    def on_hand(self) -> float:
        return self.level + self.shelf * self.spec.pack_size

    # ---- what the device says ----------------------------------------------------

    def reading(self, ts: datetime, t: float) -> Observation:
        cap = self.spec.capacity
        if self.report == "low_only":
            state = (CoarseState.EMPTY if self.level <= 0 else
                     CoarseState.LOW if self.level <= self.low_at * cap else CoarseState.OK)
            return Observation(ts, None, state, self.counter)
        if self.report == "rounding":
            shown = 5.0 * math.floor(self.level / 5.0)
            state = CoarseState.LOW if self.level <= self.low_at * cap else CoarseState.OK
            return Observation(ts, shown, state, self.counter)
        if self.report == "count":
            return Observation(ts, float(math.floor(self.level + 1e-9)))
        # A load cell creeps (``drift_per_day`` of capacity a day, a few % a year) and
        # wanders a little around that.
        self.drift += (self.drift_per_day / 24 + self.rng.gauss(0.0, 0.0002)) * cap
        shown = max(0.0, self.level + self.drift + self.rng.gauss(0.0, 0.003 * cap))
        return Observation(ts, round(shown, 1))


@dataclass
class Scenario:
    name: str
    description: str
    lead: Lead
    build: object  # (rng) -> list[World]
    outages: bool = False


def _milk(rng: random.Random, people: int, start: float, **kw: object) -> World:
    """Milk for ``people``: an order is four days of use, the fridge holds two orders."""
    per_order = max(1, round(330.0 * people * 4 / 1000.0))
    spec = ConsumableSpec(Unit.MILLILITRES, 2000.0 * per_order, 1000.0, perishable=True,
                          shelf_life_days=8.0)
    w = World("milk", "milk", spec, per_order, 330.0 * people, rng, 0.0,
              **kw)  # type: ignore[arg-type]
    w.add(start, 0.0)
    return w


def _toner(rng: random.Random, report: str, **kw: object) -> World:
    spec = ConsumableSpec(Unit.PERCENT, 100.0, 100.0,
                          yield_per_pack=3000.0 if report != "steps" else None)
    w = World("toner", "toner", spec, 1, rng.uniform(25, 60), rng, rng.uniform(40, 100),
              true_yield=3000.0 * rng.uniform(0.7, 0.9), low_at=rng.uniform(0.05, 0.08),
              report=report, office=True, **kw)  # type: ignore[arg-type]
    return w


def _scenarios() -> list[Scenario]:
    def family_cold(rng: random.Random) -> list[World]:
        return [_milk(rng, 5, 1000.0, shops_weekly=True, guests=True,
                      trend=rng.uniform(-0.2, 0.3))]

    def single_spoils(rng: random.Random) -> list[World]:
        return [_milk(rng, 1, 1000.0, drift_per_day=0.0001)]

    def family_drift(rng: random.Random) -> list[World]:
        return [_milk(rng, 3, 2000.0, drift_per_day=0.00015, guests=True)]

    def eggs48(rng: random.Random) -> list[World]:
        spec = ConsumableSpec(Unit.COUNT, 48.0, 12.0, perishable=True, shelf_life_days=28.0)
        w = World("eggs", "eggs", spec, 2, rng.uniform(2, 5), rng, 0.0, report="count",
                  shops_weekly=True, guests=True)
        w.add(float(rng.randint(6, 30)), 0.0)
        return [w]

    def toner_low_only(rng: random.Random) -> list[World]:
        w = _toner(rng, "low_only")
        a = rng.uniform(120, 200)
        w.closures = [(a, a + 21.0)]
        return [w]

    def toner_rounding(rng: random.Random) -> list[World]:
        w = _toner(rng, "rounding")
        a = rng.uniform(100, 250)
        w.closures = [(a, a + 28.0)]
        return [w]

    def cgm(rng: random.Random) -> list[World]:
        spec = ConsumableSpec(Unit.COUNT, 9.0, 3.0)
        return [World("sensors", "cgm", spec, 1, 0.1, rng, 2.0, report="count",
                      sensor_left=rng.uniform(1, 10))]

    out = [
        Scenario("family_cold_start", "five people, 1 l left at the start, weekly shopping, "
                 "guests, trend", Lead(2.0, 0.5), family_cold),
        Scenario("single_spoils", "one person, milk thrown out at expiry, load cell "
                 "creeping 3.6 %/year",
                 Lead(2.0, 0.5), single_spoils),
        Scenario("drift_outages", "three people, load cell creeping 5.5 %/year, gateway "
                 "outages with late "
                 "out-of-order batches", Lead(2.0, 0.5), family_drift, outages=True),
        Scenario("eggs_48", "48-egg tray counted, a few at a time, weekly shopping",
                 Lead(2.0, 0.5), eggs48),
        Scenario("toner_low_only", "LOW only at 5-8 %, yield 70-90 % of declared, office "
                 "bursts", Lead(3.0, 1.0), toner_low_only),
        Scenario("toner_rounding", "rounds down (0 % with up to 5 % left), four-week "
                 "closure", Lead(3.0, 1.0), toner_rounding),
        Scenario("cgm_9", "box of 9 sensors, 2 left at start, early failures",
                 Lead(3.0, 1.0), cgm),
        Scenario("heavy_tail_lead", "three people, usually 2 days, a week late 15 % of the "
                 "time", Lead(2.0, 0.5, p_late=0.15), family_drift),
    ]
    return out


SCENARIOS = _scenarios()
