"""``make demo-foreign``: the agent among devices a household can buy, a simulated year.

No device here speaks ``replenish/v1``: a Zigbee2MQTT bridge of 20 battery sensors (its
retained device list, adopted with ``replenish sources adopt``), a Valetudo robot
vacuum read from its own MQTT topics (no Home Assistant discovery), and a CGM and pump
wearer whose data is in Nightscout (the fixture site over HTTP). Everything is real
except time (firmware_sim/foreign_world.py): a private Mosquitto, the vendor sandbox,
the agent's service on an SQLite file under ``demo-foreign-state/``. Consent: the
battery types, the robot's parts and the wearer's supplies on ``auto`` within mandates.
The household fits what is delivered when its devices say so; the summary counts what
ran out (nothing should).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from firmware_sim.devices.foreign import Zigbee2MqttBridge
from firmware_sim.devices.valetudo import ValetudoRobot
from firmware_sim.foreign_world import ForeignWorld


def _say(text: str) -> None:
    print(text, flush=True)


def run(days: int, seconds_per_day: float, state: Path) -> int:
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    bridge, robot = Zigbee2MqttBridge.staggered(20), ValetudoRobot()
    with ForeignWorld(state, bridge=bridge, robot=robot, wearer=True, say=_say) as w:
        _say(f"broker on {w.broker.host}:{w.broker.port}, sandbox vendor at {w.vendor.url}, "
             f"database {w.service.settings.storage.path}")
        w.adopt_bridge()
        w.publish_batteries()
        w.consent_batteries()
        w.start_robot()
        w.start_wearer()
        _say(w.replenish("sources", "list").rstrip())
        _say(f"\nsimulating {days} days from {w.clock.now():%Y-%m-%d}\n")
        for step in range(days * 4):
            tick = time.monotonic()
            w.step(decide=step % 4 == 0)
            time.sleep(max(0.0, seconds_per_day / 4 - (time.monotonic() - tick)))
        _say("\n$ replenish orders list --all")
        _say(w.replenish("orders", "list", "--all").rstrip())
        per = Counter(c for _, c, _, _ in w.tally.intents)
        _say("\norders per consumable: " + ", ".join(f"{k} {n}" for k, n in sorted(per.items())))
        assert w.wearer is not None
        flat = sum(s.died for s in bridge.sensors)
        worn = sum(p.worn_out for p in robot.parts)
        _say(f"battery cells fitted {sum(s.replaced for s in bridge.sensors)}, sensors that "
             f"ran flat {flat}; robot parts fitted {sum(p.replaced for p in robot.parts)}, "
             f"worn out without a spare {worn}; wearer changes {dict(w.wearer.changes)}, "
             f"went without {dict(w.wearer.missed) or 0}")
        _say(f"vendor sandbox delivered {len(w.tally.orders)} orders; "
             f"state in {state}")
        return 0 if flat == worn == 0 and not w.wearer.missed else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.demo_foreign",
                                     description=__doc__)
    parser.add_argument("--days", type=int, default=365, help="simulated days (default 365)")
    parser.add_argument("--seconds-per-day", type=float, default=0.0,
                        help="wall-clock seconds per simulated day (default 0: flat out)")
    parser.add_argument("--state-dir", type=Path, default=Path("demo-foreign-state"))
    args = parser.parse_args(argv)
    return run(args.days, args.seconds_per_day, args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
