"""A Valetudo robot vacuum publishing its consumables as Valetudo does, without HA discovery.

Topics and payloads from Valetudo's MQTT reference
(https://valetudo.cloud/pages/integrations/mqtt.html, "Consumables monitoring") and its
handle ``backend/lib/mqtt/capabilities/ConsumableMonitoringCapabilityMqttHandle.js``
(github.com/Hypfer/Valetudo): the Homie node
``<prefix>/<identifier>/ConsumableMonitoringCapability`` with ``$name`` and
``$properties``; per consumable ``<type>[-<subType>]`` a retained integer (seconds of
endurance left, or percent with ``$unit`` ``%``) and its ``$name``, ``$datatype``,
``$unit``/``$format`` attributes. The household fits a new part from its drawer once
Valetudo says the old one is worn out (5 % or less left) and resets the counter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

NODE = "ConsumableMonitoringCapability"


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None: ...


@dataclass
class Part:
    id: str  # brush-main ...
    name: str
    life_s: float | None  # endurance of a new part in seconds; None: percent
    left: float  # seconds or percent remaining
    sku: str
    percent_per_hour: float = 0.0  # percent parts: wear per hour of cleaning
    replaced: int = 0
    worn_out: int = 0  # times it reached 0 with no spare in the drawer

    @property
    def fraction(self) -> float:
        return self.left / (self.life_s if self.life_s else 100.0)

    def value(self) -> str:
        return str(max(0, round(self.left)))


def roborock_parts() -> list[Part]:
    """A Roborock S5 Max's consumables, part-worn (main brush 300 h, side 200 h, filter
    150 h, mop pad wear in percent) and the SKUs of their replacements."""
    h = 3600.0
    return [
        Part("brush-main", "Main Brush", 300 * h, 38 * h, "ROBOROCK-MAIN-BRUSH"),
        Part("brush-side_right", "Right Brush", 200 * h, 61 * h, "ROBOROCK-SIDE-BRUSH"),
        Part("filter-main", "Filter", 150 * h, 27 * h, "ROBOROCK-FILTER"),
        Part("mop", "Mop", None, 44.0, "ROBOROCK-MOP-PAD", percent_per_hour=0.5),
    ]


@dataclass
class ValetudoRobot:
    identifier: str = "robot"
    prefix: str = "valetudo"
    hours_per_day: float = 1.5  # cleaning time
    parts: list[Part] = field(default_factory=roborock_parts)
    drawer: dict[str, int] = field(default_factory=dict)  # spare parts by SKU

    def _base(self) -> str:
        return f"{self.prefix}/{self.identifier}/{NODE}"

    def announce(self, pub: Publisher) -> None:
        """The node's and properties' Homie attributes (retained, as Valetudo does)."""
        base = self._base()
        pub.publish(f"{base}/$name", "Consumables monitoring", retain=True)
        pub.publish(f"{base}/$type", "ConsumableMonitoringCapability", retain=True)
        pub.publish(f"{base}/$properties",
                    ",".join([p.id for p in self.parts] + [f"{p.id}/reset" for p in self.parts]),
                    retain=True)
        for p in self.parts:
            pub.publish(f"{base}/{p.id}/$name", p.name, retain=True)
            pub.publish(f"{base}/{p.id}/$datatype", "integer", retain=True)
            pub.publish(f"{base}/{p.id}/$retained", "true", retain=True)
            if p.life_s is None:
                pub.publish(f"{base}/{p.id}/$unit", "%", retain=True)
                pub.publish(f"{base}/{p.id}/$format", "0:100", retain=True)

    def publish(self, pub: Publisher) -> int:
        for p in self.parts:
            pub.publish(f"{self._base()}/{p.id}", p.value(), retain=True)
        return len(self.parts)

    def day(self, days: float = 1.0) -> None:
        hours = self.hours_per_day * days
        for p in self.parts:
            was = p.left
            p.left = max(0.0, p.left - (hours * 3600 if p.life_s else hours * p.percent_per_hour))
            p.worn_out += was > 0 >= p.left

    def replace_worn(self) -> list[Part]:
        """Fit a spare in every part at 5 % or less, resetting its counter."""
        done = []
        for p in self.parts:
            if p.fraction <= 0.05 and self.drawer.get(p.sku, 0) > 0:
                self.drawer[p.sku] -= 1
                p.left, p.replaced = (p.life_s or 100.0), p.replaced + 1
                done.append(p)
        return done
