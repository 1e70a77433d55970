"""The packed folded tier (schema 11): a schema-10 database migrates without losing a
reading, duplicates are found in the packed row of the reading's hour, retention thins
packed rows like it thinned keyed ones."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.domain import DeviceKind, Unit
from agent.storage import packed
from agent.storage.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    STEPS,
    _statements,
    current_version,
)
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage

VIEW = "SELECT cid, seq, ts, level, state, counter FROM readings ORDER BY cid, seq"


def schema_10(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in [(v, s) for v, s in MIGRATIONS if v <= 10]:
        for statement in _statements(script):
            conn.execute(statement)
        assert version not in STEPS
        conn.execute(f"PRAGMA user_version = {version}")
    return conn


def test_a_schema_10_database_migrates_with_identical_readings(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    conn = schema_10(path)
    for cid in (1, 2, 3):
        conn.execute("INSERT INTO consumables (device_id, consumable_id, unit) "
                     "VALUES (?, 'milk', 'grams')", (f"fridge-{cid}",))
    rnd = random.Random(7)
    rows = []
    for cid in (1, 2, 3):
        t = 1_780_000_000.0
        for seq in range(1, 400):
            t += rnd.choice([0.5, 59.123456, 300.0, 3600.0, 1e-6 * rnd.randrange(10**9)])
            rows.append((cid, seq, round(t, 6), rnd.choice([None, 1 / 3, 87.5, 12.0]),
                         rnd.choice([None, "ok", "low"]), rnd.choice([None, seq * 7])))
    conn.executemany("INSERT INTO readings_main (cid, seq, ts, level, state, counter) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.executemany("INSERT INTO readings_recent (cid, seq, ts, level, state, counter) "
                     "VALUES (?, 1000, ?, 5.0, NULL, NULL)", [(1, 1_790_000_000.25)])
    before = conn.execute(VIEW).fetchall()
    conn.close()
    with Store(path) as store:
        assert current_version(store.conn) == LATEST_VERSION
        after = store.conn.execute(VIEW).fetchall()
        assert [tuple(map(type, r)) for r in after] == [tuple(map(type, r)) for r in before]
        assert after == before
        assert store.conn.execute("SELECT COUNT(*) FROM readings_main").fetchone()[0] < 1197
        expected = sorted((r[2], r[3], r[4], r[5]) for r in before if r[0] == 2)
        assert [(r.ts, r.level, r.state, r.counter) for r in store.readings(2)] == expected


def test_a_seq_is_a_duplicate_in_its_own_hour_only(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from agent.domain import DeviceKind, Unit
    from agent.wire.device import Consumable, StateMessage

    t0 = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)

    def msg(seq: int, ts: datetime, level: float) -> StateMessage:
        return StateMessage(device_id="fridge-1", seq=seq, ts=ts, kind=DeviceKind.FRIDGE,
                            consumables=[Consumable(id="milk", level=level,
                                                    unit=Unit.GRAMS)])

    with Store(tmp_path / "agent.db") as store:
        store.write_batch([msg(1, t0, 900.0)], received_at=t0.timestamp())
        store.fold_recent()
        again = store.write_batch([msg(1, t0, 900.0)], received_at=t0.timestamp())
        later = store.write_batch([msg(1, t0 + timedelta(hours=2), 800.0)],
                                  received_at=t0.timestamp())
        assert (again.stored, again.duplicates) == (0, 1)
        assert (later.stored, later.duplicates) == (1, 0)  # a reused seq: a new reading
        assert store.reading_count() == 2


def test_retention_thins_packed_rows(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    with Store(path) as store:
        store.conn.execute("INSERT INTO devices (device_id, kind, first_seen, last_seen, "
                           "last_seq) VALUES ('fridge-1', 'fridge', 0, 0, 0)")
        store.conn.execute("INSERT INTO consumables (device_id, consumable_id, unit) "
                           "VALUES ('fridge-1', 'milk', 'grams')")
        t = 1_780_000_000.0
        rows = [(1, s, t + 60 * s, 900.0 - s if s != 100 else 2_000.0, None, None)
                for s in range(1, 301)]
        store.conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)", rows)
        cut = t + 60 * 240
        deleted = store.downsample(cut, 3600)
        kept = [r.ts for r in store.readings(1)]
        old = [ts for ts in kept if ts < cut]
        # the last of each hour before the cut, the jump at seq 100 and the one after it
        hours = {int(r[2] // 3600) for r in rows if r[2] < cut}
        assert len(old) == len(hours) + 1
        assert t + 6000 in old
        assert len([ts for ts in kept if ts >= cut]) == 61
        assert deleted == 300 - len(kept)
        assert store.downsample(cut, 3600) == 0  # nothing left to thin: nothing written


def _vm_steps(conn: sqlite3.Connection, call: Callable[[], object]) -> int:
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        call()
    finally:
        conn.set_progress_handler(None, 1)
    return steps[0]


def test_a_tail_read_does_not_grow_with_the_stored_hours(tmp_path: Path) -> None:
    """The warm decision pass re-reads a consumable's newest hour: its cost must not
    scale with the hours stored (a MIN/MAX over an expression scanned them all)."""
    with Store(tmp_path / "agent.db") as store:
        conn = store.conn

        def fill(hours: range) -> None:
            conn.executemany("INSERT INTO readings_main (id, rows) VALUES (?, ?)",
                             ((packed.row_id(h, 1), "[[1,0,50]]") for h in hours))

        fill(range(490_000, 490_100))
        last = 490_099 * packed.HOUR_S
        small = _vm_steps(conn, lambda: packed.hour_lasts(conn, 1, last))
        fill(range(480_000, 490_000))  # a hundred times the history before it
        large = _vm_steps(conn, lambda: packed.hour_lasts(conn, 1, last))
        assert packed.hour_lasts(conn, 1, last)[0].level == 50
    assert large < 2 * small, (small, large)


def _fridge(seq: int, ts: float, level: float) -> object:
    from datetime import UTC, datetime

    from agent.domain import DeviceKind, Unit
    from agent.wire.device import Consumable, StateMessage

    return StateMessage(device_id="fridge-1", seq=seq, ts=datetime.fromtimestamp(ts, UTC),
                        kind=DeviceKind.FRIDGE,
                        consumables=[Consumable(id="milk", level=level, unit=Unit.GRAMS)])


def test_new_readings_of_a_folded_hour_do_not_each_scan_its_row(tmp_path: Path) -> None:
    """After a fold packed the current hour, each new reading of that hour read the whole
    packed row (json_each) for its duplicate check: quadratic in the hour's readings."""
    t = 1_780_000_000.0 - 1_780_000_000.0 % 3600
    with Store(tmp_path / "agent.db") as store:
        store.write_batch([_fridge(s, t + s, 900.0 - s) for s in range(1, 201)], t)
        store.fold_recent()
        scans: list[str] = []
        store.conn.set_trace_callback(lambda sql: scans.append(sql) if "json_each" in sql
                                      else None)
        result = store.write_batch([_fridge(s, t + s, 900.0 - s) for s in range(201, 401)],
                                   t + 400)
        store.conn.set_trace_callback(None)
        assert (result.stored, result.duplicates) == (200, 0)
        assert len(scans) <= 1
        again = store.write_batch([_fridge(150, t + 150, 750.0)], t + 400)  # still seen
        assert (again.stored, again.duplicates) == (0, 1)


def test_a_fold_by_another_connection_is_seen_by_the_duplicate_check(tmp_path: Path) -> None:
    t = 1_780_000_000.0 - 1_780_000_000.0 % 3600
    path = tmp_path / "agent.db"
    with Store(path) as writer, Store(path) as other:
        writer.write_batch([_fridge(s, t + s, 900.0 - s) for s in range(1, 4)], t)
        writer.fold_recent()
        other.write_batch([_fridge(s, t + s, 900.0 - s) for s in range(4, 6)], t)
        other.fold_recent()  # packs seqs above what the writer saw in that row
        again = writer.write_batch([_fridge(5, t + 5, 895.0)], t + 10)
        assert (again.stored, again.duplicates) == (0, 1)
        assert writer.reading_count() == 5


def _rows(conn: sqlite3.Connection) -> dict[int, list[list[object]]]:
    """Each (hour, consumable) slot's readings, its parts in rowid order."""
    out: dict[int, list[list[object]]] = {}
    for rid, rows in conn.execute("SELECT id, rows FROM readings_main ORDER BY id"):
        out.setdefault(packed.slot(*packed.decode(int(rid))), []).extend(json.loads(rows))
    return out


def _spec(folds: list[list[packed.Reading]]) -> dict[int, list[list[object]]]:
    """What the packed rows must hold after these folds, written from the schema's rule:
    per (hour, consumable) the first reading stored of each seq, in (time, seq) order."""
    first: dict[int, dict[int, packed.Reading]] = {}
    for fold in folds:
        for r in fold:
            first.setdefault(packed.slot(packed.hour_of(r[2]), r[0]), {}).setdefault(r[1], r)
    return {key: [packed.element(r) for r in sorted(
        by_seq.values(), key=lambda r: (r[2] - packed.hour_of(r[2]) * 3600.0, r[1]))]
        for key, by_seq in first.items()}


def _main(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE readings_main (id INTEGER PRIMARY KEY, rows TEXT NOT NULL)")


_T = 1_780_000_000.0 - 1_780_000_000.0 % 3600
_readings = st.lists(st.tuples(
    st.integers(1, 3), st.integers(0, 400),
    st.floats(0, 7200, allow_nan=False).map(lambda s: _T + round(s, 3)),
    st.one_of(st.none(), st.floats(0, 1000, allow_nan=False)),
    st.sampled_from([None, "ok", "low"]), st.one_of(st.none(), st.integers(0, 10**6))),
    max_size=300)


@given(folds=st.lists(_readings, max_size=6), with_tops=st.booleans(),
       ordered=st.booleans())
@settings(max_examples=200, deadline=None)
def test_packed_rows_hold_the_first_of_each_seq_in_time_order(
        folds: list[list[packed.Reading]], with_tops: bool, ordered: bool) -> None:
    if ordered:  # the common case, a device's later readings: the append path
        flat = sorted((r for f in folds for r in f), key=lambda r: (r[2], r[1]))
        seqs = iter(range(10**6))
        flat = [(r[0], next(seqs), *r[2:]) for r in flat]
        sizes = [len(f) for f in folds]
        folds = [flat[sum(sizes[:i]):sum(sizes[:i + 1])] for i in range(len(folds))]
    conn = sqlite3.connect(":memory:")
    _main(conn)
    tops: dict[int, int] | None = {} if with_tops else None
    for fold in folds:
        packed.pack(conn, fold, tops)
    assert _rows(conn) == _spec(folds)
    for (rows,) in conn.execute("SELECT rows FROM readings_main"):
        assert json.loads(rows)  # no empty part
    for key, elements in _rows(conn).items():
        if tops is not None:
            assert tops[key] == max(int(e[0]) for e in elements)  # type: ignore[call-overload]


def test_a_fold_into_a_full_hour_writes_what_it_moves() -> None:
    """With one row per hour, each fold rewrote the whole current hour: at 1 msg/s the
    bytes written per message grew from 364 to 5,375 over the hour, and in a burst each
    fold took longer than the last (ingest latency)."""
    conn = sqlite3.connect(":memory:")
    _main(conn)
    tops: dict[int, int] = {}
    writes: list[int] = []
    conn.set_trace_callback(lambda sql: writes.append(len(sql)) if sql.startswith(
        ("INSERT", "UPDATE")) else None)
    for fold in range(40):  # 40 folds of 90 readings into one hour
        writes.clear()
        packed.pack(conn, [(1, s, _T + s / 10, 900.0 - s / 100, None, None)
                           for s in range(90 * fold, 90 * fold + 90)], tops)
        if fold == 0:
            first = sum(writes)
    assert sum(writes) < 3 * first  # the last fold: not 40x the first
    assert len(_rows(conn)[packed.slot(packed.hour_of(_T), 1)]) == 3600
    assert max(json_len for (json_len,) in conn.execute(
        "SELECT json_array_length(rows) FROM readings_main")) <= packed.PART_ELEMENTS


def test_a_schema_11_database_migrates_with_identical_readings(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in [(v, s) for v, s in MIGRATIONS if v <= 11]:
        for statement in _statements(script):
            conn.execute(statement)
        if version in STEPS:
            STEPS[version](conn)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO consumables (device_id, consumable_id, unit) "
                 "VALUES ('fridge-1', 'milk', 'grams')")
    hour = packed.hour_of(_T)
    # Schema 11: one row per hour, rowid hour << 20 | cid, 300 readings in the last one.
    conn.executemany("INSERT INTO readings_main (id, rows) VALUES (?, ?)", [
        (hour << 20 | 1, packed.dumps([[s, 10.0 * s, 900.0 - s] for s in range(300)])),
        ((hour - 5) << 20 | 1, "[[1007,12.5,950.0,3,\"ok\"]]")])
    before = conn.execute(VIEW).fetchall()
    conn.close()
    with Store(path) as store:
        assert current_version(store.conn) == LATEST_VERSION
        assert store.conn.execute(VIEW).fetchall() == before
        dup = store.conn.execute("SELECT ts FROM readings WHERE seq = 299").fetchone()[0]

        def msg(seq: int, ts: float) -> StateMessage:
            return StateMessage(
                device_id="fridge-1", seq=seq, ts=datetime.fromtimestamp(ts, UTC),
                kind=DeviceKind.FRIDGE,
                consumables=[Consumable(id="milk", level=600.0, unit=Unit.GRAMS)])
        again = store.write_batch([msg(299, dup)], received_at=dup)
        assert (again.stored, again.duplicates) == (0, 1)  # found in the renumbered row
        assert store.write_batch([msg(300, dup + 5)], received_at=dup).stored == 1
        store.fold_recent()  # the old hour row is full: the new reading opens part 1
        assert [r.ts for r in store.readings(1)][-2:] == [dup, dup + 5]
        assert store.conn.execute("SELECT MAX(id) & 255 FROM readings_main").fetchone()[0] == 1
        store.conn.execute("DELETE FROM readings WHERE cid = 1 AND seq = 1007")
        assert store.reading_count() == 301
        store.conn.execute("DELETE FROM readings WHERE cid = 1 AND seq = 300")
        assert store.reading_count() == 300
        assert store.conn.execute("SELECT MAX(id) & 255 FROM readings_main").fetchone()[0] == 0


def test_retention_thins_an_hour_across_its_parts(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.db") as store:
        store.conn.execute("INSERT INTO devices (device_id, kind, first_seen, last_seen, "
                           "last_seq) VALUES ('fridge-1', 'fridge', 0, 0, 0)")
        store.conn.execute("INSERT INTO consumables (device_id, consumable_id, unit) "
                           "VALUES ('fridge-1', 'milk', 'grams')")
        readings = [(1, s, _T + 10.0 * s, 900.0 - s / 10, None, None) for s in range(720)]
        for start in range(0, 720, 90):  # folds of 90: the two hours in parts of 128
            packed.pack(store.conn, readings[start:start + 90])
        parts = store.conn.execute("SELECT COUNT(*) FROM readings_main").fetchone()[0]
        assert parts >= 6
        deleted = store.downsample(_T + 7200, 3600)
        assert [r.ts for r in store.readings(1)] == [_T + 3590, _T + 7190]  # one an hour
        assert deleted == 718


_HOUR = 493_000  # an hour of late 2026


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(
    st.integers(1, 40),  # seq: repeats are redeliveries
    st.floats(0.0, 3_599.999_999, allow_nan=False),
    st.none() | st.floats(-1e6, 1e6, allow_nan=False),
    st.none() | st.sampled_from(["ok", "low", "empty"]),
    st.none() | st.integers(0, 10**7)), max_size=60))
def test_the_folds_inlined_elements_are_element_of_the_first_of_each_seq(
        rows: list[tuple[int, float, float | None, str | None, int | None]]) -> None:
    # packed._distinct inlines element() and _offset() for speed: the same bytes stored.
    readings = [(7, seq, _HOUR * 3600.0 + sec, level, state, counter)
                for seq, sec, level, state, counter in rows]
    first: dict[int, packed.Element] = {}
    for r in readings:
        first.setdefault(r[1], packed.element(r))
    assert packed._distinct(_HOUR, readings) == list(first.values())
