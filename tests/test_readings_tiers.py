"""Two tiers of readings (schema step 9): appended to readings_recent, folded into
readings_main, read through the readings view; duplicates dropped across both."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.domain import DeviceKind, Unit
from agent.errors import StoreError
from agent.storage.migrations import LATEST_VERSION, MIGRATIONS, _statements, current_version
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def msg(seq: int, level: float, device: str = "fridge-1") -> StateMessage:
    return StateMessage(
        device_id=device, seq=seq, ts=T0 + timedelta(minutes=seq), kind=DeviceKind.FRIDGE,
        consumables=[Consumable(id="milk", level=level, unit=Unit.GRAMS)],
    )


def tiers(store: Store) -> tuple[int, int]:
    c = store.conn
    return (int(c.execute("SELECT COUNT(*) FROM readings_recent").fetchone()[0]),
            int(c.execute("SELECT COALESCE(SUM(json_array_length(rows)), 0) "
                          "FROM readings_main").fetchone()[0]))


def test_version_7_upgrades_and_keeps_its_readings(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in [(v, s) for v, s in MIGRATIONS if v < 9]:
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO consumables (device_id, consumable_id, unit) "
                 "VALUES ('fridge-1', 'milk', 'grams')")
    conn.executemany("INSERT INTO readings (cid, seq, ts, level) VALUES (1, ?, ?, ?)",
                     [(s, T0.timestamp() + 60 * s, 900.0 - s) for s in range(1, 6)])
    conn.close()

    with Store(path) as store:
        assert current_version(store.conn) == LATEST_VERSION
        assert [r.level for r in store.readings(1)] == [899.0, 898.0, 897.0, 896.0, 895.0]
        assert tiers(store) == (0, 5)
        # A redelivery of a reading stored before the upgrade (same seq, same time) is
        # still a duplicate.
        result = store.write_batch([msg(3, 897.0)], received_at=T0.timestamp())
        assert (result.stored, result.duplicates) == (0, 1)


def test_new_readings_append_to_the_recent_tier_and_fold(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.db") as store:
        assert store.conn.execute("PRAGMA page_size").fetchone()[0] == 1024
        store.write_batch([msg(s, 900.0 - s) for s in range(1, 4)], received_at=1.0)
        assert tiers(store) == (3, 0)
        assert store.reading_count() == 3 and store.recent_count() == 3
        assert store.fold_recent() == 3
        assert tiers(store) == (0, 3)
        store.write_batch([msg(4, 896.0)], received_at=2.0)
        assert [r.level for r in store.readings(1)] == [899.0, 898.0, 897.0, 896.0]
        assert store.seqs("fridge-1") == [1, 2, 3, 4]


def test_duplicates_are_dropped_in_either_tier_and_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    with Store(path) as store:
        store.write_batch([msg(1, 900.0), msg(2, 899.0)], received_at=1.0)
        store.fold_recent()
        store.write_batch([msg(3, 898.0)], received_at=2.0)
        # Same batch, recent tier, folded tier.
        result = store.write_batch([msg(4, 897.0), msg(4, 897.0), msg(3, 898.0),
                                    msg(1, 900.0)], received_at=3.0)
        assert (result.stored, result.duplicates) == (1, 3)
    with Store(path) as store:  # a restart loads the recent tier's keys again
        result = store.write_batch([msg(3, 898.0), msg(4, 897.0), msg(5, 896.0)],
                                   received_at=4.0)
        assert (result.stored, result.duplicates) == (1, 2)
        assert store.reading_count() == 5


def test_a_fold_by_another_connection_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    with Store(path) as writer, Store(path) as upkeep:
        writer.write_batch([msg(1, 900.0)], received_at=1.0)
        upkeep.write_batch([msg(2, 899.0)], received_at=1.5)
        assert upkeep.fold_recent() == 2
        result = writer.write_batch([msg(1, 900.0), msg(2, 899.0), msg(3, 898.0)],
                                    received_at=2.0)
        assert (result.stored, result.duplicates) == (1, 2)
        assert tiers(writer) == (1, 2)


def test_a_changed_replay_is_counted_from_either_tier(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.db") as store:
        store.write_batch([msg(1, 900.0), msg(2, 899.0)], received_at=1.0)
        store.fold_recent()
        store.write_batch([msg(3, 898.0)], received_at=2.0)
        store.write_batch([msg(1, 5.0), msg(3, 5.0)], received_at=3.0)
        counts = {(r.reason, r.count) for r in store.reject_counts()}
        assert counts == {("replay_changed", 2)}
        assert [r.level for r in store.readings(1)] == [900.0, 899.0, 898.0]


def test_a_failed_batch_leaves_no_key_behind(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.db") as store:
        store.write_batch([msg(1, 900.0)], received_at=1.0)
        pages = int(store.conn.execute("PRAGMA page_count").fetchone()[0])
        store.conn.execute(f"PRAGMA max_page_count={pages}")
        batch = [msg(s, 900.0 - s, device=f"dev-{s}") for s in range(2, 200)]
        with pytest.raises(StoreError):
            store.write_batch(batch, received_at=2.0)
        store.conn.execute("PRAGMA max_page_count=1073741823")
        result = store.write_batch(batch, received_at=3.0)
        assert result.stored == len(batch)


def test_a_fold_does_not_write_the_recent_tiers_pages_again(tmp_path: Path) -> None:
    """The fold frees the recent tier whole: its WAL frames are the folded tier's new
    pages plus a few (b-tree roots, freelist, marks), not also one per recent page
    (secure_delete zeroing each freed page, or a DELETE rewriting each leaf)."""
    with Store(tmp_path / "agent.db") as store:
        store.write_batch([msg(s, 900.0 - s % 500, f"fridge-{s % 5}") for s in range(3_000)],
                          received_at=T0.timestamp())
        c = store.conn
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        recent_pages = int(c.execute("SELECT COUNT(*) FROM readings_recent").fetchone()[0]
                           ) * 40 // int(c.execute("PRAGMA page_size").fetchone()[0])
        before = int(c.execute("PRAGMA page_count").fetchone()[0])
        secure = c.execute("PRAGMA secure_delete").fetchone()[0]
        assert store.fold_recent() == 3_000
        grown = int(c.execute("PRAGMA page_count").fetchone()[0]) - before
        frames = int(c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
        assert recent_pages > 50  # what the old fold wrote again
        assert frames <= grown + 12
        assert c.execute("PRAGMA secure_delete").fetchone()[0] == secure  # restored
        assert tiers(store) == (0, 3_000)
