"""Live mode: publish a simulated household over MQTT, one connection per device.

Each device connects with its own credentials (username = device id, as the broker's
``%u`` ACL expects), sets a retained ``offline`` status as its last will, publishes a
retained ``online`` status, then its state readings and events with QoS 1 while the
simulated clock runs ``speed`` times faster than the wall clock (86400: a day a
second). Offline spells from the scenario show up as a retained ``offline`` status and
a catch-up burst with the original ``ts`` and ``seq`` when the device is back.

An optional :class:`~firmware_sim.devices.faults.FaultPlan` replaces a share of the readings
with malformed, spoofed, replayed, absurd or flooding publications.

Closed loop: :attr:`LivePublisher.clock` is the simulated clock (an object with
``now()``), :attr:`LivePublisher.after_step` hooks run after every step (e.g. the vendor
sandbox's ``tick``), and :meth:`LivePublisher.locked` wraps a delivery hook so it can
be called from any thread (the sandbox's request threads) without racing the step.

Timestamps are simulated time: a consumer that refuses timestamps from the future (the
agent allows one day of skew by default) needs a scenario start far enough in the past
(``--start``) for the run's length.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.errors import BrokerError
from agent.wire.device import Channel, StateMessage, StatusMessage, device_topic, encode
from firmware_sim.devices.base import SimDevice
from firmware_sim.devices.faults import FaultPlan, Publication, publication
from firmware_sim.household.scenario import Household

if TYPE_CHECKING:
    from firmware_sim.vendor import VendorSandbox

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_SPEED = 86_400.0
DEFAULT_TICK_S = 0.1
CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 10.0


def load_passwords(path: Path) -> dict[str, str]:
    """Read ``device_id:password`` lines (``#`` comments and blank lines ignored)."""
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            # Only the line number: the line itself holds a secret.
            raise ValueError(f"{path}: line {number}: expected device_id:password")
        out[user.strip()] = password.strip()
    return out


@dataclass
class LiveStats:
    """What a live run published (counts only, never payloads)."""

    states: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    sim_start: datetime | None = None
    sim_now: datetime | None = None
    wall_seconds: float = 0.0

    def summary(self) -> str:
        """One human line per device plus totals."""
        lines = [f"  {dev}: {n} readings, {self.events[dev]} events"
                 for dev, n in sorted(self.states.items())]
        days = ((self.sim_now - self.sim_start) / timedelta(days=1)
                if self.sim_now and self.sim_start else 0.0)
        lines.append(f"  simulated {days:.1f} days in {self.wall_seconds:.1f} s; "
                     f"{sum(self.states.values())} readings, {sum(self.events.values())} events")
        if self.faults:
            lines.append("  faults injected: " + ", ".join(
                f"{k}={v}" for k, v in sorted(self.faults.items())))
        if self.refused:
            lines.append(f"  publications refused by the broker: {self.refused}")
        return "\n".join(lines)


class DeviceConnection:
    """One device's MQTT session (MQTT 5, so a denied publish shows in its PUBACK)."""

    def __init__(self, device_id: str, password: str, host: str, port: int, *,
                 cafile: Path | None = None, keepalive: int = 30) -> None:
        self.device_id = device_id
        self.host, self.port = host, port
        self.refused = 0
        self.published = 0  # QoS 1 publishes handed to the client (refused ones included)
        self._connected = threading.Event()
        self._reason: ReasonCode | None = None
        self._pending: list[mqtt.MQTTMessageInfo] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{device_id}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(device_id, password)
        if cafile is not None:
            self.client.tls_set(ca_certs=str(cafile))
        self.client.will_set(device_topic(device_id, Channel.STATUS),
                             encode(StatusMessage(state="offline")), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.keepalive = keepalive

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    reason: ReasonCode, properties: Properties | None) -> None:
        self._reason = reason
        self._connected.set()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:  # e.g. 135 Not authorized: the ACL said no
            self.refused += 1

    def connect(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Connect and wait for the CONNACK; raises BrokerError when refused or unreachable."""
        try:
            self.client.connect(self.host, self.port, keepalive=self.keepalive)
        except OSError as err:
            raise BrokerError(f"{self.device_id}: cannot reach broker: {err}") from err
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            raise BrokerError(f"{self.device_id}: no CONNACK within {timeout:.0f} s")
        if self._reason is not None and self._reason.is_failure:
            self.client.loop_stop()
            raise BrokerError(f"{self.device_id}: connection refused: {self._reason}")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 1 publish; completion is awaited in :meth:`flush`."""
        self._pending.append(self.client.publish(topic, payload, qos=1, retain=retain))
        self.published += 1
        if len(self._pending) > 1000:
            self._pending = [i for i in self._pending if not i.is_published()]

    def status(self, online: bool, at: datetime | None = None) -> None:
        """Publish the retained online/offline marker."""
        msg = StatusMessage(state="online" if online else "offline", ts=at)
        self.publish(device_topic(self.device_id, Channel.STATUS), encode(msg), retain=True)

    def flush(self, timeout: float = PUBLISH_TIMEOUT_S) -> None:
        """Wait until every QoS 1 publish so far is acknowledged."""
        deadline = time.monotonic() + timeout
        for info in self._pending:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        self._pending = [i for i in self._pending if not i.is_published()]
        if self._pending:
            raise BrokerError(f"{self.device_id}: {len(self._pending)} publishes unacknowledged")

    def close(self) -> None:
        """Say offline, flush and disconnect cleanly (the will is then not sent)."""
        try:
            self.status(online=False)
            self.flush()
        finally:
            self.client.disconnect()
            self.client.loop_stop()


class SimulatedClock:
    """The household's simulated time, for anything that must share it (the sandbox)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        """The simulated instant the household has reached."""
        return self._now

    def set(self, when: datetime) -> None:
        """Move to ``when`` (only the publisher's step does this)."""
        self._now = when


class LivePublisher:
    """Runs a :class:`Household` against a broker in compressed time."""

    def __init__(self, household: Household, host: str, port: int,
                 passwords: Mapping[str, str], *, speed: float = DEFAULT_SPEED,
                 tick_s: float = DEFAULT_TICK_S, faults: FaultPlan | None = None,
                 cafile: Path | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        missing = [d.device_id for d in household.devices if d.device_id not in passwords]
        if missing:
            raise ValueError(f"no password for device(s) {missing}")
        self.household = household
        self.speed = speed
        self.tick_s = tick_s
        self.faults = faults
        self.stats = LiveStats()
        self._clock, self._sleep = clock, sleep
        self._online: dict[str, bool] = {}
        self._held: dict[str, list[Publication]] = {}
        self.clock = SimulatedClock(household.start)
        self.after_step: list[Callable[[], object]] = []
        self.lock = threading.RLock()
        self.connections = {
            d.device_id: DeviceConnection(d.device_id, passwords[d.device_id], host, port,
                                          cafile=cafile)
            for d in household.devices
        }

    def __enter__(self) -> LivePublisher:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Connect every device and publish its retained online status."""
        started: list[DeviceConnection] = []
        try:
            for dev in self.household.devices:
                conn = self.connections[dev.device_id]
                conn.connect()
                started.append(conn)
                conn.status(online=True, at=self.household.start)
                self._online[dev.device_id] = True
        except BrokerError:
            for conn in started:
                conn.close()
            raise
        log.info("sim.live connected devices=%d", len(started))

    def close(self) -> None:
        """Flush and disconnect every device."""
        for conn in self.connections.values():
            conn.close()
        self.stats.refused = sum(c.refused for c in self.connections.values())

    @property
    def delivered(self) -> int:
        """Messages the broker accepted from the devices so far (exact after a flush):
        what a subscriber to every device topic receives."""
        return sum(c.published - c.refused for c in self.connections.values())

    def locked(self, hook: Callable[[T], None]) -> Callable[[T], None]:
        """``hook`` made safe to call from other threads while the household runs."""

        def call(arg: T) -> None:
            with self.lock:
                hook(arg)

        return call

    def step(self, now: datetime) -> None:
        """Advance the household to ``now``, publish what happened, run ``after_step``."""
        hh = self.household
        with self.lock:
            self.clock.set(now)
            for hook in self.after_step:
                hook()  # deliveries due by now reach the devices before they advance
            for event in hh.advance(now):
                self._held.setdefault(event.device_id, []).append(
                    (device_topic(event.device_id, Channel.EVENTS), encode(event)))
                self.stats.events[event.device_id] += 1
            for dev in hh.devices:
                self._publish_device(dev, now)
        self.stats.sim_now = now

    def _publish_device(self, dev: SimDevice, now: datetime) -> None:
        conn = self.connections[dev.device_id]
        connected = dev.connected(now)
        if connected != self._online.get(dev.device_id):
            conn.status(online=connected, at=now)
            self._online[dev.device_id] = connected
        rows = dev.poll(now)
        if not connected:
            return
        for topic, payload in self._held.pop(dev.device_id, []):
            conn.publish(topic, payload)
        for _, body in rows:
            msg = StateMessage.model_validate(body)
            pubs = self.faults.apply(msg) if self.faults else [publication(msg)]
            for topic, payload in pubs:
                conn.publish(topic, payload)
            self.stats.states[dev.device_id] += 1
        if self.faults:
            self.stats.faults = Counter(self.faults.injected)

    def run(self, days: float | None = None,
            progress: Callable[[LiveStats], None] | None = None,
            stop: threading.Event | None = None) -> LiveStats:
        """Run until ``days`` simulated days have passed (or ``stop`` is set)."""
        start = self.household.start
        end = start + timedelta(days=days) if days is not None else None
        wall0 = self._clock()
        self.stats.sim_start = start
        while True:
            now = start + timedelta(seconds=(self._clock() - wall0) * self.speed)
            if end is not None and now >= end:
                now = end
            self.step(now)
            self.stats.wall_seconds = self._clock() - wall0
            if progress is not None:
                progress(self.stats)
            if (end is not None and now >= end) or (stop is not None and stop.is_set()):
                break
            self._sleep(self.tick_s)
        for conn in self.connections.values():
            conn.flush()
        return self.stats


def attach_sandbox(publisher: LivePublisher, token: str, *, host: str = "127.0.0.1",
                   port: int = 0) -> VendorSandbox:
    """Start a vendor sandbox that shares the household's clock and delivers into it.

    Its catalog carries the scenario's SKUs and lead times; each delivered order puts
    ``quantity`` packs into the device whose consumable has that SKU. The caller stops
    it (``sandbox.stop()``).
    """
    from firmware_sim.vendor import VendorSandbox, catalog_for, deliver_to

    hh = publisher.household
    sandbox = VendorSandbox(port, token, catalog_for(hh), publisher.clock, host=host,
                            seed=hh.seed, on_delivered=publisher.locked(deliver_to(hh)))
    sandbox.start()
    publisher.after_step.append(sandbox.tick)
    return sandbox

