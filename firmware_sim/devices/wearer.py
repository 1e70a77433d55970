"""A CGM and pump wearer whose data lives in Nightscout (the fixture site), for closed loops.

The wearer changes a CGM sensor when its life is over, refills the pump reservoir from a
vial when it runs low, and swaps the pump battery when it is nearly flat, each only with
supplies from the drawer (deliveries land there); each is recorded on the
:class:`NightscoutSite` the way a phone uploader does (treatments ``Sensor Change``,
``Insulin Change``, ``Pump Battery Change``; a device status every report, documented
in cgm-remote-monitor's ``lib/server/swagger.yaml``). What went without a supply counts
as ``missed``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from firmware_sim.devices.nightscout import NightscoutSite

SENSOR_SKU, INSULIN_SKU, BATTERY_SKU = "DEXCOM-G7-1", "INSULIN-VIAL-1000U", "AAA-LITHIUM-4"


@dataclass
class Wearer:
    site: NightscoutSite
    sensor_life_days: float = 10.0
    reservoir_units: float = 200.0
    units_per_day: float = 42.0
    battery_days: float = 30.0  # a pump battery from 100 % to flat
    sensor_started: datetime | None = None
    reservoir: float = 200.0
    battery: float = 100.0
    drawer: Counter[str] = field(default_factory=Counter)  # SKU -> items (vial: units)
    changes: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)

    def start(self, now: datetime, sensor_age_days: float, reservoir: float,
              battery: float) -> None:
        self.sensor_started = now - timedelta(days=sensor_age_days)
        self.site.event("Sensor Change", self.sensor_started)
        self.reservoir, self.battery = reservoir, battery
        self.report(now)

    def receive(self, sku: str, quantity: int, pack_size: int) -> None:
        self.drawer[sku] += quantity * pack_size

    def advance(self, now: datetime, dt: timedelta) -> None:
        days = dt / timedelta(days=1)
        self.reservoir = max(0.0, self.reservoir - self.units_per_day * days)
        self.battery = max(0.0, self.battery - 100.0 * days / self.battery_days)
        assert self.sensor_started is not None
        if now - self.sensor_started >= timedelta(days=self.sensor_life_days):
            if self.drawer[SENSOR_SKU] > 0:
                self.drawer[SENSOR_SKU] -= 1
                self.sensor_started = now
                self.changes["sensor"] += 1
                self.site.event("Sensor Change", now)
            elif now - self.sensor_started >= timedelta(days=self.sensor_life_days, hours=12):
                self.missed["sensor"] += 1  # past the 12 h grace without a new one
        fill = self.reservoir_units - self.reservoir
        if self.reservoir < 0.1 * self.reservoir_units:
            if self.drawer[INSULIN_SKU] >= fill:
                self.drawer[INSULIN_SKU] -= round(fill)
                self.reservoir = self.reservoir_units
                self.changes["insulin"] += 1
                self.site.event("Insulin Change", now)
            elif self.reservoir <= 0:
                self.missed["insulin"] += 1
        if self.battery < 5:
            if self.drawer[BATTERY_SKU] > 0:
                self.drawer[BATTERY_SKU] -= 1
                self.battery = 100.0
                self.changes["battery"] += 1
                self.site.event("Pump Battery Change", now)
            elif self.battery <= 0:
                self.missed["battery"] += 1
        self.report(now)

    def report(self, now: datetime) -> None:
        self.site.status(now, reservoir=round(self.reservoir, 1),
                         pump_battery=round(self.battery), uploader_battery=80)
