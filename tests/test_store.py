"""SQLite store: migrations, dedupe on (consumable, seq), rejects, downsampling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.domain import DeviceKind, Unit
from agent.storage.migrations import LATEST_VERSION, current_version
from agent.storage.store import Rejected, StatusUpdate, Store
from agent.wire.device import Consumable, StateMessage

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def msg(seq: int, level: float, minutes: float | None = None,
        device: str = "fridge-1") -> StateMessage:
    return StateMessage(
        device_id=device, seq=seq, ts=T0 + timedelta(minutes=seq if minutes is None else minutes),
        kind=DeviceKind.FRIDGE,
        consumables=[Consumable(id="milk", level=level, unit=Unit.GRAMS, capacity=2000)],
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "agent.db", rejects_kept=10)


def test_migrates_once_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Store(path) as s:
        assert current_version(s.conn) == LATEST_VERSION
        s.write_batch([msg(1, 900)], received_at=1.0)
    with Store(path) as s:
        assert s.reading_count() == 1
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_duplicates_dropped_on_device_and_seq(store: Store) -> None:
    first = store.write_batch([msg(1, 900), msg(2, 880)], received_at=1.0)
    again = store.write_batch([msg(2, 880), msg(3, 860)], received_at=2.0)
    assert (first.stored, first.duplicates) == (2, 0)
    assert (again.stored, again.duplicates) == (1, 1)
    assert store.seqs("fridge-1") == [1, 2, 3]


def test_late_catch_up_does_not_overwrite_latest(store: Store) -> None:
    # Received on a gateway clock at the readings' time: none is dated in its future.
    now = (T0 + timedelta(hours=1)).timestamp()
    store.write_batch([msg(10, 500)], received_at=now)
    store.write_batch([msg(5, 700)], received_at=now + 1)  # older reading arrives later
    (row,) = store.consumables()
    assert row.last_level == 500
    cid = row.cid
    assert [r.level for r in store.readings(cid)] == [700, 500]  # sorted by ts


def test_rejects_are_counted_and_bounded(store: Store) -> None:
    bad = [Rejected("printer-1", "bad_json", "t", b"x" * 1000) for _ in range(25)]
    result = store.write_batch(bad, received_at=5.0)
    assert result.rejected == 25
    assert store.reject_counts()[0].count == 25
    assert store.table_stats()["rejects"] == 10  # only the newest rejects_kept survive
    head = store.conn.execute("SELECT MAX(LENGTH(payload_head)) FROM rejects").fetchone()[0]
    assert head == 256


def test_status_updates_device(store: Store) -> None:
    store.write_batch([msg(1, 900), StatusUpdate("fridge-1", False)], received_at=3.0)
    assert store.devices()[0].online is False


def test_downsample_keeps_one_per_bucket_and_refills(store: Store) -> None:
    # One reading a minute for 3 hours, use 1 g/min, a refill at minute 100.
    items = [msg(i, (2000 if i >= 100 else 1500) - i) for i in range(180)]
    store.write_batch(items, received_at=1.0)
    cut = (T0 + timedelta(hours=3)).timestamp()
    deleted = store.downsample(cut, bucket_s=3600)
    cid = store.consumables()[0].cid
    kept = store.readings(cid)
    assert deleted == 180 - len(kept)
    assert len(kept) <= 4  # three hourly survivors plus the refill jump
    assert any(r.level == 1900 for r in kept), "the refill reading must survive"
    assert store.integrity_check() == ["ok"]


def test_history_keeps_the_last_reading_per_bucket_coarser_before_the_cut(
        store: Store) -> None:
    # One reading a minute for 12 hours; the first 6 hours read at 6 h, the rest hourly.
    store.write_batch([msg(i, 2000 - i) for i in range(720)], received_at=1.0)
    cid = store.consumables()[0].cid
    t0 = T0.timestamp()
    rows = store.history(cid, since=t0, fine_since=t0 + 6 * 3600, fine_bucket_s=3600,
                         coarse_bucket_s=6 * 3600)
    minutes = [round((r.ts - t0) / 60) for r in rows]
    # T0 is on a 6-hour boundary: one coarse bucket, then six hourly ones.
    assert minutes == [359, 419, 479, 539, 599, 659, 719]
    assert [r.level for r in rows] == [2000 - m for m in minutes]
    assert store.history(cid, since=t0 + 12 * 3600, fine_since=t0, fine_bucket_s=3600,
                         coarse_bucket_s=6 * 3600) == []
