"""What one fold of the recent readings tier writes, per layout of the folded tier (issue 21).

The fold moves an hour of readings (household load: 50 devices x 1 message a minute,
125 consumables, 60 readings each) from ``readings_recent`` into the folded tier. The
reference is schema 10's layout and fold (``keyed_v10``): ``readings_main`` clustered by
``(cid, ts, seq)`` with the unique ``(cid, seq)`` index, where each consumable's hour
lands in the middle of both b-trees. ``current`` is the agent as it is (the schema of
:mod:`agent.storage.migrations`, :func:`agent.storage.recent.fold`, the forecast's read
``StoreReads.history``): packed rows per (hour, consumable) since schema 11. The
prototypes, with the same recent tier:

* ``time_first``: ``PRIMARY KEY (ts, cid, seq)``, no index (the fold appends at the
  right edge; a consumable's read scans every consumable's rows of its window);
* ``time_first_seq``: the same plus the unique ``(cid, seq)`` index;
* ``packed_hour``: one row per (hour, consumable), rowid ``hour << 20 | cid`` (appended
  in order, so SQLite's right-edge split fills pages), holding that hour's readings as
  JSON ``[seq, microseconds into the hour, level, state, counter]`` in time order; a
  consumable's window is one rowid lookup per hour.

History is written straight into the folded tier at the resolution retention keeps (one
minute for 2 days, five minutes to 100 days, hourly before). Measured per layout, from
a database checkpointed before the fold: the WAL frames the fold's transaction appends
(pages, each written again by the checkpoint), ``write_bytes`` of the fold and a PASSIVE
checkpoint (``/proc/self/io``), with SQLite's ``secure_delete`` as the agent gets it
(Debian builds it on: freed pages are zeroed, which the WAL carries) and with ``FAST``;
for two history lengths (a fold's cost must not grow with history); and the time of a
one-consumable read of the window (the last reading of each hour), a noisy figure.

    python -m bench.fold_layout [--days 30 --more-days 180]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from agent.storage import packed
from agent.storage.migrations import MIGRATIONS, _statements, migrate
from agent.storage.reads import StoreReads
from agent.storage.recent import RecentKeys, fold
from agent.storage.store import NEW_PAGE_SIZE
from bench.common import header, machine_info, md_table, utcnow, write_results

DAY = 86_400
NOW = 1_780_000_000.0
CIDS = 125
PER_HOUR = 60  # readings per consumable per fold (one message a minute)
MESSAGES = 50 * PER_HOUR  # state messages of one fold interval

Row = tuple[int, int, float, float | None, str | None, int | None]

LAYOUTS: dict[str, str] = {
    "time_first": """CREATE TABLE readings_main (cid INTEGER NOT NULL, seq INTEGER NOT NULL,
        ts REAL NOT NULL, level REAL, state TEXT, counter INTEGER,
        PRIMARY KEY (ts, cid, seq)) WITHOUT ROWID""",
    "time_first_seq": """CREATE TABLE readings_main (cid INTEGER NOT NULL,
        seq INTEGER NOT NULL, ts REAL NOT NULL, level REAL, state TEXT, counter INTEGER,
        PRIMARY KEY (ts, cid, seq)) WITHOUT ROWID;
        CREATE UNIQUE INDEX readings_by_seq ON readings_main (cid, seq)""",
    "packed_hour": "CREATE TABLE readings_main (id INTEGER PRIMARY KEY, rows TEXT NOT NULL)",
}
RECENT = """CREATE TABLE readings_recent (id INTEGER PRIMARY KEY, cid INTEGER NOT NULL,
    seq INTEGER NOT NULL, ts REAL NOT NULL, level REAL, state TEXT, counter INTEGER)"""


def timeline(days: int) -> list[float]:
    start = int(NOW - days * DAY)
    thin, minute = max(start, int(NOW - 100 * DAY)), max(start, int(NOW - 2 * DAY))
    return [float(t) for t in [*range(start, thin, 3600), *range(thin, minute, 300),
                               *range(minute, int(NOW), 60)]]


def level(cid: int, t: float) -> float:
    period = (40 + cid % 10) * DAY
    return round(100.0 - 95.0 * (t % period) / period, 1)


def history_rows(days: int) -> list[Row]:
    return [(cid, seq, t, level(cid, t), None, seq * 3 if cid % 5 else None)
            for cid in range(1, CIDS + 1) for seq, t in enumerate(timeline(days), 1)]


def recent_rows(first_seq: int) -> list[Row]:
    """One fold interval, in arrival order, timestamps with microseconds."""
    rows: list[Row] = []
    for k in range(PER_HOUR):
        for cid in range(1, CIDS + 1):
            t = round((NOW + k * 60 + cid * 0.4137) * 1e6) / 1e6
            rows.append((cid, first_seq + k, t, level(cid, t), None, None))
    return rows


def _element(r: Row, hour: int) -> list[Any]:
    e: list[Any] = [r[1], round(r[2] * 1e6) - hour * 3_600_000_000, r[3], r[4], r[5]]
    while e[-1] is None:
        e.pop()
    return e


def pack(rows: list[Row]) -> list[tuple[int, str]]:
    """(rowid, JSON) per (hour, consumable), in rowid order."""
    by: dict[tuple[int, int], list[Row]] = {}
    for r in rows:
        by.setdefault((int(r[2] // 3600), r[0]), []).append(r)
    out = []
    for (hour, cid), rs in sorted(by.items()):
        rs.sort(key=lambda x: (x[2], x[1]))
        out.append((hour << 20 | cid,
                    json.dumps([_element(r, hour) for r in rs], separators=(",", ":"))))
    return out


def fold_packed(conn: sqlite3.Connection) -> None:
    rows: list[Row] = conn.execute(
        "SELECT cid, seq, ts, level, state, counter FROM readings_recent").fetchall()
    packed = pack(rows)
    # An hour the previous fold began is extended: its readings sort before these.
    conn.executemany(
        "INSERT INTO readings_main (id, rows) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET "
        "rows = substr(rows, 1, length(rows) - 1) || ',' || substr(excluded.rows, 2)", packed)
    conn.execute("DELETE FROM readings_recent")


def fold_plain(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT OR IGNORE INTO readings_main (cid, seq, ts, level, state, counter) "
                 "SELECT cid, seq, ts, level, state, counter FROM readings_recent "
                 "ORDER BY ts, cid, seq")
    conn.execute("DELETE FROM readings_recent")


def fold_current(conn: sqlite3.Connection) -> None:
    fold(conn, RecentKeys())


def fold_keyed(conn: sqlite3.Connection) -> None:
    """Schema 10's fold (the reference): sorted inserts into the keyed tree."""
    conn.execute("INSERT OR IGNORE INTO readings_main (cid, seq, ts, level, state, counter) "
                 "SELECT cid, seq, ts, level, state, counter FROM readings_recent "
                 "ORDER BY cid, seq")
    conn.execute("PRAGMA secure_delete = FAST")
    conn.execute("DELETE FROM readings_recent")


FOLDS: dict[str, Callable[[sqlite3.Connection], None]] = {
    "keyed_v10": fold_keyed, "current": fold_current, "time_first": fold_plain,
    "time_first_seq": fold_plain, "packed_hour": fold_packed}


def build(path: Path, layout: str, days: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={NEW_PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    history = history_rows(days)
    if layout == "current":
        migrate(conn)
    elif layout == "keyed_v10":
        for version, script in MIGRATIONS:
            if version <= 10:
                for statement in _statements(script):
                    conn.execute(statement)
    else:
        conn.executescript(f"{LAYOUTS[layout]}; {RECENT}; "
                           "CREATE TABLE history_marks (cid INTEGER PRIMARY KEY, "
                           "gen INTEGER NOT NULL, low_ts REAL NOT NULL)")
    conn.execute("BEGIN")
    if layout == "current":
        packed.pack(conn, sorted(history, key=lambda r: (r[2] // 3600, r[0])))
    elif layout == "packed_hour":
        conn.executemany("INSERT INTO readings_main (id, rows) VALUES (?, ?)", pack(history))
    else:
        order = (lambda r: (r[0], r[2])) if layout == "keyed_v10" else (lambda r: (r[2], r[0]))
        conn.executemany("INSERT INTO readings_main (cid, seq, ts, level, state, counter) "
                         "VALUES (?, ?, ?, ?, ?, ?)", sorted(history, key=order))
    conn.executemany("INSERT INTO readings_recent (cid, seq, ts, level, state, counter) "
                     "VALUES (?, ?, ?, ?, ?, ?)", recent_rows(len(timeline(days)) + 1))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def write_bytes() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes:"))


def wal_pages(path: Path) -> int:
    """Distinct pages in the WAL (frame headers: page number first)."""
    data = Path(f"{path}-wal").read_bytes() if Path(f"{path}-wal").exists() else b""
    step = NEW_PAGE_SIZE + 24
    return len({struct.unpack(">I", data[o:o + 4])[0] for o in range(32, len(data) - 23, step)})


def measure_fold(path: Path, layout: str, secure_delete: str) -> dict[str, Any]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    if secure_delete:
        conn.execute(f"PRAGMA secure_delete={secure_delete}")
    w0 = write_bytes()
    conn.execute("BEGIN IMMEDIATE")
    FOLDS[layout](conn)
    conn.execute("COMMIT")
    pages = wal_pages(path)
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    written = write_bytes() - w0
    conn.close()
    return {"pages": pages, "write_bytes": written, "bytes_per_message": written / MESSAGES}


def read_ms(path: Path, layout: str, days: int) -> float:
    """One consumable's window: the last reading of each hour (median of 3 consumables)."""
    conn = sqlite3.connect(path)
    since = (NOW - days * DAY) // 3600 * 3600  # whole hours, as the decision pass reads
    times = []
    for cid in (1, CIDS // 2, CIDS):
        t0 = time.perf_counter()
        if layout == "current":  # the agent's own read (Store.history, hourly buckets)
            StoreReads.history(cast(StoreReads, _Conn(conn)), cid, since, since,
                               fine_bucket_s=3600, coarse_bucket_s=3600)  # whole hours
        elif layout == "packed_hour":
            conn.execute(
                "WITH RECURSIVE h(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM h WHERE x < ?) "
                "SELECT m.id >> 20, json_extract(m.rows, '$[#-1]') FROM h "
                "JOIN readings_main m ON m.id = (h.x << 20 | ?)",
                (int(since // 3600), int(NOW // 3600) + 1, cid)).fetchall()
        else:
            conn.execute("SELECT MAX(ts), level FROM readings_main WHERE cid = ? AND ts >= ? "
                         "GROUP BY CAST(ts / 3600 AS INTEGER) ORDER BY 1",
                         (cid, since)).fetchall()
        times.append(time.perf_counter() - t0)
    conn.close()
    return sorted(times)[1] * 1000


class _Conn:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _remove(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def run(days: int, more_days: int, work: Path, layouts: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for layout in layouts:
        entry: dict[str, Any] = {}
        for n in (days, more_days):
            base = work / f"{layout}-{n}.db"
            build(base, layout, n)
            for mode in ("", "FAST"):
                copy = work / f"{layout}-{n}-{mode or 'default'}.db"
                shutil.copy(base, copy)
                entry[f"{n}d_{mode or 'default'}"] = measure_fold(copy, layout, mode)
                _remove(copy)
            entry[f"{n}d_read_ms"] = read_ms(base, layout, n)
            _remove(base)
        results[layout] = entry
    return results


def markdown(results: dict[str, Any], days: int, more: int, started: Any) -> str:
    ref = results["keyed_v10"][f"{days}d_default"]["write_bytes"]
    rows = []
    for layout, e in results.items():
        d, f, m = e[f"{days}d_default"], e[f"{days}d_FAST"], e[f"{more}d_FAST"]
        rows.append([layout, d["pages"], f"{d['bytes_per_message']:,.0f}", f["pages"],
                     f"{f['bytes_per_message']:,.0f}", f"{f['write_bytes'] / ref:.2f}",
                     m["pages"], f"{e[f'{days}d_read_ms']:.1f}", f"{e[f'{more}d_read_ms']:.1f}"])
    return (header("Fold layout benchmark", machine_info(), started) + "\n" + md_table(
        ["layout", f"pages ({days} d)", "B/msg", "pages, secure_delete FAST",
         "B/msg, FAST", "write_bytes / keyed_v10", f"pages FAST ({more} d)",
         f"read {days} d (ms)", f"read {more} d (ms)"], rows)
        + f"\n\nOne fold of {CIDS * PER_HOUR:,} readings ({MESSAGES:,} messages); page size "
        f"{NEW_PAGE_SIZE}. B/msg: write_bytes of the fold and its checkpoint per message. "
        "Read: one consumable, last reading of each hour of the window (load-dependent).\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=30, help="history of the first database")
    ap.add_argument("--more-days", type=int, default=180, help="history of the second")
    ap.add_argument("--layouts", default=",".join(["keyed_v10", "current", *LAYOUTS]),
                    help="comma-separated layouts (keyed_v10 first: the reference)")
    ap.add_argument("--out", type=Path, help="results directory (default bench/results)")
    args = ap.parse_args()
    started = utcnow()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.days, args.more_days, Path(tmp), args.layouts.split(","))
    data = {"started": started.isoformat(), "machine": machine_info(), "days": args.days,
            "more_days": args.more_days, "results": results}
    paths = write_results("fold_layout", data,
                          markdown(results, args.days, args.more_days, started), args.out)
    print(paths[1].read_text())


if __name__ == "__main__":
    main()
