"""Shared fixtures for integration tests: a real Mosquitto from ``broker_config/``.

``broker`` is a started :class:`firmware_sim.broker.LocalBroker` (function scope, its
own temp dir and free ports) with the accounts ``agent``, ``household`` and three
devices; ``broker.passwords[name]`` holds each password. ``tls_broker`` adds the TLS
listeners. ``mosquitto_pub`` publishes with the real command-line client and returns
its completed process. ``sessions`` makes paho clients (:class:`Session`) whose
connect/publish/subscribe return the MQTT reason codes, closed after the test.

``sandbox`` is a started vendor sandbox with a frozen simulated clock and a fixed seed
(modules that need another one define their own), and ``http`` an authorised client
to it. ``sandbox_minimal`` is the same with ``profile="minimal"``: only the fields the
spec requires, and every order POST held ``MINIMAL_COMMIT_DELAY_S`` real seconds before
it commits (set ``sandbox_minimal.commit_delay_s`` to change it in a test).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from firmware_sim.broker import LocalBroker, find_client_tool
from firmware_sim.vendor import VendorSandbox
from tests.integration.vendor_helpers import TOKEN, authed_client

DEVICE_USERS = ("printer-1", "fridge-1", "wearable-1")
BROKER_USERS = {
    "agent": "agent-pass",
    "household": "household-pass",
    "printer-1": "printer-1-pass",
    "fridge-1": "fridge-1-pass",
    "wearable-1": "wearable-1-pass",
}

MosquittoPub = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A running broker with the household config, stopped after the test."""
    with LocalBroker(tmp_path / "broker", users=dict(BROKER_USERS)) as running:
        yield running


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """Like ``broker``, plus a household CA (``ca_file``), a TLS listener for password
    devices (``tls_port``) and a mutual-TLS listener (``cert_port``)."""
    with LocalBroker(tmp_path / "tls-broker", users=dict(BROKER_USERS), tls=True) as running:
        yield running


def run_mosquitto_pub(
    broker: LocalBroker,
    user: str | None,
    topic: str,
    payload: str | bytes = "",
    *,
    password: str | None = None,
    qos: int = 1,
    retain: bool = False,
    mqtt_version: str = "311",
    client_id: str | None = None,
    port: int | None = None,
    extra: tuple[str, ...] = (),
    timeout: float = 10.0,
) -> subprocess.CompletedProcess[str]:
    """Publish one message with ``mosquitto_pub``; ``password`` defaults to the user's.

    ``user=None`` connects anonymously. The payload goes through stdin (``-s``) so
    binary payloads work. ``-d`` output (CONNACK/PUBACK codes) is in stdout.
    """
    cmd = [
        str(find_client_tool("mosquitto_pub")),
        "-h", broker.host,
        "-p", str(port or broker.port),
        "-t", topic,
        "-q", str(qos),
        "-V", mqtt_version,
        "-d",
        "-s",
    ]  # fmt: skip
    if user is not None:
        pw = password if password is not None else broker.passwords[user]
        cmd += ["-u", user, "-P", pw]
    if client_id is not None:
        cmd += ["-i", client_id]
    if retain:
        cmd.append("-r")
    cmd += list(extra)
    data = payload.encode() if isinstance(payload, str) else payload
    result = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


@pytest.fixture
def mosquitto_pub(broker: LocalBroker) -> MosquittoPub:
    """``mosquitto_pub(user, topic, payload, **opts)`` bound to the ``broker`` fixture."""

    def publish(
        user: str | None, topic: str, payload: str | bytes = "", **opts: object
    ) -> subprocess.CompletedProcess[str]:
        return run_mosquitto_pub(broker, user, topic, payload, **opts)  # type: ignore[arg-type]

    return publish


# -- paho sessions that report MQTT reason codes ---------------------------------------------


@dataclass
class Endpoint:
    """A broker not started by LocalBroker: where it listens and the accounts' passwords."""

    host: str
    port: int
    passwords: dict[str, str]


class Session:
    """One paho client with blocking helpers that return MQTT reason codes."""

    def __init__(
        self,
        broker: LocalBroker | Endpoint,
        user: str | None,
        *,
        password: str | None = None,
        client_id: str = "",
        port: int | None = None,
        tls_ca: Path | None = None,
        system_ca: bool = False,
        cert: tuple[Path, Path] | None = None,
        clean_start: bool = True,
        session_expiry: int = 0,
        mqtt5: bool = True,
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._events: dict[str, threading.Event] = {
            "connect": threading.Event(),
            "publish": threading.Event(),
            "subscribe": threading.Event(),
            "disconnect": threading.Event(),
        }
        self.connect_rc: int | None = None
        self.disconnect_rc: int | None = None
        self._pub_rc: dict[int, int] = {}
        self._sub_rc: list[int] = []
        proto = MQTTProtocolVersion.MQTTv5 if mqtt5 else MQTTProtocolVersion.MQTTv311
        kwargs: dict[str, object] = {} if mqtt5 else {"clean_session": clean_start}
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto, **kwargs
        )
        if user is not None:
            client.username_pw_set(user, password or broker.passwords[user])
        if tls_ca is not None or system_ca or cert is not None:
            client.tls_set(
                ca_certs=None if system_ca else str(tls_ca),
                certfile=str(cert[0]) if cert else None,
                keyfile=str(cert[1]) if cert else None,
            )
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self.client = client
        self._broker = broker
        self._port = port or broker.port
        self._connect_kwargs: dict[str, object] = {}
        if mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry
            self._connect_kwargs = {"clean_start": clean_start, "properties": props}

    # paho callbacks (network thread) -------------------------------------------------

    def _on_connect(
        self, c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: Properties | None
    ) -> None:
        self.connect_rc = rc.value
        self._events["connect"].set()

    def _on_publish(
        self, c: mqtt.Client, u: object, mid: int, rc: ReasonCode, p: Properties
    ) -> None:
        self._pub_rc[mid] = rc.value
        self._events["publish"].set()

    def _on_subscribe(
        self, c: mqtt.Client, u: object, mid: int, rcs: list[ReasonCode], p: Properties | None
    ) -> None:
        self._sub_rc = [rc.value for rc in rcs]
        self._events["subscribe"].set()

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.append((msg.topic, msg.payload))

    def _on_disconnect(
        self, c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: Properties | None
    ) -> None:
        self.disconnect_rc = rc.value
        self._events["disconnect"].set()
        self._events["connect"].set()  # a refused CONNECT ends here too

    # blocking helpers ------------------------------------------------------------------

    def connect(self) -> int:
        """Connect and return the CONNACK reason code (raises on TLS/socket errors)."""
        self.client.connect(self._broker.host, self._port, **self._connect_kwargs)  # type: ignore[arg-type]
        self.client.loop_start()
        assert self._events["connect"].wait(10), "no CONNACK"
        if self.connect_rc is None:
            raise ConnectionError("connection closed before CONNACK")
        return self.connect_rc

    def publish(self, topic: str, payload: bytes = b"x") -> int:
        """Publish at QoS 1 and return the PUBACK reason code."""
        self._events["publish"].clear()
        info = self.client.publish(topic, payload, qos=1)
        assert self._events["publish"].wait(10), "no PUBACK"
        return self._pub_rc[info.mid]

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1 and return the SUBACK reason code."""
        self._events["subscribe"].clear()
        self.client.subscribe(topic, qos=1)
        assert self._events["subscribe"].wait(10), "no SUBACK"
        return self._sub_rc[0]

    def wait_disconnected(self, timeout: float = 10.0) -> bool:
        return self._events["disconnect"].wait(timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def sessions() -> Iterator[Callable[..., Session]]:
    """Factory for :class:`Session`; every session is closed after the test."""
    made: list[Session] = []

    def make(broker: LocalBroker, user: str | None, **kwargs: object) -> Session:
        session = Session(broker, user, **kwargs)  # type: ignore[arg-type]
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    """A started sandbox with a frozen simulated clock and a fixed seed."""
    with VendorSandbox(token=TOKEN, seed=7) as sb:
        yield sb


@pytest.fixture
def http(sandbox: VendorSandbox) -> Iterator[httpx.Client]:
    with authed_client(sandbox.url) as client:
        yield client


# Long enough to outlast a test client's 1 s timeout, short enough for the suite.
MINIMAL_COMMIT_DELAY_S = 2.0


@pytest.fixture
def sandbox_minimal() -> Iterator[VendorSandbox]:
    """A started sandbox in the ``minimal`` profile (see firmware_sim.vendor.profile)."""
    with VendorSandbox(
        token=TOKEN, seed=7, profile="minimal", commit_delay_s=MINIMAL_COMMIT_DELAY_S
    ) as sb:
        yield sb
