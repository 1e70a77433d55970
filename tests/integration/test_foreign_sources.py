"""Foreign devices through the real Mosquitto: discovery, Zigbee2MQTT, Valetudo, a load cell.

Payload shapes come from the simulators in ``firmware_sim/devices/foreign.py``, each
citing the upstream page it follows. The agent's own paho connection (MqttIngest) reads
them through its ForeignRoute hook; readings land in the same SQLite store as device
readings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import Settings, load_settings
from agent.mqtt.ingest import ForeignRoute, MqttIngest
from agent.sources.reader import ForeignReader, adopt
from agent.storage.sources import SourceStore
from agent.storage.store import Store
from firmware_sim.broker import LocalBroker
from firmware_sim.devices.foreign import (
    ForeignPublisher,
    Zigbee2MqttBridge,
    load_cell_config,
    valetudo_configs,
)
from tests.integration.agent_harness import write_agent_config
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

# The foreign systems publish as their own broker account (their topics, never ours).
FOREIGN_ACL = """
user foreign
topic write zigbee2mqtt/#
topic write homeassistant/#
topic write valetudo/#
topic write esphome/#
"""


@pytest.fixture
def foreign_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    users = {"agent": "agent-pass", "household": "household-pass", "foreign": "foreign-pass"}
    with LocalBroker(tmp_path / "broker", users=users, extra_acl=FOREIGN_ACL) as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, foreign_broker: LocalBroker) -> Settings:
    return load_settings(write_agent_config(tmp_path / "agent", foreign_broker))


@pytest.fixture
def publisher(foreign_broker: LocalBroker) -> Iterator[ForeignPublisher]:
    pub = ForeignPublisher(foreign_broker.host, foreign_broker.port, "foreign", "foreign-pass")
    yield pub
    pub.close()


@pytest.fixture
def agent(settings: Settings) -> Iterator[tuple[MqttIngest, ForeignReader]]:
    Store(settings.storage.path).close()
    reader = ForeignReader(settings.sources, str(settings.storage.path))
    ingest = MqttIngest(settings.mqtt, settings.ingest, lambda: Store(settings.storage.path),
                        foreign=ForeignRoute(reader.topics, reader.wants, reader.deliver))
    reader.subscribe = ingest.subscribe_foreign
    ingest.start()
    yield ingest, reader
    ingest.stop()


def drain_until(reader: ForeignReader, check: Callable[[], object],
                timeout: float = 10.0) -> None:
    """``wait_until`` ``check()``, handing what the reader received to the store first each
    time (the running agent drains on a job of its own)."""

    def drained() -> object:
        reader.drain()
        return check()

    wait_until(drained, timeout=timeout, what="the drained readings to show it")


def subscribed(ingest: MqttIngest, refresh: Callable[[], object]) -> None:
    """Run ``refresh`` (new adoptions subscribe their topics), then wait for the broker's
    SUBACK: a message published before it would not be delivered."""
    before = ingest.subacks
    refresh()
    wait_until(lambda: ingest.subacks > before, timeout=10.0, what="the broker's SUBACK")


def entities(settings: Settings, source: str | None = None, removed: bool = False) -> dict:
    with SourceStore(settings.storage.path) as db:
        return {e.key: e for e in db.entities(source, include_removed=removed)}


def test_zigbee2mqtt_bridge_discovery_and_adopted_battery_readings(
        settings: Settings, publisher: ForeignPublisher,
        agent: tuple[MqttIngest, ForeignReader]) -> None:
    ingest, reader = agent
    bridge = Zigbee2MqttBridge(n=20)
    publisher.publish("zigbee2mqtt/bridge/devices", bridge.devices(), retain=True)
    for s in bridge.sensors:
        topic, cfg = bridge.discovery(s)
        publisher.publish(topic, cfg, retain=True)
    drain_until(reader, lambda: len(entities(settings, "z2m")) == 20
                and len(entities(settings, "ha")) == 20)
    z2m = entities(settings, "z2m")
    s0 = bridge.sensors[0]
    assert z2m[s0.ieee].battery_type == "CR2032" and z2m[s0.ieee].candidate
    assert "hallway_plug" not in {e.name for e in z2m.values()}  # mains-powered

    with SourceStore(settings.storage.path) as db:
        a = adopt(db, "z2m", s0.ieee, sku="CR2032-10", capacity=None, pack_size=10,
                  consumable_id=None, now=time.time())
    assert a.consumable_id == "CR2032"
    new: list[str] = []
    subscribed(ingest, lambda: new.extend(reader.refresh_adoptions()))
    assert new == ["zigbee2mqtt/sensor_00"] and new[0] in reader.topics()
    publisher.publish("zigbee2mqtt/sensor_00", s0.state())
    publisher.publish("zigbee2mqtt/sensor_00", b"{not json")
    publisher.publish("zigbee2mqtt/sensor_00", {"voltage": 2900})
    publisher.publish("zigbee2mqtt/sensor_00/availability", {"state": "offline"})

    def stored() -> bool:
        with Store(settings.storage.path) as st:
            return st.reading_count(a.device_id) == 1
    drain_until(reader, stored)
    with Store(settings.storage.path) as st:
        [c] = [c for c in st.consumables() if c.device_id == a.device_id]
    assert c.consumable_id == "CR2032" and c.sku == "CR2032-10"
    with SourceStore(settings.storage.path) as db:
        drain_until(reader, lambda: {(r.source, r.reason) for r in db.rejects()} >= {
            ("z2m", "not JSON"), ("z2m", "path missing")})
    drain_until(reader, lambda: entities(settings, "z2m")[s0.ieee].available is False)

    # Renamed in Zigbee2MQTT: same IEEE address, new topic; the adoption follows it.
    renamed = bridge.devices()
    renamed[2]["friendly_name"] = "bedroom_climate"
    publisher.publish("zigbee2mqtt/bridge/devices", renamed, retain=True)
    drain_until(reader, lambda: "zigbee2mqtt/bedroom_climate" in reader.topics())
    assert entities(settings, "z2m")[s0.ieee].state_topic == "zigbee2mqtt/bedroom_climate"
    # Removed from the bridge: no longer offered.
    publisher.publish("zigbee2mqtt/bridge/devices", renamed[:-1], retain=True)
    last = bridge.sensors[-1].ieee
    drain_until(reader, lambda: last not in entities(settings, "z2m"))
    assert entities(settings, "z2m", removed=True)[last].removed


def test_load_cell_valetudo_deleted_config_and_unsupported_template(
        settings: Settings, publisher: ForeignPublisher,
        agent: tuple[MqttIngest, ForeignReader]) -> None:
    ingest, reader = agent
    topic, cfg, state_topic = load_cell_config()
    publisher.publish(topic, cfg, retain=True)
    for vt, vcfg, _ in valetudo_configs():
        publisher.publish(vt, vcfg, retain=True)
    publisher.publish("homeassistant/sensor/pantry/flour/config", {
        "name": "Flour", "stat_t": "esphome/pantry/flour", "unit_of_meas": "g",
        "val_tpl": "{{ (value_json.raw - 8400) / 21.3 }}"}, retain=True)
    drain_until(reader, lambda: len(entities(settings, "ha")) == 6)
    ha = entities(settings, "ha")
    scale = ha["sensor/coffee-scale/coffee_beans"]
    assert (scale.unit, scale.factor, scale.state_topic) == ("grams", 1000.0, state_topic)
    assert ha["sensor/pantry/flour"].unsupported and not ha["sensor/pantry/flour"].candidate
    brush = ha["sensor/valetudo_robot/valetudo_robot_consumable_brush_main"]
    assert brush.unit == "days" and brush.candidate
    with SourceStore(settings.storage.path) as db, pytest.raises(Exception, match="cannot"):
        adopt(db, "ha", "sensor/pantry/flour", sku=None, capacity=None, pack_size=None,
              consumable_id=None, now=time.time())

    with SourceStore(settings.storage.path) as db:
        a = adopt(db, "ha", scale.key, sku="BEANS-1KG", capacity=1000.0, pack_size=1,
                  consumable_id="beans", now=time.time())
    subscribed(ingest, reader.refresh_adoptions)
    publisher.publish(state_topic, b"0.734")

    def stored() -> bool:
        with Store(settings.storage.path) as st:
            return st.reading_count(a.device_id) == 1
    drain_until(reader, stored)
    with Store(settings.storage.path) as st:
        [c] = [c for c in st.consumables() if c.device_id == a.device_id]
        assert abs(st.readings(c.cid)[-1].level - 734.0) < 1e-6

    # Valetudo: a consumable's remaining minutes (Homie property value) read as days.
    with SourceStore(settings.storage.path) as db:
        b = adopt(db, "ha", brush.key, sku="ROBOROCK-BRUSH", capacity=12.5, pack_size=1,
                  consumable_id="main-brush", now=time.time())
    subscribed(ingest, reader.refresh_adoptions)
    publisher.publish(brush.state_topic, b"9000")

    def brush_stored() -> bool:
        with Store(settings.storage.path) as st:
            return st.reading_count(b.device_id) == 1
    drain_until(reader, brush_stored)
    with Store(settings.storage.path) as st:
        [c] = [c for c in st.consumables() if c.device_id == b.device_id]
        assert c.unit == "days" and st.readings(c.cid)[-1].level == 6.25

    # A deleted discovery config (empty retained payload) removes the entity.
    publisher.publish(topic, b"", retain=True)
    drain_until(reader, lambda: scale.key not in entities(settings, "ha"))


def test_batteries_of_one_type_are_one_consumable_at_the_lowest_level(
        settings: Settings, publisher: ForeignPublisher,
        agent: tuple[MqttIngest, ForeignReader]) -> None:
    ingest, reader = agent
    bridge = Zigbee2MqttBridge(n=4)  # sensors 0 and 3: WSDCGQ11LM on CR2032
    publisher.publish("zigbee2mqtt/bridge/devices", bridge.devices(), retain=True)
    drain_until(reader, lambda: len(entities(settings, "z2m")) == 4)
    with SourceStore(settings.storage.path) as db:
        for s in (bridge.sensors[0], bridge.sensors[3]):
            adopt(db, "z2m", s.ieee, sku="CR2032-10", capacity=None, pack_size=10,
                  consumable_id=None, now=time.time())
    subscribed(ingest, reader.refresh_adoptions)
    for s in (bridge.sensors[0], bridge.sensors[3]):
        publisher.publish(f"zigbee2mqtt/{s.friendly_name}", s.state())

    def group_level() -> float | None:
        with Store(settings.storage.path) as st:
            rows = [c for c in st.consumables() if c.device_id == "z2m-batteries"]
            return st.readings(rows[0].cid)[-1].level if rows else None
    drain_until(reader, lambda: group_level() == 91.0)  # 100 % and 91 %: the lowest
    with Store(settings.storage.path) as st:
        [c] = [c for c in st.consumables() if c.device_id == "z2m-batteries"]
    assert (c.consumable_id, c.sku) == ("CR2032", "CR2032-10")
