"""Broker persistence benchmark: what each Mosquitto snapshot setting costs the SD card
and what a broker crash or a clean restart loses (issue 21).

Mosquitto 2.0 keeps its state in memory and persists it as a whole-file snapshot
(``mosquitto.db``, written to ``.new``, fsynced, renamed): at shutdown, on SIGUSR1, and
by ``autosave_on_changes true`` every ``autosave_interval`` changes (a message queued for
an offline session, a PUBACK from a subscriber, a retained publish, a persistent
connect, a (un)subscribe) or by ``autosave_on_changes false`` every
``autosave_interval`` seconds whether anything changed or not. For each candidate, in
one run, on a fresh broker with the household configuration plus that setting:

* **live**: the real ``replenish run`` connected and consuming while 50 devices publish
  state messages, ``--scale`` times household load (household: one message a minute
  each); the broker's ``write_bytes`` (``/proc/<pid>/io``) and its snapshots (its
  ``Saving in-memory database`` log lines) over the window, and one snapshot forced by
  SIGUSR1 at the end: the bytes of one snapshot at this state;
* **clean restart**: the agent stopped, ``--queued`` messages queued for its session,
  SIGTERM, start, drain the session: messages lost;
* **crash**: the same queue, SIGKILL a second later, start, drain: messages lost; for
  the shortest timer also a SIGKILL after its next timer snapshot.

Per day at household load (72,000 messages): by changes, measured ``write_bytes`` per
message times 72,000 (the window holds whole snapshots only for small counts, so the
table also gives the model: snapshot bytes x changes per message / count x 72,000, the
changes per message measured by the 10-change calibration run); by timer, 86,400 /
interval snapshots of the measured snapshot size. Both assume the state of the live
window (agent connected, queue empty); a backlog makes every snapshot larger.

    python -m bench.broker_persistence [--scale 10] [--seconds 30] [--queued 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.config import DEFAULT_SESSION_EXPIRY_S
from bench.common import (
    AgentRunner,
    header,
    machine_info,
    md_table,
    monotonic_wait,
    utcnow,
    write_agent_config,
    write_results,
)
from bench.footprint_writes import write_bytes
from bench.ingest_load import Fleet, publish_flat_out, publish_paced
from firmware_sim.broker import LocalBroker

DAY = 86_400
DEVICES = 50
HOUSEHOLD_PER_DEVICE_S = 60.0
HOUSEHOLD_PER_DAY = DEVICES * DAY / HOUSEHOLD_PER_DEVICE_S
AGENT_CLIENT_ID = "replenish-agent-bench"
HOUSEHOLD_STATE_INTERVAL_S = 60.0  # [household] state_interval_s default
HOUSEHOLD_SYNC_INTERVAL_S = 5.0  # [household] sync_interval_s default: the pass cadence
SAVED = "Saving in-memory database"


@dataclass(frozen=True)
class Setting:
    """One ``autosave_on_changes`` / ``autosave_interval`` pair."""

    on_changes: bool
    interval: int

    @property
    def name(self) -> str:
        return (f"every {self.interval:,} changes" if self.on_changes
                else f"every {self.interval:,} s")

    def conf(self) -> str:
        return (f"autosave_on_changes {'true' if self.on_changes else 'false'}\n"
                f"autosave_interval {self.interval}\n")


SETTINGS = (
    Setting(True, 100),  # the setting before this benchmark
    Setting(True, 1000),
    Setting(True, 5000),
    Setting(False, 60),
    Setting(False, 300),
    Setting(False, 1800),
)


def saves(broker: LocalBroker) -> int:
    return broker.log_text().count(SAVED)


def _pid(broker: LocalBroker) -> int:
    if broker.pid is None:
        raise RuntimeError("the broker is not running")
    return broker.pid


def settled_write_bytes(pid: int, quiet_s: float = 0.3, timeout: float = 10.0) -> int:
    """write_bytes once it stopped growing (a snapshot is being written)."""
    last, since, deadline = write_bytes(pid), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = write_bytes(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def forced_snapshot(broker: LocalBroker) -> int:
    """Bytes the broker writes for one snapshot of what it holds now (SIGUSR1)."""
    pid = _pid(broker)
    before_saves, w0 = saves(broker), settled_write_bytes(pid)
    os.kill(pid, signal.SIGUSR1)
    if not monotonic_wait(lambda: saves(broker) > before_saves, 10):
        raise RuntimeError("mosquitto did not log the SIGUSR1 snapshot")
    return settled_write_bytes(pid) - w0


def drain_agent_session(broker: LocalBroker, quiet_s: float = 2.0,
                        timeout: float = 60.0) -> set[tuple[str, int]]:
    """Reconnect to the agent's stored session and take what the broker kept for it."""
    seen: set[tuple[str, int]] = set()
    lock = threading.Lock()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.topic.endswith("/state"):  # the session's other subscriptions
            return
        body = json.loads(msg.payload)
        with lock:
            seen.add((str(body["device_id"]), int(body["seq"])))

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=AGENT_CLIENT_ID,
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set("agent", broker.passwords["agent"])
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = DEFAULT_SESSION_EXPIRY_S  # keep the session, as the agent
    client.connect(broker.host, broker.port, clean_start=False, properties=props)
    client.loop_start()
    try:
        deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            with lock:
                n = len(seen)
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since > quiet_s:
                break
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return seen


class RetainCounter:
    """Counts the agent's retained publishes (each is a persistence change) as the
    ``household`` account sees them (MQTT 5 retain-as-published keeps the flag)."""

    def __init__(self, broker: LocalBroker) -> None:
        self.count = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-retained",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set("household", broker.passwords["household"])
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        options = SubscribeOptions(qos=0, retainAsPublished=True)
        for topic in ("replenish/v1/household/#", "homeassistant/#"):
            self.client.subscribe(topic, options=options)
        self.live = False  # retained messages sent on subscribe are not changes

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        if self.live and msg.retain and msg.payload:
            self.count += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def queue_and_restart(broker: LocalBroker, fleet: Fleet, queued: int, work: Path,
                      crash: bool, wait_for_timer: bool = False) -> dict[str, Any]:
    """Queue ``queued`` messages for the (offline) agent, stop or kill the broker, count
    what its session still holds after the start (and what the broker writes while a
    prompt subscriber drains it)."""
    first = {n: fleet.seq[n] for n in fleet.names}
    saves0 = saves(broker)
    publish_flat_out(broker, fleet, queued, work)
    if wait_for_timer:  # kill just after the next timer snapshot, not before it
        if not monotonic_wait(lambda: saves(broker) > saves0, 120, 0.05):
            raise RuntimeError("no timer snapshot within 120 s")
    else:
        time.sleep(1.0)
    snapshots = saves(broker) - saves0
    broker.restart(crash=crash)
    w0 = write_bytes(_pid(broker))
    got = drain_agent_session(broker)
    drained = settled_write_bytes(_pid(broker)) - w0
    sent = {(n, s) for n in fleet.names for s in range(first[n] + 1, fleet.seq[n] + 1)}
    return {"queued": len(sent), "snapshots_before_stop": snapshots,
            "received": len(sent & got), "lost": len(sent - got),
            "drain_write_bytes": drained}


def live(broker: LocalBroker, fleet: Fleet, work: Path, scale: float,
         seconds: float) -> dict[str, Any]:
    """The agent connected and consuming, household time compressed ``scale`` times:
    ``scale`` x the message rate and 1/``scale`` of the agent's household pass and state
    intervals, so the retained dashboard updates per message stay what they are at
    household load."""
    state_interval = HOUSEHOLD_STATE_INTERVAL_S / scale
    household = (f"\n[household]\nstate_interval_s = {state_interval}\n"
                 f"sync_interval_s = {HOUSEHOLD_SYNC_INTERVAL_S / scale}\n")
    config = write_agent_config(work / "agent", broker.host, broker.port,
                                broker.passwords["agent"], work / "agent" / "agent.db",
                                client_id=AGENT_CLIENT_ID, extra=household)
    agent = AgentRunner(config).start(timeout=60)
    retained = RetainCounter(broker)
    try:
        rate = DEVICES / HOUSEHOLD_PER_DEVICE_S * scale
        # Every device seen first: the agent's first-sight publications (discovery, the
        # first dashboards) are a household's standing state, not a cost per message.
        publish_paced(broker, fleet, DEVICES, 50.0, {})
        time.sleep(2 * state_interval + 6.0)  # past the commit window and a state pass
        pid = _pid(broker)
        total = max(1, round(rate * seconds))
        retained.live = True
        saves0, w0, t0 = saves(broker), write_bytes(pid), time.monotonic()
        publish_paced(broker, fleet, total, rate, {})
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
        wall = time.monotonic() - t0
        w1, snapshots, changes = write_bytes(pid), saves(broker) - saves0, retained.count
        snapshot = forced_snapshot(broker)
        file_bytes = (broker.data_dir / "mosquitto.db").stat().st_size
    finally:
        retained.close()
        agent.stop()
    return {"messages": total, "rate_per_s": rate, "window_s": wall,
            "state_interval_s": state_interval,
            "sync_interval_s": HOUSEHOLD_SYNC_INTERVAL_S / scale, "write_bytes": w1 - w0,
            "bytes_per_message": (w1 - w0) / total, "snapshots": snapshots,
            "retained_publishes": changes,
            # one PUBACK per message plus the retained publishes
            "changes_per_message": (total + changes) / total,
            "snapshot_bytes": snapshot, "snapshot_file_bytes": file_bytes}


def run_setting(setting: Setting, root: Path, args: argparse.Namespace,
                shortest_timer: int) -> dict[str, Any]:
    work = root / setting.name.replace(" ", "-").replace(",", "")
    fleet = Fleet.make(DEVICES)
    broker = LocalBroker(work / "broker", users=dict(fleet.passwords),
                         extra_conf=setting.conf())
    broker.start()
    try:
        res: dict[str, Any] = {"setting": setting.name, "on_changes": setting.on_changes,
                               "interval": setting.interval}
        res["live"] = live(broker, fleet, work, args.scale, args.seconds)
        res["clean_restart"] = queue_and_restart(broker, fleet, args.queued, work, False)
        res["crash"] = queue_and_restart(broker, fleet, args.queued, work, True)
        if not setting.on_changes and setting.interval == shortest_timer:
            res["crash_after_timer"] = queue_and_restart(broker, fleet, args.queued, work,
                                                         True, wait_for_timer=True)
        res["per_day"] = per_day(res)
        print(json.dumps(res), flush=True)
        return res
    finally:
        broker.stop()


def per_day(res: dict[str, Any]) -> dict[str, float | None]:
    """Broker writes at household load (see the module docstring)."""
    lv, interval = res["live"], res["interval"]
    if res["on_changes"]:
        snapshots = HOUSEHOLD_PER_DAY * lv["changes_per_message"] / interval
        measured: float | None = lv["bytes_per_message"] * HOUSEHOLD_PER_DAY / 1e6
    else:
        snapshots, measured = DAY / interval, None
    return {"snapshots_per_day": snapshots,
            "model_mb_per_day": snapshots * lv["snapshot_bytes"] / 1e6,
            "measured_mb_per_day": measured}


def loss_bound(res: dict[str, Any]) -> str:
    """What a SIGKILL can lose while the agent is offline, at household load."""
    per_s = DEVICES / HOUSEHOLD_PER_DEVICE_S
    if res["on_changes"]:
        return (f"{res['interval']:,} queued msgs (~{res['interval'] / per_s / 60:,.0f} min "
                "offline)")
    return f"the last {res['interval'] / 60:g} min ({res['interval'] * per_s:,.0f} msgs)"


def _crash(res: dict[str, Any]) -> str:
    text = f"{res['crash']['lost']:,} of {res['crash']['queued']:,}"
    if "crash_after_timer" in res:
        after = res["crash_after_timer"]
        text += f"; after its next timer snapshot: {after['lost']:,} of {after['queued']:,}"
    return text


def markdown(data: dict[str, Any]) -> str:
    rows = []
    for res in data["settings"]:
        lv, day = res["live"], res["per_day"]
        measured = ("n/a (timer)" if day["measured_mb_per_day"] is None
                    else f"{lv['bytes_per_message']:,.0f} B/msg = "
                         f"{day['measured_mb_per_day']:,.1f} MB/day")
        rows.append([res["setting"], f"{lv['snapshots']} / {lv['write_bytes']:,} B",
                     measured, f"{day['snapshots_per_day']:,.0f}",
                     f"{day['model_mb_per_day']:,.1f}", _crash(res),
                     f"{res['clean_restart']['lost']:,} of {res['clean_restart']['queued']:,}",
                     f"{res['clean_restart']['drain_write_bytes'] / 1e6:,.2f}",
                     loss_bound(res)])
    first = data["settings"][0]["live"]
    snaps = ", ".join(f"{r['live']['snapshot_bytes']:,}" for r in data["settings"])
    return "\n".join([
        header("Broker persistence benchmark (Mosquitto snapshots)", data["machine"],
               datetime.fromisoformat(data["started"])),
        f"\nLive window per setting: the real agent connected and consuming; {DEVICES} "
        f"devices, household time compressed {data['scale']:g}x "
        f"({first['rate_per_s']:.2f} msg/s, the agent's household pass every "
        f"{first['sync_interval_s']:g} s, its state interval "
        f"{first['state_interval_s']:g} s), {first['messages']:,} messages in "
        f"{first['window_s']:.0f} s; changes per message (a PUBACK + the agent's retained "
        f"publishes): {first['changes_per_message']:.2f} (first setting). One snapshot at "
        f"the window's end (SIGUSR1), bytes written per setting: {snaps}; file "
        f"{first['snapshot_file_bytes']:,} B. Per day: household load, "
        f"{HOUSEHOLD_PER_DAY:,.0f} messages; by changes, snapshots = changes / count (an "
        "upper bound: changes past the count in the loop pass of a snapshot are dropped), "
        "by timer 86,400 / interval; each at the window's snapshot size (queue empty: a "
        f"backlog makes every snapshot larger). Queue tests: {data['queued']:,} messages "
        "from the 50 devices queued for the stopped agent's session, then SIGTERM or "
        "SIGKILL one second later; drained by a subscriber that acknowledges at once.\n",
        md_table(["setting", "live window: snapshots / broker write_bytes",
                  "live, measured (x 72,000 msgs/day)", "snapshots/day (model)",
                  "MB/day (model)", "SIGKILL, agent offline: lost",
                  "SIGTERM restart: lost", "drain of the queue: broker MB written",
                  "SIGKILL loss bound at household load"], rows),
        "",
        f"Load average at the end: {data['load_avg_at_end']}.",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=10.0,
                    help="household time compression for the live window (default 10)")
    ap.add_argument("--seconds", type=float, default=30.0, help="live window per setting")
    ap.add_argument("--queued", type=int, default=1500,
                    help="messages queued for the offline agent before a stop or kill")
    ap.add_argument("--out", default="broker_persistence", help="results file name")
    args = ap.parse_args(argv)
    data: dict[str, Any] = {"started": utcnow().isoformat(), "machine": machine_info(),
                            "scale": args.scale, "seconds": args.seconds,
                            "queued": args.queued, "settings": []}
    shortest = min(s.interval for s in SETTINGS if not s.on_changes)
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp:
        for setting in SETTINGS:
            data["settings"].append(run_setting(setting, Path(tmp), args, shortest))
    data["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    paths = write_results(args.out, data, markdown(data))
    print(markdown(data))
    print(f"\nwrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
