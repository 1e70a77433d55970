"""Value types shared by every layer: the enums of the device world.

The pure core (forecast, policy, consent) imports these and nothing from the wire, so a
change to a wire model never reaches the core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

# A JSON document the agent writes (schemas, discovery configs, audit bodies, ``--json``
# output): values must be JSON, unlike an Any-valued dict, so a datetime or Decimal that
# was not turned into text is a type error, not a crash at ``json.dumps``.
JsonValue: TypeAlias = (
    "None | bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue]")
JsonObject: TypeAlias = "dict[str, JsonValue]"


class DeviceKind(StrEnum):
    PRINTER = "printer"
    FRIDGE = "fridge"
    WEARABLE = "wearable"
    OTHER = "other"


class Unit(StrEnum):
    PERCENT = "percent"
    GRAMS = "grams"
    MILLILITRES = "millilitres"
    COUNT = "count"
    DAYS = "days"


class CoarseState(StrEnum):
    """Coarse level states, mirroring RFC 3805 / IPP special marker values."""

    OK = "ok"
    LOW = "low"
    SOME_REMAINING = "some_remaining"  # RFC 3805 -3: not measurable, not empty
    UNKNOWN = "unknown"  # RFC 3805 -2: e.g. printer asleep
    EMPTY = "empty"


class BadConsumableKey(ValueError):
    """Text that does not name a consumable as ``DEVICE/CONSUMABLE``."""


@dataclass(frozen=True, slots=True, order=True)
class ConsumableKey:
    """One consumable of one device. Its text form ``device_id/consumable_id`` is what the
    database and the wire carry; inside the agent the two parts stay apart, so nobody
    builds or splits the text by hand."""

    device_id: str
    consumable_id: str

    def __str__(self) -> str:
        return f"{self.device_id}/{self.consumable_id}"

    @classmethod
    def parse(cls, text: str) -> ConsumableKey:
        """The key named by ``text`` (CLI argument, MQTT command, web form), or
        :class:`BadConsumableKey` saying what is wrong with it."""
        parts = text.split("/")
        if len(parts) != 2 or not all(p and p.isprintable() and " " not in p for p in parts):
            raise BadConsumableKey(f"consumable must be DEVICE/CONSUMABLE, got {text!r}")
        return cls(parts[0], parts[1])
