"""Nightscout treatments and device status to consumable readings (pure).

Shapes from Nightscout's API (cgm-remote-monitor ``lib/server/swagger.yaml``, served
at ``/api-docs``; https://nightscout.github.io/nightscout/careportal/ for the event
types): ``GET /api/v1/treatments.json`` returns objects with ``eventType`` ("Sensor
Start", "Sensor Change", "Site Change", "Insulin Change" ...) and ``created_at`` (ISO
8601); ``GET /api/v1/devicestatus.json`` returns objects with ``created_at``, ``pump``
(``reservoir`` in units, ``battery.percent``) and ``uploader.battery`` (percent;
``uploaderBattery`` in older uploaders).

Readings (device kind wearable):

- ``cgm-sensor``: days of sensor life left since the last Sensor Start/Change,
  capacity the sensor life; a change is a refill jump the forecast recognises.
- ``infusion-set``: days left since the last Site Change.
- ``insulin``: units left in the reservoir (device status), capacity the reservoir size.
- ``pump-battery`` / ``uploader-battery``: percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.domain import Unit

SENSOR_EVENTS = ("Sensor Start", "Sensor Change")
SITE_EVENTS = ("Site Change",)


class NightscoutDataError(ValueError):
    """An answer that is JSON but not Nightscout's shape."""


@dataclass(slots=True, frozen=True)
class Level:
    consumable_id: str
    level: float
    unit: Unit
    capacity: float | None
    at: datetime


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else None


def _latest(treatments: Sequence[Any], events: tuple[str, ...],
            now: datetime) -> datetime | None:
    times = [_when(t.get("created_at")) for t in treatments
             if isinstance(t, dict) and t.get("eventType") in events]
    # Entries "from the future" (a phone with a wrong clock) would freeze the level.
    return max((t for t in times if t is not None and t <= now), default=None)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def levels(treatments: Any, devicestatus: Any, now: datetime, *, sensor_life_days: float,
           site_life_days: float, reservoir_u: float) -> list[Level]:
    """What the two answers say about the wearer's consumables at ``now``."""
    if not isinstance(treatments, list) or not isinstance(devicestatus, list):
        raise NightscoutDataError("expected JSON arrays")
    out: list[Level] = []
    for cid, events, life in (("cgm-sensor", SENSOR_EVENTS, sensor_life_days),
                              ("infusion-set", SITE_EVENTS, site_life_days)):
        started = _latest(treatments, events, now)
        if started is not None:
            left = life - (now - started) / timedelta(days=1)
            out.append(Level(cid, max(0.0, left), Unit.DAYS, life, now))
    dated = [(_when(s.get("created_at")), s) for s in devicestatus if isinstance(s, dict)]
    statuses = sorted(((at, s) for at, s in dated if at is not None and at <= now),
                      key=lambda p: p[0] or now, reverse=True)
    pump = next(((at, s["pump"]) for at, s in statuses
                 if at is not None and isinstance(s.get("pump"), dict)), None)
    if pump is not None:
        at, p = pump
        reservoir = _number(p.get("reservoir"))
        if reservoir is not None:
            out.append(Level("insulin", max(0.0, min(reservoir, reservoir_u * 1.1)),
                             Unit.COUNT, reservoir_u, at))
        battery = p.get("battery")
        percent = _number(battery.get("percent")) if isinstance(battery, dict) else None
        if percent is not None:
            out.append(Level("pump-battery", min(max(percent, 0.0), 100.0), Unit.PERCENT,
                             None, at))
    for when, s in statuses:
        uploader = s.get("uploader")
        value = _number(uploader.get("battery")) if isinstance(uploader, dict) else _number(
            s.get("uploaderBattery"))
        if when is not None and value is not None:
            out.append(Level("uploader-battery", min(max(value, 0.0), 100.0), Unit.PERCENT,
                             None, when))
            break
    return out
