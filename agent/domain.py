"""Value types shared by every layer: the enums of the device world.

The pure core (forecast, policy, consent) imports these and nothing from the wire, so a
change to a wire model never reaches the core.
"""

from __future__ import annotations

from enum import StrEnum


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
