"""The household broker config enforces identity: every device speaks only for itself.

Runs a real Mosquitto rendered from ``broker_config/`` (see ``conftest.broker``).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from firmware_sim.broker import LocalBroker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOT_AUTHORIZED = 135
MosquittoPub = Callable[..., "subprocess.CompletedProcess[str]"]


class Subscriber:
    """A paho MQTT 5 subscriber collecting ``topic payload`` lines (the observer)."""

    def __init__(self, broker: LocalBroker, user: str, topic: str) -> None:
        self.lines: list[str] = []
        subscribed = threading.Event()

        def on_connect(
            client: mqtt.Client,
            userdata: object,
            flags: object,
            reason_code: ReasonCode,
            properties: Properties | None,
        ) -> None:
            client.subscribe(topic, qos=1)

        def on_subscribe(
            client: mqtt.Client,
            userdata: object,
            mid: int,
            reason_codes: list[ReasonCode],
            properties: Properties | None,
        ) -> None:
            subscribed.set()

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            self.lines.append(f"{msg.topic} {msg.payload.decode(errors='replace')}")

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(user, broker.passwords[user])
        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(10), "subscriber did not subscribe"

    def messages(self) -> list[str]:
        """Stop and return the ``topic payload`` lines received."""
        self.client.disconnect()
        self.client.loop_stop()
        return list(self.lines)


@pytest.fixture
def agent_sub(broker: LocalBroker) -> Iterator[Subscriber]:
    sub = Subscriber(broker, "agent", "replenish/v1/devices/#")
    yield sub
    sub.messages()


def _connack_code(result: subprocess.CompletedProcess[str]) -> str:
    for line in result.stdout.splitlines():
        if "received CONNACK" in line:
            return line.rsplit("(", 1)[1].rstrip(")")
    return "none"


def _puback_code(result: subprocess.CompletedProcess[str]) -> int:
    for line in result.stdout.splitlines():
        if "received PUBACK" in line:
            return int(line.rsplit("RC:", 1)[1].rstrip(")"))
    raise AssertionError(f"no PUBACK in output: {result.stdout}")


def test_device_publishes_on_its_own_topic(
    mosquitto_pub: MosquittoPub, agent_sub: Subscriber
) -> None:
    result = mosquitto_pub("printer-1", "replenish/v1/devices/printer-1/state", "own")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _puback_code(result) == 0
    marker = "replenish/v1/devices/fridge-1/state after"
    mosquitto_pub("fridge-1", "replenish/v1/devices/fridge-1/state", "after")
    assert _wait_for(agent_sub, marker) == [
        "replenish/v1/devices/printer-1/state own",
        marker,
    ]


def test_foreign_topic_dropped_with_mqtt311(
    mosquitto_pub: MosquittoPub, agent_sub: Subscriber
) -> None:
    spoof = mosquitto_pub("printer-1", "replenish/v1/devices/fridge-1/state", "spoof")
    # MQTT 3.1.1 has no way to say "denied": the broker acks with success and drops it.
    assert spoof.returncode == 0
    assert _puback_code(spoof) == 0
    mosquitto_pub("fridge-1", "replenish/v1/devices/fridge-1/state", "real")
    assert _wait_for(agent_sub, "real") == ["replenish/v1/devices/fridge-1/state real"]


def test_foreign_topic_refused_with_mqtt5_reason_135(
    mosquitto_pub: MosquittoPub, agent_sub: Subscriber
) -> None:
    spoof = mosquitto_pub(
        "printer-1", "replenish/v1/devices/fridge-1/state", "spoof", mqtt_version="5"
    )
    assert _puback_code(spoof) == NOT_AUTHORIZED
    mosquitto_pub("fridge-1", "replenish/v1/devices/fridge-1/state", "real")
    assert _wait_for(agent_sub, "real") == ["replenish/v1/devices/fridge-1/state real"]


def test_paho_mqtt5_sees_reason_135(broker: LocalBroker) -> None:
    codes = _paho_publish(broker, "printer-1", "replenish/v1/devices/fridge-1/state")
    assert codes == [NOT_AUTHORIZED]
    # 16 "no matching subscribers" is a success code.
    assert _paho_publish(broker, "printer-1", "replenish/v1/devices/printer-1/state") == [16]


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("printer-1", "wrong"), ("nobody", "printer-1-pass"), ("agent", "")],
)
def test_unauthenticated_connections_refused(
    mosquitto_pub: MosquittoPub, user: str | None, password: str | None
) -> None:
    result = mosquitto_pub(user, "replenish/v1/devices/printer-1/state", "x", password=password)
    assert result.returncode != 0
    assert _connack_code(result) == "5"  # 3.1.1: not authorised


def _wait_for(sub: Subscriber, marker: str, timeout: float = 10.0) -> list[str]:
    """Messages up to and including the first line ending with ``marker``."""
    import time

    deadline = time.monotonic() + timeout
    while not any(line.endswith(marker) for line in sub.lines):
        assert time.monotonic() < deadline, f"{marker!r} never arrived: {sub.lines}"
        time.sleep(0.01)
    return sub.messages()


def _paho_publish(
    broker: LocalBroker,
    user: str,
    topic: str,
    *,
    client_id: str = "",
    port: int | None = None,
    tls_ca: Path | None = None,
) -> list[int]:
    """Connect with paho (MQTT 5), publish once at QoS 1, return the PUBACK reason codes."""
    done = threading.Event()
    codes: list[int] = []

    def on_publish(
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        codes.append(reason_code.value)
        done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(user, broker.passwords[user])
    if tls_ca is not None:
        client.tls_set(ca_certs=str(tls_ca))
    client.on_publish = on_publish
    client.connect(broker.host, port or broker.port)
    client.loop_start()
    try:
        client.publish(topic, b"x", qos=1)
        assert done.wait(10), "no PUBACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return codes
