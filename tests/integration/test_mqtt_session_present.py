"""An agent restarting onto its stored session is ready at CONNACK, not at SUBACK.

With a backlog queued for the agent's session, Mosquitto starts sending it right after
CONNACK and answers the re-SUBSCRIBE behind it (then also behind its persistence
snapshots, which rewrote the whole queue every 100 changes under the former
`autosave_on_changes true` / `autosave_interval 100`). A 50,000 message backlog kept the
SUBACK past the agent's 10 s start timeout, and the agent quit with "no answer" while the
broker was delivering (bench/README.md, ingest benchmark).
Here a proxy in front of a real Mosquitto holds back every SUBACK, as that broker did.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.mqtt.ingest import HouseholdRoute, MqttIngest
from agent.storage.store import Store
from firmware_sim.broker import LocalBroker
from tests.integration.agent_harness import write_agent_config
from tests.integration.conftest import Session
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

SUBACK = 0x9


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> bytes:
    """One MQTT control packet: fixed header byte, variable-length size, body."""
    head = _read_exact(sock, 1)
    size, shift, raw = 0, 0, b""
    while True:
        byte = _read_exact(sock, 1)
        raw += byte
        size |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return head + raw + _read_exact(sock, size)


class SubackHoldingProxy:
    """Forwards one client to the broker, withholding the broker's SUBACKs until
    ``release`` is set; every other packet (CONNACK, PUBLISH, ...) passes at once."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.release = threading.Event()
        self.held = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        server = socket.create_connection(self.upstream)
        threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
        threading.Thread(target=self._from_broker, args=(server, client), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass

    def _from_broker(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while True:
                packet = _read_packet(server)
                if packet[0] >> 4 == SUBACK and not self.release.is_set():
                    self.held += 1
                    threading.Thread(target=self._send_when_released,
                                     args=(client, packet), daemon=True).start()
                    continue
                client.sendall(packet)
        except (OSError, ConnectionError):
            pass

    def _send_when_released(self, client: socket.socket, packet: bytes) -> None:
        self.release.wait()
        try:
            client.sendall(packet)
        except OSError:
            pass

    def close(self) -> None:
        self.release.set()
        self._listener.close()


@pytest.fixture
def proxy(broker: LocalBroker) -> Iterator[SubackHoldingProxy]:
    running = SubackHoldingProxy((broker.host, broker.port))
    yield running
    running.close()


def _stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])


def test_a_restart_onto_a_stored_session_is_ready_without_its_suback(
        tmp_path: Path, broker: LocalBroker, proxy: SubackHoldingProxy,
        sessions: Callable[..., Session]) -> None:
    settings = load_settings(write_agent_config(tmp_path / "agent", broker))
    db = settings.storage.path
    Store(db).close()

    def ingest_via(port: int) -> MqttIngest:
        return MqttIngest(settings.mqtt.model_copy(update={"port": port}), settings.ingest,
                          lambda: Store(db))

    first = ingest_via(broker.port)  # a first session: its SUBACK is what says ready
    first.start(timeout=10.0)
    first.stop()

    device = sessions(broker, "printer-1", client_id="printer-1")
    assert device.connect() == 0
    topic = "replenish/v1/devices/printer-1/state"
    body = ('{"device_id": "printer-1", "seq": %d, "ts": "%s", "kind": "printer", '
            '"consumables": [{"id": "black", "level": 40}]}')
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert device.publish(topic, (body % (1, stamp)).encode()) == 0  # queued for the agent

    again = ingest_via(proxy.port)
    again.start(timeout=3.0)  # raised BrokerError "no answer within 3.0s" before
    try:
        wait_until(lambda: proxy.held >= 1, timeout=10, what="the broker's SUBACK held")
        wait_until(lambda: _stored(db) == 1, timeout=10, what="the queued reading stored")
        assert device.publish(topic, (body % (2, stamp)).encode()) == 0
        wait_until(lambda: _stored(db) == 2, timeout=10, what="a live reading stored")
        assert again.subacks == 0  # all of it before any SUBACK reached the agent
        proxy.release.set()
        wait_until(lambda: again.subacks == 1, timeout=10, what="the held SUBACK")
    finally:
        again.stop()


def test_a_broker_that_lost_the_session_gets_the_household_state_again(
        tmp_path: Path, broker: LocalBroker) -> None:
    """A broker crash before its next snapshot (every 30 min) forgets the agent's session
    and rolls back the retained state published since: the agent must publish it all
    again. A clean restart (Mosquitto snapshots on SIGTERM) keeps both."""
    settings = load_settings(write_agent_config(tmp_path / "agent", broker))
    db = settings.storage.path
    Store(db).close()
    lost: list[int] = []
    route = HouseholdRoute([], lambda topic, payload: None,
                           lambda: lost.append(ingest.subacks))
    ingest = MqttIngest(settings.mqtt, settings.ingest, lambda: Store(db), household=route)
    ingest.start(timeout=10.0)
    try:
        wait_until(lambda: ingest.subacks >= 1, timeout=10, what="the first SUBACK")
        lost.clear()  # a brand-new session is lost by definition; what follows matters
        broker.restart(crash=True)  # the session was never in a snapshot
        wait_until(lambda: ingest.subacks >= 2, timeout=30, what="the reconnect's SUBACK")
        assert len(lost) == 1
        broker.restart()  # SIGTERM: the session is in the snapshot
        wait_until(lambda: ingest.subacks >= 3, timeout=30, what="the second reconnect")
        assert len(lost) == 1
    finally:
        ingest.stop()

