"""Live mode end to end: the demo household publishes through a real Mosquitto."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.errors import BrokerError, PayloadError
from agent.storage.store import Store
from agent.wire.device import (
    Channel,
    StateMessage,
    parse_event,
    parse_state,
    parse_status,
    parse_topic,
)
from firmware_sim.__main__ import main as sim_main
from firmware_sim.broker import LocalBroker
from firmware_sim.devices.faults import FaultPlan
from firmware_sim.household.live import LivePublisher, attach_sandbox
from firmware_sim.household.scenario import Household
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
DEVICES = ("printer-1", "fridge-1", "wearable-1")
# Two simulated days in about one wall second.
SPEED = 2 * 86_400.0


class Recorder:
    """The agent account subscribed to every device topic, keeping raw messages."""

    def __init__(self, broker: LocalBroker) -> None:
        self.messages: dict[tuple[str, Channel], list[bytes]] = defaultdict(list)
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-test-recorder",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set("agent", broker.passwords["agent"])
        self.client.on_connect = lambda c, *_: c.subscribe("replenish/v1/devices/#", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.ready.wait(10), "recorder did not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        topic = parse_topic(msg.topic)
        with self.lock:
            self.messages[(topic.device_id, topic.channel)].append(bytes(msg.payload))

    def get(self, device_id: str, channel: Channel) -> list[bytes]:
        with self.lock:
            return list(self.messages[(device_id, channel)])

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def recorder(broker: LocalBroker) -> Iterator[Recorder]:
    rec = Recorder(broker)
    yield rec
    rec.close()


def publish_demo(broker: LocalBroker, days: float, faults: FaultPlan | None = None,
                 ) -> LivePublisher:
    household = Household.from_scenario("demo")
    publisher = LivePublisher(household, broker.host, broker.port, broker.passwords,
                              speed=SPEED, tick_s=0.02, faults=faults)
    with publisher:
        publisher.run(days=days)
    return publisher


def test_demo_household_publishes_valid_state_from_each_device(
    broker: LocalBroker, recorder: Recorder
) -> None:
    publisher = publish_demo(broker, days=2)
    stats = publisher.stats
    assert set(stats.states) == set(DEVICES)
    wait_until(lambda: all(len(recorder.get(d, Channel.STATE)) >= stats.states[d]
                         for d in DEVICES))
    for device in DEVICES:
        raw = recorder.get(device, Channel.STATE)
        parsed = [parse_state(parse_topic(f"replenish/v1/devices/{device}/state"), p)
                  for p in raw]
        assert len(parsed) == stats.states[device]
        assert all(isinstance(m, StateMessage) and m.device_id == device for m in parsed)
        assert len({m.seq for m in parsed}) == len(parsed)
        statuses = [parse_status(p).state for p in recorder.get(device, Channel.STATUS)]
        assert statuses[0] == "online" and statuses[-1] == "offline"
        for payload in recorder.get(device, Channel.EVENTS):
            parse_event(parse_topic(f"replenish/v1/devices/{device}/events"), payload)
    assert publisher.stats.refused == 0


def test_wrong_password_is_reported_as_broker_error(broker: LocalBroker) -> None:
    household = Household.from_scenario("demo")
    passwords = {**broker.passwords, "fridge-1": "not-the-password"}
    publisher = LivePublisher(household, broker.host, broker.port, passwords)
    with pytest.raises(BrokerError, match="fridge-1"):
        publisher.connect()


def test_faults_reach_the_wire_and_are_refused_by_the_parser(
    broker: LocalBroker, recorder: Recorder
) -> None:
    plan = FaultPlan(["malformed", "wrong_device", "nan"], rate=0.3, seed=5)
    publisher = publish_demo(broker, days=1, faults=plan)
    injected = sum(plan.injected.values())
    assert injected > 0
    total = sum(publisher.stats.states.values())
    wait_until(lambda: sum(len(recorder.get(d, Channel.STATE)) for d in DEVICES) >= total)
    refused = 0
    for device in DEVICES:
        for payload in recorder.get(device, Channel.STATE):
            try:
                parse_state(parse_topic(f"replenish/v1/devices/{device}/state"), payload)
            except PayloadError:
                refused += 1
    assert refused == injected


def test_cli_household_command_against_the_broker(
    broker: LocalBroker, recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text("".join(f"{d}:{broker.passwords[d]}\n" for d in DEVICES))
    code = sim_main(["household", "demo", "--broker", f"{broker.host}:{broker.port}",
                     "--passwords", str(passwords), "--speed", str(SPEED), "--days", "1",
                     "--tick", "0.02"])
    assert code == 0
    out = capsys.readouterr().out
    assert "printer-1:" in out and "readings" in out
    wait_until(lambda: all(recorder.get(d, Channel.STATE) for d in DEVICES))
    assert "printer-1-pass" not in out


def test_agent_stores_the_household_readings(broker: LocalBroker, tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent", broker)
    db = tmp_path / "agent" / "agent.db"
    with AgentProcess(config):
        publisher = publish_demo(broker, days=2)

        def stored() -> bool:
            if not db.exists():
                return False
            with Store(db) as store:
                return all(len(store.seqs(d)) == publisher.stats.states[d]
                           for d in DEVICES)

        wait_until(stored, timeout=30)
    with Store(db) as store:
        consumables = {(c.device_id, c.consumable_id) for c in store.consumables()}
        assert {("printer-1", "toner"), ("fridge-1", "milk"),
                ("wearable-1", "sensors")} <= consumables
        assert store.reject_counts() == []


def test_closed_loop_sandbox_delivery_refills_the_device(broker: LocalBroker) -> None:
    household = Household.from_scenario("demo")
    publisher = LivePublisher(household, broker.host, broker.port, broker.passwords,
                              speed=4 * 86_400.0, tick_s=0.02)
    sandbox = attach_sandbox(publisher, "sim-token")
    try:
        response = httpx.post(
            f"{sandbox.url}/v1/orders", json={"sku": "TN-2410", "quantity": 1},
            headers={"Authorization": "Bearer sim-token", "Idempotency-Key": "intent-1"},
            timeout=10,
        )
        assert response.status_code in (200, 201), response.text
        printer = household.device("printer-1")
        assert printer.truth()["toner"].spare == 0
        with publisher:
            publisher.run(days=8)
    finally:
        sandbox.stop()
    (order,) = sandbox.orders()
    assert order.delivered_at is not None
    assert household.start < order.delivered_at < household.start + timedelta(days=8)
    # The demo printer's toner (45 %) lasts past day 8: the new cartridge waits on the shelf.
    assert printer.truth()["toner"].spare == 100
