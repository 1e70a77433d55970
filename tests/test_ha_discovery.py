"""HA discovery configs and the safe value_template subset (pure parsing).

Payload shapes: Home Assistant's MQTT discovery docs
(https://www.home-assistant.io/integrations/mqtt/#discovery-payload, abbreviations and
``~``), the battery config Zigbee2MQTT publishes
(https://www.zigbee2mqtt.io/guide/usage/integrations/home_assistant.html) and an ESPHome
HX711 load cell (https://esphome.io/components/sensor/hx711.html with
https://esphome.io/components/mqtt.html discovery).
"""

from __future__ import annotations

import json

import pytest

from agent.domain import Unit
from agent.errors import PayloadError
from agent.sources.ha_discovery.config import parse_config, parse_topic
from agent.sources.ha_discovery.template import UnsupportedTemplate, parse_template

Z2M_BATTERY = {
    "availability": [{"topic": "zigbee2mqtt/bridge/state",
                      "value_template": "{{ value_json.state }}"}],
    "device": {"identifiers": ["zigbee2mqtt_0x00158d0001a2b3c4"], "manufacturer": "Aqara",
               "model": "Temperature and humidity sensor (WSDCGQ11LM)",
               "name": "living_room_climate",
               "via_device": "zigbee2mqtt_bridge_0x00124b0012345678"},
    "device_class": "battery", "enabled_by_default": True, "entity_category": "diagnostic",
    "object_id": "living_room_climate_battery", "origin": {"name": "Zigbee2MQTT"},
    "state_class": "measurement", "state_topic": "zigbee2mqtt/living_room_climate",
    "unique_id": "0x00158d0001a2b3c4_battery_zigbee2mqtt", "unit_of_measurement": "%",
    "value_template": "{{ value_json.battery }}",
}
ESPHOME_SCALE_ABBREVIATED = {
    "~": "coffee-scale/sensor/coffee_beans", "name": "Coffee beans",
    "stat_t": "~/state", "avty_t": "coffee-scale/status", "unit_of_meas": "g",
    "dev_cla": "weight", "stat_cla": "measurement", "uniq_id": "ESPsensorcoffee_beans",
    "dev": {"ids": "a4cf12b3c4d5", "name": "coffee-scale", "sw": "esphome v2024.6.1",
            "mdl": "esp32dev", "mf": "espressif"},
}


def test_topic_with_and_without_node_id() -> None:
    assert parse_topic("homeassistant/sensor/0x00158d/battery/config", "homeassistant").key \
        == "sensor/0x00158d/battery"
    assert parse_topic("homeassistant/sensor/scale_beans/config", "homeassistant").key \
        == "sensor/scale_beans"
    for other in ("homeassistant/status", "homeassistant/sensor/a/b/c/config",
                  "other/sensor/a/config", "homeassistant/sensor/a/state"):
        assert parse_topic(other, "homeassistant") is None


def test_zigbee2mqtt_battery_config_is_a_candidate() -> None:
    topic = parse_topic("homeassistant/sensor/0x00158d0001a2b3c4/battery/config",
                        "homeassistant")
    assert topic is not None
    ent = parse_config(topic, json.dumps(Z2M_BATTERY).encode())
    assert ent is not None and ent.candidate and ent.unit == Unit.PERCENT
    assert ent.state_topic == "zigbee2mqtt/living_room_climate"
    assert ent.availability_topic == "zigbee2mqtt/bridge/state"
    assert ent.model == "Temperature and humidity sensor (WSDCGQ11LM)"
    assert parse_template(ent.value_template).number(b'{"battery": 87, "voltage": 2995}') == 87


def test_abbreviations_and_tilde_are_expanded_kg_and_litres_scale() -> None:
    topic = parse_topic("homeassistant/sensor/coffee-scale/coffee_beans/config", "homeassistant")
    assert topic is not None
    ent = parse_config(topic, json.dumps(ESPHOME_SCALE_ABBREVIATED).encode())
    assert ent is not None and ent.candidate
    assert ent.state_topic == "coffee-scale/sensor/coffee_beans/state"
    assert ent.availability_topic == "coffee-scale/status"
    assert (ent.unit, ent.factor, ent.unique_id) == (Unit.GRAMS, 1.0, "ESPsensorcoffee_beans")
    assert ent.manufacturer == "espressif" and ent.name == "coffee-scale Coffee beans"
    kg = parse_config(topic, json.dumps({**ESPHOME_SCALE_ABBREVIATED,
                                         "unit_of_meas": "kg"}).encode())
    assert kg is not None and (kg.unit, kg.factor) == (Unit.GRAMS, 1000.0)
    water = parse_config(topic, json.dumps({**ESPHOME_SCALE_ABBREVIATED, "name": "Water",
                                            "unit_of_meas": "L"}).encode())
    assert water is not None and (water.unit, water.factor) == (Unit.MILLILITRES, 1000.0)


def test_remaining_minutes_count_but_uptime_and_temperature_do_not() -> None:
    topic = parse_topic("homeassistant/sensor/robot/main_brush/config", "homeassistant")
    assert topic is not None
    brush = parse_config(topic, json.dumps({"name": "Main brush remaining",
                                            "stat_t": "valetudo/robot/x", "unit_of_meas": "min"}
                                           ).encode())
    assert brush is not None and brush.unit == Unit.DAYS and brush.factor == 1 / 1440
    for cfg in ({"name": "Uptime", "stat_t": "a/b", "unit_of_meas": "min"},
                {"name": "Temperature", "stat_t": "a/b", "unit_of_meas": "°C"}):
        ent = parse_config(topic, json.dumps(cfg).encode())
        assert ent is not None and not ent.candidate


def test_empty_payload_removes_and_broken_configs_have_reasons() -> None:
    topic = parse_topic("homeassistant/sensor/n/o/config", "homeassistant")
    assert topic is not None
    assert parse_config(topic, b"") is None
    for payload, reason in ((b"{not json", "not JSON"), (b"[1]", "not an object"),
                            (b'{"name": "x"}', "state_topic"),
                            (b'{"stat_t": "zigbee2mqtt/+"}', "state_topic")):
        with pytest.raises(PayloadError, match=reason):
            parse_config(topic, payload)


@pytest.mark.parametrize(("template", "payload", "number"), [
    ("{{ value }}", b"42.5", 42.5),
    ("{{ value | float }}", b" 7 ", 7.0),
    ("{{ value_json.battery }}", b'{"battery": 87}', 87),
    ("{{ value_json.a.b }}", b'{"a": {"b": 3}}', 3),
    ("{{ value_json['remaining']['value'] | int }}", b'{"remaining": {"value": 9.7}}', 9),
    ('{{ value_json["levels"][1] | round(1) }}', b'{"levels": [1, 2.345]}', 2.3),
    ("{{ (value_json.x) }}", None, None),
])
def test_supported_templates(template: str, payload: bytes | None, number: float | None) -> None:
    if payload is None:
        with pytest.raises(UnsupportedTemplate):
            parse_template(template)
        return
    assert parse_template(template).number(payload) == number


@pytest.mark.parametrize("template", [
    "{{ value_json.battery * 100 }}", "{{ states('sensor.x') }}",
    "{% if value_json.a %}1{% endif %}", "{{ value_json.a | default(0) }}",
    "{{ value }} and {{ value }}",
    "{{ value_json.a | float | multiply(2) }}", "battery: {{ value }}",
])
def test_anything_else_is_unsupported_never_evaluated(template: str) -> None:
    with pytest.raises(UnsupportedTemplate):
        parse_template(template)


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"voltage": 2900}', "path missing"), (b"online", "not JSON"),
    (b'{"battery": null}', "not a number"), (b'{"battery": "NaN"}', "not a number"),
    (b'{"battery": true}', "not a number"), (b"\xff\xfe", "not UTF-8"),
])
def test_payloads_that_do_not_parse_have_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_template("{{ value_json.battery }}").number(payload)


def test_attribute_names_are_only_ever_dictionary_keys() -> None:
    tpl = parse_template("{{ value_json.__class__.__mro__ }}")
    with pytest.raises(PayloadError, match="path missing"):
        tpl.number(b'{"battery": 1}')
