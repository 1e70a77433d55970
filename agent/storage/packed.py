"""The folded tier of readings, packed: rows per (hour, consumable) (schemas 11, 12).

Keyed consumable-first, a fold of the recent tier landed in the middle of a b-tree for
every consumable it held: ~13 page writes per consumable per hourly fold, ~1,700 WAL
pages at household load (bench/fold_layout.py). ``readings_main`` holds the readings of
one consumable and hour in parts of at most ``PART_ELEMENTS`` (schema 12), rowid
``(hour << 20 | cid) << 8 | part``, each a JSON array in time order of ``[seq, seconds
into the hour, level, counter, state]`` (trailing nulls dropped): rowids grow with time,
so a fold appends ~125 rows at the right edge of one tree (and rewrites the open part of
the hour the previous fold ended in). A consumable's window is one rowid range per hour,
the hour's last reading ``rows -> '$[#-1]'`` of its last part.

Parts bound what a fold rewrites. With one row per hour (schema 11), every fold
rewrote each consumable's whole current hour: at 1 msg/s per device a fold every 80 s
rewrote rows growing to 3,600 readings, from 364 to 5,375 bytes written per message
over the hour; a burst into one hour made each fold slower than the last.

Duplicates: with no ``(cid, seq)`` index, a reading is a duplicate when its ``(cid,
seq)`` is in the recent tier or in a packed part of its own hour (a redelivery repeats
the message, timestamp included). The same seq in another hour is a new reading (a
device that reset its counter, or a changed replay dated elsewhere).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from agent.storage.rows import ReadingRow

HOUR_S = 3600
CID_BITS = 20
CID_MASK = (1 << CID_BITS) - 1
PART_BITS = 8
PART_MASK = (1 << PART_BITS) - 1
# Readings per part: ~4 KB of JSON, what a fold rewrites of an hour at most per consumable.
PART_ELEMENTS = 128
# (cid, seq, ts, level, state, counter): the column order of readings_recent and the view.
Reading = tuple[int, int, float, float | None, str | None, int | None]
# The stored element: [seq, offset, level?, counter?, state?].
Element = list[Any]


def hour_of(ts: float) -> int:
    return int(ts // HOUR_S)


def slot(hour: int, cid: int) -> int:
    """The (hour, consumable) key: its parts' rowids are ``slot << PART_BITS | part``."""
    return hour << CID_BITS | cid


def row_id(hour: int, cid: int, part: int = 0) -> int:
    return slot(hour, cid) << PART_BITS | part


def decode(rid: int) -> tuple[int, int]:
    """(hour, cid) of a part's rowid."""
    key = rid >> PART_BITS
    return key >> CID_BITS, key & CID_MASK


def _parts(key: int) -> tuple[int, int]:
    """The rowid range of a slot's parts."""
    return key << PART_BITS, key << PART_BITS | PART_MASK


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
        "WHERE m.id BETWEEN ? AND ? AND j.value ->> 0 = ?",
        (*_parts(slot(hour, cid)), seq)).fetchone()
    return None if row is None else content(hour, json.loads(row[0]))


def top_seq(conn: sqlite3.Connection, key: int) -> int:
    """The highest seq packed in slot ``key`` (-1: nothing; seqs are >= 0)."""
    row = conn.execute("SELECT MAX(j.value ->> 0) FROM readings_main m, json_each(m.rows) j "
                       "WHERE m.id BETWEEN ? AND ?", _parts(key)).fetchone()
    return -1 if row is None or row[0] is None else int(row[0])


# A reading's slot (hour, consumable) in SQL, to have SQLite sort a fold's readings
# (:func:`pack_ordered`). Its float division may round a reading in the last
# microseconds of an hour into the next one: such a reading forms a run of its own,
# which pack_ordered appends or merges into its hour like any other.
SLOT_SQL = f"(CAST(ts / {HOUR_S} AS INTEGER) << {CID_BITS} | cid)"


def _slot(r: Reading) -> int:
    return int(r[2] // HOUR_S) << CID_BITS | r[0]  # slot(hour_of(ts), cid), inlined


def pack(conn: sqlite3.Connection, readings: Sequence[Reading],
         tops: dict[int, int] | None = None) -> None:
    """Add readings to the packed parts (inside a write transaction): :func:`pack_ordered`
    of them sorted."""
    pack_ordered(conn, sorted(readings, key=_slot), tops)


def pack_ordered(conn: sqlite3.Connection, readings: Iterable[Reading],
                 tops: dict[int, int] | None = None) -> None:
    """Add readings in slot order (a cursor ordered by :data:`SLOT_SQL`) to the packed
    parts, one slot's readings in memory at a time (a fold of ``fold_rows`` readings as
    a list of tuples was ~2.5 MB of the ingest burst's peak RSS). Readings of an hour
    already stored are merged in time order; a seq that hour already holds is kept once
    (the stored one, else the first given). ``tops`` gets each written slot's highest seq.

    New readings nearly always come after what their hour holds (later, higher seqs):
    they fill the hour's last part and open new ones, so a fold writes what it moves
    plus at most one part per consumable, never the hour's earlier readings. Slots are
    written in rowid order: appends walk the tree's right edge.
    """
    for key, run in groupby(readings, key=_slot):
        lo, hi = _parts(key)
        last = conn.execute(
            "SELECT id, rows, rows -> '$[#-1]', json_array_length(rows) FROM readings_main "
            "WHERE id BETWEEN ? AND ? ORDER BY id DESC LIMIT 1", (lo, hi)).fetchone()
        new = _distinct(key >> CID_BITS, run)
        new.sort(key=_ORDER)
        top = max(map(_SEQ, new))
        if last is None:
            write_parts(conn, lo, new)
        elif last[2] is not None and str(last[1]).endswith("]") and _after(
                conn, key, last[2], new, tops):
            rid, text, n = int(last[0]), str(last[1]), int(last[3])
            room = len(new) if rid == hi else max(0, PART_ELEMENTS - n)
            if room:
                conn.execute("UPDATE readings_main SET rows = ? WHERE id = ?",
                             (text[:-1] + "," + dumps(new[:room])[1:], rid))
            write_parts(conn, rid + 1, new[room:])
        else:  # out of order or overlapping: merge the whole hour
            stored_ = [e for (text,) in conn.execute(
                "SELECT rows FROM readings_main WHERE id BETWEEN ? AND ? ORDER BY id",
                (lo, hi)) for e in json.loads(text)]
            merged, top = _merged(stored_, new)
            conn.execute("DELETE FROM readings_main WHERE id BETWEEN ? AND ?", (lo, hi))
            write_parts(conn, lo, merged)
        if tops is not None:
            tops[key] = top


def write_parts(conn: sqlite3.Connection, first: int, elements: list[Element]) -> None:
    """New parts from rowid ``first`` on, ``PART_ELEMENTS`` each (the slot's last part
    takes the rest)."""
    rid = first
    while elements:
        n = len(elements) if rid & PART_MASK == PART_MASK else PART_ELEMENTS
        conn.execute("INSERT INTO readings_main (id, rows) VALUES (?, ?)",
                     (rid, dumps(elements[:n])))
        elements, rid = elements[n:], rid + 1


def _order(e: Element) -> tuple[float, int]:
    return (e[1], e[0])


# The same order and seq as C getters: a fold calls them for every reading it moves.
_ORDER = itemgetter(1, 0)
_SEQ = itemgetter(0)


def _distinct(hour: int, group: Iterable[Reading]) -> list[Element]:
    """The elements of one slot's readings (all of ``hour``), the first of each seq:
    :func:`element` of each, inlined (a fold spent most of its time in the calls)."""
    base = hour * float(HOUR_S)
    seen: set[int] = set()
    out: list[Element] = []
    for _, seq, ts, level, state, counter in group:
        if seq in seen:
            continue
        seen.add(seq)
        exact = ts - base  # as _offset: the shortest of 3 or 6 digits that gives ts back
        offset = round(exact, 3)
        if base + offset != ts:
            offset = round(exact, 6)
            if base + offset != ts:
                offset = exact
        # Trailing nulls dropped, as element() does.
        if state is not None:
            out.append([seq, offset, level, counter, state])
        elif counter is not None:
            out.append([seq, offset, level, counter])
        elif level is not None:
            out.append([seq, offset, level])
        else:
            out.append([seq, offset])
    return out


def _after(conn: sqlite3.Connection, key: int, last: str, new: list[Element],
           tops: dict[int, int] | None) -> bool:
    """Whether ``new`` (sorted) goes after the slot's last element, with no seq the slot
    holds: then the merge is an append."""
    if _order(new[0]) < _order(json.loads(last)):
        return False
    top = tops.get(key) if tops is not None else None
    if top is None:
        top = top_seq(conn, key)
    return int(min(e[0] for e in new)) > top


def _merged(elements: list[Element], new: list[Element]) -> tuple[list[Element], int]:
    """The full merge: stored elements first for a seq both hold, in time order."""
    seen = {e[0] for e in elements}
    elements.extend(e for e in new if e[0] not in seen)
    elements.sort(key=_order)
    return elements, max(e[0] for e in elements)


def hour_span(conn: sqlite3.Connection, since: float | None) -> tuple[int, int] | None:
    """First and last hour a consumable's read must look at (None: nothing stored)."""
    # Two bare MIN/MAX subqueries: SQLite answers each from one end of the rowid tree,
    # where an expression over MIN(id) or both in one SELECT scans the whole table.
    lo_id, hi_id = conn.execute("SELECT (SELECT MIN(id) FROM readings_main), "
                                "(SELECT MAX(id) FROM readings_main)").fetchone()
    if hi_id is None:
        return None
    lo, hi = decode(int(lo_id))[0], decode(int(hi_id))[0]
    first = lo if since is None or not math.isfinite(since) else max(lo, hour_of(since))
    return (first, hi) if first <= hi else None


_HOURS = "WITH RECURSIVE h(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM h WHERE x < ?) "
_PARTS_OF_HOUR = (f"BETWEEN ((h.x << {CID_BITS} | ?) << {PART_BITS}) "
                  f"AND ((h.x << {CID_BITS} | ?) << {PART_BITS} | {PART_MASK})")


def hour_rows(conn: sqlite3.Connection, cid: int, since: float | None,
              ) -> list[tuple[int, list[Element]]]:
    """Every packed (hour, elements) of one consumable from the hour of ``since`` on."""
    span = hour_span(conn, since)
    if span is None:
        return []
    parts = sorted(conn.execute(  # in rowid order: hours, and an hour's parts, in time
        f"{_HOURS}SELECT m.id, m.rows FROM h JOIN readings_main m ON m.id {_PARTS_OF_HOUR}",
        (*span, cid, cid)))
    hours: dict[int, list[Element]] = {}
    for rid, rows in parts:
        hours.setdefault(decode(rid)[0], []).extend(json.loads(rows))
    return list(hours.items())


def hour_lasts(conn: sqlite3.Connection, cid: int, since: float) -> list[ReadingRow]:
    """The last packed reading of each hour of one consumable from the hour of ``since``
    on, in time order (one rowid range per hour)."""
    span = hour_span(conn, since)
    if span is None:
        return []
    # Every part's last reading (an hour has one part below 128 readings an hour); the
    # hour's last part (highest rowid) wins.
    lasts: dict[int, tuple[int, str]] = {}
    for h, rid, last in conn.execute(
            f"{_HOURS}SELECT h.x, m.id, m.rows -> '$[#-1]' FROM h JOIN readings_main m "
            f"ON m.id {_PARTS_OF_HOUR}", (*span, cid, cid)):
        if rid > lasts.get(h, (-1, ""))[0]:
            lasts[h] = (rid, last)
    return [reading_row(int(h), json.loads(last)) for h, (_, last) in sorted(lasts.items())]


def thin(elements: list[Element], hour: int, cut: float, bucket_s: float,
         prev: float | None) -> tuple[list[Element], float | None]:
    """Retention of one packed hour (all its parts): of the readings before ``cut``, keep
    the last of each ``bucket_s`` and every upward jump (level above 1.2x the previous
    plus one); returns the kept elements and the last level before ``cut`` (the next
    hour's previous)."""
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
