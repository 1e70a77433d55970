"""One discovery config: its topic, its expanded payload, and whether it is a consumable.

Topic: ``<prefix>/<component>/[<node_id>/]<object_id>/config``
(https://www.home-assistant.io/integrations/mqtt/#discovery-topic). An empty retained
payload removes the entity. A config is a *candidate* consumable when it reads a level:
device class ``battery``, or a unit of %, g, kg, ml, l or a count, or a remaining time
(min, h, d) whose name says it is remaining life (Valetudo's consumables, filter timers).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agent.domain import Unit
from agent.errors import PayloadError
from agent.sources.ha_discovery.abbreviations import expand
from agent.sources.ha_discovery.template import UnsupportedTemplate, parse_template

READ_COMPONENTS = ("sensor",)
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
# unit of measurement -> (agent unit, factor to it)
UNITS: dict[str, tuple[Unit, float]] = {
    "%": (Unit.PERCENT, 1.0),
    "g": (Unit.GRAMS, 1.0),
    "kg": (Unit.GRAMS, 1000.0),
    "ml": (Unit.MILLILITRES, 1.0),
    "mL": (Unit.MILLILITRES, 1.0),
    "l": (Unit.MILLILITRES, 1000.0),
    "L": (Unit.MILLILITRES, 1000.0),
    "count": (Unit.COUNT, 1.0),
    "pcs": (Unit.COUNT, 1.0),
    "U": (Unit.COUNT, 1.0),  # insulin units
    "min": (Unit.DAYS, 1 / 1440),
    "h": (Unit.DAYS, 1 / 24),
    "d": (Unit.DAYS, 1.0),
}
_TIME_UNITS = ("min", "h", "d")


@dataclass(slots=True, frozen=True)
class DiscoveryTopic:
    component: str
    node_id: str | None
    object_id: str

    @property
    def key(self) -> str:
        """Stable key of the entity (its topic path without prefix and ``config``)."""
        return "/".join(p for p in (self.component, self.node_id, self.object_id) if p)


@dataclass(slots=True, frozen=True)
class Entity:
    """A discovered sensor as the agent reads it."""

    key: str
    unique_id: str | None
    name: str
    state_topic: str
    value_template: str | None
    unit_of_measurement: str | None
    device_class: str | None
    manufacturer: str | None
    model: str | None
    availability_topic: str | None
    unit: Unit | None  # None: not a consumable level
    factor: float
    unsupported: str | None  # why the template cannot be read, or None

    @property
    def candidate(self) -> bool:
        return self.unit is not None and self.unsupported is None


def parse_topic(topic: str, prefix: str) -> DiscoveryTopic | None:
    """The parts of a discovery topic, or None for any other topic under the prefix."""
    parts = topic.split("/")
    if parts[0] != prefix or parts[-1] != "config" or len(parts) not in (4, 5):
        return None
    inner = parts[1:-1]
    if not all(_SEGMENT.match(p) for p in inner):
        return None
    if len(inner) == 2:
        return DiscoveryTopic(inner[0], None, inner[1])
    return DiscoveryTopic(inner[0], inner[1], inner[2])


def classify(unit_of_measurement: str | None, device_class: str | None,
             name: str) -> tuple[Unit | None, float]:
    if device_class == "battery":
        return Unit.PERCENT, 1.0
    if unit_of_measurement is None or unit_of_measurement not in UNITS:
        return None, 1.0
    unit, factor = UNITS[unit_of_measurement]
    if unit_of_measurement in _TIME_UNITS and not re.search(
            r"remain|left|life|consumable|filter|brush|mop|sensor", name, re.I):
        return None, 1.0  # an uptime or a duration, not remaining life
    return unit, factor


def parse_config(topic: DiscoveryTopic, payload: bytes) -> Entity | None:
    """The entity a config announces; None for an empty payload (removed).

    Raises PayloadError with a short reason for a config that cannot be read.
    """
    if not payload.strip():
        return None
    try:
        raw = json.loads(payload)
    except ValueError:
        raise PayloadError("config not JSON") from None
    if not isinstance(raw, dict):
        raise PayloadError("config not an object")
    cfg = expand(raw)
    state_topic = cfg.get("state_topic")
    if not isinstance(state_topic, str) or not state_topic or any(c in state_topic for c in "+#"):
        raise PayloadError("config without a usable state_topic")
    # Foreign JSON: each value read below is narrowed with isinstance.
    device: dict[str, Any] = cfg["device"] if isinstance(cfg.get("device"), dict) else {}
    name = str(cfg.get("name") or cfg.get("object_id") or topic.object_id)
    dev_name = device.get("name")
    if dev_name and not name.startswith(str(dev_name)):
        name = f"{dev_name} {name}"
    uom = cfg.get("unit_of_measurement")
    dclass = cfg.get("device_class")
    tpl = cfg.get("value_template")
    unsupported = None
    try:
        parse_template(tpl if isinstance(tpl, str) else None)
    except UnsupportedTemplate as err:
        unsupported = str(err)
    unit, factor = classify(uom if isinstance(uom, str) else None,
                            dclass if isinstance(dclass, str) else None, name)
    if topic.component not in READ_COMPONENTS:
        unit = None
    avty = cfg.get("availability_topic")
    if not isinstance(avty, str) and isinstance(cfg.get("availability"), list):
        first = next((a.get("topic") for a in cfg["availability"] if a.get("topic")), None)
        avty = first if isinstance(first, str) else None
    return Entity(
        key=topic.key, unique_id=str(cfg["unique_id"]) if cfg.get("unique_id") else None,
        name=name[:120], state_topic=state_topic,
        value_template=tpl if isinstance(tpl, str) else None,
        unit_of_measurement=uom if isinstance(uom, str) else None,
        device_class=dclass if isinstance(dclass, str) else None,
        manufacturer=_str(device.get("manufacturer")), model=_str(device.get("model")),
        availability_topic=avty if isinstance(avty, str) else None,
        unit=unit, factor=factor, unsupported=unsupported)


def _str(value: object) -> str | None:
    return str(value)[:120] if value is not None else None
