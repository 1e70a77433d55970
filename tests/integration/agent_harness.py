"""Run the real agent (``replenish run``) as a subprocess against a LocalBroker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.ops.progress import read_progress
from agent.storage.store import Store
from firmware_sim.broker import LocalBroker
from tests.waiting import wait_until

READY_LINE = "agent.ready"


# Tests wait for readings in seconds; the deployed window (30 s) and what closes a batch
# early are tests/test_commit_window.py's.
TEST_COMMIT_WINDOW = "commit_window_s = 1\n"


def write_agent_config(workdir: Path, broker: LocalBroker, extra: str = "") -> Path:
    """An agent.toml for ``broker``'s loopback listener, secrets in files beside it."""
    if "commit_window_s" not in extra:
        extra = (extra.replace("[ingest]\n", "[ingest]\n" + TEST_COMMIT_WINDOW, 1)
                 if "[ingest]\n" in extra else f"{extra}\n[ingest]\n{TEST_COMMIT_WINDOW}")
    workdir.mkdir(parents=True, exist_ok=True)
    password = workdir / "mqtt-password"
    password.write_text(broker.passwords["agent"])
    config = workdir / "agent.toml"
    config.write_text(
        f"""
[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "agent"
password_file = "{password}"
client_id = "replenish-agent-test"

[storage]
path = "{workdir / 'agent.db'}"
{extra}
"""
    )
    return config


class AgentProcess:
    """``replenish --config CONFIG run`` with its log captured to a file."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env or {}  # added to the agent's environment (NOTIFY_SOCKET, LD_PRELOAD)
        self.log_path = config.parent / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self, timeout: float = 15.0) -> AgentProcess:
        # A second start would orphan the first agent (same client id, same database).
        assert self.proc is None or self.proc.poll() is not None, "agent already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "--config", str(self.config), "run"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        log.close()
        proc = self.proc
        wait_until(lambda: READY_LINE in self.new_log() or proc.poll() is not None,
                   timeout=timeout, what=lambda: f"the agent ready:\n{self.log()}")
        if READY_LINE not in self.new_log():  # it exited instead
            raise AssertionError(f"agent did not become ready:\n{self.log()}")
        return self

    def new_log(self) -> str:
        with self.log_path.open("rb") as fh:
            fh.seek(self._log_offset)
            return fh.read().decode(errors="replace")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no chance to flush, like a power cut for the process."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            self.kill()


def payload(device: str, seq: int, level: float = 50.0) -> str:
    return json.dumps(
        {
            "device_id": device,
            "seq": seq,
            "ts": "2026-11-20T10:00:00Z",
            "kind": "printer",
            "consumables": [{"id": "black", "level": level, "unit": "percent", "sku": "TN-2420"}],
        }
    )


def db_count(db: Path, device: str) -> int:
    if not db.exists():
        return 0
    with Store(db) as store:
        return store.reading_count(device)


def device_client(broker: LocalBroker, device: str) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{device}-pub", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(device, broker.passwords[device])
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def committed_since_start(agent: AgentProcess, progress: Path) -> bool:
    """This agent process has committed an ingest batch since it started (its progress
    file, so the probe never opens the database)."""
    done = read_progress(progress) if progress.exists() else None
    return (done is not None and agent.proc is not None and done.pid == agent.proc.pid
            and done.ingest_batches > 0)


def publish_through_kills(agent: AgentProcess, broker: LocalBroker, db: Path, *,
                          committed: Callable[[], bool], all_stored: Callable[[], bool],
                          total: int = 3000, kills: int = 3) -> tuple[list[int], int]:
    """Publish ``total`` QoS 1 readings of printer-1 while SIGKILLing and restarting the
    running ``agent`` ``kills`` times, each after ``committed()`` says it stored a batch;
    then wait for ``all_stored()``. Returns the stored seqs and the stored row count.

    ``committed`` and ``all_stored`` are the caller's because how the test may look at
    the database while the agent runs depends on its wal-index mode."""
    client = device_client(broker, "printer-1")
    published = threading.Event()

    def publish_all() -> None:
        infos = [client.publish("replenish/v1/devices/printer-1/state",
                                payload("printer-1", seq, level=100 - seq / 100), qos=1)
                 for seq in range(1, total + 1)]
        for info in infos:
            info.wait_for_publish(120)
        published.set()

    publisher = threading.Thread(target=publish_all)
    publisher.start()
    try:
        for _ in range(kills):
            # Once everything went out, a restarted agent may have nothing to commit.
            wait_until(lambda: committed() or published.is_set(), timeout=30)
            agent.kill()
            agent.start()
        publisher.join(150)
        assert published.is_set(), "the publisher did not get every PUBACK"
        wait_until(all_stored, timeout=120, every=1.0)
    finally:
        agent.stop()
        client.loop_stop()
        client.disconnect()
    with Store(db) as store:
        return store.seqs("printer-1"), store.reading_count("printer-1")
