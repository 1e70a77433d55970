"""A household of foreign devices in a closed loop with the agent, on simulated time.

The same in-process approach as ``make demo`` (:mod:`firmware_sim.demo`): a private
Mosquitto from ``broker_config/``, the vendor sandbox over HTTP on a shared
:class:`SimClock`, and the real :class:`AgentService` (ingest, foreign reader, planner,
consent, outbox) on an SQLite file, with its periodic passes driven by :meth:`step`.
The devices speak other projects' formats (:mod:`firmware_sim.devices.foreign`, the
Nightscout fixture site): a Zigbee2MQTT bridge of battery sensors, a Valetudo robot
without Home Assistant discovery, a Nightscout wearer. Deliveries from the sandbox go
into the household's drawer; the household replaces what its devices say is used up.

Used by ``make demo-foreign`` (:mod:`firmware_sim.demo_foreign`) and the closed-loop
integration tests.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from agent.app.service import AgentService
from agent.config import load_settings
from agent.storage.ledger import Ledger
from agent.storage.store import Store
from firmware_sim.broker import LocalBroker
from firmware_sim.demo import cli
from firmware_sim.devices.foreign import ForeignPublisher, Zigbee2MqttBridge
from firmware_sim.devices.nightscout import NightscoutSite
from firmware_sim.devices.valetudo import ValetudoRobot, roborock_parts
from firmware_sim.devices.wearer import BATTERY_SKU, INSULIN_SKU, SENSOR_SKU, Wearer
from firmware_sim.vendor import VendorSandbox
from firmware_sim.vendor.catalog import DEFAULT_CATALOG, CatalogEntry
from firmware_sim.vendor.faults import SimClock
from firmware_sim.vendor.orders import RecordedOrder

START = datetime(2027, 1, 4, 6, 0, tzinfo=UTC)
STEP = timedelta(hours=6)
FOREIGN_ACL = """
user foreign
topic write zigbee2mqtt/#
topic write homeassistant/#
topic write valetudo/#
topic write esphome/#
"""
# Battery type -> (SKU, cells per pack): in the sandbox's catalog and in agent.toml.
CELLS = {"CR2032": ("CR2032-10", 10), "CR2450": ("CR2450-10", 10), "CR1632": ("CR1632-5", 5)}


ROBOT_PARTS = {p.id: p.sku for p in roborock_parts()}


def foreign_catalog() -> tuple[CatalogEntry, ...]:
    extra = [CatalogEntry(sku, f"{cell} lithium coin cells, {n}-pack", Decimal("6.90"),
                          pack_size=n, unit="cell", lead_time_days=2.0, lead_time_sd_days=0.5)
             for cell, (sku, n) in CELLS.items()]
    extra += [CatalogEntry(sku, f"Roborock {part} replacement", Decimal("12.90"),
                           unit="piece", lead_time_days=3.0, lead_time_sd_days=1.0)
              for part, sku in ROBOT_PARTS.items()]
    extra += [CatalogEntry(SENSOR_SKU, "Dexcom G7 sensor", Decimal("89.00"), unit="sensor",
                           lead_time_days=3.0, lead_time_sd_days=1.0),
              CatalogEntry(INSULIN_SKU, "Insulin aspart, 10 ml vial (1,000 units)",
                           Decimal("29.90"), pack_size=1000, unit="U", lead_time_days=2.0),
              CatalogEntry(BATTERY_SKU, "AAA lithium batteries, 4-pack", Decimal("5.90"),
                           pack_size=4, unit="battery", lead_time_days=2.0)]
    return (*DEFAULT_CATALOG, *extra)


WEARER = {"cgm-sensor": SENSOR_SKU, "insulin": INSULIN_SKU, "pump-battery": BATTERY_SKU}


def nightscout_toml(url: str, token_file: Path) -> str:
    skus = ", ".join(f'"{c}" = "{sku}"' for c, sku in WEARER.items())
    return (f'[sources.nightscout]\nurl = "{url}"\ntoken_file = "{token_file}"\n'
            f"sensor_life_days = 10\nreservoir_units = 200\nskus = {{ {skus} }}\n")


def sources_toml() -> str:
    lines = ["[sources.zigbee2mqtt]", "battery_window_days = 30", "",
             "[sources.zigbee2mqtt.battery_skus]"]
    lines += [f'{cell} = {{ sku = "{sku}", pack_size = {n} }}'
              for cell, (sku, n) in CELLS.items()]
    lines += ["", "[sources.valetudo]", 'prefix = "valetudo"', "", "[sources.valetudo.skus]"]
    lines += [f'"{part}" = "{sku}"' for part, sku in ROBOT_PARTS.items()]
    return "\n".join(lines) + "\n"


def write_config(state: Path, broker: LocalBroker, vendor: VendorSandbox, token: str,
                 nightscout: NightscoutSite | None = None) -> Path:
    secrets_dir = state / "secrets"
    secrets_dir.mkdir(parents=True)
    (secrets_dir / "mqtt-password").write_text(broker.passwords["agent"])
    (secrets_dir / "vendor-token").write_text(token)
    ns = ""
    if nightscout is not None:
        (secrets_dir / "nightscout-token").write_text(nightscout.token)
        ns = nightscout_toml(nightscout.start(), secrets_dir / "nightscout-token")
    config = state / "agent.toml"
    config.write_text(f"""# Written by firmware_sim.foreign_world: the agent among foreign devices.
[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "agent"
password_file = "{secrets_dir / 'mqtt-password'}"
client_id = "replenish-agent-foreign"

[storage]
path = "{state / 'agent.db'}"

[vendor]
base_url = "{vendor.url}"
token_file = "{secrets_dir / 'vendor-token'}"
require_synced_clock = false  # simulated time

[household]
enabled = false

{sources_toml()}
{ns}""")
    return config


@dataclass
class Tally:
    """What happened, for the demo's summary and the tests' assertions."""

    orders: list[RecordedOrder] = field(default_factory=list)  # delivered, in order
    # (when, consumable, packs, reason) of every intent the agent created
    intents: list[tuple[datetime, str, int, str]] = field(default_factory=list)
    drawer: list[dict[str, int]] = field(default_factory=list)  # cells in it at each intent


class ForeignWorld:
    """Broker, sandbox, agent and the foreign devices; :meth:`step` moves time on."""

    def __init__(self, state: Path, bridge: Zigbee2MqttBridge | None = None,
                 robot: ValetudoRobot | None = None, wearer: bool = False,
                 say: Callable[[str], None] = lambda text: None,
                 step: timedelta = STEP) -> None:
        self.state = state
        self.step_size = step
        self.bridge = bridge
        self.robot = robot
        self.site = NightscoutSite() if wearer else None
        self.wearer = Wearer(self.site) if self.site is not None else None
        self.say = say
        self.clock = SimClock(START)
        self.tally = Tally()
        self._seen_intents: set[int] = set()
        self._stack = contextlib.ExitStack()

    # ---- setup ----------------------------------------------------------------------

    def __enter__(self) -> ForeignWorld:
        users = {"agent": secrets.token_urlsafe(16), "household": secrets.token_urlsafe(16),
                 "foreign": secrets.token_urlsafe(16)}
        token = secrets.token_urlsafe(24)
        self.broker = self._stack.enter_context(
            LocalBroker(self.state / "broker", users=users, extra_acl=FOREIGN_ACL))
        self.vendor = self._stack.enter_context(VendorSandbox(
            token=token, catalog=foreign_catalog(), clock=self.clock,
            on_delivered=self._delivered))
        if self.site is not None:
            self._stack.callback(self.site.stop)
        self.config = write_config(self.state, self.broker, self.vendor, token, self.site)
        self.service = AgentService(load_settings(self.config), clock=self.clock.now)
        self.service.start(background_jobs=False)
        self._stack.callback(self.service.shutdown)
        self.publisher = ForeignPublisher(self.broker.host, self.broker.port, "foreign",
                                          users["foreign"])
        self._stack.callback(self.publisher.close)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def replenish(self, *args: str) -> str:
        """A ``replenish`` command at simulated time; raises on a non-zero exit."""
        code, out = cli(self.config, *args, now=self.clock.now(), quiet=True)
        if code != 0:
            raise RuntimeError(f"replenish {' '.join(args)} exited {code}: {out}")
        return out

    def drain(self, expect: int, timeout: float = 10.0) -> None:
        """Wait until the agent has queued ``expect`` foreign messages, then process them."""
        reader = self.service.sources.foreign
        deadline = time.monotonic() + timeout
        while reader.queue.qsize() < expect and time.monotonic() < deadline:
            time.sleep(0.005)
        self.service.sources.drain()

    def drain_until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.service.sources.drain()
            if check():
                return
            time.sleep(0.02)
        raise TimeoutError("the agent did not read what the devices published")

    def consumables(self, device_id: str) -> list[str]:
        with Store(self.service.settings.storage.path) as store:
            return [r.consumable_id for r in store.consumables(counts=False)
                    if r.device_id == device_id]

    def adopt_bridge(self) -> None:
        """Publish the retained device list, then adopt every battery sensor."""
        assert self.bridge is not None
        self.publisher.publish(f"{self.bridge.prefix}/bridge/devices",
                               self.bridge.devices(), retain=True)
        self.drain(1)
        for s in self.bridge.sensors:
            self.replenish("sources", "adopt", f"z2m:{s.ieee}")
        self.service.sources.foreign.refresh_adoptions()
        time.sleep(0.2)  # the broker confirms the new subscriptions

    def consent_batteries(self) -> None:
        for cell, (sku, _) in CELLS.items():
            self.replenish("consent", "set", f"z2m-batteries/{cell}", "auto", "--sku", sku,
                           "--max-price", "10", "--max-qty", "4", "--budget", "40")

    def start_robot(self) -> None:
        """The robot announces its consumables; the household consents to each."""
        assert self.robot is not None
        self.robot.announce(self.publisher)
        self.robot.publish(self.publisher)
        device = f"valetudo-{self.robot.identifier}"
        self.drain_until(lambda: len(self.consumables(device)) == len(self.robot.parts))
        for part in self.robot.parts:
            self.replenish("consent", "set", f"valetudo-{self.robot.identifier}/{part.id}",
                           "auto", "--sku", part.sku, "--max-price", "20", "--max-qty", "2",
                           "--budget", "60")

    def start_wearer(self) -> None:
        """Six days into a sensor, a reservoir just filled; the wearer consents to orders."""
        assert self.wearer is not None
        self.wearer.start(self.clock.now(), sensor_age_days=6.0, reservoir=190.0, battery=40.0)
        self.service.sources.poll_nightscout()
        for consumable, sku in WEARER.items():
            self.replenish("consent", "set", f"ns-nightscout/{consumable}", "auto", "--sku",
                           sku, "--max-price", "100", "--max-qty", "3", "--budget", "400")

    # ---- time -------------------------------------------------------------------------

    def _delivered(self, order: RecordedOrder) -> None:
        self.tally.orders.append(order)
        if self.wearer is not None and order.sku in WEARER.values():
            self.wearer.receive(order.sku, order.quantity, order.pack_size)
            self.say(f"  [vendor] delivered {order.quantity} x {order.sku}")
        if self.robot is not None and order.sku in ROBOT_PARTS.values():
            self.robot.drawer[order.sku] = self.robot.drawer.get(order.sku, 0) + order.quantity
            self.say(f"  [vendor] delivered {order.quantity} x {order.sku}")
        cell = next((c for c, (sku, _) in CELLS.items() if sku == order.sku), None)
        if cell is not None and self.bridge is not None:
            self.bridge.shelf[cell] = (self.bridge.shelf.get(cell, 0)
                                       + order.quantity * order.pack_size)
            self.say(f"  [vendor] delivered {order.quantity} x {order.sku}")

    def publish_batteries(self) -> None:
        assert self.bridge is not None
        for s in self.bridge.sensors:
            self.publisher.publish(f"{self.bridge.prefix}/{s.friendly_name}", s.state())
        self.drain(len(self.bridge.sensors))

    def step(self, decide: bool) -> datetime:
        """A step on (six hours by default): the vendor ships, the household fits what its
        devices ask for; with ``decide`` the devices report and the agent decides."""
        now = self.clock.advance(self.step_size)
        self.vendor.tick()
        if self.bridge is not None:
            self.bridge.day(self.step_size / timedelta(days=1))
            for s in self.bridge.replace_low():
                self.say(f"  [household] {now:%Y-%m-%d} new {s.cell} in {s.friendly_name}")
            if decide:
                self.publish_batteries()
        if self.robot is not None:
            self.robot.day(self.step_size / timedelta(days=1))
            for p in self.robot.replace_worn():
                self.say(f"  [household] {now:%Y-%m-%d} new {p.id} in the robot")
            if decide:
                self.drain(self.robot.publish(self.publisher))
        if self.wearer is not None:
            self.wearer.advance(now, self.step_size)
            self.service.sources.poll_nightscout()
        if decide:
            self.service.decide()
            self._note_intents(now)
        self.service.dispatch()
        return now

    def _note_intents(self, now: datetime) -> None:
        ledger = Ledger.open(self.service.settings.storage.path)
        try:
            for it in ledger.intents():
                if it.id not in self._seen_intents:
                    self._seen_intents.add(it.id)
                    self.tally.intents.append((now, it.consumable, it.quantity,
                                               it.reason or ""))
                    self.tally.drawer.append(dict(self.bridge.shelf) if self.bridge else {})
                    self.say(f"  [agent] {now:%Y-%m-%d} {it.consumable}: {it.quantity} "
                             f"x {it.sku} ({it.reason})")
        finally:
            ledger.close()
