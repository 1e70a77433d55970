"""The retained ``zigbee2mqtt/bridge/devices`` list and per-device messages.

Shapes from https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html:
``bridge/devices`` is a retained JSON array of devices with ``ieee_address``,
``friendly_name``, ``type`` (Coordinator, Router, EndDevice), ``power_source``
("Battery", "Mains (single phase)", ...) and ``definition`` (``model``, ``vendor``,
``description``; null while unsupported or interviewing); a device publishes its state as
JSON on ``zigbee2mqtt/<friendly_name>`` (``battery`` 0-100, ``voltage`` in mV,
``battery_low``), and with availability enabled ``zigbee2mqtt/<friendly_name>/availability``
carries ``{"state":"online"}`` or ``{"state":"offline"}`` (plain ``online``/``offline``
before 2.0).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.domain import Unit
from agent.errors import PayloadError
from agent.sources.zigbee2mqtt.batteries import battery_type

SOURCE = "z2m"
BATTERY_TEMPLATE = "{{ value_json.battery }}"


@dataclass(slots=True, frozen=True)
class BridgeDevice:
    ieee: str
    friendly_name: str
    model: str | None
    vendor: str | None
    description: str | None
    battery_type: str | None


def parse_devices(payload: bytes, overrides: Mapping[str, str]) -> list[BridgeDevice]:
    """The battery-powered devices of a ``bridge/devices`` message."""
    try:
        raw = json.loads(payload)
    except ValueError:
        raise PayloadError("bridge/devices not JSON") from None
    if not isinstance(raw, list):
        raise PayloadError("bridge/devices not a list")
    out = []
    for dev in raw:
        if not isinstance(dev, dict) or dev.get("power_source") != "Battery":
            continue
        ieee, name = dev.get("ieee_address"), dev.get("friendly_name")
        if not isinstance(ieee, str) or not isinstance(name, str) or not name:
            continue
        # Foreign JSON (the bridge's device list): each value is narrowed where read.
        definition: dict[str, Any] = (dev["definition"] if isinstance(dev.get("definition"), dict)
                                      else {})
        model = definition.get("model") if isinstance(definition.get("model"), str) else None
        out.append(BridgeDevice(ieee, name, model, _s(definition.get("vendor")),
                                _s(definition.get("description")),
                                battery_type(model, name, ieee, overrides)))
    return out


def parse_availability(payload: bytes) -> bool:
    text = payload.decode("utf-8", "replace").strip()
    if text in ("online", "offline"):
        return text == "online"
    try:
        state = json.loads(text).get("state")
    except (ValueError, AttributeError):
        raise PayloadError("availability not understood") from None
    if state not in ("online", "offline"):
        raise PayloadError("availability not understood")
    return bool(state == "online")


def entity_fields(dev: BridgeDevice, prefix: str) -> dict[str, object]:
    """What the reader stores for a device (battery level in percent)."""
    name = f"{dev.friendly_name} battery" + (f" ({dev.battery_type})" if dev.battery_type else "")
    return {"source": SOURCE, "key": dev.ieee, "name": name,
            "state_topic": f"{prefix}/{dev.friendly_name}", "value_template": BATTERY_TEMPLATE,
            "unit": Unit.PERCENT.value, "factor": 1.0, "device_class": "battery",
            "manufacturer": dev.vendor, "model": dev.model, "battery_type": dev.battery_type,
            "unsupported": None if dev.battery_type else "battery type unknown: set "
            "sources.zigbee2mqtt.battery_types"}


def _s(value: object) -> str | None:
    return str(value)[:120] if isinstance(value, str) else None
