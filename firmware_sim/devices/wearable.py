"""The simulated CGM wearer (re-exported by :mod:`firmware_sim.devices.appliances`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from agent.domain import DeviceKind, Unit
from agent.wire.device import EventType
from firmware_sim.devices.base import DAY, HOUR, SimDevice, make_stock
from firmware_sim.devices.stock import Stock


class Wearable(SimDevice):
    """A CGM wearer: the sensor being worn, the box of spare sensors, the battery."""

    kind = DeviceKind.WEARABLE

    def __init__(self, device_id: str, *, start: datetime, seed: int,
                 sensors: Mapping[str, Any] | None = None, sensor_life_days: float = 10.0,
                 grace_hours: float = 12.0, grace_use_prob: float = 0.5,
                 early_failure_rate: float = 0.12,
                 replace_delay_hours: tuple[float, float] = (0.1, 3.0),
                 battery_drain_per_hour: float = 2.5, charge_hour: float = 22.0,
                 forget_charge_prob: float = 0.05, falls_per_year: float = 0.0,
                 **common: Any) -> None:
        common.setdefault("pauses_when_away", False)
        super().__init__(device_id, start=start, seed=seed, **common)
        spec = {} if sensors is None else sensors
        self.stocks["sensors"] = make_stock("sensors", Unit.COUNT, spec, capacity=30.0,
                                            pack_size=3.0, start=start, initial=6.0)
        self.life = timedelta(days=sensor_life_days)
        self.grace = timedelta(hours=grace_hours)
        self._total_days = (self.life + self.grace) / DAY
        self.grace_use_prob = grace_use_prob
        self.early_failure_rate = early_failure_rate
        self.replace_delay_hours = replace_delay_hours
        self.drain = battery_drain_per_hour
        self.charge_hour = charge_hour
        self.forget_charge_prob = forget_charge_prob
        # Fall detection (a watch or pendant on the same gateway); 0 in the shipped
        # CGM scenario, set it in a scenario or call raise_fall() to drive the alert path.
        self.falls_per_year = falls_per_year
        self.sensor_start: datetime | None = None
        self._gap = Stock("sensor_gap", Unit.COUNT, 1.0, 1.0, "")
        self._gap.put(1.0, start)
        self._battery = (100.0, start)
        self._battery_seg = 0
        self._schedule(start, "charge")
        age = timedelta(days=self.rng.uniform(0.0, sensor_life_days))
        self._start_sensor(start - age, start)

    def _rate(self, cid: str, t: datetime) -> float:
        life = self.life / DAY
        grace = self.grace / DAY * self.grace_use_prob
        delay = sum(self.replace_delay_hours) / 2 / 24
        failed = (0.5 + life) / 2 + delay
        p = self.early_failure_rate
        return 1.0 / ((1 - p) * (life + grace) + p * failed)

    def _start_sensor(self, since: datetime, now: datetime) -> None:
        self.sensor_start = since
        if self.rng.random() < self.early_failure_rate:
            end = since + timedelta(days=self.rng.uniform(0.5, self.life / DAY))
            self._schedule(max(end, now), "sensor_end", True)
        else:
            end = since + self.life
            if self.rng.random() < self.grace_use_prob:
                end += self.grace
            self._schedule(max(end, now), "sensor_end", False)
        if self._gap.level <= 0:
            self._gap.put(1.0, now)

    def _plan_day(self, day: datetime) -> None:
        super()._plan_day(day)
        at = day + timedelta(hours=self.charge_hour + self.rng.uniform(-1.5, 1.5))
        if self.rng.random() >= self.forget_charge_prob and at >= self.start:
            self._schedule(at, "charge")
        if self.falls_per_year > 0 and self.rng.random() < self.falls_per_year / 365.0:
            fall = day + timedelta(hours=self.rng.uniform(6.0, 23.0))
            if fall >= self.start:
                self._schedule(fall, "fall")

    def _apply(self, action: str, payload: Any, at: datetime) -> None:
        if action == "sensor_end":
            self.sensor_start = None
            if payload:
                self._emit(EventType.SENSOR_FAILED, "sensor", at)
            hours = self.rng.uniform(*self.replace_delay_hours) if payload else 0.0
            self._schedule(at + timedelta(hours=hours), "insert")
        elif action == "insert":
            self._insert(at)
        elif action == "charge":
            self._battery = (100.0, at)
            self._battery_seg += 1
            self._schedule(at + timedelta(hours=85.0 / self.drain), "battery_low",
                           self._battery_seg)
        elif action == "fall":
            self.raise_fall(at)
        elif action == "battery_low":
            if payload == self._battery_seg:
                self._emit(EventType.LOW_BATTERY, "battery", at)
        else:
            super()._apply(action, payload, at)

    def raise_fall(self, at: datetime) -> None:
        """The wearer fell: a ``fall_alert`` event, sent with the next publication."""
        self._emit(EventType.FALL_ALERT, None, at)

    def _insert(self, at: datetime) -> None:
        """Put on a new sensor from the box, or go without one until a box arrives."""
        if self.sensor_start is not None:
            return
        box = self.stocks["sensors"]
        if box.level < 1:
            if self._gap.level > 0:
                self._gap.take(1.0, at)
            return
        box.take(1.0, at)
        self._start_sensor(at, at)
        self._emit(EventType.SENSOR_REPLACED, "sensor", at)
        self._after_use("sensors", at)

    def _put_in(self, cid: str, amount: float, at: datetime, own: bool) -> None:
        super()._put_in(cid, amount, at, own)
        self._insert(at)

    def battery(self, now: datetime) -> float:
        """Battery percent at ``now`` (drains linearly since the last charge)."""
        level, since = self._battery
        return max(0.0, level - self.drain * (now - since) / HOUR)

    def _powered(self, now: datetime) -> bool:
        return self.battery(now) > 0

    def stock_out(self, consumable_id: str) -> bool:
        """For ``sensors``: no working sensor worn and none in the box."""
        if consumable_id == "sensors":
            return self._gap.level <= 0
        return super().stock_out(consumable_id)

    def run_outs(self, consumable_id: str) -> list[datetime]:
        if consumable_id == "sensors":
            return list(self._gap.run_outs)
        return super().run_outs(consumable_id)

    def stockouts(self, consumable_id: str) -> list[tuple[datetime, datetime | None]]:
        if consumable_id == "sensors":
            return list(self._gap.stockouts)
        return super().stockouts(consumable_id)

    def _report(self, now: datetime) -> list[dict[str, Any]]:
        box = self.stocks["sensors"]
        total = self._total_days
        sensor: dict[str, Any] = {"id": "sensor", "unit": "days", "capacity": total}
        if self.sensor_start is None:
            sensor["level"] = 0.0
            sensor["state"] = "empty"
        else:
            worn_h = (now - self.sensor_start).total_seconds() / 3600.0
            sensor["level"] = round(max(0.0, total - worn_h / 24.0), 3)
            sensor["counters"] = {"hours_worn": int(worn_h)}
        return [
            sensor,
            {"id": "sensors", "sku": box.sku, "unit": "count", "capacity": box.capacity,
             "level": float(round(box.level))},
            {"id": "battery", "unit": "percent", "capacity": 100.0,
             "level": float(round(self.battery(now)))},
        ]
