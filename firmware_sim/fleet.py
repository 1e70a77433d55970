"""Many simulated households from one process: one MQTT connection per device, as real
devices have, all driven by one network thread.

paho's own ``loop_start`` costs a thread per client; a fleet of thousands of devices
would be thousands of threads. Here every client's socket sits in one ``selectors``
loop (paho's external-loop API: ``loop_read``, ``loop_write``, ``loop_misc``), and one
simulation thread advances the households on a shared clock and queues their
publications. Beyond one machine, run disjoint shards (``--shard i/n``) against the
vendor's clustered broker: device ids carry the household index, so shards never
collide and no coordinator is needed.

    replenish-sim fleet family-of-four --households 200 --broker 127.0.0.1:1883 \\
        --password-file fleet-password --days 7 --speed 86400 --shard 0/2
"""

from __future__ import annotations

import json
import resource
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.errors import BrokerError
from agent.wire.device import Channel, device_topic
from firmware_sim.household.scenario import Household


def _allow_open_files(needed: int) -> None:
    """Raise the soft open-files limit toward the hard one: a socket per device."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def parse_shard(text: str) -> tuple[int, int]:
    """``i/n`` with 0 <= i < n."""
    index, sep, total = text.partition("/")
    if not sep or not index.isdigit() or not total.isdigit():
        raise ValueError(f"shard must be i/n, got {text!r}")
    i, n = int(index), int(total)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= i < n")
    return i, n


def household_id(index: int) -> str:
    return f"h{index:06d}"


def fleet_device_id(index: int, device_id: str) -> str:
    """A device id unique across the fleet (and so across shards)."""
    return f"{household_id(index)}-{device_id}"[:64]


@dataclass
class FleetStats:
    households: int = 0
    devices: int = 0
    published: int = 0
    acknowledged: int = 0
    refused: int = 0
    connect_failures: int = 0
    sim_days: float = 0.0
    wall_s: float = 0.0
    backlog_peak: int = 0

    def rate(self) -> float:
        return self.acknowledged / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.households} households, {self.devices} devices: "
                f"{self.acknowledged:,} of {self.published:,} messages acknowledged "
                f"({self.rate():,.0f}/s over {self.wall_s:.1f} s, {self.sim_days:.1f} "
                f"simulated days), refused {self.refused}, connect failures "
                f"{self.connect_failures}, peak backlog {self.backlog_peak}")


@dataclass
class _Device:
    device_id: str
    client: mqtt.Client
    connected: bool = False
    unacked: int = 0
    sock: socket.socket | None = None
    outbox: list[tuple[str, bytes, bool]] = field(default_factory=list)


class Fleet:
    """Households of one scenario, each device on its own MQTT connection."""

    def __init__(self, scenario: str, households: int, host: str, port: int,
                 password: str, *, shard: tuple[int, int] = (0, 1), seed: int = 0,
                 speed: float = 86_400.0, start: datetime | None = None) -> None:
        self.host, self.port, self.speed = host, port, speed
        i, n = shard
        self.indices = [k for k in range(households) if k % n == i]
        self.households: list[Household] = []
        for k in self.indices:
            hh = Household.from_scenario(scenario, seed + k)
            for dev in hh.devices:
                dev.device_id = fleet_device_id(k, dev.device_id)
            self.households.append(hh)
        self.start = start or min(hh.start for hh in self.households)
        self.stats = FleetStats(households=len(self.households))
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._devices: dict[str, _Device] = {}
        for hh in self.households:
            for dev in hh.devices:
                self._devices[dev.device_id] = self._client(dev.device_id, password)
        self.stats.devices = len(self._devices)
        self._stop = threading.Event()

    def _client(self, device_id: str, password: str) -> _Device:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-{device_id}",
                             protocol=mqtt.MQTTv5)
        client.username_pw_set(device_id, password)
        entry = _Device(device_id, client)

        def on_connect(c: mqtt.Client, u: object, f: object, rc: ReasonCode,
                       p: object) -> None:
            entry.connected = not rc.is_failure
            if rc.is_failure:
                self.stats.connect_failures += 1

        def on_publish(c: mqtt.Client, u: object, mid: int, rc: ReasonCode, p: object) -> None:
            entry.unacked -= 1
            if rc.is_failure:
                self.stats.refused += 1
            else:
                self.stats.acknowledged += 1

        client.on_connect = on_connect
        client.on_publish = on_publish
        return entry

    # ---- the one network thread ------------------------------------------------------

    def connect(self, timeout: float = 60.0) -> None:
        """Open every connection; raises BrokerError if any is refused or times out."""
        _allow_open_files(len(self._devices) + 64)
        for dev in self._devices.values():
            try:
                dev.client.connect(self.host, self.port, keepalive=60)
            except OSError as err:
                raise BrokerError(f"{dev.device_id}: cannot reach broker: {err}") from err
            dev.sock = dev.client.socket()
            if dev.sock is not None:
                self._selector.register(dev.sock, selectors.EVENT_READ, dev)
        deadline = time.monotonic() + timeout
        while not all(d.connected for d in self._devices.values()):
            self._network_once(0.05)
            if self.stats.connect_failures:
                raise BrokerError(f"{self.stats.connect_failures} device(s) refused")
            if time.monotonic() > deadline:
                missing = sum(not d.connected for d in self._devices.values())
                raise BrokerError(f"{missing} device(s) without CONNACK in {timeout:.0f} s")

    def _network_once(self, timeout: float) -> None:
        with self._lock:
            for dev in self._devices.values():
                for topic, payload, retain in dev.outbox:
                    dev.client.publish(topic, payload, qos=1, retain=retain)
                    dev.unacked += 1
                dev.outbox.clear()
                if dev.sock is not None:
                    events = selectors.EVENT_READ
                    if dev.client.want_write():
                        events |= selectors.EVENT_WRITE
                    self._selector.modify(dev.sock, events, dev)
        for key, mask in self._selector.select(timeout):
            dev = key.data
            if mask & selectors.EVENT_READ:
                dev.client.loop_read()
            if mask & selectors.EVENT_WRITE:
                dev.client.loop_write()
        for dev in self._devices.values():
            dev.client.loop_misc()

    def _network(self) -> None:
        while not self._stop.is_set():
            self._network_once(0.02)

    # ---- the simulation ----------------------------------------------------------------

    def _queue(self, device_id: str, channel: Channel, body: dict[str, Any] | bytes,
               retain: bool = False) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body, default=_iso).encode()
        self._devices[device_id].outbox.append((device_topic(device_id, channel), payload,
                                                retain))
        self.stats.published += 1

    def step(self, now: datetime) -> None:
        with self._lock:
            for hh in self.households:
                for event in hh.advance(now):
                    self._queue(event.device_id, Channel.EVENTS,
                                event.model_dump_json().encode())
                for dev in hh.devices:
                    for _, body in dev.poll(now):
                        self._queue(dev.device_id, Channel.STATE, body)
            backlog = sum(d.unacked + len(d.outbox) for d in self._devices.values())
            self.stats.backlog_peak = max(self.stats.backlog_peak, backlog)

    def backlog(self) -> int:
        with self._lock:
            return sum(d.unacked + len(d.outbox) for d in self._devices.values())

    def run(self, days: float, tick_s: float = 0.1,
            progress: Callable[[FleetStats], None] | None = None) -> FleetStats:
        """Connect, run ``days`` simulated days at ``speed``, drain, disconnect."""
        self.connect()
        net = threading.Thread(target=self._network, name="fleet-network", daemon=True)
        net.start()
        wall0 = time.monotonic()
        end = self.start + timedelta(days=days)
        try:
            now = self.start
            while now < end:
                elapsed = time.monotonic() - wall0
                now = min(end, self.start + timedelta(seconds=elapsed * self.speed))
                self.step(now)
                self.stats.sim_days = (now - self.start) / timedelta(days=1)
                self.stats.wall_s = time.monotonic() - wall0
                if progress is not None:
                    progress(self.stats)
                time.sleep(tick_s)
            deadline = time.monotonic() + 60
            while self.backlog() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.stats.wall_s = time.monotonic() - wall0
        finally:
            self._stop.set()
            net.join(5)
            for dev in self._devices.values():
                dev.client.disconnect()
        return self.stats


def progress_bar(days: float) -> Callable[[FleetStats], None]:
    """A one-line progress bar on stderr (no dependency)."""
    def show(stats: FleetStats) -> None:
        done = min(1.0, stats.sim_days / days) if days else 1.0
        bar = "#" * int(done * 30)
        sys.stderr.write(f"\r[{bar:<30}] {done:4.0%} day {stats.sim_days:5.1f}/{days:g} "
                         f"{stats.rate():8,.0f} msg/s acked {stats.acknowledged:,}")
        sys.stderr.flush()
    return show
