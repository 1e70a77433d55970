"""Issue 10 end to end: Home Assistant on a real Mosquitto drives the real agent.

The agent runs as ``replenish run`` against a broker rendered from ``broker_config/``
and the vendor sandbox over HTTP. A paho MQTT 5 client on the ``household`` account
plays Home Assistant: it reads discovery and household topics and presses buttons by
publishing their ``payload_press`` on their ``command_topic``. Proposals are written
straight into the agent's database with :class:`agent.storage.ledger.Ledger`, as the planner
would. The vendor token and the agent's MQTT password are canaries that must never
appear on a household topic, and neither may raw device payload content.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.consent import Mode, Proposal
from agent.household.link import proposal_ref
from agent.storage.ledger import Intent, Ledger, State
from agent.storage.store import Store
from agent.wire.household import ConsumableState, HouseholdEvent
from agent.wire.household import Proposal as ProposalView
from firmware_sim.broker import LocalBroker
from firmware_sim.vendor import VendorSandbox
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.integration.conftest import BROKER_USERS
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CANARY_TOKEN = f"canary-vendor-token-{uuid.uuid4().hex}"
CANARY_MQTT_PASSWORD = f"canary-mqtt-password-{uuid.uuid4().hex}"
CANARY_FW = f"fw-canary-{uuid.uuid4().hex[:16]}"  # raw device payload content
NOT_AUTHORIZED = 135
TTL_H = 1.0
TICK = 0.5  # household sync and dispatcher interval of the agent under test
SETTLE_MARKER = "settle-marker-"  # refs of the commands settle() sends as its markers
PREFIX = "homeassistant"
HOUSEHOLD = "replenish/v1/household"
TONER = Proposal("printer-1/black", "sandbox", "TN-2420", 1, 1, Decimal("64.90"),
                 "Toner cartridge TN-2420, 3,000 pages")

# Configuration variables Home Assistant documents for MQTT sensors and buttons
# (https://www.home-assistant.io/integrations/sensor.mqtt/, .../button.mqtt/).
_COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "device", "enabled_by_default", "encoding", "entity_category", "entity_picture",
    "icon", "json_attributes_template", "json_attributes_topic", "name", "object_id",
    "default_entity_id", "payload_available", "payload_not_available", "platform", "qos",
    "unique_id", "origin",
}
HA_KEYS = {
    "sensor": _COMMON | {
        "device_class", "expire_after", "force_update", "last_reset_value_template",
        "options", "state_class", "state_topic", "suggested_display_precision",
        "unit_of_measurement", "value_template",
    },
    "button": _COMMON | {"command_template", "command_topic", "device_class",
                         "payload_press", "retain"},
}
HA_DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer",
    "model", "model_id", "name", "serial_number", "suggested_area", "sw_version",
    "via_device",
}
HA_AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available",
                        "value_template"}
HA_STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
HA_UNITS = {"duration": {"d", "h", "min", "s", "ms", "µs"}, "weight": {"g", "kg", "mg",
            "µg", "oz", "lb", "st"}, "volume_storage": {"L", "mL", "gal", "fl. oz.", "m³",
                                                         "ft³", "CCF"}}
CONFIG_TOPIC = re.compile(rf"^{PREFIX}/(sensor|button)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config$")


# ---- MQTT peers -------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Msg:
    topic: str
    payload: bytes
    retain: bool


class Peer:
    """A paho MQTT 5 client that records what it receives and returns PUBACK codes."""

    def __init__(self, broker: LocalBroker, user: str, subscribe: tuple[str, ...] = ()) -> None:
        self.received: list[Msg] = []
        self._lock = threading.Lock()
        self._acks: dict[int, int] = {}
        self._acked = threading.Condition()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4()}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, broker.passwords[user])
        self.client.on_connect = lambda c, u, f, rc, p: self._connected.set()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._connected.wait(10), f"{user} could not connect"
        if subscribe:
            # retainAsPublished: a live message shows whether the agent set retain.
            opts = SubscribeOptions(qos=1, retainAsPublished=True)
            self.client.subscribe([(t, opts) for t in subscribe])
            assert self._subscribed.wait(10), "no SUBACK"

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        if SETTLE_MARKER.encode() in msg.payload:
            return  # settle()'s own marker commands are scaffolding, not what we observe
        with self._lock:
            self.received.append(Msg(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def _on_publish(self, c: mqtt.Client, u: object, mid: int, rc: ReasonCode,
                    p: Properties) -> None:
        with self._acked:
            self._acks[mid] = rc.value
            self._acked.notify_all()

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._acked:
            assert self._acked.wait_for(lambda: info.mid in self._acks, 10), "no PUBACK"
            return self._acks[info.mid]

    def messages(self) -> list[Msg]:
        with self._lock:
            return list(self.received)

    def retained(self) -> dict[str, bytes]:
        """What a newly subscribing client would be given: the last non-empty payloads."""
        last: dict[str, bytes] = {}
        for m in self.messages():
            if m.payload:
                last[m.topic] = m.payload
            else:
                last.pop(m.topic, None)
        return last

    def clear(self) -> None:
        with self._lock:
            self.received.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- fixtures ---------------------------------------------------------------------


@dataclass
class Rig:
    broker: LocalBroker
    sandbox: VendorSandbox
    agent: AgentProcess
    db: Path
    ha: Peer
    devices: dict[str, Peer]

    def ledger(self) -> Ledger:
        return Ledger.open(self.db)

    def propose(self, proposal: Proposal = TONER, created: datetime | None = None) -> Intent:
        """A ``confirm`` proposal written as the planner writes it."""
        now = datetime.now(UTC)
        led = self.ledger()
        try:
            if led.mode(proposal.consumable) is not Mode.CONFIRM:
                led.set_consent(proposal.consumable, Mode.CONFIRM, None, now)
            return led.create_intent(proposal, Mode.CONFIRM, State.PROPOSED, created or now)
        finally:
            led.close()

    def intent(self, intent_id: int) -> Intent:
        led = self.ledger()
        try:
            return led.intent(intent_id)
        finally:
            led.close()

    def audit(self, kind: str, markers: bool = False) -> list[dict[str, Any]]:
        """Audit bodies of ``kind``; the refusals of settle()'s markers only if asked."""
        led = self.ledger()
        try:
            bodies = [json.loads(r.body) for r in led.audit_records() if r.kind == kind]
        finally:
            led.close()
        return [b for b in bodies
                if markers or not str(b.get("ref", "")).startswith(SETTLE_MARKER)]

    def refusals(self, result: str) -> list[dict[str, Any]]:
        return [b for b in self.audit("household_command_refused") if b["result"] == result]


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    """Broker, sandbox, devices, HA stand-in and a running agent; ``request.param``
    (indirect parametrization) adds lines to the agent's ``[household]`` section."""
    household_extra = getattr(request, "param", "")
    users = dict(BROKER_USERS, agent=CANARY_MQTT_PASSWORD)
    with LocalBroker(tmp_path / "broker", users=users) as broker, \
            VendorSandbox(token=CANARY_TOKEN) as sandbox:
        workdir = tmp_path / "agent"
        workdir.mkdir()
        (workdir / "vendor-token").write_text(CANARY_TOKEN + "\n")
        config = write_agent_config(workdir, broker, f"""
[vendor]
base_url = "{sandbox.url}"
token_file = "{workdir / 'vendor-token'}"
dispatch_interval_s = {TICK}
# Test machines may lack NTP; the sandbox does not care about the wall clock.
require_synced_clock = false

[household]
sync_interval_s = {TICK}
state_interval_s = {TICK}
proposal_ttl_h = {TTL_H}
{household_extra}
""")
        ha = Peer(broker, "household", (f"{PREFIX}/#", f"{HOUSEHOLD}/#"))
        devices = {d: Peer(broker, d) for d in ("printer-1", "fridge-1")}
        agent = AgentProcess(config).start()
        try:
            rig = Rig(broker, sandbox, agent, workdir / "agent.db", ha, devices)
            publish_readings(rig)
            yield rig
            assert_nothing_leaked(rig)
        finally:
            try:
                agent.stop()
                sys.stderr.write(agent.log())  # shown by pytest only when the test failed
            finally:
                for peer in (ha, *devices.values()):
                    peer.close()


def publish_readings(rig: Rig) -> None:
    """Both devices come online and report their consumables (raw ``fw`` is a canary)."""
    now = datetime.now(UTC).isoformat()
    bodies = {
        "printer-1": ("printer", [{"id": "black", "level": 37.0, "unit": "percent",
                                   "sku": "TN-2420"},
                                  {"id": "cyan", "level": 81.0, "unit": "percent"}]),
        "fridge-1": ("fridge", [{"id": "milk", "level": 812.5, "unit": "grams"}]),
    }
    for device, (kind, consumables) in bodies.items():
        peer = rig.devices[device]
        state = json.dumps({"device_id": device, "seq": 1, "ts": now, "kind": kind,
                            "fw": CANARY_FW, "consumables": consumables})
        assert peer.publish(f"replenish/v1/devices/{device}/state", state) < 128
    # Status after the first reading: the store drops a status of a device it has never
    # seen (reported to the lead), so a first-boot status would be lost.
    wait_until(lambda: known_devices(rig.db) >= set(bodies), timeout=20.0, what="devices stored")
    for device in bodies:
        status = json.dumps({"state": "online", "ts": now})
        topic = f"replenish/v1/devices/{device}/status"
        assert rig.devices[device].publish(topic, status, retain=True) < 128


def known_devices(db: Path) -> set[str]:
    with Store(db) as store:
        return {d.device_id for d in store.devices()}


def sensor_topics(device: str, consumables: tuple[str, ...]) -> set[str]:
    node = "replenish_" + device  # ids of letters, digits and "-" are used as they are
    return {f"{PREFIX}/sensor/{node}/{c}_{what}/config"
            for c in consumables for what in ("level", "days_left")}


ALL_SENSORS = sensor_topics("printer-1", ("black", "cyan")) | sensor_topics("fridge-1", ("milk",))


def button_topics(ref: str, device: str = "printer-1") -> dict[str, str]:
    node = "replenish_" + device
    return {verb: f"{PREFIX}/button/{node}/proposal_{ref}_{verb}/config"
            for verb in ("approve", "cancel")}


def press(peer: Peer, config: bytes) -> int:
    """What Home Assistant does when a button is pressed."""
    cfg = json.loads(config)
    return peer.publish(cfg["command_topic"], cfg["payload_press"])


def check_ha_config(topic: str, payload: bytes) -> dict[str, Any]:
    """Validate one discovery config against what Home Assistant documents."""
    match = CONFIG_TOPIC.match(topic)
    assert match, topic
    component = match.group(1)
    cfg: dict[str, Any] = json.loads(payload)
    assert set(cfg) <= HA_KEYS[component], set(cfg) - HA_KEYS[component]
    assert isinstance(cfg["unique_id"], str) and cfg["unique_id"]
    assert cfg["device"]["identifiers"] and set(cfg["device"]) <= HA_DEVICE_KEYS
    for avail in cfg["availability"]:
        assert set(avail) <= HA_AVAILABILITY_KEYS
        assert avail["topic"].startswith(f"{HOUSEHOLD}/devices/")
    if component == "sensor":
        assert cfg["state_topic"].startswith(f"{HOUSEHOLD}/consumables/")
        assert cfg["state_class"] in HA_STATE_CLASSES
        if cfg.get("device_class") in HA_UNITS:
            assert cfg["unit_of_measurement"] in HA_UNITS[cfg["device_class"]]
    else:
        assert cfg["command_topic"].startswith(f"{HOUSEHOLD}/commands/")
        assert isinstance(cfg["payload_press"], str)
    return cfg


def events(rig: Rig, kind: str) -> list[HouseholdEvent]:
    found = [HouseholdEvent.model_validate_json(m.payload) for m in rig.ha.messages()
             if m.topic == f"{HOUSEHOLD}/events"]
    return [e for e in found if e.kind.value == kind]


def assert_nothing_leaked(rig: Rig) -> None:
    """No secret and no raw device payload on anything the household account received."""
    received = rig.ha.messages()
    assert received
    led = rig.ledger()
    try:
        keys = [it.idem_key for it in led.intents()]
    finally:
        led.close()
    secrets = [CANARY_TOKEN, CANARY_MQTT_PASSWORD, CANARY_FW, *keys,
               *(rig.broker.passwords[u] for u in ("household", "printer-1", "fridge-1"))]
    for m in received:
        blob = m.topic.encode() + b" " + m.payload
        for secret in secrets:
            assert secret.encode() not in blob, f"secret or raw payload on {m.topic}"
        assert m.topic.startswith((f"{HOUSEHOLD}/", f"{PREFIX}/")), m.topic


def wait_topics(read: Callable[[], dict[str, bytes]], topics: set[str],
                what: str, timeout: float = 20.0) -> dict[str, bytes]:
    """Wait until ``read()`` holds every topic; returns that view."""

    def ready() -> dict[str, bytes] | None:
        view = read()
        return view if topics <= view.keys() else None

    result: dict[str, bytes] = wait_until(ready, timeout=timeout, what=what)
    return result


def wait_discovered(rig: Rig) -> dict[str, bytes]:
    return wait_topics(rig.ha.retained, ALL_SENSORS, "sensor discovery for every consumable")


def wait_buttons(rig: Rig, ref: str) -> dict[str, bytes]:
    topics = button_topics(ref)
    retained = wait_topics(rig.ha.retained, set(topics.values()), f"buttons of {ref}")
    return {verb: retained[t] for verb, t in topics.items()}


def published_retained(rig: Rig) -> dict[str, bytes]:
    """Non-empty messages the agent published with the retain flag since the last clear."""
    return {m.topic: m.payload for m in rig.ha.messages() if m.retain and m.payload}


def wait_cleared(rig: Rig, ref: str, timeout: float = 20.0) -> None:
    """The proposal and both buttons were deleted with empty retained payloads."""
    gone = {*button_topics(ref).values(), f"{HOUSEHOLD}/proposals/{ref}"}
    wait_until(lambda: not gone & rig.ha.retained().keys(), timeout=timeout, what=f"{ref} cleared")
    empties = {m.topic for m in rig.ha.messages() if not m.payload and m.retain}
    assert gone <= empties


def settle(rig: Rig) -> None:
    """Wait for a positive marker that the agent ran passes after the caller's action.

    A cancel for a proposal that does not exist is refused, and audited, by the household
    pass that reads it; two in a row, each awaited, span at least one whole pass (the
    dispatcher runs on the same interval). A slow agent then makes the wait time out
    instead of making a "nothing happened" check pass because nothing ran yet.
    """
    def refused(ref: str) -> bool:
        return any(b["ref"] == ref
                   for b in rig.audit("household_command_refused", markers=True))

    for _ in range(2):
        ref = f"{SETTLE_MARKER}{uuid.uuid4().hex[:12]}"
        body = json.dumps({"ref": ref, "source": "test"})
        assert rig.ha.publish(f"{HOUSEHOLD}/commands/cancel", body) < 128
        wait_until(functools.partial(refused, ref), timeout=20.0, what=f"marker {ref}")


# ---- tests ------------------------------------------------------------------------


def test_discovery_availability_and_proposal_reach_home_assistant(rig: Rig) -> None:
    retained = wait_discovered(rig)
    configs = {t: check_ha_config(t, retained[t]) for t in ALL_SENSORS}
    milk = configs[f"{PREFIX}/sensor/replenish_fridge-1/milk_level/config"]
    assert (milk["unit_of_measurement"], milk["device_class"]) == ("g", "weight")
    black = configs[f"{PREFIX}/sensor/replenish_printer-1/black_level/config"]
    assert black["unit_of_measurement"] == "%"
    assert black["state_topic"] == f"{HOUSEHOLD}/consumables/printer-1/black"
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    # Availability mirrored from the devices' status topics, which HA cannot read.
    online = {f"{HOUSEHOLD}/devices/{d}/availability" for d in ("printer-1", "fridge-1")}
    retained = wait_topics(rig.ha.retained, online, "availability")
    assert {retained[t] for t in online} == {b"online"}

    it = rig.propose()
    ref = proposal_ref(it)
    buttons = wait_buttons(rig, ref)
    for verb, payload in buttons.items():
        cfg = check_ha_config(button_topics(ref)[verb], payload)
        assert cfg["command_topic"] == f"{HOUSEHOLD}/commands/{verb}"
        assert json.loads(cfg["payload_press"])["ref"] == ref
    view = ProposalView.model_validate_json(rig.ha.retained()[f"{HOUSEHOLD}/proposals/{ref}"])
    assert (view.sku, view.quantity, view.unit_price, view.currency) == (
        "TN-2420", 1, Decimal("64.90"), "EUR")
    # Money on the wire is a decimal string, to the cent the ledger holds, never a float.
    raw = json.loads(rig.ha.retained()[f"{HOUSEHOLD}/proposals/{ref}"])
    assert raw["unit_price"] == "64.90"
    assert view.expires_at == it.created_at + timedelta(hours=TTL_H)
    wait_until(lambda: events(rig, "proposal"), timeout=20.0, what="proposal event")
    assert events(rig, "proposal")[0].ref == ref
    # A reminder the planner stores reaches the household once, as an event.
    led = rig.ledger()
    try:
        assert led.remind("fridge-1/milk", "reorder", "reorder milk by Friday; tip: check date",
                          datetime.now(UTC))
    finally:
        led.close()
    reminder = wait_until(lambda: events(rig, "reminder"), timeout=20.0, what="reminder event")[0]
    assert (reminder.device_id, reminder.consumable_id) == ("fridge-1", "milk")
    assert reminder.message == "reorder milk by Friday; tip: check date"
    settle(rig)
    assert len(events(rig, "reminder")) == 1
    # Everything the agent publishes for HA is retained, except events.
    for m in rig.ha.messages():
        assert m.retain == (m.topic != f"{HOUSEHOLD}/events"), m.topic


def test_approve_places_exactly_one_order_and_removes_the_buttons(rig: Rig) -> None:
    wait_discovered(rig)
    it = rig.propose()
    ref = proposal_ref(it)
    buttons = wait_buttons(rig, ref)

    # A device's account cannot press: the broker refuses the publish (MQTT 5: 135).
    assert press(rig.devices["printer-1"], buttons["approve"]) == NOT_AUTHORIZED
    settle(rig)
    assert rig.sandbox.orders() == []
    assert rig.intent(it.id).state is State.PROPOSED
    assert rig.audit("household_command_refused") == [] and rig.audit("order_approved") == []

    assert press(rig.ha, buttons["approve"]) < 128
    wait_until(lambda: rig.intent(it.id).state is State.PLACED, timeout=20.0, what="order placed")
    orders = rig.sandbox.orders()
    assert len(orders) == 1
    assert (orders[0].sku, orders[0].quantity) == ("TN-2420", 1)
    assert len(rig.audit("order_approved")) == 1
    wait_cleared(rig, ref)
    wait_until(lambda: events(rig, "order_placed"), timeout=20.0, what="order_placed event")
    assert events(rig, "order_placed")[0].ref == f"o{it.id}"

    # A second press (a stale button, a retried QoS 1 publish) is refused and audited.
    assert press(rig.ha, buttons["approve"]) < 128
    wait_until(lambda: rig.refusals("already_decided"), timeout=20.0, what="second press refused")
    settle(rig)
    assert len(rig.sandbox.orders()) == 1
    assert rig.refusals("already_decided")[0]["source"] == "homeassistant"
    led = rig.ledger()
    try:
        assert led.verify_audit().ok
    finally:
        led.close()


def test_press_after_expiry_places_nothing(rig: Rig) -> None:
    wait_discovered(rig)
    # Created so that it expires a few seconds from now: HA sees it, then it lapses.
    created = datetime.now(UTC) - timedelta(hours=TTL_H) + timedelta(seconds=8)
    it = rig.propose(created=created)
    ref = proposal_ref(it)
    buttons = wait_buttons(rig, ref)
    wait_cleared(rig, ref)
    assert datetime.now(UTC) >= it.created_at + timedelta(hours=TTL_H)

    assert press(rig.ha, buttons["approve"]) < 128
    wait_until(lambda: rig.refusals("expired"), timeout=20.0, what="expired press refused")
    settle(rig)
    assert rig.sandbox.orders() == []
    assert rig.intent(it.id).state is State.PROPOSED
    assert rig.audit("order_approved") == []


def test_cancel_and_snooze_decide_without_ordering(rig: Rig) -> None:
    wait_discovered(rig)
    first = rig.propose()
    second = rig.propose(Proposal("fridge-1/milk", "sandbox", "MILK-1L", 2, 1,
                                  Decimal("1.19"), "Whole milk 1 l"))
    buttons = wait_buttons(rig, proposal_ref(first))
    wait_until(lambda: f"{HOUSEHOLD}/proposals/{proposal_ref(second)}" in rig.ha.retained(),
               timeout=20.0, what="second proposal")

    assert press(rig.ha, buttons["cancel"]) < 128
    wait_until(lambda: rig.intent(first.id).state is State.CANCELLED,
               timeout=20.0, what="cancelled")
    wait_cleared(rig, proposal_ref(first))
    wait_until(lambda: events(rig, "order_cancelled"), timeout=20.0, what="order_cancelled event")

    # A phone app snoozes (no HA button for that): the proposal is withdrawn, audited.
    until = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    snooze = json.dumps({"ref": proposal_ref(second), "until": until, "source": "phone"})
    assert rig.ha.publish(f"{HOUSEHOLD}/commands/snooze", snooze) < 128
    wait_until(lambda: rig.intent(second.id).state is State.CANCELLED, timeout=20.0, what="snoozed")
    assert rig.audit("proposal_snoozed")[0]["until"] == until

    # Approving what was cancelled changes nothing.
    assert press(rig.ha, buttons["approve"]) < 128
    wait_until(lambda: rig.refusals("already_decided"),
               timeout=20.0, what="approve after cancel refused")
    settle(rig)
    assert rig.sandbox.orders() == []


def test_homeassistant_online_reannounces_everything_with_stable_ids(rig: Rig) -> None:
    wait_discovered(rig)
    it = rig.propose()
    ref = proposal_ref(it)
    wait_buttons(rig, ref)
    wanted = ALL_SENSORS | set(button_topics(ref).values()) | {f"{HOUSEHOLD}/proposals/{ref}"}
    before = {t: rig.ha.retained()[t] for t in wanted}
    settle(rig)

    rig.ha.clear()
    assert rig.ha.publish("homeassistant/status", "online") < 128
    again = wait_topics(lambda: published_retained(rig), wanted, "re-announcement")
    assert {t: again[t] for t in wanted} == before

    # A restarted agent announces the same entities under the same unique ids.
    rig.agent.stop()
    rig.ha.clear()
    rig.agent.start()
    restarted = wait_topics(lambda: published_retained(rig), wanted,
                            "announcement after restart")
    ids = {t: json.loads(before[t])["unique_id"] for t in wanted if t.startswith(PREFIX)}
    assert {t: json.loads(restarted[t])["unique_id"] for t in ids} == ids


@pytest.mark.parametrize("rig", ["homeassistant = false"], indirect=True)
def test_phone_app_without_discovery_approves_by_proposal_id(rig: Rig) -> None:
    online = {f"{HOUSEHOLD}/devices/{d}/availability" for d in ("printer-1", "fridge-1")}
    wait_topics(rig.ha.retained, online, "availability")
    it = rig.propose()
    ref = proposal_ref(it)
    topic = f"{HOUSEHOLD}/proposals/{ref}"
    view = ProposalView.model_validate_json(wait_topics(rig.ha.retained, {topic}, ref)[topic])

    command = json.dumps({"ref": view.proposal_id, "source": "phone"})
    assert rig.ha.publish(f"{HOUSEHOLD}/commands/approve", command) < 128
    wait_until(lambda: rig.intent(it.id).state is State.PLACED, timeout=20.0, what="order placed")
    wait_until(lambda: topic not in rig.ha.retained(), timeout=20.0, what="proposal cleared")
    assert len(rig.sandbox.orders()) == 1
    assert not [m.topic for m in rig.ha.messages() if m.topic.startswith(f"{PREFIX}/")]


# ---- what a dashboard and a restarted agent rely on -------------------------------


def test_consumable_states_feed_the_sensors(rig: Rig) -> None:
    levels = {("printer-1", "black"): 37.0, ("printer-1", "cyan"): 81.0,
              ("fridge-1", "milk"): 812.5}
    topics = {f"{HOUSEHOLD}/consumables/{d}/{c}": v for (d, c), v in levels.items()}
    retained = wait_topics(rig.ha.retained, set(topics), "consumable states")
    for topic, level in topics.items():
        state = ConsumableState.model_validate_json(retained[topic])
        assert (state.level, state.mode) == (level, "monitor")
        assert state.unit == ("grams" if "milk" in topic else "percent")


def test_status_before_first_reading_gives_availability(rig: Rig) -> None:
    wearable = Peer(rig.broker, "wearable-1")
    try:
        now = datetime.now(UTC).isoformat()
        status = json.dumps({"state": "online", "ts": now})
        assert wearable.publish("replenish/v1/devices/wearable-1/status", status, True) < 128
        state = json.dumps({"device_id": "wearable-1", "seq": 1, "ts": now, "kind": "wearable",
                            "consumables": [{"id": "cgm", "level": 9, "unit": "days"}]})
        assert wearable.publish("replenish/v1/devices/wearable-1/state", state) < 128
        topic = f"{HOUSEHOLD}/devices/wearable-1/availability"
        retained = wait_topics(rig.ha.retained, {topic}, "wearable availability")
        assert retained[topic] == b"online"
    finally:
        wearable.close()


def test_restarted_agent_clears_buttons_decided_while_it_was_down(rig: Rig) -> None:
    wait_discovered(rig)
    it = rig.propose()
    ref = proposal_ref(it)
    wait_buttons(rig, ref)
    rig.agent.stop()
    approved = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "--config", str(rig.agent.config), "orders",
         "approve", str(it.id)], capture_output=True, text=True, timeout=30)
    assert approved.returncode == 0, approved.stderr
    rig.agent.start()
    wait_until(lambda: rig.intent(it.id).state is State.PLACED, timeout=20.0, what="order placed")
    assert len(rig.sandbox.orders()) == 1
    wait_cleared(rig, ref)


def forget_agent_session(broker: LocalBroker) -> None:
    """Connect as the agent with a clean start and no expiry: the broker drops its
    session (subscriptions and queued messages), as after a long outage or a reinstall."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="replenish-agent-test",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set("agent", broker.passwords["agent"])
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.connect(broker.host, broker.port, clean_start=True)
    client.loop_start()
    try:
        assert connected.wait(10), "could not connect as the agent"
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_retained_command_is_never_executed(rig: Rig) -> None:
    """A command left retained on the broker must not run when the agent subscribes
    afresh: it would replay on every new session."""
    wait_discovered(rig)
    it = rig.propose()
    ref = proposal_ref(it)
    wait_buttons(rig, ref)
    rig.agent.stop()
    command = json.dumps({"ref": ref, "source": "phone"})
    assert rig.ha.publish(f"{HOUSEHOLD}/commands/approve", command, True) < 128
    forget_agent_session(rig.broker)
    rig.agent.start()
    other = rig.propose(dataclasses.replace(TONER, consumable="printer-1/cyan"))
    wait_buttons(rig, proposal_ref(other))  # the agent has been subscribed for a while
    assert rig.intent(it.id).state is State.PROPOSED
    assert rig.sandbox.orders() == []


@pytest.mark.parametrize("rig", ["silent_after_h = 0.001"], indirect=True)
def test_a_device_that_falls_silent_is_a_problem_event(rig: Rig) -> None:
    """Devices report once at start, then nothing: after 3.6 s each is silent, once."""
    wait_discovered(rig)
    silent = wait_until(lambda: {e.device_id for e in events(rig, "problem")}
                      >= {"printer-1", "fridge-1"} and events(rig, "problem"),
                          timeout=20.0, what="silent-device problems")
    assert all("silent for" in e.message for e in silent)
    settle(rig)
    assert len(events(rig, "problem")) == 2
