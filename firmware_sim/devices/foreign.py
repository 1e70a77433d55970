"""Devices that speak other projects' formats, for tests and demos of the foreign sources.

- :class:`Zigbee2MqttBridge`: N battery sensors behind a bridge, as Zigbee2MQTT 2.x
  publishes them (https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html):
  the retained ``zigbee2mqtt/bridge/devices`` list (coordinator, a mains router and the
  battery end devices), ``zigbee2mqtt/<name>`` state JSON (``battery``, ``voltage``,
  ``battery_low``, ``linkquality``), ``zigbee2mqtt/<name>/availability``, and its Home
  Assistant discovery configs
  (https://www.zigbee2mqtt.io/guide/usage/integrations/home_assistant.html).
- :func:`valetudo_configs`: a Valetudo robot's consumables as its HA discovery announces
  them (``ConsumableMonitoringCapability``, minutes or percent remaining;
  https://valetudo.cloud/pages/integrations/mqtt.html and
  https://valetudo.cloud/pages/integrations/home-assistant-integration.html).
- :func:`load_cell_config`: an ESPHome HX711 load cell announced by discovery with
  abbreviated keys and ``~`` (https://esphome.io/components/mqtt.html).

Only payloads here; :class:`ForeignPublisher` sends them over a real broker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

# (model, vendor, description, cell) of battery sensors in the agent's bundled table.
SENSOR_MODELS = [
    ("WSDCGQ11LM", "Aqara", "Temperature, humidity and pressure sensor", "CR2032"),
    ("SNZB-02", "SONOFF", "Temperature and humidity sensor", "CR2450"),
    ("MCCGQ11LM", "Aqara", "Door and window sensor", "CR1632"),
]
# Zigbee2MQTT's converters set battery_low below this (and households act on it).
BATTERY_LOW = 20


@dataclass
class SimSensor:
    ieee: str
    friendly_name: str
    model: str
    vendor: str
    description: str
    battery: float = 100.0
    drain_per_day: float = 0.3
    cell: str = "CR2032"
    replaced: int = 0  # cells the household put in
    died: int = 0  # times it ran flat

    def state(self) -> dict[str, Any]:
        level = max(0, round(self.battery))
        # CR2032/CR2450 cells: ~3.0 V full, ~2.5 V when Zigbee2MQTT's converters say 0 %.
        return {"battery": level, "voltage": int(2500 + 5 * level),
                "battery_low": level < BATTERY_LOW, "linkquality": 120,
                "temperature": 21.4, "humidity": 48.2}


@dataclass
class Zigbee2MqttBridge:
    """A bridge with ``n`` battery sensors; ``prefix`` is Zigbee2MQTT's base topic."""

    n: int = 20
    prefix: str = "zigbee2mqtt"
    discovery_prefix: str = "homeassistant"
    sensors: list[SimSensor] = field(default_factory=list)
    # Cells the household has in the drawer, by type (deliveries go here).
    shelf: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sensors:
            for i in range(self.n):
                model, vendor, desc, cell = SENSOR_MODELS[i % len(SENSOR_MODELS)]
                self.sensors.append(SimSensor(
                    f"0x00158d0001{i:06x}", f"sensor_{i:02d}", model, vendor, desc,
                    battery=100.0 - 3 * i, drain_per_day=0.25 + 0.01 * (i % 7), cell=cell))

    @classmethod
    def staggered(cls, n: int = 20) -> Zigbee2MqttBridge:
        """A household's sensors bought over the years: cells from 18 % to full, lasting
        200 to 400 days, so replacements fall due all through a year."""
        bridge = cls(n=n)
        for i, s in enumerate(bridge.sensors):
            s.battery = 18.0 + 82.0 * ((i * 7) % n) / n
            s.drain_per_day = 100.0 / (200 + (i * 53) % 200)
        return bridge

    def replace_low(self) -> list[SimSensor]:
        """The household puts a cell from the drawer into every device that says
        battery_low (lowest first); returns the devices that got one."""
        done = []
        for s in sorted(self.sensors, key=lambda x: x.battery):
            if s.battery < BATTERY_LOW and self.shelf.get(s.cell, 0) > 0:
                self.shelf[s.cell] -= 1
                s.battery, s.replaced = 100.0, s.replaced + 1
                done.append(s)
        return done

    def devices(self) -> list[dict[str, Any]]:
        """The ``bridge/devices`` payload."""
        out: list[dict[str, Any]] = [
            {"ieee_address": "0x00124b0012345678", "type": "Coordinator",
             "network_address": 0, "friendly_name": "Coordinator", "supported": True,
             "disabled": False, "interview_completed": True, "definition": None,
             "power_source": None},
            {"ieee_address": "0x000d6ffffe123456", "type": "Router", "network_address": 4321,
             "friendly_name": "hallway_plug", "power_source": "Mains (single phase)",
             "supported": True, "interview_completed": True, "disabled": False,
             "definition": {"model": "E1603/E1702/E1708", "vendor": "IKEA",
                            "description": "TRADFRI control outlet"}},
        ]
        for k, s in enumerate(self.sensors):
            out.append({
                "ieee_address": s.ieee, "type": "EndDevice", "network_address": 1000 + k,
                "friendly_name": s.friendly_name, "power_source": "Battery",
                "model_id": "lumi.weather", "manufacturer": s.vendor, "supported": True,
                "disabled": False, "interview_completed": True, "interviewing": False,
                "definition": {"model": s.model, "vendor": s.vendor,
                               "description": s.description, "exposes": [], "options": []},
            })
        return out

    def discovery(self, s: SimSensor) -> tuple[str, dict[str, Any]]:
        topic = f"{self.discovery_prefix}/sensor/{s.ieee}/battery/config"
        return topic, {
            "availability": [{"topic": f"{self.prefix}/bridge/state",
                              "value_template": "{{ value_json.state }}"}],
            "device": {"identifiers": [f"zigbee2mqtt_{s.ieee}"], "manufacturer": s.vendor,
                       "model": f"{s.description} ({s.model})", "name": s.friendly_name},
            "device_class": "battery", "entity_category": "diagnostic",
            "object_id": f"{s.friendly_name}_battery", "origin": {"name": "Zigbee2MQTT"},
            "state_class": "measurement", "state_topic": f"{self.prefix}/{s.friendly_name}",
            "unique_id": f"{s.ieee}_battery_zigbee2mqtt", "unit_of_measurement": "%",
            "value_template": "{{ value_json.battery }}",
        }

    def day(self, days: float = 1.0) -> None:
        for s in self.sensors:
            was = s.battery
            s.battery = max(0.0, s.battery - s.drain_per_day * days)
            s.died += was > 0 >= s.battery


def valetudo_configs(robot: str = "valetudo_robot", prefix: str = "valetudo",
                     discovery_prefix: str = "homeassistant"
                     ) -> list[tuple[str, dict[str, Any], str]]:
    """(config topic, config, state topic) of a robot's consumables."""
    device = {"ids": [robot], "name": "Robot", "mf": "Roborock", "mdl": "S5 Max",
              "sw": "Valetudo 2024.06.0"}
    out = []
    for kind, sub, unit in (("brush", "main", "min"), ("brush", "side_right", "min"),
                            ("filter", "main", "min"), ("mop", "main", "%")):
        obj = f"consumable_{kind}_{sub}"
        state = f"{prefix}/{robot}/ConsumableMonitoringCapability/{kind}-{sub}"
        out.append((f"{discovery_prefix}/sensor/{robot}/{robot}_{obj}/config", {
            "name": f"{sub.replace('_', ' ').title()} {kind} remaining",
            "uniq_id": f"{robot}_{obj}", "stat_t": state, "unit_of_meas": unit,
            "ic": "mdi:progress-wrench", "ent_cat": "diagnostic", "dev": device,
            "avty_t": f"{prefix}/{robot}/$state", "pl_avail": "ready", "pl_not_avail": "lost",
        }, state))
    return out


def load_cell_config(node: str = "coffee-scale", prefix: str = "esphome",
                     discovery_prefix: str = "homeassistant"
                     ) -> tuple[str, dict[str, Any], str]:
    base = f"{prefix}/{node}/sensor/coffee_beans"
    return (f"{discovery_prefix}/sensor/{node}/coffee_beans/config", {
        "~": base, "name": "Coffee beans", "stat_t": "~/state", "unit_of_meas": "kg",
        "dev_cla": "weight", "stat_cla": "measurement", "uniq_id": f"ESP{node}coffee_beans",
        "avty_t": f"{prefix}/{node}/status", "val_tpl": "{{ value | float }}",
        "dev": {"ids": "a4cf12b3c4d5", "name": node, "sw": "esphome v2024.6.1",
                "mdl": "esp32dev", "mf": "espressif"},
    }, f"{base}/state")


class ForeignPublisher:
    """A paho client publishing foreign payloads (as the foreign system would)."""

    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{username}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(username, password)
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str | dict[str, Any] | list[Any],
                retain: bool = False) -> None:
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
