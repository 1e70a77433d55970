"""The folded tier of readings, packed: one row per (hour, consumable) (schema 11).

Keyed consumable-first, a fold of the recent tier landed in the middle of a b-tree for
every consumable it held: ~13 page writes per consumable per hourly fold, ~1,700 WAL
pages at household load (bench/fold_layout.py). ``readings_main`` now holds one row
per consumable and hour, rowid ``hour << 20 | cid``, its readings a JSON array in time
order, each ``[seq, seconds into the hour, level, counter, state]`` (trailing nulls
dropped): rowids grow with time, so a fold appends ~125 rows at the right edge of one
tree (and rewrites the rows of the hour the previous fold ended in). A consumable's
window is one rowid lookup per hour, the hour's last reading ``rows -> '$[#-1]'``.

Duplicates: with no ``(cid, seq)`` index, a reading is a duplicate when its ``(cid,
seq)`` is in the recent tier or in the packed row of its own hour (a redelivery repeats
the message, timestamp included). The same seq in another hour is a new reading (a
device that reset its counter, or a changed replay dated elsewhere).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import Any

from agent.storage.rows import ReadingRow

HOUR_S = 3600
CID_BITS = 20
CID_MASK = (1 << CID_BITS) - 1
# (cid, seq, ts, level, state, counter): the column order of readings_recent and the view.
Reading = tuple[int, int, float, float | None, str | None, int | None]
# The stored element: [seq, offset, level?, counter?, state?].
Element = list[Any]


def hour_of(ts: float) -> int:
    return int(ts // HOUR_S)


def row_id(hour: int, cid: int) -> int:
    return hour << CID_BITS | cid


def _offset(ts: float, hour: int) -> float:
    """Seconds into the hour, as short as still gives back ``ts`` exactly
    (``hour * 3600.0 + offset == ts``; the view and :func:`ts_of` add it back)."""
    base = hour * float(HOUR_S)
    exact = ts - base  # exact: both are within a factor of two of each other
    for digits in (3, 6):
        short = round(exact, digits)
        if base + short == ts:
            return short
    return exact


def element(r: Reading) -> Element:
    hour = hour_of(r[2])
    e: Element = [r[1], _offset(r[2], hour), r[3], r[5], r[4]]
    while len(e) > 2 and e[-1] is None:
        e.pop()
    return e


def ts_of(hour: int, e: Element) -> float:
    return hour * float(HOUR_S) + float(e[1])


def _get(e: Element, i: int) -> Any:
    return e[i] if len(e) > i else None


def content(hour: int, e: Element) -> tuple[float, float | None, str | None]:
    """What a redelivery must repeat (see Store._check_replay)."""
    return ts_of(hour, e), _get(e, 2), _get(e, 4)


def reading_row(hour: int, e: Element) -> ReadingRow:
    return ReadingRow(ts_of(hour, e), _get(e, 2), _get(e, 4), _get(e, 3))


def dumps(elements: Iterable[Element]) -> str:
    return json.dumps(list(elements), separators=(",", ":"))


def stored(conn: sqlite3.Connection, cid: int, seq: int, ts: float,
           ) -> tuple[float, float | None, str | None] | None:
    """The packed reading ``(cid, seq)`` of the hour of ``ts``, if any."""
    hour = hour_of(ts)
    row = conn.execute(
        "SELECT j.value FROM readings_main m, json_each(m.rows) j "
        "WHERE m.id = ? AND j.value ->> 0 = ?", (row_id(hour, cid), seq)).fetchone()
    return None if row is None else content(hour, json.loads(row[0]))


def top_seq(conn: sqlite3.Connection, rid: int) -> int:
    """The highest seq packed in row ``rid`` (-1: no such row; seqs are >= 0)."""
    row = conn.execute("SELECT MAX(j.value ->> 0) FROM readings_main m, json_each(m.rows) j "
                       "WHERE m.id = ?", (rid,)).fetchone()
    return -1 if row is None or row[0] is None else int(row[0])


# The row id of a reading of readings_recent in SQL, to have SQLite sort a fold's
# readings (:func:`pack_ordered`). Its float division may round a reading in the last
# microseconds of an hour into the next one: such a reading forms a run of its own,
# which pack_ordered merges into the row written just before (correct, one row rewrite).
ROW_ID_SQL = f"(CAST(ts / {HOUR_S} AS INTEGER) << {CID_BITS} | cid)"


def _rid(r: Reading) -> int:
    return row_id(hour_of(r[2]), r[0])


def pack(conn: sqlite3.Connection, readings: Sequence[Reading],
         tops: dict[int, int] | None = None) -> None:
    """Add readings to the packed rows (inside a write transaction). Rows of an hour
    already stored are merged in time order; a seq that hour already holds is kept
    once (the stored one, else the first given). ``tops`` gets each written row's
    highest seq."""
    pack_ordered(conn, sorted(readings, key=_rid), tops)


def pack_ordered(conn: sqlite3.Connection, readings: Iterable[Reading],
                 tops: dict[int, int] | None = None) -> None:
    """:func:`pack` for readings in row id order (a cursor ordered by
    :data:`ROW_ID_SQL`): read once, one row's readings in memory at a time, where a
    fold of ``fold_rows`` readings as a list of tuples was ~2.5 MB of the ingest burst's
    peak RSS. Rows are written in rowid order: appends walk the tree's right edge."""
    for rid, run in groupby(readings, key=_rid):
        old = conn.execute("SELECT rows FROM readings_main WHERE id = ?", (rid,)).fetchone()
        elements: list[Element] = [] if old is None else json.loads(old[0])
        seen = {e[0] for e in elements}
        for r in run:
            if r[1] not in seen:
                seen.add(r[1])
                elements.append(element(r))
        elements.sort(key=lambda e: (e[1], e[0]))
        if tops is not None:
            tops[rid] = max(seen)
        conn.execute("INSERT OR REPLACE INTO readings_main (id, rows) VALUES (?, ?)",
                     (rid, dumps(elements)))


def hour_span(conn: sqlite3.Connection, since: float | None) -> tuple[int, int] | None:
    """First and last hour a consumable's read must look at (None: nothing stored)."""
    # Two bare MIN/MAX subqueries: SQLite answers each from one end of the rowid tree,
    # where an expression over MIN(id) or both in one SELECT scans the whole table.
    lo_id, hi_id = conn.execute("SELECT (SELECT MIN(id) FROM readings_main), "
                                "(SELECT MAX(id) FROM readings_main)").fetchone()
    if hi_id is None:
        return None
    lo, hi = int(lo_id) >> 20, int(hi_id) >> 20
    first = lo if since is None or not math.isfinite(since) else max(lo, hour_of(since))
    return (first, hi) if first <= hi else None


_BY_HOUR = ("WITH RECURSIVE h(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM h WHERE x < ?) "
            "SELECT h.x, {col} FROM h JOIN readings_main m ON m.id = (h.x << 20 | ?)")


def hour_rows(conn: sqlite3.Connection, cid: int, since: float | None,
              ) -> list[tuple[int, list[Element]]]:
    """Every packed (hour, elements) of one consumable from the hour of ``since`` on."""
    span = hour_span(conn, since)
    if span is None:
        return []
    return [(int(h), json.loads(rows)) for h, rows in
            conn.execute(_BY_HOUR.format(col="m.rows"), (*span, cid))]


def hour_lasts(conn: sqlite3.Connection, cid: int, since: float) -> list[ReadingRow]:
    """The last packed reading of each hour of one consumable from the hour of ``since``
    on, in time order (one rowid lookup per hour)."""
    span = hour_span(conn, since)
    if span is None:
        return []
    return [reading_row(int(h), json.loads(last)) for h, last in
            conn.execute(_BY_HOUR.format(col="m.rows -> '$[#-1]'"), (*span, cid))]


def thin(elements: list[Element], hour: int, cut: float, bucket_s: float,
         prev: float | None) -> tuple[list[Element], float | None]:
    """Retention of one packed row: of the readings before ``cut``, keep the last of each
    ``bucket_s`` and every upward jump (level above 1.2x the previous plus one); returns
    the kept elements and the last level before ``cut`` (the next row's previous)."""
    old = [e for e in elements if ts_of(hour, e) < cut]
    last_of: dict[int, int] = {}
    for i, e in enumerate(old):
        last_of[int(ts_of(hour, e) // bucket_s)] = i
    keep_idx = set(last_of.values())
    for i, e in enumerate(old):
        level = _get(e, 2)
        if prev is not None and level is not None and level > prev * 1.2 + 1:
            keep_idx.add(i)
        prev = level
    kept = [e for i, e in enumerate(old) if i in keep_idx]
    return kept + elements[len(old):], prev
