"""MQTT ingest: a thin paho adapter in front of a batching SQLite writer.

paho's network thread only copies each message into a queue (an exception in
``on_message`` would kill that thread). A writer thread validates, commits in group
batches and only then acknowledges the messages (``manual_ack=True``): a crash between
receive and commit leaves the message unacknowledged, so the broker redelivers it from
the persistent session, and the ``(consumable, seq)`` key drops the duplicate.
"""

from __future__ import annotations

import functools
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
from agent.errors import BrokerError, StoreError
from agent.mqtt.backoff import BrokerWait
from agent.mqtt.broker_log import BROKER_LOG_TOPIC, BrokerLog
from agent.mqtt.judge import Inbound, RateLimiter, Unlimited, validate
from agent.storage.store import (
    Item,
    Pending,
    PendingRow,
    Rejected,
    Store,
)
from agent.wire.device import (
    TOPIC_ROOT,
    Channel,
    StateMessage,
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


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    pending: int = 0  # kept for judgement once the clock is trusted
    write_failures: int = 0
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
        clock_trusted: Callable[[], bool] = lambda: True,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.queue: queue.Queue[Inbound | None] = queue.Queue()
        self.clock_trusted = clock_trusted
        self.wall = wall
        self._trusted_at = float("-inf")  # monotonic time of the last trusted answer
        self._trusted = False
        self.trust_check_s = 10.0
        # A storage fault (disk full...): None while writes succeed. While set, nothing
        # is acknowledged (the broker keeps the messages) and the batch is retried.
        self.fault: str | None = None
        self.retry_initial_s = 0.5
        self.retry_max_s = 30.0
        self.settings = settings
        self.ack = ack
        self.on_stored = on_stored
        self.stats = IngestStats()
        self.limiter = RateLimiter(settings.per_device_rate, settings.per_device_burst)
        self._store_factory = store_factory
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._stopping = threading.Event()
        self._rejects: dict[str, dict[str, int]] = {}  # not yet logged, per device
        self._reject_logged: dict[str, float] = {}
        self._error: BaseException | None = None
        # Rejects the broker reported (oversize packets), counted beside our own.
        self.noted: queue.SimpleQueue[Rejected] = queue.SimpleQueue()

    def start(self) -> None:
        self._thread.start()

    def _write_noted(self, store: Store, items: list[Rejected]) -> None:
        store.write_batch(list(items), received_at=self.wall())
        self._tally_rejects(list(items))
        self.stats.rejected += len(items)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread (at once if storage is failing:
        the unacknowledged messages stay with the broker)."""
        self._stopping.set()
        self.queue.put(None)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _take_batch(self) -> tuple[list[Inbound], bool]:
        try:
            # Wake up now and then while idle: pending readings wait for a trusted clock.
            first = self.queue.get(timeout=self.settings.idle_wakeup_s)
        except queue.Empty:
            return [], False
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

    def _tally_rejects(self, items: list[Item]) -> None:
        """Count rejects per device and reason; log at most one line per device per
        ``reject_log_interval_s`` (a flood must not drown the journal: journald drops
        lines past its own rate limit, other services' lines with them)."""
        now = time.monotonic()
        for item in items:
            if isinstance(item, Rejected):
                tally = self._rejects.setdefault(item.device_id, {})
                tally[item.reason] = tally.get(item.reason, 0) + 1
        self._flush_rejects(now)

    def _flush_rejects(self, now: float, force: bool = False) -> None:
        interval = self.settings.reject_log_interval_s
        for device_id in list(self._rejects):
            if not force and now - self._reject_logged.get(device_id, -interval) < interval:
                continue
            tally = self._rejects.pop(device_id)
            self._reject_logged[device_id] = now
            reasons = ",".join(f"{r}:{n}" for r, n in sorted(tally.items()))
            log.warning("ingest.reject device=%s count=%d reasons=%s", device_id,
                        sum(tally.values()), reasons)

    def _retrying(self, write: Callable[[], None]) -> None:
        """Run ``write`` until it succeeds, backing off while storage fails.

        The process stays up (no crash loop into systemd's start limit): one line when
        the fault starts, one when it clears, and ``fault`` for status and doctor.
        """
        delay = self.retry_initial_s
        while True:
            try:
                write()
            except StoreError as err:
                if self.fault != err.reason:
                    self.fault = err.reason
                    log.error("store.write_failed reason=%s retry=backoff detail=%s",
                              err.reason, err)
                self.stats.write_failures += 1
                if self._stopping.wait(delay):
                    raise
                delay = min(delay * 2, self.retry_max_s)
                continue
            if self.fault is not None:
                log.warning("store.write_recovered reason=%s failures=%d", self.fault,
                            self.stats.write_failures)
                self.fault = None
            return

    def _clock_trusted(self) -> bool:
        # The check may ask timedated over D-Bus: at most every 10 s, and once trusted
        # the answer stands (a synchronised clock does not become untrustworthy).
        now = time.monotonic()
        if not self._trusted and now - self._trusted_at >= self.trust_check_s:
            self._trusted_at = now
            self._trusted = bool(self.clock_trusted())
        return self._trusted

    def _rejudge(self, store: Store) -> None:
        """Judge the pending readings again against the now trusted clock, in batches."""
        s = self.settings
        while rows := store.pending(s.batch_size):
            now = self.wall()
            items = [self._judge_again(r, now) for r in rows]
            store.write_batch(items, received_at=now, resolved=[r.id for r in rows])
            self.stats.pending = max(0, self.stats.pending - len(rows))
            log.info("ingest.pending_judged count=%d remaining=%d", len(rows),
                     self.stats.pending)
            devices = {i.device_id for i in items if isinstance(i, StateMessage)}
            if self.on_stored and devices:
                self.on_stored(devices)
        self.stats.pending = 0

    def _judge_again(self, row: PendingRow, now: float) -> Item:
        s = self.settings
        msg = Inbound(0, 0, row.topic, row.payload, now)
        return validate(msg, Unlimited(), s.max_payload_bytes, s.max_clock_skew_s)

    def _run(self) -> None:
        store = self._store_factory()
        self.stats.pending = store.pending_count()
        try:
            done = False
            while not done:
                batch, done = self._take_batch()
                if batch:
                    self._retrying(functools.partial(self._commit, store, batch))
                if self.stats.pending and self._clock_trusted():
                    self._retrying(functools.partial(self._rejudge, store))
                if not self.noted.empty():
                    noted = [self.noted.get() for _ in range(self.noted.qsize())]
                    self._retrying(functools.partial(self._write_noted, store, noted))
                self._flush_rejects(time.monotonic(), force=done)
        except BaseException as err:  # the watchdog sees the dead thread; log why once
            self._error = err
            log.critical("ingest.writer_stopped reason=%s", type(err).__name__)
        finally:
            store.close()

    def _commit(self, store: Store, batch: list[Inbound]) -> None:
        s = self.settings
        trusted = self._clock_trusted()
        items = [validate(m, self.limiter, s.max_payload_bytes, s.max_clock_skew_s, trusted)
                 for m in batch]
        result = store.write_batch(items, received_at=batch[-1].received_at)
        self._tally_rejects(items)
        for m in batch:
            self.ack(m)
        st = self.stats
        st.received += len(batch)
        st.stored += result.stored
        st.duplicates += result.duplicates
        st.rejected += result.rejected
        st.pending += sum(isinstance(i, Pending) for i in items)
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
        clock_trusted: Callable[[], bool] = lambda: True,
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
        self.writer = Writer(store_factory, ingest_settings, self._ack, on_stored,
                             clock_trusted=clock_trusted)
        self._refused: ReasonCode | None = None
        self.broker_log = BrokerLog()
        self._log_mid: int | None = None

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
        # On its own: a broker whose ACL predates it may refuse it, and that is no reason
        # to stay unready (oversize packets then just go uncounted).
        self._log_mid = client.subscribe(BROKER_LOG_TOPIC, qos=0)[1]

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        if mid == self._log_mid:
            if any(r.is_failure for r in reasons):
                log.warning("mqtt.subscribe refused topic=%s effect=oversize_not_counted",
                            BROKER_LOG_TOPIC)
            return
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
            if msg.topic == BROKER_LOG_TOPIC:
                if (rejected := self.broker_log.read(bytes(msg.payload))) is not None:
                    self.writer.noted.put(rejected)
                return
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
