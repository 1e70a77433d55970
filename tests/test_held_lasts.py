"""Issue 21: devices' "last seen" and consumables' "last" values wait in memory between
commits (``Store.lasts_every_s``), so a commit at household load appends readings only;
they are written when due, when the stream goes quiet and at a clean stop, and a failed
batch neither loses nor half-applies them."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import IngestSettings
from agent.domain import DeviceKind, Unit
from agent.errors import StoreError
from agent.mqtt.ingest import Writer
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage
from tests.test_commit_window import inbound
from tests.waiting import wait_until

T0 = 1_793_000_000.0


def state(seq: int, level: float, device: str = "printer-1") -> StateMessage:
    return StateMessage(device_id=device, seq=seq, ts=datetime.fromtimestamp(T0 + seq, UTC),
                        kind=DeviceKind.PRINTER, fw=f"fw-{seq}",
                        consumables=[Consumable(id="black", level=level, unit=Unit.PERCENT)])


def device_row(db: Path) -> tuple[int, float, str]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT last_seq, last_seen, fw FROM devices").fetchone()
    return int(row[0]), float(row[1]), str(row[2])


def last_level(db: Path) -> float:
    with sqlite3.connect(db) as conn:
        return float(conn.execute("SELECT last_level FROM consumables").fetchone()[0])


def test_lasts_wait_until_due_then_match_writing_every_batch(tmp_path: Path) -> None:
    held, every = Store(tmp_path / "held.db"), Store(tmp_path / "every.db")
    held.lasts_every_s = 300.0
    for seq, at in ((1, T0), (2, T0 + 60), (3, T0 + 120)):
        held.write_batch([state(seq, 90 - seq)], received_at=at)
        every.write_batch([state(seq, 90 - seq)], received_at=at)
    # A new device's row and a new consumable's values are written at once...
    assert device_row(tmp_path / "held.db") == (1, T0, "fw-1")
    assert last_level(tmp_path / "held.db") == 89
    assert held.holds_lasts and held.seqs("printer-1") == [1, 2, 3]
    # ...later ones once the interval has passed, as if written with every batch.
    held.write_batch([state(4, 80)], received_at=T0 + 300)
    every.write_batch([state(4, 80)], received_at=T0 + 300)
    assert not held.holds_lasts
    assert device_row(tmp_path / "held.db") == device_row(tmp_path / "every.db") \
        == (4, T0 + 300, "fw-4")
    assert last_level(tmp_path / "held.db") == last_level(tmp_path / "every.db") == 80
    held.close()
    every.close()


def test_held_lasts_save_wal_frames_per_commit(tmp_path: Path) -> None:
    def wal_growth(lasts_every_s: float) -> int:
        db = tmp_path / f"g{lasts_every_s}.db"
        with Store(db) as store:
            store.lasts_every_s = lasts_every_s
            for d in range(20):  # 20 devices, so their rows span several pages
                store.write_batch([state(1, 90, f"printer-{d:02d}")], received_at=T0)
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            wal = db.with_name(db.name + "-wal")
            assert wal.stat().st_size == 0
            for seq in range(2, 12):
                store.write_batch([state(seq, 90 - seq, f"printer-{seq:02d}")],
                                  received_at=T0 + seq)
            return wal.stat().st_size
    assert wal_growth(300.0) < wal_growth(0.0)


def test_a_failed_batch_keeps_the_held_lasts(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.lasts_every_s = 300.0
    store.write_batch([state(1, 90)], received_at=T0)
    store.write_batch([state(2, 85)], received_at=T0 + 10)
    store.conn.execute("CREATE TRIGGER no_readings BEFORE INSERT ON readings_recent "
                       "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(StoreError):
        store.write_batch([state(3, 80)], received_at=T0 + 20)
    store.conn.execute("DROP TRIGGER no_readings")
    store.flush_lasts(T0 + 30)
    assert not store.holds_lasts
    # seq 2's values, not the rolled-back seq 3's.
    assert device_row(tmp_path / "a.db") == (2, T0 + 10, "fw-2")
    assert last_level(tmp_path / "a.db") == 85
    store.close()


def _writer(db: Path, acked: list[int], idle_wakeup_s: float) -> Writer:
    settings = IngestSettings(commit_window_s=0.0, idle_wakeup_s=idle_wakeup_s,
                              last_values_interval_s=3_600)
    return Writer(lambda: Store(db), settings, lambda m: acked.append(m.mid))


def test_the_writer_writes_held_lasts_when_the_stream_goes_quiet(tmp_path: Path) -> None:
    db, acked = tmp_path / "a.db", []
    writer = _writer(db, acked, idle_wakeup_s=0.2)
    writer.start()
    try:
        writer.queue.put(inbound(1))
        wait_until(lambda: acked == [1], what="the first message acknowledged")
        writer.queue.put(inbound(2))
        wait_until(lambda: acked == [1, 2], what="the second message acknowledged")
        wait_until(lambda: device_row(db)[0] == 2 and writer.idle,
                   what=lambda: device_row(db))
    finally:
        writer.stop()


def test_a_clean_stop_writes_the_held_lasts(tmp_path: Path) -> None:
    db, acked = tmp_path / "a.db", []
    writer = _writer(db, acked, idle_wakeup_s=60.0)  # never quiet long enough
    writer.start()
    writer.queue.put(inbound(1))
    wait_until(lambda: acked == [1], what="the first message acknowledged")
    writer.queue.put(inbound(2))
    wait_until(lambda: acked == [1, 2], what="the second message acknowledged")
    assert device_row(db)[0] == 1 and not writer.idle  # held, and idle says so
    writer.stop()
    assert not writer.alive
    assert device_row(db)[0] == 2


def test_a_held_level_reaches_other_connections_with_its_commit(tmp_path: Path) -> None:
    # The dashboards (status, Home Assistant sensors, the web app) read on their own
    # connection while the writer still holds the newest "last" values in memory.
    db = tmp_path / "held.db"
    writer = Store(db)
    writer.lasts_every_s = 300.0
    writer.write_batch([state(1, 90)], received_at=T0)
    writer.write_batch([state(2, 42)], received_at=T0 + 60)
    assert writer.holds_lasts and last_level(db) == 90  # the column still waits
    with Store.open_readonly(db) as reader:
        (row,) = reader.consumables(counts=False, as_of=T0 + 120)
    assert (row.last_level, row.last_ts) == (42, T0 + 2)
    # A late catch-up reading (older timestamp) does not replace the newest level.
    writer.write_batch([state(3, 95).model_copy(
        update={"ts": datetime.fromtimestamp(T0 - 600, UTC)})], received_at=T0 + 120)
    with Store.open_readonly(db) as reader:
        (row,) = reader.consumables(counts=False, as_of=T0 + 120)
    assert (row.last_level, row.last_ts) == (42, T0 + 2)
    # Without ``as_of`` (the planner's read) the columns are what is written.
    assert writer.consumables(counts=False)[0].last_level == 90
    writer.close()
