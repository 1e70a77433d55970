"""Scenario families for the forecast benchmark: simulator scenario dicts plus what the
agent is told about each orderable consumable (its spec and the usual order size).

Each family is a function of the seed, so parameters (household size, pages per day,
initial levels) vary a little across seeds on top of the simulator's own randomness.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.domain import Unit
from agent.forecast import ConsumableSpec

START = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    """One orderable consumable in a scenario, as the agent knows it."""

    device_id: str
    consumable_id: str
    spec: ConsumableSpec
    packs_per_order: int


@dataclass(frozen=True)
class Family:
    """A scenario family: ``build(seed)`` gives the scenario dict and its items."""

    name: str
    description: str
    build: Callable[[int], tuple[dict[str, Any], list[Item]]]


MILK = ConsumableSpec(Unit.GRAMS, 6000.0, 1000.0, perishable=True, shelf_life_days=10.0)
EGGS = ConsumableSpec(Unit.COUNT, 24.0, 12.0, perishable=True, shelf_life_days=28.0)
SENSORS = ConsumableSpec(Unit.COUNT, 30.0, 3.0)


def _toner(declared_yield: bool) -> ConsumableSpec:
    return ConsumableSpec(Unit.PERCENT, 100.0, 100.0,
                          yield_per_pack=2000.0 if declared_yield else None,
                          low_threshold_level=10.0)


def _day(n: float) -> str:
    return (START + timedelta(days=n)).isoformat()


def _base(seed: int, devices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    scn: dict[str, Any] = {"name": "bench", "start": START.isoformat(), "seed": seed,
                           "devices": devices, "lead_time": {"mean_days": 2.0, "sd_days": 0.5}}
    scn.update(extra)
    return scn


def _fridge(rng: random.Random, *, eggs: bool = True, **extra: Any) -> dict[str, Any]:
    dev: dict[str, Any] = {
        "id": "fridge", "kind": "fridge", "people": rng.randint(1, 4),
        "weekday_factors": [1.0] * 7,
        "milk": {"sku": "MILK-1L", "shelf_life_days": 10, "capacity": 6000,
                 "initial": rng.uniform(1200, 3000)},
    }
    if eggs:
        dev["eggs"] = {"sku": "EGGS-12", "shelf_life_days": 28, "initial": rng.randint(6, 14)}
    dev.update(extra)
    return dev


def _fridge_items(dev: dict[str, Any], eggs: bool = True) -> list[Item]:
    # A household orders about five days of milk at a time (120 g per person a day).
    packs = max(1, round(dev["people"] * 120.0 * 5 / 1000.0))
    items = [Item("fridge", "milk", MILK, packs)]
    if eggs:
        items.append(Item("fridge", "eggs", EGGS, 1))
    return items


def steady(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    dev = _fridge(rng)
    return _base(seed, [dev]), _fridge_items(dev)


def weekday(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    dev = _fridge(rng, eggs=False, weekday_factors=[0.5, 0.5, 0.6, 0.6, 0.9, 2.0, 1.9])
    dev["people"] = rng.randint(2, 4)
    return _base(seed, [dev]), _fridge_items(dev, eggs=False)


def vacations(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    away = []
    for first in (50, 170, 290):
        begin = first + rng.randint(0, 30)
        away.append({"start": _day(begin), "end": _day(begin + rng.randint(5, 16))})
    dev = _fridge(rng)
    return _base(seed, [dev], away=away), _fridge_items(dev)


def step_change(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    changes = [{"at": _day(rng.randint(80, 140)), "factor": rng.choice([1.8, 2.2])},
               {"at": _day(rng.randint(200, 260)), "factor": rng.choice([0.4, 0.5])}]
    dev = _fridge(rng)
    dev["people"] = rng.randint(1, 2)  # doubled use must still fit the fridge shelf
    return _base(seed, [dev], usage_change=changes), _fridge_items(dev)


def spikes(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    dev = _fridge(rng, eggs=False, lift_prob=0.08, noise_grams=12.0)
    return _base(seed, [dev]), _fridge_items(dev, eggs=False)


def household_refills(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    dev = _fridge(rng, eggs=False)
    dev["people"] = rng.randint(3, 4)
    dev["milk"]["refill"] = {"mode": "every", "every_days": rng.choice([6, 8, 10]), "packs": 1}
    return _base(seed, [dev]), _fridge_items(dev, eggs=False)


def _printer(rng: random.Random, profile: str) -> dict[str, Any]:
    return {"id": "printer", "kind": "printer", "profile": profile,
            "pages_per_day": rng.uniform(10.0, 24.0),
            "weekday_factors": [1.2, 1.2, 1.2, 1.2, 1.2, 0.5, 0.5],
            "toner": {"sku": "TONER-X", "yield_pages": 2000, "initial": rng.uniform(30, 90)}}


def printer_steps10(seed: int) -> tuple[dict[str, Any], list[Item]]:
    # The declared yield is withheld: the agent must work from the 10 % steps alone.
    rng = random.Random(seed)
    return (_base(seed, [_printer(rng, "steps10")]),
            [Item("printer", "toner", _toner(declared_yield=False), 1)])


def printer_low_only(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    return (_base(seed, [_printer(rng, "low_only")]),
            [Item("printer", "toner", _toner(declared_yield=True), 1)])


def sparse_sync(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    dev = _fridge(rng, link={"sync_every_hours": 48.0, "offline_prob_per_day": 0.03,
                             "offline_days": [2.0, 5.0]})
    return _base(seed, [dev]), _fridge_items(dev)


def cgm(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    dev = {"id": "cgm", "kind": "wearable", "early_failure_rate": 0.12,
           "sensors": {"sku": "CGM-3", "initial": rng.randint(2, 6)}}
    return (_base(seed, [dev], lead_time={"mean_days": 3.0, "sd_days": 1.0}),
            [Item("cgm", "sensors", SENSORS, 1)])


def variable_lead(seed: int) -> tuple[dict[str, Any], list[Item]]:
    rng = random.Random(seed)
    fridge = _fridge(rng, eggs=False)
    fridge["people"] = rng.randint(1, 2)
    devices = [fridge, _printer(rng, "sleepy")]
    items = [*_fridge_items(fridge, eggs=False), Item("printer", "toner", _toner(True), 1)]
    return _base(seed, devices, lead_time={"mean_days": 4.0, "sd_days": 2.5}), items


FAMILIES: list[Family] = [
    Family("steady", "milk and eggs, flat weekdays", steady),
    Family("weekday", "milk, weekend use 3-4x weekdays", weekday),
    Family("vacations", "milk and eggs, three trips away a year", vacations),
    Family("step_change", "milk and eggs, use doubles then halves", step_change),
    Family("spikes", "milk, 8 % of readings are a lifted jug (zero)", spikes),
    Family("household_refills", "milk, household also shops every 6-10 days", household_refills),
    Family("printer_steps10", "toner in 10 % steps, no declared yield", printer_steps10),
    Family("printer_low_only", "toner as LOW only, page counter x yield", printer_low_only),
    Family("sparse_sync", "milk and eggs, sync every 48 h and offline spells", sparse_sync),
    Family("cgm", "CGM sensor box, 12 % early failures", cgm),
    Family("variable_lead", "milk and a sleepy printer, lead time 4 +- 2.5 days", variable_lead),
]
