"""The recent tier of readings: an append-only table and its duplicate check in memory.

A keyed readings table spreads one commit over a leaf page of the ``(cid, seq)`` key
and one of the ``(cid, ts)`` index per consumable in it: about five 4 KB pages per
message, whatever the batch size (measured: 26 KB of writes per message at household
load). ``readings_recent`` is a rowid table with no other index, so a commit appends
to its last page or two; :func:`fold` packs the rows into ``readings_main``, one row
per consumable and hour appended at the right edge (:mod:`agent.storage.packed`).

Without an index on the recent tier, the ``(cid, seq)`` duplicate check for it lives in
memory (:class:`RecentKeys`), loaded from the table when a store starts writing and
again whenever another connection folded the rows it knew. A duplicate that another
connection appended since (the same device's message through two paths) is stored
twice in the recent tier until the fold, which packs one of them.

The check in the folded tier reads the packed row of the reading's hour, all of it
(``json_each``): once a fold has packed an hour that is still current, every new
reading of that hour paid a scan of the row (59 % of the writer's time in the ingest
burst). A device's seqs grow, so :attr:`RecentKeys.tops` keeps each packed row's
highest seq: a higher one cannot be in the row. Rows only gain readings through a fold,
which counts itself in ``history_marks`` (cid 0): another connection's fold empties it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from agent.storage import packed

# What a redelivery must repeat to count as the same reading (see Store._check_replay).
Content = tuple[float, float | None, str | None]
# Packed rows whose highest seq is kept (~100 B each); past it the map starts again.
TOPS_KEPT = 4_096
_FOLD_GEN = "SELECT gen FROM history_marks WHERE cid = 0"


def _key(cid: int, seq: int) -> int:
    # One int, not a tuple of two: ~80 B less per reading held (seqs are < 2**63).
    return cid << 64 | seq


@dataclass(slots=True)
class RecentKeys:
    """``(cid, seq)`` -> row id of every reading in ``readings_recent`` this store knows.

    Only the row id is held (up to ``ingest.fold_rows`` of them): the content a
    redelivery must repeat is read back by row id when one arrives, which is rare."""

    keys: dict[int, int] = field(default_factory=dict)
    staged: dict[int, int] = field(default_factory=dict)
    min_id: int | None = None  # smallest row id known; a fold deletes it
    loaded: bool = False
    # Packed slot (hour, cid) -> its highest seq (-1: none), valid while the fold count is
    # fold_gen.
    tops: dict[int, int] = field(default_factory=dict)
    fold_gen: int | None = None

    def sync(self, conn: sqlite3.Connection) -> None:
        """Load the keys on first use, and again after another connection folded."""
        first, gen = conn.execute(
            f"SELECT (SELECT MIN(id) FROM readings_recent), ({_FOLD_GEN})").fetchone()
        if self.loaded and first == self.min_id and gen == self.fold_gen:
            return
        self.tops.clear()
        self.fold_gen = gen
        self.keys = {_key(int(cid), int(seq)): int(rowid) for rowid, cid, seq in
                     conn.execute("SELECT id, cid, seq FROM readings_recent")}
        self.min_id = None if first is None else int(first)
        self.loaded = True

    def get(self, conn: sqlite3.Connection, cid: int, seq: int) -> Content | None:
        """The recent reading ``(cid, seq)``, if this store knows one (after :meth:`sync`)."""
        key = _key(cid, seq)
        rowid = self.staged.get(key) or self.keys.get(key)
        if rowid is None:
            return None
        row = conn.execute("SELECT ts, level, state FROM readings_recent WHERE id = ?",
                           (rowid,)).fetchone()
        return None if row is None else (float(row[0]), row[1], row[2])

    def packed(self, conn: sqlite3.Connection, cid: int, seq: int, ts: float,
               ) -> Content | None:
        """The folded reading ``(cid, seq)`` of the hour of ``ts``, if any (after
        :meth:`sync`): read only when ``seq`` is not above its row's highest."""
        key = packed.slot(packed.hour_of(ts), cid)
        top = self.tops.get(key)
        if top is None:
            if len(self.tops) >= TOPS_KEPT:
                self.tops.clear()
            top = self.tops[key] = packed.top_seq(conn, key)
        return None if seq > top else packed.stored(conn, cid, seq, ts)

    def stage(self, cid: int, seq: int, rowid: int) -> None:
        """A row written in the open transaction: known to the batch, kept on commit."""
        self.staged[_key(cid, seq)] = rowid

    def committed(self, conn: sqlite3.Connection) -> None:
        if self.staged:
            self.keys.update(self.staged)
            self.staged.clear()
            if self.min_id is None:
                row = conn.execute("SELECT MIN(id) FROM readings_recent").fetchone()
                self.min_id = None if row[0] is None else int(row[0])

    def rolled_back(self) -> None:
        self.staged.clear()

    def __len__(self) -> int:
        return len(self.keys)


def fold(conn: sqlite3.Connection, keys: RecentKeys) -> int:
    """Pack every recent reading into ``readings_main`` (call inside a write
    transaction); returns the number of rows moved."""
    top = conn.execute("SELECT MAX(id) FROM readings_recent").fetchone()[0]
    if top is None:
        return 0
    if _fold_gen(conn) != keys.fold_gen:
        keys.tops.clear()  # another connection folded since: its rows are not in tops
    packed.pack(conn, conn.execute(
        "SELECT cid, seq, ts, level, state, counter FROM readings_recent WHERE id <= ?",
        (top,)).fetchall(), keys.tops)
    conn.execute(
        "INSERT INTO history_marks (cid, gen, low_ts) SELECT cid, 1, MIN(ts) "
        "FROM readings_recent WHERE id <= ? GROUP BY cid "
        "ON CONFLICT (cid) DO UPDATE SET gen = gen + 1, low_ts = excluded.low_ts", (top,))
    conn.execute(  # cid 0: the fold count (recent ids restart after a fold)
        "INSERT INTO history_marks (cid, gen, low_ts) VALUES (0, 1, 0) "
        "ON CONFLICT (cid) DO UPDATE SET gen = gen + 1")
    moved = _empty_recent(conn)
    keys.keys.clear()
    keys.staged.clear()
    keys.min_id = None
    keys.fold_gen = _fold_gen(conn)
    return moved


def _fold_gen(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(_FOLD_GEN).fetchone()
    return None if row is None else int(row[0])


def _empty_recent(conn: sqlite3.Connection) -> int:
    """Delete every row of ``readings_recent`` (all of them are ``<= top``: the fold holds
    the write lock) without writing its pages again.

    A DELETE without WHERE frees the table's pages whole (SQLite's truncate optimization)
    instead of rewriting each leaf; ``secure_delete`` (on by default in Debian's SQLite)
    would still zero every freed page in the WAL and again at checkpoint, about 60 pages
    per hourly fold at household load. The rows live on in ``readings_main``, so zeroing
    their old pages hides nothing: FAST for this statement, the setting restored after.
    """
    prior = int(conn.execute("PRAGMA secure_delete").fetchone()[0])
    conn.execute("PRAGMA secure_delete = FAST")
    try:
        return int(conn.execute("DELETE FROM readings_recent").rowcount)
    finally:
        conn.execute(f"PRAGMA secure_delete = {prior}")
