"""Battery type per Zigbee device model: a small bundled table, overridable per device.

Zigbee2MQTT reports a level, never the cell. The types below are those printed in the
manufacturers' manuals and collected by the HA Battery Notes device library
(https://github.com/andrew-codechimp/HA-Battery-Notes, ``library/library.json``); the
key is Zigbee2MQTT's ``definition.model`` as listed on its supported-devices pages
(https://www.zigbee2mqtt.io/supported-devices/). A device not in the table needs
``[sources.zigbee2mqtt.battery_types]`` in agent.toml (by friendly name or IEEE address)
before it can be adopted: guessing a cell would order the wrong one.
"""

from __future__ import annotations

from collections.abc import Mapping

BATTERY_TYPES: dict[str, str] = {
    # Aqara / Xiaomi
    "WSDCGQ11LM": "CR2032",   # temperature and humidity sensor
    "WSDCGQ01LM": "CR2032",
    "RTCGQ11LM": "CR2450",    # motion sensor
    "MCCGQ11LM": "CR1632",    # door and window sensor
    "SJCGQ11LM": "CR2032",    # water leak sensor
    "WXKG11LM": "CR2032",     # wireless mini switch
    "WXKG12LM": "CR2032",
    # IKEA
    "E1743": "CR2032",        # TRADFRI on/off switch
    "E1766": "CR2032",        # TRADFRI open/close remote
    "E1524/E1810": "CR2032",  # TRADFRI remote control
    "E1525/E1745": "CR2032",  # TRADFRI motion sensor
    # SONOFF
    "SNZB-01": "CR2450",      # wireless switch
    "SNZB-02": "CR2450",      # temperature and humidity sensor
    "SNZB-03": "CR2450",      # motion sensor
    "SNZB-04": "CR2032",      # contact sensor
    # Philips Hue
    "324131092621": "CR2450",  # dimmer switch (v1)
    "9290012607": "AAA",      # motion sensor (2x AAA)
    # Tuya
    "TS0201": "CR2032",       # temperature and humidity sensor
    # Bosch, Danfoss radiator thermostats
    "BTH-RA": "AA",
    "014G2461": "AA",
}


# Devices that take more than one cell (the rest take one).
CELLS_PER_DEVICE: dict[str, int] = {
    "9290012607": 2,  # Hue motion sensor: 2x AAA
    "BTH-RA": 2,
    "014G2461": 2,
}


def cells(model: str | None) -> int:
    """How many cells one replacement of this model takes."""
    return CELLS_PER_DEVICE.get(model or "", 1)


def battery_type(model: str | None, friendly_name: str, ieee: str,
                 overrides: Mapping[str, str]) -> str | None:
    """The cell a device takes: a household override, else the table, else unknown."""
    for key in (friendly_name, ieee):
        if key in overrides:
            return overrides[key]
    return BATTERY_TYPES.get(model or "")
