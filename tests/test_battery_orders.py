"""20 Zigbee battery sensors: one order per battery type, before its first cell dies,
with cells for every sensor of that type due within the window (packs of 4 here).

The simulated bridge (firmware_sim/devices/foreign.py) drains 20 sensors on three cell
types; the foreign reader turns their reports into per-type consumables
(``z2m-batteries/<type>``) in a real SQLite file, and the real planner decides daily.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agent.app.batteries import BatteryPlans
from agent.app.planner import Planner
from agent.config import BatterySkuSettings, SourcesSettings, Zigbee2MqttSettings
from agent.consent import Mandate, Mode
from agent.sources.reader import ForeignReader, adopt
from agent.storage.ledger import Ledger
from agent.storage.sources import SourceStore
from agent.storage.store import Store
from firmware_sim.devices.foreign import Zigbee2MqttBridge
from tests.vendor_fake import CATALOG, T0, FakeVendor

SKUS = {"CR2032": "CELL-CR2032-10", "CR2450": "CELL-CR2450-10", "CR1632": "CELL-CR1632-5"}


def test_one_order_per_battery_type_before_the_first_sensor_dies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for cell, sku in SKUS.items():
        monkeypatch.setitem(CATALOG, sku, {
            "name": f"{cell} cells", "price": "6.90", "pack_size": 1, "unit": "pack",
            "lead_time_days": 2.0, "lead_time_sd_days": 0.5, "substitutes": []})
    db = tmp_path / "agent.db"
    store, ledger, vendor = Store(db), Ledger.open(db), FakeVendor()
    now = [T0]
    reader = ForeignReader(SourcesSettings(), str(db), clock=lambda: now[0].timestamp())
    bridge = Zigbee2MqttBridge(n=20)
    for s in bridge.sensors:  # half-used cells (50 % .. 21.5 %): the first dies in ~70 days
        s.battery /= 2
    reader.deliver("zigbee2mqtt/bridge/devices", json.dumps(
        bridge.devices()).encode(), True)
    reader.drain()
    with SourceStore(db) as sdb:
        for s in bridge.sensors:
            e = sdb.entity("z2m", s.ieee)
            assert e is not None and e.battery_type in SKUS
            adopt(sdb, "z2m", s.ieee, sku=SKUS[e.battery_type], capacity=None, pack_size=10,
                  consumable_id=None, now=now[0].timestamp())
        cells = {e.key: e.battery_type for e in sdb.entities("z2m")}
    reader.refresh_adoptions()
    for cell, sku in SKUS.items():
        ledger.set_consent(f"z2m-batteries/{cell}", Mode.AUTO, Mandate(
            skus=(sku,), max_unit_price=Decimal("10"), max_quantity=2,
            monthly_budget=Decimal("30")), T0)
    z2m = Zigbee2MqttSettings(battery_skus={c: BatterySkuSettings(sku=k, pack_size=4)
                                            for c, k in SKUS.items()})
    planner = Planner(store, ledger, vendor.client().catalog, vendor_name="shop",
                      adjust=BatteryPlans(db, z2m))

    ordered: dict[str, tuple[int, float]] = {}  # cell -> (day, lowest level then)
    died: dict[str, int] = {}
    for day in range(220):
        now[0] = T0 + timedelta(days=day)
        for s in bridge.sensors:
            reader.deliver(f"zigbee2mqtt/{s.friendly_name}",
                           json.dumps(s.state()).encode(), False)
        reader.drain()
        planner.run_once(now[0] + timedelta(hours=1))
        for it in ledger.intents():
            cell = it.consumable.split("/", 1)[1]
            if cell not in ordered:
                low = min(s.battery for s in bridge.sensors if cells[s.ieee] == cell)
                ordered[cell] = (day, low)
        for s in bridge.sensors:
            if s.battery <= 0 and cells[s.ieee] not in died:
                died[cells[s.ieee]] = day
        bridge.day()
        if len(ordered) == 3:
            break

    intents = ledger.intents()
    assert sorted(it.consumable for it in intents) == sorted(
        f"z2m-batteries/{c}" for c in SKUS)  # one per type, none per device
    assert {it.sku for it in intents} == set(SKUS.values())
    for cell, (day, low) in ordered.items():
        assert cell not in died or died[cell] > day + 2, (cell, day, died)
        assert 0 < low < 25, (cell, low)  # in time, but not absurdly early
    for it in intents:  # packs of 4 cells, enough for every sensor due within 30 days
        due = int((it.reason or "").split()[0])
        assert due >= 1 and it.quantity == -(-due // 4), it.reason
    ledger.close()
    store.close()


def test_battery_skus_name_the_product_and_bad_ones_are_refused(tmp_path: Path) -> None:
    z2m = Zigbee2MqttSettings(battery_skus={"CR2032": {"sku": "CR2032-10", "pack_size": 10}})
    assert z2m.battery_skus["CR2032"].pack_size == 10 and z2m.battery_window_days == 30
    for bad in ({"CR2032": {"sku": "no spaces", "pack_size": 10}},
                {"CR2032": {"sku": "CR2032-10", "pack_size": 0}}):
        with pytest.raises(ValueError):
            Zigbee2MqttSettings(battery_skus=bad)
    db = tmp_path / "agent.db"
    reader = ForeignReader(SourcesSettings(zigbee2mqtt=z2m), str(db), clock=lambda: T0.timestamp())
    bridge = Zigbee2MqttBridge(n=3)
    reader.deliver("zigbee2mqtt/bridge/devices", json.dumps(bridge.devices()).encode(), True)
    reader.drain()
    with SourceStore(db) as sdb:
        a = adopt(sdb, "z2m", bridge.sensors[0].ieee, sku=None, capacity=None, pack_size=None,
                  consumable_id=None, now=T0.timestamp(), battery_skus=z2m.battery_skus)
        assert (a.consumable_id, a.sku) == ("CR2032", "CR2032-10")
        other = adopt(sdb, "z2m", bridge.sensors[1].ieee, sku=None, capacity=None,
                      pack_size=None, consumable_id=None, now=T0.timestamp(),
                      battery_skus=z2m.battery_skus)
        assert (other.consumable_id, other.sku) == ("CR2450", None)  # not configured
