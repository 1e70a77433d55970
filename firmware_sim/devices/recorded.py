"""Recorded payloads, one per device reporting profile, for ``tests/fixtures/payload_*.json``.

``replenish-sim fixtures --out tests/fixtures`` rewrites them; a unit test checks that
the checked-in files equal what this module produces, so they never drift from the
simulator. Each file is one state message exactly as the device publishes it (pretty
printed), taken from a fixed seed at a moment that shows the profile's character.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.wire.device import encode
from firmware_sim.devices.appliances import Fridge, Printer, SimDevice, Wearable
from firmware_sim.devices.link import LinkProfile

START = datetime(2026, 3, 2, tzinfo=UTC)
TONER = {"sku": "TN-2420", "yield_pages": 3000, "initial": 64}
DRUM = {"sku": "DR-2400", "yield_pages": 12000, "initial": 71}


def _printer(profile: str, toner_initial: float = 64) -> Callable[[], SimDevice]:
    return lambda: Printer("printer-1", start=START, seed=7, profile=profile,
                           pages_per_day=20.0, toner={**TONER, "initial": toner_initial},
                           drum=DRUM)


def _fridge() -> SimDevice:
    return Fridge("fridge-1", start=START, seed=7, people=3,
                  milk={"sku": "MILK-1L", "capacity": 3000, "initial": 1800},
                  eggs={"sku": "EGGS-10", "capacity": 20, "initial": 8})


def _wearable(sensors: float = 5) -> Callable[[], SimDevice]:
    return lambda: Wearable("wearable-1", start=START, seed=7,
                            sensors={"sku": "CGM-G7-3", "capacity": 15, "initial": sensors},
                            link=LinkProfile())


# name -> (device factory, hours after start at which the reading is taken)
PROFILES: dict[str, tuple[Callable[[], SimDevice], float]] = {
    "printer_exact": (_printer("exact"), 30.0),
    "printer_steps10": (_printer("steps10"), 30.0),
    "printer_low_only": (_printer("low_only"), 30.0),
    "printer_low_only_low": (_printer("low_only", toner_initial=8), 30.0),
    "printer_asleep": (_printer("sleepy"), 27.5),
    "fridge": (_fridge, 33.0),
    "wearable": (_wearable(), 30.0),
    "wearable_no_sensor": (_wearable(0), 24 * 12.0),
}


def recorded_payloads() -> dict[str, bytes]:
    """File stem -> payload bytes (pretty JSON, newline-terminated) for every profile."""
    out: dict[str, bytes] = {}
    for name, (factory, hours) in PROFILES.items():
        dev = factory()
        msg = dev.reading(START + timedelta(hours=hours))
        if msg is None:
            raise RuntimeError(f"profile {name} produced no reading")
        body = json.loads(encode(msg))
        out[f"payload_{name}"] = (json.dumps(body, indent=2) + "\n").encode()
    return out


def write_fixtures(directory: Path) -> list[Path]:
    """Write every recorded payload into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, data in recorded_payloads().items():
        path = directory / f"{stem}.json"
        path.write_bytes(data)
        written.append(path)
    return written

