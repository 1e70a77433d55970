"""Shared fixtures for integration tests: a real Mosquitto from ``broker_config/``.

``broker`` is a started :class:`firmware_sim.broker.LocalBroker` (function scope, its
own temp dir and free ports) with the accounts ``agent``, ``household`` and three
devices; ``broker.passwords[name]`` holds each password. ``tls_broker`` adds the TLS
listeners. ``mosquitto_pub`` publishes
with the real command-line client and returns its completed process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_sim.broker import LocalBroker, find_client_tool

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
