"""The foreign reader's routing and explicit mappings, on a real SQLite file (no broker)."""

from __future__ import annotations

from pathlib import Path

from agent.config import ButtonSettings, MappingSettings, SourcesSettings
from agent.sources.reader import ForeignReader, synthetic_device_id
from agent.storage.sources import SourceStore
from agent.storage.store import Store


def reader(tmp_path: Path, **kw: object) -> ForeignReader:
    db = tmp_path / "agent.db"
    Store(db).close()
    return ForeignReader(SourcesSettings(**kw), str(db), clock=lambda: 1_796_000_000.0)  # type: ignore[arg-type]


def test_mapping_without_discovery_reads_a_tasmota_scale(tmp_path: Path) -> None:
    # Tasmota's HX711 sensor publishes tele/<topic>/SENSOR {"HX711":{"WeightRaw":..,
    # "Weight":..}} (https://tasmota.github.io/docs/HX711-Load-Cell/), in kg by default.
    r = reader(tmp_path, mappings=[MappingSettings(
        name="petfood", topic="tele/+/SENSOR", value_template="{{ value_json.HX711.Weight }}",
        unit="kg", consumable_id="kibble", sku="KIBBLE-4KG", capacity=4000)])
    assert r.wants("tele/petscale/SENSOR") and not r.wants("tele/petscale/STATE")
    r.deliver("tele/petscale/SENSOR", b'{"Time":"2026-12-01T10:00:00","HX711":{"Weight":2.5}}',
              False)
    r.deliver("tele/petscale/SENSOR", b'{"HX711":{"Weight":9.0}}', False)  # 9 kg > 4 kg pack
    assert r.drain() == 2
    dev = synthetic_device_id("map", "petfood:tele/petscale/SENSOR")
    with Store(tmp_path / "agent.db") as st:
        [c] = [c for c in st.consumables() if c.device_id == dev]
        assert (c.consumable_id, c.unit, c.sku) == ("kibble", "grams", "KIBBLE-4KG")
        assert st.readings(c.cid)[-1].level == 2500.0
    with SourceStore(tmp_path / "agent.db") as db:
        assert [(x.source, x.reason, x.count) for x in db.rejects()] == [
            ("map", "implausible level", 1)]


def test_household_and_device_topics_are_not_taken(tmp_path: Path) -> None:
    r = reader(tmp_path)
    assert r.wants("homeassistant/sensor/node/obj/config")
    assert r.wants("zigbee2mqtt/bridge/devices")
    for topic in ("homeassistant/status", "replenish/v1/household/commands/approve",
                  "replenish/v1/devices/fridge-1/state", "zigbee2mqtt/sensor_00"):
        assert not r.wants(topic)
    # The agent's own discovery configs are not foreign entities.
    r.deliver("homeassistant/sensor/replenish_fridge_1_ab12cd34/milk_level/config",
              b'{"stat_t": "replenish/v1/household/state/x", "unit_of_meas": "%"}', True)
    r.drain()
    with SourceStore(tmp_path / "agent.db") as db:
        assert db.entities() == []


def test_a_full_queue_drops_and_counts_instead_of_blocking_paho(tmp_path: Path) -> None:
    r = reader(tmp_path)
    for _ in range(10_005):
        r.deliver("zigbee2mqtt/x/availability", b"online", False)
    assert r.dropped == 5


def test_sources_cli_lists_adopts_and_drops(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from agent.cli.main import main

    r = reader(tmp_path)
    r.deliver("homeassistant/sensor/coffee-scale/coffee_beans/config",
              b'{"name": "Coffee beans", "stat_t": "esphome/coffee-scale/beans", '
              b'"unit_of_meas": "g"}', True)
    r.deliver("homeassistant/sensor/pantry/flour/config",
              b'{"name": "Flour", "stat_t": "esphome/pantry/flour", "unit_of_meas": "g", '
              b'"val_tpl": "{{ value_json.raw / 21.3 }}"}', True)
    r.drain()
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "agent.db"}"\n')

    def cli(*argv: str) -> tuple[int, str]:
        code = main(["--config", str(config), *argv])
        return code, capsys.readouterr().out

    import json
    rows = {r["entity"]: r for r in json.loads(cli("sources", "list", "--json")[1])}
    assert rows["ha:sensor/coffee-scale/coffee_beans"]["candidate"]
    assert "unsupported" in rows["ha:sensor/pantry/flour"]["unsupported"]
    code, out = cli("sources", "adopt", "ha:sensor/coffee-scale/coffee_beans", "--sku",
                    "BEANS-1KG", "--capacity", "1000", "--pack-size", "1")
    assert code == 0 and "adopted" in out
    assert cli("sources", "adopt", "ha:sensor/pantry/flour")[0] != 0
    assert cli("sources", "adopt", "nonsense")[0] != 0
    assert json.loads(cli("sources", "list", "--json")[1])[0]["adopted"]
    assert cli("sources", "drop", "ha:sensor/coffee-scale/coffee_beans")[0] == 0
    assert cli("sources", "drop", "ha:sensor/coffee-scale/coffee_beans")[0] != 0


def test_a_mapped_button_press_becomes_order_now_once_and_retained_presses_never(
        tmp_path: Path) -> None:
    # Zigbee2MQTT publishes a button's press as {"action": "single"} on its own topic
    # (https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html).
    button = ButtonSettings(topic="zigbee2mqtt/Kitchen button",
                            value_template="{{ value_json.action }}", press="single",
                            order_now="fridge-1/milk", quantity=2)
    r = reader(tmp_path, buttons=[button])
    assert r.wants("zigbee2mqtt/Kitchen button")
    r.deliver("zigbee2mqtt/Kitchen button", b'{"action": "single", "battery": 90}', False)
    r.deliver("zigbee2mqtt/Kitchen button", b'{"action": "double"}', False)
    r.deliver("zigbee2mqtt/Kitchen button", b'{"action": "single"}', True)  # retained
    r.drain()
    assert r.take_presses() == [("fridge-1/milk", 2, "zigbee2mqtt/Kitchen button")]
    assert r.take_presses() == []
