"""MQTT ingest: a thin paho adapter in front of a batching SQLite writer.

paho's network thread only copies each message into a queue (an exception in
``on_message`` would kill that thread). A writer thread validates, commits in group
batches and only then acknowledges the messages (``manual_ack=True``): a crash between
receive and commit leaves the message unacknowledged, so the broker redelivers it from
the persistent session, and the ``(consumable, seq)`` key drops the duplicate.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.config import IngestSettings, MqttSettings, read_secret
from agent.errors import BrokerError, PayloadError
from agent.mqtt.backoff import BrokerWait
from agent.storage.store import UNKNOWN_DEVICE, Item, Rejected, StatusUpdate, Store
from agent.wire.device import (
    TOPIC_ROOT,
    Channel,
    EventMessage,
    StateMessage,
    parse_event,
    parse_state,
    parse_status,
    parse_topic,
)

log = logging.getLogger(__name__)

# CONNACK reasons for bad credentials: 134 bad user name or password, 135 not authorized
# (MQTT 3.1.1's return codes 4 and 5 arrive mapped to these).
_AUTH_REFUSED = frozenset({134, 135})


def _token(reason: ReasonCode) -> str:
    """A reason code as one ``key=value`` value: ``Not authorized`` -> ``not_authorized``."""
    return str(reason).strip().lower().replace(" ", "_") or str(reason.value)

SUBSCRIPTIONS = [
    f"{TOPIC_ROOT}/+/{c.value}" for c in (Channel.STATE, Channel.EVENTS, Channel.STATUS)
]


@dataclass(slots=True, frozen=True)
class Inbound:
    """A message as paho handed it over, before any validation."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float  # wall clock, epoch seconds


class RateLimiter:
    """Token bucket per device: a catch-up burst passes, an endless flood does not."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, device_id: str) -> bool:
        now = self.clock()
        tokens, last = self._buckets.get(device_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[device_id] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


def validate(msg: Inbound, limiter: RateLimiter, max_payload: int, max_skew_s: float) -> Item:
    """Turn one inbound message into something to store: a model or a Rejected."""
    device_id = UNKNOWN_DEVICE
    try:
        topic = parse_topic(msg.topic)
        device_id = topic.device_id
        if len(msg.payload) > max_payload:
            raise PayloadError("too_large", f"{len(msg.payload)} bytes")
        if topic.channel is Channel.STATUS:
            return StatusUpdate(device_id, parse_status(msg.payload).state == "online")
        if not limiter.allow(device_id):
            raise PayloadError("rate_limited")
        parsed: StateMessage | EventMessage
        if topic.channel is Channel.STATE:
            parsed = parse_state(topic, msg.payload)
        elif topic.channel is Channel.EVENTS:
            parsed = parse_event(topic, msg.payload)
        else:
            raise PayloadError("bad_topic", "devices may not publish commands")
        # Devices without a clock source report absurd times; never let those steer forecasts.
        if parsed.ts.timestamp() > msg.received_at + max_skew_s:
            raise PayloadError("clock_skew", "timestamp in the future")
        return parsed
    except PayloadError as err:
        return Rejected(device_id, err.reason, msg.topic, msg.payload)


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    last_commit_monotonic: float = field(default_factory=time.monotonic)


class Writer:
    """Drains the inbound queue into SQLite in group commits, then acknowledges."""

    def __init__(
        self,
        store_factory: Callable[[], Store],
        settings: IngestSettings,
        ack: Callable[[Inbound], None],
        on_stored: Callable[[set[str]], None] | None = None,
    ) -> None:
        self.queue: queue.Queue[Inbound | None] = queue.Queue()
        self.settings = settings
        self.ack = ack
        self.on_stored = on_stored
        self.stats = IngestStats()
        self.limiter = RateLimiter(settings.per_device_rate, settings.per_device_burst)
        self._store_factory = store_factory
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread."""
        self.queue.put(None)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _take_batch(self) -> tuple[list[Inbound], bool]:
        first = self.queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self.settings.batch_size:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        store = self._store_factory()
        try:
            done = False
            while not done:
                batch, done = self._take_batch()
                if batch:
                    self._commit(store, batch)
        except BaseException as err:  # the watchdog sees the dead thread; log why once
            self._error = err
            log.critical("ingest.writer_stopped reason=%s", type(err).__name__)
        finally:
            store.close()

    def _commit(self, store: Store, batch: list[Inbound]) -> None:
        s = self.settings
        items = [validate(m, self.limiter, s.max_payload_bytes, s.max_clock_skew_s) for m in batch]
        result = store.write_batch(items, received_at=batch[-1].received_at)
        for item in items:
            if isinstance(item, Rejected):
                log.warning("ingest.reject device=%s reason=%s", item.device_id, item.reason)
        for m in batch:
            self.ack(m)
        st = self.stats
        st.received += len(batch)
        st.stored += result.stored
        st.duplicates += result.duplicates
        st.rejected += result.rejected
        st.batches += 1
        st.last_commit_monotonic = time.monotonic()
        if self.on_stored and result.stored:
            devices = {i.device_id for i in items if isinstance(i, StateMessage)}
            self.on_stored(devices)


@dataclass(slots=True, frozen=True)
class HouseholdRoute:
    """Where non-device topics go: extra subscriptions and a hand-off that never blocks."""

    topics: list[str]
    deliver: Callable[[str, bytes], None]


@dataclass(slots=True, frozen=True)
class ForeignRoute:
    """Read-only topics of other systems on the household broker (HA discovery,
    Zigbee2MQTT, Valetudo): retained messages are wanted (configs, device lists), the
    hand-off only queues, and the agent never publishes on them. ``topics`` is asked on
    every connect, so subscriptions added since (adopted entities) survive a reconnect."""

    topics: Callable[[], list[str]]
    wants: Callable[[str], bool]
    deliver: Callable[[str, bytes, bool], None]


class MqttIngest:
    """Owns the paho client: persistent MQTT 5 session, QoS 1, ack after commit."""

    def __init__(
        self,
        mqtt_settings: MqttSettings,
        ingest_settings: IngestSettings,
        store_factory: Callable[[], Store],
        on_stored: Callable[[set[str]], None] | None = None,
        household: HouseholdRoute | None = None,
        foreign: ForeignRoute | None = None,
    ) -> None:
        self.settings = mqtt_settings
        self.household = household
        self.foreign = foreign
        self.connected = threading.Event()
        self.last_network_activity = time.monotonic()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=mqtt_settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        password = read_secret(mqtt_settings.password_file, "mqtt.password_file")
        self.client.username_pw_set(mqtt_settings.username, password)
        self._username = mqtt_settings.username
        if mqtt_settings.tls_ca_file is not None:
            self.client.tls_set(ca_certs=str(mqtt_settings.tls_ca_file))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._receive_maximum = ingest_settings.receive_maximum
        self.writer = Writer(store_factory, ingest_settings, self._ack, on_stored)
        self._refused: ReasonCode | None = None

    # paho callbacks run on its network thread: keep them short and never raise.

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            self._refused = reason
            if reason.value in _AUTH_REFUSED:  # paho's wording alone is easy to misread
                log.error("mqtt.auth_failed user=%s reason_code=%d hint=check_password_file",
                          self._username, reason.value)
            else:
                log.error("mqtt.connect refused reason=%s", _token(reason))
            return
        log.info("mqtt.connect ok session_present=%s", getattr(flags, "session_present", "?"))
        # Household topics carry commands: a retained one would replay on every
        # reconnect, so the broker is asked never to send retained messages for them.
        no_retained = SubscribeOptions(qos=1, retainHandling=2)
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in SUBSCRIPTIONS]
                         + [(t, no_retained) for t in
                            (self.household.topics if self.household else [])]
                         + [(t, SubscribeOptions(qos=1)) for t in
                            (self.foreign.topics() if self.foreign else [])])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        if any(r.is_failure for r in reasons):
            log.error("mqtt.subscribe refused reasons=%s", ",".join(_token(r) for r in reasons))
            return
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason: ReasonCode, properties: Properties | None) -> None:
        self.connected.clear()
        if self._refused is not None:
            return  # the refusal was logged in _on_connect; paho's "Protocol error" misleads
        # A clean disconnect (our own shutdown, reason 0) is normal operation, not a warning.
        level = logging.INFO if reason.value == 0 else logging.WARNING
        log.log(level, "mqtt.disconnect reason=%s", _token(reason))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.last_network_activity = time.monotonic()
            if self.foreign and self.foreign.wants(msg.topic):
                # Foreign readings are re-sent by their devices: ack on hand-off.
                self.foreign.deliver(msg.topic, bytes(msg.payload), bool(msg.retain))
                if msg.qos:
                    client.ack(msg.mid, msg.qos)
                return
            if self.household and not msg.topic.startswith(TOPIC_ROOT):
                # Household commands are acknowledged on receipt: each lands in the
                # audit chain, and a redelivered one is refused as already decided.
                # A retained one is stale by definition (see _on_connect): dropped.
                if msg.retain:
                    log.warning("household.command refused reason=retained")
                else:
                    self.household.deliver(msg.topic, bytes(msg.payload))
                if msg.qos:
                    client.ack(msg.mid, msg.qos)
                return
            self.writer.queue.put(
                Inbound(msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.time())
            )
        except Exception:  # noqa: BLE001 - an escaping exception would kill paho's thread
            log.exception("mqtt.on_message failed")

    def _ack(self, m: Inbound) -> None:
        if m.qos > 0:
            self.client.ack(m.mid, m.qos)

    # lifecycle

    def start(self, timeout: float = 10.0, wait: BrokerWait | None = None) -> None:
        """Connect, subscribe and start both threads; raises BrokerError if that fails.

        With ``wait``, a broker that cannot be reached yet is retried with backoff until it
        answers or ``wait.stop`` is set (then this returns without connecting): a broker
        that is merely late at boot must not burn systemd's start limit.
        """
        self.writer.start()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self._receive_maximum

        def connect() -> None:
            self.client.connect(
                self.settings.host,
                self.settings.port,
                keepalive=self.settings.keepalive_s,
                clean_start=False,
                properties=props,
            )

        try:
            if wait is None:
                connect()
            elif not wait.until_connected(connect):
                return
        except OSError as err:
            self.writer.stop()
            raise BrokerError(
                f"cannot reach broker {self.settings.host}:{self.settings.port}: {err}"
            ) from err
        self.client.loop_start()
        if not self.connected.wait(timeout):
            reason = f"refused ({self._refused})" if self._refused else "no answer"
            self.stop()
            raise BrokerError(
                f"broker {self.settings.host}:{self.settings.port} {reason} within {timeout}s"
            )

    def stop(self) -> None:
        """Disconnect, then let the writer commit and acknowledge what it holds."""
        self.writer.stop()
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, retain: bool, qos: int = 1) -> None:
        """Publish a household message (paho queues it while disconnected)."""
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def subscribe_foreign(self, topics: list[str]) -> None:
        """Subscribe to more foreign topics now (``ForeignRoute.topics`` covers reconnects)."""
        if topics and self.connected.is_set():
            self.client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])

    @property
    def loop_alive(self) -> bool:
        thread = getattr(self.client, "_thread", None)
        return bool(thread is not None and thread.is_alive())
