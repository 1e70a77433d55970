"""MQTT ingest: a thin paho adapter in front of the batching SQLite writer.

paho's network thread only copies each message into a queue (an exception in
``on_message`` would kill that thread). A writer thread validates, commits in group
batches and only then acknowledges the messages (``manual_ack=True``): a crash between
receive and commit leaves the message unacknowledged, so the broker redelivers it from
the persistent session, and the ``(consumable, seq)`` key drops the duplicate.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.config import IngestSettings, MqttSettings, read_secret
from agent.errors import BrokerError
from agent.mqtt.backoff import BrokerWait
from agent.mqtt.broker_log import BROKER_LOG_TOPIC, BrokerLog
from agent.mqtt.judge import Inbound, RateLimiter, validate
from agent.mqtt.writer import IngestStats, Writer
from agent.ops.systemd import ProgressMark
from agent.storage.store import Store
from agent.wire.device import TOPIC_ROOT, Channel

# Re-exported: the writer lived here before the split, and tests import it from here.
__all__ = ["ForeignRoute", "HouseholdRoute", "Inbound", "IngestStats", "MqttIngest",
           "RateLimiter", "Writer", "validate"]

log = logging.getLogger(__name__)

# How long a thread may hold the GIL while another waits for it (CPython's default is
# 5 ms). paho's network thread reads one packet at a time and then waits for the GIL
# behind the writer, which validates and packs in pure Python: at half the benchmark's
# maximum rate messages reached on_message up to 200 ms after they were sent, and the
# latency run's p99 was 208-314 ms against 128-162 ms at 1 ms (bench/README.md, "Ingest:
# p99 and RSS"). Process-wide: set when the ingest starts.
GIL_SWITCH_S = 0.001

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
class HouseholdRoute:
    """Where non-device topics go: extra subscriptions and a hand-off that never blocks."""

    topics: list[str]
    deliver: Callable[[str, bytes], None]
    # The broker forgot the agent's session (a crash before its snapshot, an expiry):
    # it may have lost or rolled back the retained state published since, too.
    session_lost: Callable[[], None] = lambda: None


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
        # SUBACKs granted so far: a subscription made after connect (an adopted foreign
        # topic) holds from its SUBACK on, and tests wait for it before publishing.
        self.subacks = 0
        # Touched by every packet paho reads (keepalive PINGRESPs included, seen through
        # the public on_log hook), so an idle but healthy loop stays fresh for the watchdog.
        self.progress = ProgressMark()
        self._loop_thread: threading.Thread | None = None  # paho's, seen from its callbacks
        self._loop_started = False
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
        self.client.on_log = self._on_log
        self._receive_maximum = ingest_settings.receive_maximum
        self.writer = Writer(store_factory, ingest_settings, self._ack, on_stored,
                             clock_trusted=clock_trusted)
        self._refused: ReasonCode | None = None
        # Receive stamps judge reading timestamps (skew); a simulated agent sets its clock.
        self.wall: Callable[[], float] = time.time
        self.broker_log = BrokerLog()
        self._log_mid: int | None = None

    # paho callbacks run on its network thread: keep them short and never raise.

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, buf: str) -> None:
        if buf.startswith("Received "):  # only paho's network thread reads packets
            self._loop_thread = threading.current_thread()
            self.progress.touch()

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
        session_present = bool(getattr(flags, "session_present", False))
        log.info("mqtt.connect ok session_present=%s", session_present)
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
        if not session_present and self.household:
            self.household.session_lost()
        if session_present:
            # The broker kept our subscriptions and is already sending the messages it
            # queued for them; its SUBACK waits behind that backlog (and behind its
            # snapshots, which grow with the queue), so it is no sign of life to wait for.
            # A topic new in the config holds from its SUBACK on.
            self.connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        if mid == self._log_mid:
            if any(r.is_failure for r in reasons):
                log.warning("mqtt.subscribe refused topic=%s effect=oversize_not_counted",
                            BROKER_LOG_TOPIC)
            return
        if any(r.is_failure for r in reasons):
            log.error("mqtt.subscribe refused reasons=%s", ",".join(_token(r) for r in reasons))
            self.connected.clear()
            return
        self.subacks += 1
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
            self.progress.touch()
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
                Inbound(msg.mid, msg.qos, msg.topic, bytes(msg.payload), self.wall())
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
        sys.setswitchinterval(GIL_SWITCH_S)
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
        self._loop_started = True
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
        """paho's loop thread is running (until it has read its first packet, a started
        loop counts as alive: start() gives up on a silent broker by itself)."""
        if self._loop_thread is not None:
            return self._loop_thread.is_alive()
        return self._loop_started
