"""``replenish run`` started before its broker waits for it instead of exiting.

The agent runs as a subprocess with a real ``NOTIFY_SOCKET`` (a datagram socket the test
reads, as systemd would) and ``WATCHDOG_USEC``; the broker is a real Mosquitto from
``broker_config/`` started 10 s after the agent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.broker import LocalBroker
from tests.integration.agent_harness import db_count, payload, write_agent_config
from tests.integration.conftest import run_mosquitto_pub
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

BROKER_LATE_S = 10.0


class NotifyListener:
    """The systemd side of sd_notify: a thread collects every datagram with its arrival
    time (a reader that lags would block the agent: the socket queue holds ~10)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self._messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self._messages.append((time.monotonic(), data.decode()))

    def drain(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self._messages)

    def texts(self) -> list[str]:
        return [m for _, m in self.drain()]

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


def test_agent_started_before_the_broker_waits_then_ingests(
    broker: LocalBroker, tmp_path: Path, notify: NotifyListener
) -> None:
    config = write_agent_config(tmp_path / "agent", broker)
    db = tmp_path / "agent" / "agent.db"
    broker.stop()  # same ports on the next start: the agent's config stays right
    log_path = tmp_path / "agent" / "agent.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": str(notify.path),
           # WatchdogSec=4s: pings every 2 s; the wait must keep them coming.
           "WATCHDOG_USEC": "4000000"}
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "--config", str(config), "run"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    started = time.monotonic()
    try:
        wait_until(lambda: any(m.startswith("STATUS=waiting for MQTT broker")
                             for m in notify.texts()), timeout=20)
        assert "READY=1" in notify.texts(), "READY must not wait for the broker"
        while time.monotonic() - started < BROKER_LATE_S:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.2)
        broker.start()
        wait_until(lambda: "agent.ready" in log_path.read_text(), timeout=30)
        assert proc.poll() is None
        done = run_mosquitto_pub(broker, "printer-1", "replenish/v1/devices/printer-1/state",
                                 payload("printer-1", 1, level=8.0))
        assert done.returncode == 0, done.stderr
        wait_until(lambda: db_count(db, "printer-1") == 1, timeout=15)
        assert proc.poll() is None, "the agent never exits while waiting"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    log = log_path.read_text()
    assert code == 0, log
    messages = notify.drain()
    texts = [m for _, m in messages]
    waits = [m for m in texts if m.startswith("STATUS=waiting for MQTT broker")]
    assert len(waits) >= 3, texts
    assert f"{broker.host}:{broker.port} (attempt 1, next in" in waits[0]
    assert any(m.startswith("STATUS=running: MQTT broker") for m in texts), texts
    # The watchdog was fed through the whole wait: no gap near WatchdogSec (4 s).
    pings = [t for t, m in messages if m == "WATCHDOG=1"]
    assert len(pings) >= BROKER_LATE_S / 2 - 1, texts
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert max(gaps) < 3.5, gaps
    assert not any(m.startswith("STATUS=stalled") for m in texts), texts
    # A broker 10 s late at boot is not a warning; the retries are INFO lines.
    assert "mqtt.waiting broker=" in log
    assert not [line for line in log.splitlines()
                if "WARNING" in line and "mqtt.waiting" in line], log
