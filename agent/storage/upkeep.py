"""The Store's upkeep: the fold of recent readings, checkpoints, downsampling, checks.

A mixin of :class:`agent.storage.store.Store` (one class for callers, one file per role).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta

from agent.errors import StoreError
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
        deleted = 0
        cids = [int(r[0]) for r in self.conn.execute("SELECT cid FROM consumables")]
        # Both windows partition by consumable, so one consumable per transaction gives
        # the same rows as one pass over all, and holds the write lock (which the ingest
        # writer waits for) for a fraction of a second instead of the whole pass.
        for cid in cids:
            deleted += self._downsample_one(cid, older_than, bucket_s)
        return deleted

    def _downsample_one(self, cid: int, older_than: float, bucket_s: float) -> int:
        params = {"cid": cid, "cut": older_than, "bucket": bucket_s}
        try:
            with immediate(self.conn):
                # The rows to keep go to a keyed temp table first: deleting with
                # "(cid, seq) NOT IN (window query)" took SQLite minutes on a year of readings.
                self.conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS keep_rows "
                    "(cid INTEGER, seq INTEGER, PRIMARY KEY (cid, seq)) WITHOUT ROWID"
                )
                self.conn.execute("DELETE FROM temp.keep_rows")
                self.conn.execute(
                    """
                    INSERT INTO temp.keep_rows
                    SELECT cid, seq FROM (
                        SELECT cid, seq, level,
                               ROW_NUMBER() OVER w AS rn,
                               LAG(level) OVER (PARTITION BY cid ORDER BY ts) AS prev
                        FROM readings_main WHERE cid = :cid AND ts < :cut
                        WINDOW w AS (PARTITION BY cid, CAST(ts / :bucket AS INTEGER)
                                     ORDER BY ts DESC)
                    ) WHERE rn = 1 OR (prev IS NOT NULL AND level IS NOT NULL
                                       AND level > prev * 1.2 + 1)
                    """,
                    params,
                )
                cur = self.conn.execute(
                    "DELETE FROM readings_main WHERE cid = :cid AND ts < :cut AND NOT EXISTS "
                    "(SELECT 1 FROM temp.keep_rows k WHERE k.cid = readings_main.cid "
                    "AND k.seq = readings_main.seq)",
                    params,
                )
                deleted = int(cur.rowcount)
                if deleted:  # the cached history of this consumable is stale (all of it)
                    self.conn.execute(
                        "INSERT INTO history_marks (cid, gen, low_ts) VALUES (?, 1, ?) "
                        "ON CONFLICT (cid) DO UPDATE SET gen = gen + 1, low_ts = excluded.low_ts",
                        (cid, float("-inf")))
                self.conn.execute("DELETE FROM temp.keep_rows")
        except sqlite3.Error as err:
            raise StoreError(f"downsample failed: {err}") from err
        return deleted

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

