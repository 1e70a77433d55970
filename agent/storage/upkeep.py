"""The Store's upkeep: the fold of recent readings, checkpoints, downsampling, checks.

A mixin of :class:`agent.storage.store.Store` (one class for callers, one file per role).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime, timedelta

from agent.errors import StoreError
from agent.storage.packed import HOUR_S, PART_MASK, decode, hour_of, row_id, thin, write_parts
from agent.storage.recent import RecentKeys, fold
from agent.storage.rows import fault_reason
from agent.storage.tx import immediate

log = logging.getLogger("agent.app.service")  # where the retention line always was
FULL_RESOLUTION = timedelta(hours=24)
THIN_BUCKET_S = 300
ARCHIVE_BUCKET_S = 3600


class StoreUpkeep:
    conn: sqlite3.Connection
    recent: RecentKeys

    def compact(self, now: datetime, raw_days: float) -> None:
        """Retention: 5-minute resolution after a day, hourly after ``raw_days``."""
        thinned = self.downsample((now - FULL_RESOLUTION).timestamp(), THIN_BUCKET_S)
        archived = self.downsample((now - timedelta(days=raw_days)).timestamp(),
                                   ARCHIVE_BUCKET_S)
        if thinned or archived:
            log.info("retention.compact thinned=%d archived=%d", thinned, archived)

    def fold_recent(self) -> int:
        """Move the recent tier into ``readings_main`` in one transaction (the ingest
        writer calls this on a schedule); returns the number of rows moved."""
        try:
            with immediate(self.conn):
                return fold(self.conn, self.recent)
        except sqlite3.Error as err:
            raise StoreError(f"fold failed: {err}", reason=fault_reason(err)) from err

    def recent_count(self) -> int:
        """Readings waiting in the recent tier (a rowid range: no table scan)."""
        row = self.conn.execute(
            "SELECT MAX(id) - MIN(id) + 1 FROM readings_recent").fetchone()
        return int(row[0] or 0)

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database file as far as no reader needs it (PASSIVE:
        never waits). Returns (frames in the WAL, frames copied)."""
        try:
            row = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as err:
            raise StoreError(f"checkpoint failed: {err}", reason=fault_reason(err)) from err
        return int(row[1]), int(row[2])

    def downsample(self, older_than: float, bucket_s: float) -> int:
        """Keep one reading per consumable per ``bucket_s`` before ``older_than``.

        The last reading of each bucket survives, and so does every upward jump (a refill
        or a replacement), so the forecast still sees where each cycle began. Returns the
        number of rows deleted.
        """
        # Old readings can still wait in the recent tier (a catch-up after days offline).
        self.fold_recent()
        if HOUR_S % bucket_s:
            raise ValueError(f"bucket {bucket_s} s does not divide an hour")
        end = row_id(hour_of(older_than) + 1, 0)  # the packed rows holding ts < cut
        prev: dict[int, float | None] = {}  # each consumable's last level before
        deleted, after = 0, -1
        # Rowids are hour-major: a few hours of every consumable per transaction (in
        # time order, so each row knows the level before it), which holds the write
        # lock the ingest writer waits for a fraction of a second at a time.
        while after < end:
            try:
                with immediate(self.conn):
                    n, after = self._downsample_chunk(after, end, older_than, bucket_s, prev)
            except sqlite3.Error as err:
                raise StoreError(f"downsample failed: {err}") from err
            deleted += n
        return deleted

    def _downsample_chunk(self, after: int, end: int, cut: float, bucket_s: float,
                          prev: dict[int, float | None]) -> tuple[int, int]:
        # A part of one reading cannot lose any: only its level is needed (parsed in C).
        rows = self.conn.execute(
            "SELECT id, CASE WHEN json_array_length(rows) > 1 THEN rows END, "
            "rows ->> '$[#-1][2]' FROM readings_main WHERE id > ? AND id < ? "
            "ORDER BY id LIMIT 5000", (after, end)).fetchall()
        if not rows:
            return 0, end
        # The rest of the last hour's parts: an hour is thinned whole (a bucket can
        # span two parts).
        last = int(rows[-1][0])
        rows += self.conn.execute(
            "SELECT id, rows, NULL FROM readings_main WHERE id > ? AND id <= ? ORDER BY id",
            (last, last | PART_MASK)).fetchall()
        deleted, touched = 0, set()
        for (hour, cid), parts in _by_hour(rows).items():
            if len(parts) == 1 and parts[0][1] is None:
                prev[cid] = parts[0][2]
                continue
            elements = [e for rid, text, _level in parts for e in json.loads(
                text if text is not None else self._part(rid))]
            kept, prev[cid] = thin(elements, hour, cut, bucket_s, prev.get(cid))
            if len(kept) < len(elements):
                first = row_id(hour, cid)
                self.conn.execute("DELETE FROM readings_main WHERE id BETWEEN ? AND ?",
                                  (first, first | PART_MASK))
                write_parts(self.conn, first, kept)
                deleted += len(elements) - len(kept)
                touched.add(cid)
        # The cached history of these consumables is stale (all of it).
        self.conn.executemany(
            "INSERT INTO history_marks (cid, gen, low_ts) VALUES (?, 1, ?) "
            "ON CONFLICT (cid) DO UPDATE SET gen = gen + 1, low_ts = excluded.low_ts",
            [(cid, float("-inf")) for cid in sorted(touched)])
        return deleted, int(rows[-1][0])

    def _part(self, rid: int) -> str:
        return str(self.conn.execute("SELECT rows FROM readings_main WHERE id = ?",
                                     (rid,)).fetchone()[0])

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` lines; ``["ok"]`` when the file is sound."""
        return [str(r[0]) for r in self.conn.execute("PRAGMA integrity_check")]

    def table_stats(self) -> dict[str, int]:
        """Row counts per table (never contents): for status and support bundles."""
        names = [str(r[0]) for r in self.conn.execute(
            # The readings view counts both tiers under its one name.
            "SELECT name FROM sqlite_master WHERE (type='table' AND name NOT LIKE 'readings_%')"
            " OR (type='view' AND name='readings') ORDER BY rowid")]
        return {n: int(self.conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0])
                for n in names}


def _by_hour(rows: list[tuple[int, str | None, float | None]],
             ) -> dict[tuple[int, int], list[tuple[int, str | None, float | None]]]:
    """Parts grouped by (hour, cid), in rowid order."""
    out: dict[tuple[int, int], list[tuple[int, str | None, float | None]]] = {}
    for row in rows:
        out.setdefault(decode(int(row[0])), []).append(row)
    return out
