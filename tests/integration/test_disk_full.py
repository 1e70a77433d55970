"""A real full disk under the real ``replenish run``: a small tmpfs holds the database,
a filler file takes the rest; the agent stops acknowledging, stays up, says why (log,
``STATUS=``, one household ``problem`` event), keeps a household command it could not
record, and stores every reading and runs the command once the space is back."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.ops.progress import FILE_NAME, Progress, read_progress
from firmware_sim.broker import LocalBroker
from tests.integration.agent_harness import AgentProcess, write_agent_config
from tests.integration.test_broker_late import NotifyListener
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


def refused_commands(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM audit WHERE kind = ?",
                                ("household_command_refused",)).fetchone()[0])


def test_full_disk_then_freed(tmp_path: Path, small_disk: Path, broker: LocalBroker) -> None:
    config = write_agent_config(tmp_path / "agent", broker,
                                "[household]\nsync_interval_s = 0.5\n")
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

    events: list[dict[str, object]] = []
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="phone", protocol=mqtt.MQTTv5)
    phone.username_pw_set("household", broker.passwords["household"])
    phone.on_message = lambda c, u, m: events.append(json.loads(m.payload))
    phone.connect(broker.host, broker.port)
    phone.subscribe("replenish/v1/household/events", qos=1)
    phone.loop_start()

    def problems() -> list[object]:
        return [e["message"] for e in events if e.get("ref") == "storage"]

    notify = NotifyListener(tmp_path / "notify.sock")
    runtime = tmp_path / "run"  # off the full disk, like systemd's /run/replenish-agent
    runtime.mkdir()

    def progress() -> Progress:
        seen = read_progress(runtime / FILE_NAME)
        assert seen is not None, "the agent wrote no progress file"
        return seen

    with AgentProcess(config, env={"NOTIFY_SOCKET": str(notify.path),
                                   "RUNTIME_DIRECTORY": str(runtime)}) as agent:
        for seq in range(1, 6):
            send(seq)
        wait_until(lambda: count(db) == 5 * 20, timeout=30.0)
        filler = fill(small_disk)
        for seq in range(6, 306):
            send(seq)
        wait_until(lambda: "store.write_failed reason=disk_full" in agent.log(), timeout=30.0)
        # A household command while the disk is full: acknowledged on receipt, so the
        # agent must keep it until it can record it.
        phone.publish("replenish/v1/household/commands/approve",
                      json.dumps({"ref": "p999-00000000"}), qos=1)
        # Its audit row may still fit in pages SQLite has free (the fold of recent readings
        # leaves some): then it is recorded at once; else it is held and retried.
        wait_until(lambda: "where=household reason=disk_full" in agent.log()
                   or "audit.household_command_refused" in agent.log(), timeout=30.0,
                   what=lambda: agent.log()[-2000:])
        wait_until(lambda: len(problems()) == 1, timeout=30.0)
        # Retries keep failing meanwhile and the process must stay up: the positive marker
        # is three more failed ingest writes, counted by the agent itself.
        failed = wait_until(lambda: (runtime / FILE_NAME).exists() and
                            progress().ingest_write_failures, timeout=30.0)
        wait_until(lambda: progress().ingest_write_failures >= failed + 3, timeout=30.0,
                   what=lambda: f"three more failed writes after {failed}: {progress()}")
        assert agent.proc is not None and agent.proc.poll() is None
        assert count(db) < 305 * 20
        assert any(t.startswith("STATUS=storage fault disk_full") for t in notify.texts())
        filler.unlink()  # space returns
        wait_until(lambda: count(db) == 305 * 20, timeout=60)
        wait_until(lambda: refused_commands(db) == 1, timeout=60)
        wait_until(lambda: len(problems()) == 2, timeout=60)
        assert agent.proc.poll() is None
        log = agent.log()
    notify.close()
    for c in (client, phone):
        c.loop_stop()
        c.disconnect()
    first, cleared = problems()
    assert str(first).startswith("storage fault disk_full") and "free space" in str(first)
    assert str(cleared).startswith("storage fault cleared")
    statuses = [t for t in notify.texts() if t.startswith("STATUS=")]
    assert statuses[-1].startswith("STATUS=running")  # the fault cleared
    assert log.count("store.write_failed reason=") == 1  # ingest: one line per fault
    held = "store.write_failed where=household" in log
    assert log.count("store.write_failed where=household") == int(held)
    assert "store.write_recovered reason=disk_full" in log
    assert ("store.write_recovered where=household" in log) == held
    assert "no transaction is active" not in log and "Traceback" not in log
