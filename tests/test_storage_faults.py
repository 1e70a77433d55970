"""Storage faults: a full disk (deterministic SQLITE_FULL via PRAGMA max_page_count)
stops acknowledging, keeps the writer up, says why in one line, and resumes by itself."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from agent.config import IngestSettings
from agent.errors import StoreError
from agent.mqtt.ingest import Inbound, Writer
from agent.storage.store import Store, fault_reason
from agent.storage.tx import immediate
from agent.wire.device import parse_state, parse_topic
from tests.waiting import wait_until

TOPIC = "replenish/v1/devices/printer-1/state"


def payload(seq: int) -> bytes:
    return json.dumps({"device_id": "printer-1", "seq": seq, "ts": "2026-11-20T08:00:00Z",
                       "kind": "printer", "fw": "x" * 30,
                       "consumables": [{"id": f"c{i}", "level": 50} for i in range(30)]}
                      ).encode()


class FullDisk(Store):
    """A store whose file cannot grow while ``full`` is set (set from the test thread,
    applied on the writer's own connection)."""

    full = True

    def write_batch(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        pages = 1 if FullDisk.full else 1_073_741_823
        self.conn.execute(f"PRAGMA max_page_count = {pages}")
        return super().write_batch(*args, **kwargs)  # type: ignore[arg-type]


def test_rollback_after_sqlite_full_raises_the_real_error(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as s:
        s.conn.execute("PRAGMA max_page_count = 1")
        s.write_batch([], 0.0)  # nothing to write: no fault
        batch = [parse_state(parse_topic(TOPIC), payload(seq)) for seq in range(1, 200)]
        with pytest.raises(StoreError) as err:
            s.write_batch(batch, 0.0)
        assert err.value.reason == "disk_full"
        assert "full" in str(err.value) and "rollback" not in str(err.value)
        with pytest.raises(sqlite3.OperationalError, match="full"):
            with immediate(s.conn):
                s.conn.execute("CREATE TABLE big (x)")
                s.conn.execute("INSERT INTO big VALUES (zeroblob(100000))")


def test_fault_reasons() -> None:
    assert fault_reason(sqlite3.OperationalError("database or disk is full")) == "disk_full"
    assert fault_reason(sqlite3.OperationalError("something else")) == "sqlite_error"


def test_disk_full_stops_acks_stays_up_and_resumes(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "a.db"
    Store(path).close()
    acked: list[int] = []
    FullDisk.full = False
    writer = Writer(lambda: FullDisk(path), IngestSettings(commit_window_s=0.1),
                    lambda m: acked.append(m.mid))
    writer.retry_initial_s, writer.retry_max_s = 0.02, 0.1
    caplog.set_level(logging.INFO, logger="agent.mqtt.ingest")
    writer.start()
    # The device's first message is news and commits alone; it fits the existing pages.
    writer.queue.put(Inbound(0, 1, TOPIC, payload(0), time.time()))
    wait_until(lambda: acked == [0], timeout=10.0, what="the first message's commit")
    acked.clear()
    FullDisk.full = True
    for seq in range(1, 41):
        writer.queue.put(Inbound(seq, 1, TOPIC, payload(seq), time.time()))
    wait_until(lambda: writer.stats.write_failures >= 5, timeout=10.0, what="five failed writes")
    assert writer.alive and writer.fault == "disk_full"
    assert acked == []  # the broker keeps every message while the disk is full
    FullDisk.full = False  # space freed
    wait_until(lambda: len(acked) >= 40, timeout=10.0, what="every message acknowledged")
    writer.stop()
    assert writer.fault is None
    with Store(path) as s:
        assert s.seqs("printer-1") == list(range(0, 41))
    lines = [r.getMessage() for r in caplog.records]
    failed = [x for x in lines if x.startswith("store.write_failed")]
    assert len(failed) == 1 and "reason=disk_full" in failed[0]
    assert any(x.startswith("store.write_recovered reason=disk_full") for x in lines)
    assert not any("rollback" in x for x in lines)
