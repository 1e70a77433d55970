"""Households: devices plus the people around them, built from TOML scenarios.

A scenario (``firmware_sim/scenarios/*.toml``, or a dict with the same structure)
describes the household (people, local time offset, away periods, step changes in
usage, vendor lead times, a seed) and its devices; ``docs/simulator.md`` lists every key.

Two ways to use it:

* :func:`run_offline` simulates a whole period in memory, open loop (the household
  restocks on its own as the scenario says), and returns a :class:`Trace` with every
  reading (with the time it was received, so late catch-up readings show up late), the
  true level of every consumable at every report time, true run-outs and stockout
  intervals, and the events.
* Closed loop: build a :class:`Household`, then alternate :meth:`Household.advance`,
  :meth:`Household.readings` and :meth:`Household.deliver` (what a vendor delivered).

Every device gets its own seed derived from the household seed and its id, so adding a
device does not change the others' traces.
"""

from __future__ import annotations

import bisect
import math
import random
import tomllib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from agent.wire.device import EventMessage, StateMessage
from firmware_sim.devices.appliances import Fridge, Printer, SimDevice, Wearable
from firmware_sim.devices.link import LinkProfile
from firmware_sim.devices.stock import Usage

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
DEVICE_CLASSES: dict[str, type[SimDevice]] = {
    "printer": Printer,
    "fridge": Fridge,
    "wearable": Wearable,
}
# Keys every device table may carry; the rest go to the device class as keyword arguments.
_COMMON_KEYS = {"id", "kind", "seed", "report_every_minutes", "put_away_hours", "link",
                "pauses_when_away", "fw", "report_on_change"}
_TUPLE_KEYS = {"active_hours", "burst_pages", "replace_delay_hours"}

Key = tuple[str, str]  # (device_id, consumable_id)


def scenario_path(name: str | Path) -> Path:
    """A scenario file: a path as given, or the name of a shipped scenario (``demo``)."""
    path = Path(name)
    if path.exists():
        return path
    shipped = SCENARIO_DIR / f"{Path(name).stem}.toml"
    if shipped.exists():
        return shipped
    raise FileNotFoundError(f"no scenario {name!s} (shipped: {', '.join(shipped_scenarios())})")


def shipped_scenarios() -> list[str]:
    """Names of the scenarios that ship with the simulator."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(scenario: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The scenario as a dict (reads TOML when given a path or a shipped name)."""
    if isinstance(scenario, Mapping):
        return dict(scenario)
    with scenario_path(scenario).open("rb") as fh:
        return tomllib.load(fh)


def _instant(value: Any, offset: timedelta) -> datetime:
    """A TOML date or datetime as an aware UTC datetime (dates at local midnight)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else (value - offset).replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC) - offset
    raise ValueError(f"not a date or datetime: {value!r}")


def device_seed(household_seed: int, device_id: str) -> int:
    """A stable per-device seed (Python's ``hash`` of a str changes between runs)."""
    return household_seed * 1_000_003 + zlib.crc32(device_id.encode())


@dataclass(slots=True, frozen=True)
class LeadTime:
    """Vendor lead time: lognormal with this mean and standard deviation, in days."""

    mean_days: float = 2.0
    sd_days: float = 0.5

    def draw(self, rng: random.Random) -> float:
        """One lead time in days."""
        if self.sd_days <= 0:
            return self.mean_days
        sigma2 = math.log(1 + (self.sd_days / self.mean_days) ** 2)
        return rng.lognormvariate(math.log(self.mean_days) - sigma2 / 2, math.sqrt(sigma2))


class Household:
    """Devices sharing one household's habits; see the module docstring."""

    def __init__(self, name: str, start: datetime, seed: int, devices: list[SimDevice],
                 usage: Usage, lead_time: LeadTime, lead_times: dict[str, LeadTime],
                 people: int = 2) -> None:
        self.name = name
        self.start = start
        self.seed = seed
        self.devices = devices
        self.usage = usage
        self.people = people
        self.lead_time = lead_time
        self.lead_times = lead_times

    @classmethod
    def from_scenario(cls, scenario: Mapping[str, Any] | str | Path, seed: int | None = None,
                      ) -> Household:
        """Build from a TOML file, a shipped scenario's name, or a dict; ``seed`` overrides."""
        data = load_scenario(scenario)
        offset = timedelta(hours=float(data.get("utc_offset_hours", 0.0)))
        start = _instant(data.get("start", "2026-01-05"), offset)
        hh_seed = int(data.get("seed", 0) if seed is None else seed)
        people = int(data.get("people", 2))
        away = [(_instant(a["start"], offset), _instant(a["end"], offset))
                for a in data.get("away", [])]
        changes = [(_instant(c["at"], offset), float(c["factor"]), c.get("devices"))
                   for c in data.get("usage_change", [])]
        lt = data.get("lead_time", {})
        lead = LeadTime(float(lt.get("mean_days", 2.0)), float(lt.get("sd_days", 0.5)))
        per_sku = {sku: LeadTime(float(v.get("mean_days", lead.mean_days)),
                                 float(v.get("sd_days", lead.sd_days)))
                   for sku, v in lt.get("skus", {}).items()}
        specs = data.get("devices", [])
        if not specs:
            raise ValueError("a scenario needs at least one [[devices]] table")
        devices = []
        for spec in specs:
            device_id = str(spec["id"])
            usage = Usage(
                away=away,
                changes=[(at, f) for at, f, only in changes if not only or device_id in only],
                utc_offset=offset,
            )
            devices.append(build_device(spec, start=start, household_seed=hh_seed,
                                        usage=usage, people=people))
        if len({d.device_id for d in devices}) != len(devices):
            raise ValueError("device ids must be unique")
        return cls(str(data.get("name", "household")), start, hh_seed, devices,
                   Usage(away=away, utc_offset=offset), lead, per_sku, people)

    def device(self, device_id: str) -> SimDevice:
        """The device with this id."""
        for dev in self.devices:
            if dev.device_id == device_id:
                return dev
        raise KeyError(device_id)

    def find_sku(self, sku: str) -> tuple[SimDevice, str]:
        """The device and consumable id that a vendor SKU refills."""
        for dev in self.devices:
            for cid, stock in dev.stocks.items():
                if stock.sku == sku:
                    return dev, cid
        raise KeyError(sku)

    def is_away(self, t: datetime) -> bool:
        """True while the household is away (consumption stops on most devices)."""
        return self.usage.is_away(t)

    def lead_time_days(self, sku: str, rng: random.Random) -> float:
        """A vendor lead time for ``sku`` in days, drawn from the scenario's model."""
        return self.lead_times.get(sku, self.lead_time).draw(rng)

    def advance(self, until: datetime) -> list[EventMessage]:
        """Advance every device to ``until``; events of all devices in time order."""
        events = [e for dev in self.devices for e in dev.advance(until)]
        events.sort(key=lambda e: (e.ts, e.device_id, e.seq))
        return events

    def readings(self, now: datetime) -> list[StateMessage]:
        """Everything the devices published since the last call, up to ``now`` (heartbeats,
        on-change reports, catch-up backlogs with their original ts and seq), by arrival."""
        rows = [row for dev in self.devices for row in dev.poll(now)]
        rows.sort(key=lambda r: r[0])
        return [StateMessage.model_validate(p) for _, p in rows]

    def deliver(self, device_id: str, consumable_id: str, packs: int, at: datetime) -> None:
        """Closed loop: a vendor delivered ``packs`` packs at ``at``."""
        self.device(device_id).deliver(consumable_id, packs, at)


def build_device(spec: Mapping[str, Any], *, start: datetime, household_seed: int,
                 usage: Usage, people: int) -> SimDevice:
    """One device from its ``[[devices]]`` table."""
    kind = str(spec.get("kind", ""))
    if kind not in DEVICE_CLASSES:
        raise ValueError(f"device kind must be one of {sorted(DEVICE_CLASSES)}")
    device_id = str(spec["id"])
    common: dict[str, Any] = {
        "start": start,
        "seed": int(spec.get("seed", device_seed(household_seed, device_id))),
        "usage": usage,
        "report_every": (timedelta(minutes=float(spec["report_every_minutes"]))
                         if "report_every_minutes" in spec else None),
        "link": LinkProfile.from_dict(spec.get("link")),
        "put_away_delay": timedelta(hours=float(spec.get("put_away_hours", 1.0))),
    }
    for key in ("pauses_when_away", "fw", "report_on_change"):
        if key in spec:
            common[key] = spec[key]
    extra: dict[str, Any] = {k: (tuple(v) if k in _TUPLE_KEYS else v)
             for k, v in spec.items() if k not in _COMMON_KEYS}
    if "sleep_after_minutes" in extra:
        extra["sleep_after"] = timedelta(minutes=float(extra.pop("sleep_after_minutes")))
    if kind == "fridge":
        extra.setdefault("people", people)
    try:
        return DEVICE_CLASSES[kind](device_id, **common, **extra)
    except TypeError as err:
        raise ValueError(f"device {device_id}: {err}") from err


@dataclass
class Trace:
    """What an offline run produced; keys of the dicts are (device_id, consumable_id)."""

    household: Household
    start: datetime
    end: datetime
    raw: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    # (time, level) at every change of the true level: a step function, see level_at().
    truth: dict[Key, list[tuple[datetime, float]]] = field(default_factory=dict)
    run_outs: dict[Key, list[datetime]] = field(default_factory=dict)
    stockouts: dict[Key, list[tuple[datetime, datetime | None]]] = field(default_factory=dict)
    events: list[EventMessage] = field(default_factory=list)

    @cached_property
    def readings(self) -> list[tuple[datetime, StateMessage]]:
        """(received_at, validated StateMessage), in order of arrival (built on first use)."""
        return [(at, StateMessage.model_validate(p)) for at, p in self.raw]

    def level_at(self, key: Key, t: datetime) -> float:
        """True level at ``t`` (the truth series is a step function of change points)."""
        series = self.truth[key]
        i = bisect.bisect_right(series, t, key=lambda p: p[0])
        if i == 0:
            raise ValueError("before the start of the trace")
        return series[i - 1][1]

    def stockout_days(self, key: Key) -> float:
        """Days without stock within the run."""
        total = timedelta(0)
        for begin, end in self.stockouts.get(key, []):
            total += min(end or self.end, self.end) - max(begin, self.start)
        return total / timedelta(days=1)


def run_offline(scenario: Household | Mapping[str, Any] | str | Path, days: int = 365,
                report_every: timedelta | None = None, seed: int | None = None) -> Trace:
    """Simulate ``days`` open loop, in memory; ``report_every`` overrides every device's.

    Readings are kept as payload dicts in ``Trace.raw`` (cheap) and validated into
    StateMessages only when ``Trace.readings`` is first read.
    """
    hh = scenario if isinstance(scenario, Household) else Household.from_scenario(scenario, seed)
    start = hh.start
    end = start + timedelta(days=days)
    trace = Trace(hh, start, end)
    per_device: list[list[tuple[datetime, dict[str, Any]]]] = []
    for dev in hh.devices:
        if report_every is not None:
            dev.report_every = report_every
        per_device.append(dev.poll(end))
        trace.events.extend(dev.advance(end))
        for cid, stock in dev.stocks.items():
            key = (dev.device_id, cid)
            trace.truth[key] = [(at, level) for at, level in stock.history if at <= end]
            trace.run_outs[key] = dev.run_outs(cid)
            trace.stockouts[key] = dev.stockouts(cid)
    trace.raw = sorted((row for rows in per_device for row in rows), key=lambda r: r[0])
    trace.events.sort(key=lambda e: (e.ts, e.device_id, e.seq))
    return trace
