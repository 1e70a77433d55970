"""Valetudo's consumable topics, read without Home Assistant discovery (pure).

From Valetudo's MQTT reference (https://valetudo.cloud/pages/integrations/mqtt.html,
"Consumables monitoring (ConsumableMonitoringCapability)"; the handle is
``backend/lib/mqtt/capabilities/ConsumableMonitoringCapabilityMqttHandle.js`` in
github.com/Hypfer/Valetudo): a Homie node
``<TOPIC PREFIX>/<IDENTIFIER>/ConsumableMonitoringCapability`` with one retained
property per consumable, named ``<type>[-<subType>]`` (``brush-main``,
``brush-side_right``, ``filter-main``, ``cleaning-sensor``, ``mop``). Its value is an
integer: *seconds* of endurance remaining (``29520``), or percent remaining (``59``)
when the property's Homie ``$unit`` attribute is ``%``. Older releases published the
time as an ISO 8601 duration (``PT8H12M0S``). ``<property>/reset`` is a command, never
read; ``$``-topics are Homie attributes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.domain import Unit
from agent.errors import PayloadError

SOURCE = "valetudo"
NODE = "ConsumableMonitoringCapability"
# Endurance of a new part in hours of running time (Roborock's and Dreame's manuals:
# main brush 300 h, side brush 200 h, filter 150 h, sensors cleaned every 30 h), the
# capacity of a time consumable unless [sources.valetudo] life_hours says otherwise.
DEFAULT_LIFE_HOURS = {"brush-main": 300.0, "brush-side_right": 200.0,
                      "brush-side_left": 200.0, "filter-main": 150.0,
                      "cleaning-sensor": 30.0}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?"
                       r"(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


@dataclass(slots=True, frozen=True)
class ValetudoTopic:
    robot: str  # <IDENTIFIER>
    consumable: str  # the property, e.g. brush-main
    attribute: str | None  # "$unit", "$datatype" ...; None: the value itself


def topic_filter(prefix: str) -> str:
    return f"{prefix}/+/{NODE}/#"


def parse_topic(topic: str, prefix: str) -> ValetudoTopic | None:
    """A consumable's value or attribute topic; None for anything else (reset, $name)."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != prefix or parts[2] != NODE:
        return None
    robot, prop = parts[1], parts[3]
    if not _ID.match(robot) or not _ID.match(prop):
        return None  # $properties and friends of the node itself
    if len(parts) == 4:
        return ValetudoTopic(robot, prop, None)
    return ValetudoTopic(robot, prop, parts[4]) if parts[4].startswith("$") else None


def parse_value(payload: bytes, unit_attr: str | None) -> tuple[float, Unit]:
    """(level, unit): percent, or days of running time left."""
    text = payload.decode("utf-8", "replace").strip()
    m = _DURATION.match(text)
    if m and text != "P" and any(m.groups()):
        d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return d + h / 24 + mi / 1440 + s / 86400, Unit.DAYS
    try:
        value = float(text)
    except ValueError:
        raise PayloadError("valetudo value not a number") from None
    if value < 0 or value != value:
        raise PayloadError("valetudo value out of range")
    if unit_attr == "%":
        if value > 100:
            raise PayloadError("valetudo percent above 100")
        return value, Unit.PERCENT
    return value / 86400, Unit.DAYS
