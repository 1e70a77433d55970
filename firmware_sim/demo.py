"""``make demo``: a simulated household ordering from the sandbox vendor, end to end.

Everything is real except time: a private Mosquitto from ``broker_config/``, the demo
household (printer, fridge, wearable) publishing over MQTT with its own accounts, the
vendor sandbox over HTTP, and the agent (ingest, forecast, consent, outbox, household
link) on an embedded SQLite file under ``demo-state/``. A shared simulated clock moves a
month forward in about a minute. Consent: the printer's toner on ``auto`` within a
mandate, the fridge's milk on ``confirm`` (approved from the CLI as the proposals come
in), the wearable's sensors on ``remind``. A subscriber on the household account prints
the notifications as they happen, like a phone app would see them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.app.service import AgentService
from agent.cli.main import main as replenish
from agent.config import load_settings
from agent.logs import setup_logging
from firmware_sim.broker import LocalBroker
from firmware_sim.household.live import LivePublisher
from firmware_sim.household.scenario import Household
from firmware_sim.vendor import VendorSandbox, catalog_for, deliver_to
from firmware_sim.vendor.faults import SimClock

STEP = timedelta(hours=1)
DECIDE_EVERY = timedelta(hours=6)
CONSENT = [
    ["printer-1/toner", "auto", "--sku", "TN-2410", "--max-price", "80", "--max-qty", "2",
     "--budget", "150"],
    ["fridge-1/milk", "confirm"],
    ["wearable-1/sensors", "remind"],
]


_SCREEN = sys.stdout  # the phone's thread prints while a CLI call captures sys.stdout


def _say(text: str) -> None:
    print(text, file=_SCREEN, flush=True)


def cli(config: Path, *args: str, now: datetime, quiet: bool = False) -> tuple[int, str]:
    """Run a ``replenish`` command in-process at simulated time ``now``."""
    out = io.StringIO()
    os.environ["REPLENISH_NOW"] = now.isoformat()
    try:
        with contextlib.redirect_stdout(out):
            code = replenish(["--config", str(config), *args])
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    finally:
        os.environ.pop("REPLENISH_NOW", None)
    if not quiet:
        _say(f"$ replenish {' '.join(args)}\n{out.getvalue().rstrip()}")
    return code, out.getvalue()


class HouseholdWatcher:
    """Subscribes as the household account and prints events as they arrive."""

    def __init__(self, broker: LocalBroker) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-phone",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set("household", broker.passwords["household"])
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe("replenish/v1/household/events", 1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.count = 0
        self.reminded: set[tuple[str, str]] = set()  # (device, consumable) to buy

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
            self.count += 1
            if body["kind"] == "reminder":
                self.reminded.add((body["device_id"], body["consumable_id"]))
            _say(f"  [phone] {body['at'][:16]} {body['kind']:<16} {body['message']}")
        except (ValueError, KeyError):
            pass

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_config(state: Path, broker: LocalBroker, vendor: VendorSandbox, token: str) -> Path:
    secrets_dir = state / "secrets"
    secrets_dir.mkdir(parents=True)
    (secrets_dir / "mqtt-password").write_text(broker.passwords["agent"])
    (secrets_dir / "vendor-token").write_text(token)
    config = state / "agent.toml"
    config.write_text(
        f"""# Written by make demo: the agent on the demo broker and the sandbox vendor.
[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "agent"
password_file = "{secrets_dir / 'mqtt-password'}"
client_id = "replenish-agent-demo"

[storage]
path = "{state / 'agent.db'}"

[vendor]
base_url = "{vendor.url}"
token_file = "{secrets_dir / 'vendor-token'}"
# The demo runs on a simulated clock, not on NTP time.
require_synced_clock = false

[household]
homeassistant = true

[ingest]
# Simulated days pass in seconds: commit each step's readings at once instead of
# holding them for the wall-clock group-commit window (and their "last" values).
commit_window_s = 0
last_values_interval_s = 0
"""
    )
    return config


def advance_world(clock: SimClock, vendor: VendorSandbox, publisher: LivePublisher,
                  step: timedelta) -> datetime:
    """One simulated step: time moves, the vendor delivers what is due, and every device
    publishes what it reads now."""
    now = clock.advance(step)
    vendor.tick()
    publisher.step(now)
    for conn in publisher.connections.values():
        conn.flush()
    return now


def wait_ingested(service: AgentService, timeout: float = 10.0) -> None:
    """Let the agent commit what the devices just published."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        received = service.ingest.writer.stats.received
        if received == seen and service.ingest.writer.idle:
            return
        seen = received
        time.sleep(0.05)


@contextlib.contextmanager
def demo_world(state: Path) -> Iterator[tuple[Household, SimClock, LocalBroker, VendorSandbox,
                                              Path]]:
    household = Household.from_scenario("demo")
    clock = SimClock(household.start)
    users = {"agent": secrets.token_urlsafe(16), "household": secrets.token_urlsafe(16)}
    users |= {d.device_id: secrets.token_urlsafe(16) for d in household.devices}
    token = secrets.token_urlsafe(24)
    with LocalBroker(state / "broker", users=users) as broker, VendorSandbox(
        token=token, catalog=catalog_for(household), clock=clock,
        on_delivered=deliver_to(household),
    ) as vendor:
        yield household, clock, broker, vendor, write_config(state, broker, vendor, token)


def buy_after_reminders(watcher: HouseholdWatcher, household: Household,
                        now: datetime) -> None:
    """``remind`` mode: the household reads the reminder and buys a pack itself."""
    while watcher.reminded:
        device_id, consumable_id = watcher.reminded.pop()
        household.deliver(device_id, consumable_id, 1, now + timedelta(days=1))
        _say(f"  [household] bought a pack for {device_id}/{consumable_id} after the reminder")


def approve_proposals(config: Path, now: datetime) -> None:
    """The household approves the fridge's proposals from the CLI, as they come in."""
    code, out = cli(config, "orders", "list", "--json", now=now, quiet=True)
    if code != 0:
        return
    for order in json.loads(out or "[]"):
        if order["state"] == "proposed" and order["consumable"].startswith("fridge-1/"):
            cli(config, "orders", "approve", str(order["id"]), now=now)


def serve_web(config: Path, now: datetime, port: int) -> None:
    """Leave the household's web app running on the demo's data until Ctrl-C."""
    from agent.clock import NOW_ENV
    from agent.web import auth, server

    settings = load_settings(config)
    settings = settings.model_copy(update={"web": settings.web.model_copy(
        update={"host": "127.0.0.1", "port": port})})
    password = secrets.token_urlsafe(9)
    auth.set_password(server.paths(settings).password, password)
    os.environ[NOW_ENV] = now.isoformat()  # the pages show the simulated month's end
    _say(f"\nweb app: http://127.0.0.1:{port}/  password: {password}  (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve(settings)


def run(days: int, seconds_per_day: float, state: Path, web_port: int | None = None) -> int:
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    with demo_world(state) as (household, clock, broker, vendor, config):
        _say(f"broker on {broker.host}:{broker.port}, sandbox vendor at {vendor.url}, "
             f"database {state / 'agent.db'}")
        setup_logging("INFO", (state / "agent.log").open("a"), journal=False)
        service = AgentService(load_settings(config), clock=clock.now)
        service.start(background_jobs=False)
        watcher = HouseholdWatcher(broker)
        passwords = {d.device_id: broker.passwords[d.device_id] for d in household.devices}
        end = household.start + timedelta(days=days)
        last_decision = household.start - DECIDE_EVERY
        _say(f"\nsimulating {days} days from {household.start:%Y-%m-%d} "
             f"({seconds_per_day:g} s per simulated day)\n")
        try:
            with LivePublisher(household, broker.host, broker.port, passwords) as publisher:
                now = household.start
                consented = False
                while now < end:
                    tick = time.monotonic()
                    now = advance_world(clock, vendor, publisher, STEP)
                    wait_ingested(service)
                    if not consented:
                        # Consent names consumables the agent has heard of: the household
                        # grants it once the devices have reported.
                        for args in CONSENT:
                            cli(config, "consent", "set", *args, now=clock.now())
                        consented = True
                    if now - last_decision >= DECIDE_EVERY:
                        last_decision = now
                        service.decide()
                        service.sync_household()  # the phone sees the proposal first
                        approve_proposals(config, now)
                        service.dispatch()
                    service.sync_household()
                    buy_after_reminders(watcher, household, now)
                    pause = seconds_per_day * STEP / timedelta(days=1)
                    time.sleep(max(0.0, pause - (time.monotonic() - tick)))
            time.sleep(0.3)  # let the last notifications arrive
        finally:
            watcher.close()
            service.shutdown()
        _say("")
        for args in (["status"], ["orders", "list", "--all"], ["audit", "verify"]):
            cli(config, *args, now=clock.now())
            _say("")
        _say(f"vendor sandbox holds {len(vendor.orders())} orders; "
             f"the phone saw {watcher.count} notifications; agent log: {state / 'agent.log'}")
        if web_port is not None:
            serve_web(config, clock.now(), web_port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.demo", description=__doc__)
    parser.add_argument("--days", type=int, default=31, help="simulated days (default 31)")
    parser.add_argument("--seconds-per-day", type=float, default=1.5,
                        help="wall-clock seconds per simulated day (default 1.5)")
    parser.add_argument("--state-dir", type=Path, default=Path("demo-state"))
    parser.add_argument("--web-port", type=int, default=8470,
                        help="port of the web app left running at the end (default 8470)")
    parser.add_argument("--no-web", action="store_true",
                        help="exit at the end instead of serving the web app (the default "
                             "when stdin is not a terminal, e.g. in tests)")
    args = parser.parse_args(argv)
    web = None if args.no_web or not sys.stdin.isatty() else args.web_port
    return run(args.days, args.seconds_per_day, args.state_dir, web)


if __name__ == "__main__":
    sys.exit(main())

