"""How many simulated households one machine drives: ``replenish-sim fleet`` ramped up.

Each step runs a fleet of N family-of-four households (one MQTT connection per device)
for a fixed wall time at a fixed simulated speed against a private Mosquitto, with a
bare paho subscriber draining the broker. Reported per step: households, devices,
offered and acknowledged messages per second, the fleet process's CPU and resident
memory (both include the draining subscriber thread, which runs in the same process;
the broker is a separate process), and the peak backlog (published but not yet
acknowledged). The fleet "breaks" at the first step whose acknowledged rate falls below
95 % of what it offered.

    python -m bench.fleet [--steps 25,50,100,200,400] [--seconds 10] [--speed 3600]
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import header, machine_info, md_table, utcnow, write_results
from firmware_sim.broker import LocalBroker
from firmware_sim.fleet import Fleet, fleet_device_id
from firmware_sim.household.scenario import Household

SCENARIO = "family-of-four"
PASSWORD = "fleet-bench"


def _drain(broker: LocalBroker, counter: list[int], stop: threading.Event) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-drain")
    client.username_pw_set("agent", broker.passwords["agent"])
    client.on_message = lambda c, u, m: counter.__setitem__(0, counter[0] + 1)
    client.connect(broker.host, broker.port)
    client.subscribe("replenish/v1/devices/#", qos=1)
    client.loop_start()
    stop.wait()
    client.loop_stop()
    client.disconnect()


def step(households: int, seconds: float, speed: float, work: Path) -> dict[str, Any]:
    ids = [fleet_device_id(k, d.device_id) for k in range(households)
           for d in Household.from_scenario(SCENARIO, k).devices]
    with LocalBroker(work / f"broker-{households}", users=dict.fromkeys(ids, PASSWORD)) as b:
        received, stop = [0], threading.Event()
        drain = threading.Thread(target=_drain, args=(b, received, stop), daemon=True)
        drain.start()
        time.sleep(0.5)
        fleet = Fleet(SCENARIO, households, b.host, b.port, PASSWORD, speed=speed)
        cpu0 = time.process_time()
        stats = fleet.run(days=seconds * speed / 86_400, tick_s=0.1)
        cpu = time.process_time() - cpu0
        time.sleep(0.5)
        stop.set()
        drain.join(5)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    offered = stats.published / stats.wall_s if stats.wall_s else 0.0
    return {"households": households, "devices": stats.devices,
            "offered_per_s": offered, "acked_per_s": stats.rate(),
            "received": received[0], "published": stats.published,
            "cpu_share": cpu / stats.wall_s if stats.wall_s else None,
            "peak_rss_mb": rss_mb, "backlog_peak": stats.backlog_peak,
            "wall_s": stats.wall_s, "ok": stats.acknowledged == stats.published
            and stats.rate() >= 0.95 * offered}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", default="25,50,100,200,400")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=3600.0,
                        help="simulated seconds per second (3600: an hour a second)")
    args = parser.parse_args()
    started = utcnow()
    work = Path(mkdtemp(prefix="bench-fleet-"))
    rows = []
    for n in (int(s) for s in args.steps.split(",")):
        result = step(n, args.seconds, args.speed, work)
        rows.append(result)
        print(result, flush=True)
        if not result["ok"]:
            break
    machine = machine_info()
    table = md_table(
        ["households", "devices", "offered msg/s", "acked msg/s", "fleet CPU (cores)",
         "peak RSS MB", "peak backlog", "kept up"],
        [[r["households"], r["devices"], r["offered_per_s"], r["acked_per_s"],
          r["cpu_share"], r["peak_rss_mb"], r["backlog_peak"], r["ok"]] for r in rows])
    broke = next((r["households"] for r in rows if not r["ok"]), None)
    md = (header("Fleet: households one machine drives", machine, started)
          + f"\nSpeed {args.speed:g} simulated s per s, {args.seconds:g} s per step, "
          f"scenario {SCENARIO}, a bare paho subscriber draining the broker.\n\n" + table
          + "\n\n" + (f"Fell behind at {broke} households.\n" if broke else
                      "Kept up at every step run.\n"))
    write_results("fleet", {"machine": machine, "speed": args.speed,
                            "seconds": args.seconds, "steps": rows}, md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
