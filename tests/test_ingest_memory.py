"""What the ingest burst holds in memory at once (issue 21: peak RSS during the burst).

Measured with tracemalloc's peak around one call, which counts every Python allocation
the call makes, deterministically: no RSS, timing or load in the figures. Before these
changes a batch of 1,000 validated printer messages was held at once (~6 KB each with
their input) and a fold fetched all its readings as tuples (~220 B each).
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

from agent.config import IngestSettings
from agent.mqtt.ingest import Inbound, Writer, validate
from agent.mqtt.judge import Unlimited
from agent.storage import connect as connect_mod
from agent.storage import packed, recent
from agent.storage.store import Item, Store

NOW = 1_793_000_000.0  # 2026-10-26
TONERS = ("black", "cyan", "magenta", "yellow")


def state(device: str, seq: int) -> Inbound:
    body = {"device_id": device, "seq": seq, "ts": "2026-10-26T08:00:00Z", "kind": "printer",
            "fw": "1.2.3", "consumables": [
                {"id": t, "level": 50 - seq % 7, "unit": "percent", "sku": f"TN-{t}",
                 "state": "ok"} for t in TONERS]}
    return Inbound(seq, 1, f"replenish/v1/devices/{device}/state", json.dumps(body).encode(),
                   NOW)


def peak_bytes(call: Callable[[], object]) -> int:
    """The most ``call`` held at once beyond what was allocated before it."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_a_full_batch_is_validated_one_message_at_a_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")
    acked: list[int] = []
    writer = Writer(lambda: store, IngestSettings(), lambda m: acked.append(m.mid))
    warm = [state(f"printer-{d}", 1) for d in range(50)]
    writer._commit(store, warm)  # devices and consumables exist, statements are cached
    batch = [state(f"printer-{i % 50}", 2 + i // 50) for i in range(1_000)]
    held = peak_bytes(lambda: writer._commit(store, batch))
    assert writer.stats.stored == 1_050 and len(acked) == 1_050
    # 6.3 MB when the 1,000 validated models were held at once; 0.85 MB now (a few
    # messages, the batch's readings staged in the recent tier's key map).
    assert held < 2_000_000, held
    store.close()


def test_write_batch_reports_what_the_writer_needs_of_the_items(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")

    def items() -> Iterator[Item]:
        for m in (state("printer-1", 1), state("printer-2", 1),
                  Inbound(3, 1, "replenish/v1/devices/printer-3/state", b"{", NOW)):
            yield validate(m, Unlimited(), 16_384, 86_400)

    result = store.write_batch(items(), received_at=NOW)
    assert (result.stored, result.rejected, result.pending) == (2, 1, 0)
    assert result.devices == {"printer-1", "printer-2"}
    assert [r.reason for r in result.rejects] == ["bad_json"]
    store.close()


def test_a_fold_streams_its_readings(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")
    conn = store.conn
    conn.execute("INSERT INTO devices (device_id, kind, first_seen, last_seen, last_seq) "
                 "VALUES ('printer-1', 'printer', 0, 0, 0)")
    conn.executemany("INSERT INTO consumables (device_id, consumable_id, unit) VALUES "
                     "('printer-1', ?, 'percent')", [(f"c{i}",) for i in range(250)])
    rows = 10_000  # ingest.fold_rows' default
    conn.executemany(
        "INSERT INTO readings_recent (cid, seq, ts, level, state, counter) "
        "VALUES (?, ?, ?, ?, 'ok', NULL)",
        [(1 + i % 250, i // 250, NOW + i * 0.3, 50.0 - i % 7) for i in range(rows)])
    conn.execute("BEGIN IMMEDIATE")
    moved: list[int] = []
    held = peak_bytes(lambda: moved.append(recent.fold(conn, store.recent)))
    conn.execute("COMMIT")
    assert moved == [rows]
    assert conn.execute("SELECT COUNT(*) FROM readings_recent").fetchone()[0] == 0
    # 2.2 MB as a list of tuples; 66 KB now (one packed row's readings at a time).
    assert held < 500_000, held
    store.close()


def test_pack_ordered_merges_two_runs_of_one_row(tmp_path: Path) -> None:
    """A row's readings split into two runs (SQLite's float division can sort a reading
    of an hour's last microseconds into the next hour) still end up in one row."""
    store = Store(tmp_path / "agent.db")
    conn = store.conn
    hour = int(NOW // 3600)
    at = [hour * 3600.0 + s for s in (10.0, 30.0, 20.0)]
    conn.execute("BEGIN IMMEDIATE")
    packed.pack_ordered(conn, [(1, 1, at[0], 50.0, None, None), (1, 2, at[1], 49.0, None, None)])
    packed.pack_ordered(conn, [(1, 3, at[2], 48.0, None, None), (1, 2, at[1], 47.0, None, None)])
    conn.execute("COMMIT")
    rows = conn.execute("SELECT id, rows FROM readings_main").fetchall()
    assert [r[0] for r in rows] == [packed.row_id(hour, 1)]
    elements = json.loads(rows[0][1])
    assert [e[0] for e in elements] == [1, 3, 2]  # time order, seq 2 kept once (first)
    assert elements[2][2] == 49.0
    store.close()


def test_every_connection_bounds_its_page_cache(tmp_path: Path) -> None:
    conn = connect_mod.connect(tmp_path / "agent.db")
    assert conn.execute("PRAGMA cache_size").fetchone()[0] == -connect_mod.CACHE_KIB
    assert connect_mod.CACHE_KIB < 2_000  # below SQLite's default
    conn.close()
