"""A simulated year of 20 Zigbee battery sensors on a real Mosquitto, ordering from the
real sandbox over HTTP (firmware_sim/foreign_world.py, the approach of ``make demo``).

The household replaces a cell when its sensor says ``battery_low`` and the drawer has
one; the agent sees each replacement as a level jump. Every order is one per battery
type, with cells for every sensor of that type due within the 30-day window, in packs of
the configured size; no sensor ever runs flat.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from agent.storage.sources import SourceStore
from agent.storage.store import Store
from firmware_sim import demo_foreign
from firmware_sim.devices.foreign import Zigbee2MqttBridge
from firmware_sim.devices.valetudo import ValetudoRobot
from firmware_sim.foreign_world import CELLS, WEARER, ForeignWorld

pytestmark = pytest.mark.integration


def test_a_year_of_battery_sensors_one_order_per_type_in_time(tmp_path: Path) -> None:
    bridge = Zigbee2MqttBridge.staggered(20)
    # Twelve-hour steps keep it quick: the agent decides daily, the outbox sends twice a day.
    with ForeignWorld(tmp_path / "world", bridge=bridge, step=timedelta(hours=12)) as w:
        w.adopt_bridge()
        w.publish_batteries()
        w.consent_batteries()
        for step in range(365 * 2):
            w.step(decide=step % 2 == 0)
        intents, orders = w.tally.intents, w.tally.orders

    assert sum(s.died for s in bridge.sensors) == 0, [
        (s.friendly_name, s.cell) for s in bridge.sensors if s.died]
    replaced = Counter(s.cell for s in bridge.sensors for _ in range(s.replaced))
    assert sum(replaced.values()) >= 20  # every sensor got at least one new cell
    per_type = Counter(c.split("/", 1)[1] for _, c, _, _ in intents)
    assert set(per_type) == set(CELLS)
    assert all(c.startswith("z2m-batteries/") for _, c, _, _ in intents)  # never per device
    for cell, n in per_type.items():
        assert n < replaced[cell], (cell, n, replaced[cell])  # consolidated, not one each
    for (_when, _consumable, packs, reason), drawer in zip(intents, w.tally.drawer,
                                                            strict=True):
        # "N CR2032 cells for M of K devices due within 30 days, S on the shelf: P pack(s)"
        cell = reason.split()[1]
        cells_due, shelf = int(reason.split()[0]), int(reason.split(", ")[1].split()[0])
        assert packs == max(1, math.ceil((cells_due - shelf) / CELLS[cell][1])), reason
        # The shelf is what the level jumps say: never more than the drawer really holds.
        assert shelf <= drawer.get(cell, 0), (reason, drawer)
        # ... and no order while the drawer already holds the cells that are due.
        assert drawer.get(cell, 0) < cells_due, (reason, drawer)
    assert max(int(r.split()[0]) for _, _, _, r in intents) >= 2  # one order, several due
    assert len(orders) == len(intents)  # every one was delivered within the year
    assert all(o.delivered_at is not None for o in orders)
    # No two orders of one type within the window: each covered what was due.
    for cell in CELLS:
        times = sorted(t for t, c, _, _ in intents if c.endswith("/" + cell))
        assert all(b - a >= timedelta(days=7) for a, b in zip(times, times[1:], strict=False))


def test_a_valetudo_robot_without_discovery_gets_its_parts_in_time(tmp_path: Path) -> None:
    """Valetudo's own consumable topics (seconds left, or percent with $unit %), no Home
    Assistant discovery: brushes, filter and mop pad are each ordered and fitted before
    they wear out, over four simulated months."""
    robot = ValetudoRobot()
    with ForeignWorld(tmp_path / "world", robot=robot) as w:
        w.start_robot()
        with SourceStore(w.service.settings.storage.path) as db:
            assert not db.entities()  # nothing came through discovery
        for step in range(120 * 4):
            w.step(decide=step % 4 == 0)
        intents = w.tally.intents
        with Store(w.service.settings.storage.path) as store:
            units = {r.consumable_id: (r.unit, r.capacity, r.sku)
                     for r in store.consumables(counts=False)}
    assert units["brush-main"] == ("days", 12.5, "ROBOROCK-MAIN-BRUSH")  # 300 h of running
    assert units["mop"] == ("percent", 100.0, "ROBOROCK-MOP-PAD")
    assert {p.id for p in robot.parts if p.replaced} == {p.id for p in robot.parts}
    assert all(p.worn_out == 0 for p in robot.parts), [(p.id, p.left) for p in robot.parts]
    ordered = Counter(c.split("/", 1)[1] for _, c, _, _ in intents)
    # One order per wear-out: each fitted, at most the next one on its way (the filter
    # lasts 100 days at 1.5 h a day, so its second is due within the four months).
    assert all(ordered[p.id] - p.replaced in (0, 1) for p in robot.parts), ordered
    assert all(packs == 1 for _, _, packs, _ in intents)  # one part, not a pack per day left


def test_a_nightscout_wearer_orders_sensors_insulin_and_batteries_in_time(
        tmp_path: Path) -> None:
    """Through the Nightscout fixture server over HTTP: CGM sensors by count and sensor
    life, insulin by units (a 1,000-unit vial fills the 200-unit reservoir five times),
    pump batteries (a 4-pack), ordered at the sandbox; the wearer never goes without."""
    with ForeignWorld(tmp_path / "world", wearer=True) as w:
        w.start_wearer()
        for step in range(60 * 4):
            w.step(decide=step % 4 == 0)
        wearer, intents, orders = w.wearer, w.tally.intents, w.tally.orders
    assert wearer is not None and not wearer.missed, (wearer.missed, wearer.drawer)
    assert wearer.changes["sensor"] >= 5 and wearer.changes["insulin"] >= 10
    assert wearer.changes["battery"] >= 1
    ordered = Counter(c.split("/", 1)[1] for _, c, _, _ in intents)
    assert set(ordered) == {"cgm-sensor", "insulin", "pump-battery"}, ordered
    packs = Counter()  # type: Counter[str]
    for _, c, n, _ in intents:
        packs[c.split("/", 1)[1]] += n
    # By count and life: about one sensor per 10 days, not one per day left.
    assert 5 <= packs["cgm-sensor"] <= 8, packs
    # 60 days at 42 U a day is ~2,500 units: three or four vials, not one per refill.
    assert 3 <= packs["insulin"] <= 4, packs
    assert packs["pump-battery"] == 1, packs  # a 4-pack lasts the two months
    assert {o.sku for o in orders} >= set(WEARER.values())


def test_the_foreign_demo_runs_and_summarises(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``make demo-foreign``, shortened: all three kinds of foreign device order."""
    assert demo_foreign.main(["--days", "12", "--state-dir", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "* z2m:0x00158d0001000000" in out  # adopted from the bridge's device list
    for consumable in ("z2m-batteries/CR2032", "valetudo-robot/brush-main",
                       "ns-nightscout/cgm-sensor"):
        assert "[agent] 2027-01-0" in out and consumable in out, consumable
    assert "sensors that ran flat 0" in out and "went without 0" in out
