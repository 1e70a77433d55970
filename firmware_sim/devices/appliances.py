"""Simulated devices: pure, deterministic generators driven by a simulated clock.

Each device owns its random generators (seeded from one ``seed``), so the same seed and
the same calls give the same trace. Nothing here reads the wall clock or does I/O.

Time moves only through :meth:`SimDevice.advance` (and implicitly through
:meth:`SimDevice.reading`). Internally a device plans one local day at a time (print jobs,
meals, battery charging) and keeps a heap of timed actions (deliveries being put away,
batches spoiling, sensors expiring), so a simulated year costs a few thousand steps, not
one per second.

Devices (see ``docs/simulator.md`` for every scenario key):

* :class:`Printer` - toner cartridge (``toner``, percent) and drum (``drum``, percent),
  pages per day with a weekday pattern and bursts, per-job coverage noise, a lifetime
  page counter in ``counters={"pages": n}``. Reporting profiles: ``exact``, ``steps10``
  (10 % steps, rounded up), ``low_only`` (``some_remaining`` until low, then ``low``,
  then ``empty``), ``sleepy`` (exact, but ``unknown`` with no level while asleep).
  A delivered cartridge goes on the shelf (``spare``) and is put in when the one in the
  printer is empty, emitting ``cartridge_replaced``.
* :class:`Fridge` - a scale under the milk (grams, sensor noise, zero readings while the
  jug is lifted out) and eggs as a count; use per person per day with weekday variation
  around meal times; groceries put away emit ``refilled``; batches spoil.
* :class:`Wearable` - a CGM sensor with a fixed life plus grace and a share of early
  failures (``sensor``, days left), the household's stock of sensors (``sensors``,
  count) and the wearable's battery (``battery``, percent).

Ground truth: :meth:`SimDevice.truth`, :meth:`SimDevice.stock_out`,
:meth:`SimDevice.run_outs` and :meth:`SimDevice.stockouts` (intervals without stock).
For the wearable, ``sensors`` is out of stock only when the patient has no working
sensor and none to put on: an empty box while a sensor is still worn is not yet harm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from agent.domain import DeviceKind, Unit
from agent.wire.device import EventType
from firmware_sim.devices.base import DAY, HOUR, SimDevice, make_stock
from firmware_sim.devices.stock import ConsumableTruth, noisy, normalised, poisson
from firmware_sim.devices.wearable import Wearable

__all__ = [
    "DAY", "ConsumableTruth", "Fridge", "Printer", "SimDevice", "Wearable", "make_stock",
]

PRINTER_PROFILES = ("exact", "steps10", "low_only", "sleepy")


class Printer(SimDevice):
    """A home or office laser printer with a toner cartridge and a drum."""

    kind = DeviceKind.PRINTER
    DEFAULT_REPORT_EVERY = timedelta(hours=6)

    def __init__(self, device_id: str, *, start: datetime, seed: int,
                 pages_per_day: float = 1.1, weekday_factors: list[float] | None = None,
                 active_hours: tuple[float, float] = (8.0, 22.0), pages_per_job: float = 4.0,
                 burst_prob: float = 0.02, burst_pages: tuple[int, int] = (20, 60),
                 coverage_sigma: float = 0.25, profile: str = "exact",
                 sleep_after: timedelta | None = None, low_threshold: float = 10.0,
                 toner: Mapping[str, Any] | None = None, drum: Mapping[str, Any] | None = None,
                 **common: Any) -> None:
        super().__init__(device_id, start=start, seed=seed, **common)
        if profile not in PRINTER_PROFILES:
            raise ValueError(f"printer profile must be one of {PRINTER_PROFILES}")
        if profile == "sleepy" and sleep_after is None:
            sleep_after = timedelta(minutes=30)
        self.profile = profile
        self.sleep_after = sleep_after
        self.low_threshold = low_threshold
        self.pages_per_day = pages_per_day
        self.weekday = normalised(weekday_factors)
        self.active_hours = active_hours
        self.pages_per_job = pages_per_job
        self.burst_prob = burst_prob
        self.burst_pages = burst_pages
        self.coverage_sigma = coverage_sigma
        self.yields: dict[str, float] = {}
        for cid, spec, default_yield in (("toner", toner or {}, 2000.0), ("drum", drum, 12000.0)):
            if spec is None:
                continue
            self.yields[cid] = float(spec.get("yield_pages", default_yield))
            self.stocks[cid] = make_stock(cid, Unit.PERCENT, spec, capacity=100.0,
                                          pack_size=100.0, start=start)
        self.pages = 0
        self.unit_pages = dict.fromkeys(self.stocks, 0)
        self.last_job = start - timedelta(days=1)

    def _mean_pages(self, t: datetime) -> float:
        if not self._active(t):
            return 0.0
        burst = self.burst_prob * sum(self.burst_pages) / 2
        return self.pages_per_day * self.usage.factor(t) + burst

    def _rate(self, cid: str, t: datetime) -> float:
        return self._mean_pages(t) * 100.0 / self.yields[cid]

    def _plan_day(self, day: datetime) -> None:
        super()._plan_day(day)
        rng = self.rng
        weekday = self.usage.local_weekday(day + HOUR * 12)
        mean = self.pages_per_day * self.weekday[weekday] * self.usage.factor(day)
        pages = poisson(rng, mean)
        if rng.random() < self.burst_prob:
            pages += rng.randint(*self.burst_pages)
        lo, hi = self.active_hours
        while pages > 0:
            job = min(pages, 1 + poisson(rng, self.pages_per_job - 1))
            pages -= job
            at = day + timedelta(hours=rng.uniform(lo, hi))
            cover = noisy(rng, self.coverage_sigma)
            if self._active(at):
                self._schedule(at, "job", (job, cover))

    def _apply(self, action: str, payload: Any, at: datetime) -> None:
        if action == "job":
            self._print(payload[0], payload[1], at)
        else:
            super()._apply(action, payload, at)

    def _print(self, pages: int, cover: float, at: datetime) -> None:
        """Print page by page batches until done or a unit is empty with no spare."""
        self.last_job = at
        per_page = {cid: 100.0 / y * (cover if cid == "toner" else 1.0)
                    for cid, y in self.yields.items()}
        while pages > 0:
            for cid, stock in self.stocks.items():
                if stock.level < per_page[cid] - 1e-9:
                    if stock.level > 0:
                        stock.take(stock.level, at)  # too little for a page: it says empty
                    self._replace(cid, at)
            can = min(int(s.level / per_page[cid] + 1e-9) for cid, s in self.stocks.items())
            if can <= 0:
                break  # a unit is empty and none on the shelf: the rest is not printed
            can = min(can, pages)
            for cid, stock in self.stocks.items():
                stock.take(can * per_page[cid], at)
                self.unit_pages[cid] += can
            self.pages += can
            pages -= can
        for cid in self.stocks:
            self._after_use(cid, at)

    def _replace(self, cid: str, at: datetime) -> bool:
        """Swap in a spare unit if one is on the shelf."""
        stock = self.stocks[cid]
        if stock.spare < stock.pack_size - 1e-9:
            return False
        stock.spare -= stock.pack_size
        stock.batches.clear()
        stock.level = 0.0
        stock.put(stock.pack_size, at)
        self.unit_pages[cid] = 0
        self._emit(EventType.CARTRIDGE_REPLACED, cid, at)
        return True

    def _fill(self, cid: str, at: datetime) -> None:
        """Cartridges wait on the shelf until the one in the printer is empty."""
        if self.stocks[cid].level <= 0:
            self._replace(cid, at)

    def _report(self, now: datetime) -> list[dict[str, Any]]:
        asleep = self.sleep_after is not None and now - self.last_job > self.sleep_after
        out = []
        for cid, stock in self.stocks.items():
            item: dict[str, Any] = {"id": cid, "sku": stock.sku, "unit": Unit.PERCENT}
            item["counters"] = {"pages": self.pages if cid == "toner" else self.unit_pages[cid]}
            level = stock.level
            if asleep:
                item["state"] = "unknown"
            elif self.profile == "low_only":
                item["state"] = ("empty" if level <= 0 else
                                 "low" if level <= self.low_threshold else "some_remaining")
            else:
                shown = math.ceil(level / 10 - 1e-9) * 10 if self.profile == "steps10" else level
                item["level"] = round(min(shown, 100.0), 2)
                item["capacity"] = 100.0
            out.append(item)
        return out


# Share of a day's use at each meal: (local hour, spread in hours, share).
MILK_MEALS = ((7.5, 0.7, 0.45), (10.5, 1.0, 0.1), (15.5, 1.0, 0.15), (19.5, 1.0, 0.3))
EGG_MEALS = ((8.0, 1.0, 0.6), (12.5, 1.0, 0.1), (19.0, 1.0, 0.3))


class Fridge(SimDevice):
    """A smart fridge: a scale under the milk (grams) and an egg tray (count)."""

    kind = DeviceKind.FRIDGE

    def __init__(self, device_id: str, *, start: datetime, seed: int, people: int = 2,
                 milk: Mapping[str, Any] | None = None, eggs: Mapping[str, Any] | None = None,
                 weekday_factors: list[float] | None = None, day_sigma: float = 0.25,
                 noise_grams: float = 4.0, lift_prob: float = 0.02,
                 **common: Any) -> None:
        super().__init__(device_id, start=start, seed=seed, **common)
        self.people = people
        self.weekday = normalised(weekday_factors or [0.9, 0.9, 0.9, 0.9, 1.0, 1.2, 1.2])
        self.day_sigma = day_sigma
        self.noise_grams = noise_grams
        self.lift_prob = lift_prob
        self.per_person: dict[str, float] = {}
        milk = {} if milk is None else milk
        # Fluid milk: ~0.5 cup (~120 g) per person per day (USDA ERS 2019).
        self.per_person["milk"] = float(milk.get("per_person_per_day", 120.0))
        self.stocks["milk"] = make_stock("milk", Unit.GRAMS, milk, capacity=4000.0,
                                         pack_size=1000.0, start=start, initial=2000.0)
        if eggs is not None:
            self.per_person["eggs"] = float(eggs.get("per_person_per_day", 0.5))
            self.stocks["eggs"] = make_stock("eggs", Unit.COUNT, eggs, capacity=24.0,
                                             pack_size=12.0, start=start, initial=10.0)
        for cid, stock in self.stocks.items():
            if stock.shelf_life is not None:
                self._schedule(start + stock.shelf_life, "spoil", cid)

    def _mean(self, cid: str, t: datetime) -> float:
        return self.per_person[cid] * self.people * self.usage.factor(t)

    def _rate(self, cid: str, t: datetime) -> float:
        return self._mean(cid, t) if self._active(t) else 0.0

    def _plan_day(self, day: datetime) -> None:
        super()._plan_day(day)
        rng = self.rng
        shape = self.weekday[self.usage.local_weekday(day + HOUR * 12)]
        for cid in self.stocks:
            total = self._mean(cid, day) * shape * noisy(rng, self.day_sigma)
            if cid == "milk":
                for hour, spread, share in MILK_MEALS:
                    at = day + timedelta(hours=hour + rng.uniform(-spread, spread))
                    if self._active(at):
                        self._schedule(at, "use", (cid, total * share))
                continue
            count = poisson(rng, total)
            meals = [0] * len(EGG_MEALS)
            for _ in range(count):
                pick, acc = rng.random(), 0.0
                for i, (_, _, share) in enumerate(EGG_MEALS):
                    acc += share
                    if pick < acc or i == len(EGG_MEALS) - 1:
                        meals[i] += 1
                        break
            for (hour, spread, _), n in zip(EGG_MEALS, meals, strict=True):
                at = day + timedelta(hours=hour + rng.uniform(-spread, spread))
                if n and self._active(at):
                    self._schedule(at, "use", (cid, float(n)))

    def _report(self, now: datetime) -> list[dict[str, Any]]:
        out = []
        noise = self._noise
        for cid, stock in self.stocks.items():
            level = stock.level
            if stock.unit is Unit.GRAMS:
                grams = level + noise.gauss(0.0, self.noise_grams)
                if level > 0 and noise.random() < self.lift_prob:
                    grams = abs(noise.gauss(0.0, self.noise_grams))  # jug lifted out
                shown = round(min(max(grams, 0.0), stock.capacity * 1.05), 1)
            else:
                shown = float(round(level))
            out.append({"id": cid, "sku": stock.sku, "unit": stock.unit.value, "level": shown,
                        "capacity": stock.capacity})
        return out
