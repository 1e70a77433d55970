"""A real full disk under the real ``replenish run``: a small tmpfs holds the database,
a filler file takes the rest; the agent stops acknowledging, stays up, says why, and
stores every reading once the space is back."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_sim.broker import LocalBroker
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def count(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])


def fill(where: Path) -> Path:
    filler = where / "filler"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65_536)
                fh.flush()
        except OSError:
            pass
    return filler


def test_full_disk_then_freed(tmp_path: Path, small_disk: Path, broker: LocalBroker) -> None:
    config = write_agent_config(tmp_path / "agent", broker)
    db = small_disk / "agent.db"
    config.write_text(config.read_text().replace(str(tmp_path / "agent" / "agent.db"),
                                                 str(db)))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="printer-1-pub",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set("printer-1", broker.passwords["printer-1"])
    client.connect(broker.host, broker.port)
    client.loop_start()

    def send(seq: int) -> None:
        body = {"device_id": "printer-1", "seq": seq, "ts": "2026-11-20T10:00:00Z",
                "kind": "printer", "fw": "f" * 32,
                "consumables": [{"id": f"c{i}", "level": 50.0} for i in range(20)]}
        client.publish("replenish/v1/devices/printer-1/state", json.dumps(body), qos=1)

    with AgentProcess(config) as agent:
        for seq in range(1, 6):
            send(seq)
        wait_until(lambda: count(db) == 5 * 20, timeout=30.0)
        filler = fill(small_disk)
        for seq in range(6, 306):
            send(seq)
        wait_until(lambda: "store.write_failed reason=disk_full" in agent.log(), timeout=30.0)
        time.sleep(3)  # retries keep failing meanwhile: the process must stay up
        assert agent.proc is not None and agent.proc.poll() is None
        assert count(db) < 305 * 20
        filler.unlink()  # space returns
        wait_until(lambda: count(db) == 305 * 20, timeout=60)
        assert agent.proc.poll() is None
        log = agent.log()
    client.loop_stop()
    client.disconnect()
    assert log.count("store.write_failed") == 1
    assert "store.write_recovered reason=disk_full" in log
    assert "no transaction is active" not in log and "Traceback" not in log
