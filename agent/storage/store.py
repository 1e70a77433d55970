"""Local SQLite storage: the only module that speaks SQL.

One :class:`Store` per thread (SQLite connections are not shared). The ingest writer
commits whole batches in one transaction with ``synchronous=FULL``: a message is
acknowledged to the broker only after its batch is durable, so a power cut can lose
unacknowledged messages (the broker redelivers them) but never an acknowledged one.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.errors import StoreError
from agent.storage.migrations import migrate
from agent.storage.readonly import connect_readonly
from agent.storage.rows import (
    FUTURE_SLACK_S,
    PAYLOAD_HEAD_BYTES,
    UNKNOWN_DEVICE,
    BatchResult,
    Item,
    Pending,
    PendingRow,
    ReadingRow,
    Rejected,
    StatusUpdate,
    _DeviceUpdate,
    _StateBatch,
    consumable_key,
    fault_reason,
)
from agent.storage.tx import immediate
from agent.wire.device import Consumable, EventMessage, StateMessage

# Re-exported: callers import the rows from here, next to the Store that returns them.
__all__ = [
    "UNKNOWN_DEVICE", "BatchResult", "Item", "Pending", "PendingRow", "ReadingRow",
    "Rejected", "StatusUpdate", "Store", "consumable_key", "fault_reason",
]

log = logging.getLogger(__name__)


class Store:
    """A connection to the agent's database, migrated on open."""

    def __init__(self, path: Path | str, *, rejects_kept: int = 1_000) -> None:
        self.path = str(path)
        self.rejects_kept = rejects_kept
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            migrate(self.conn)
        except (sqlite3.Error, RuntimeError, OSError) as err:
            raise StoreError(f"cannot open database {self.path}: {err}") from err

    @classmethod
    def open_readonly(cls, path: Path | str) -> Store:
        """For commands that only read: never creates, migrates or writes the file."""
        store = cls.__new__(cls)
        store.path, store.rejects_kept = str(path), 1_000
        store.conn = connect_readonly(path)
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writes -------------------------------------------------------------------

    def write_batch(self, items: Sequence[Item], received_at: float,
                    resolved: Sequence[int] = ()) -> BatchResult:
        """Commit a batch of validated messages and rejects in one durable transaction;
        ``resolved`` pending rows (judged again into ``items``) are deleted in it too."""
        stored = duplicates = rejected = 0
        try:
            with immediate(self.conn):
                self.conn.executemany("DELETE FROM pending WHERE id = ?",
                                      [(i,) for i in resolved])
                batch = _StateBatch()
                for item in items:
                    if isinstance(item, StateMessage):
                        if self._write_state(item, batch, received_at):
                            stored += 1
                        else:
                            duplicates += 1
                    elif isinstance(item, EventMessage):
                        self._write_event(item, received_at)
                    elif isinstance(item, Rejected):
                        self._write_reject(item, received_at)
                        rejected += 1
                    elif isinstance(item, Pending):
                        self.conn.execute(
                            "INSERT INTO pending (device_id, topic, payload, received_at) "
                            "VALUES (?, ?, ?, ?)",
                            (item.device_id, item.topic, item.payload, received_at))
                    else:
                        self._write_status(item, received_at)
                self._flush_state(batch, received_at)
                if rejected:
                    self._trim_rejects()
        except sqlite3.Error as err:
            raise StoreError(f"write failed: {err}", reason=fault_reason(err)) from err
        return BatchResult(stored, duplicates, rejected)

    def _cid(self, device_id: str, consumable_id: str, unit: str, sku: str | None,
             capacity: float | None) -> int:
        row = self.conn.execute(
            "SELECT cid FROM consumables WHERE device_id=? AND consumable_id=?",
            (device_id, consumable_id),
        ).fetchone()
        if row:
            return int(row[0])
        cur = self.conn.execute(
            "INSERT INTO consumables (device_id, consumable_id, unit, sku, capacity) "
            "VALUES (?, ?, ?, ?, ?)",
            (device_id, consumable_id, unit, sku, capacity),
        )
        return int(cur.lastrowid or 0)

    def _write_state(self, msg: StateMessage, batch: _StateBatch, received_at: float) -> bool:
        """Insert the message's readings; repeated device and "last" updates wait for
        :meth:`_flush_state` (one each per batch instead of one per message)."""
        ts = msg.ts.timestamp()
        device = batch.devices.get(msg.device_id)
        if device is None:
            batch.devices[msg.device_id] = _DeviceUpdate(msg.kind.value, msg.seq, msg.fw)
            self._upsert_device(msg.device_id, msg.kind.value, msg.seq, msg.fw, received_at)
        else:
            device.repeat(msg.kind.value, msg.seq, msg.fw)
        new = False
        execute = self.conn.execute
        for c in msg.consumables:
            key = (msg.device_id, c.id)
            cid = batch.cids.get(key)
            if cid is None:
                cid = self._cid(msg.device_id, c.id, c.unit.value, c.sku, c.capacity)
                batch.cids[key] = cid
            counter = next(iter(c.counters.values())) if c.counters else None
            cur = execute(
                "INSERT OR IGNORE INTO readings (cid, seq, ts, level, state, counter) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (cid, msg.seq, ts, c.level, c.state.value if c.state else None, counter),
            )
            if cur.rowcount:
                new = True
                batch.reading(cid, ts, c, received_at + FUTURE_SLACK_S)
            else:
                self._check_replay(msg.device_id, cid, msg.seq, ts, c, received_at)
        return new

    def _check_replay(self, device_id: str, cid: int, seq: int, ts: float, c: Consumable,
                      received_at: float) -> None:
        # A redelivery repeats the stored reading; the same seq with other content is a
        # device reusing seq numbers (reset, bug) or a forgery: still dropped, but counted.
        row = self.conn.execute("SELECT ts, level, state FROM readings WHERE cid=? AND seq=?",
                                (cid, seq)).fetchone()
        if row is not None and tuple(row) != (ts, c.level, c.state.value if c.state else None):
            self.conn.execute(
                "INSERT INTO reject_counts (device_id, reason, count, last_at) "
                "VALUES (?, 'replay_changed', 1, ?) ON CONFLICT(device_id, reason) "
                "DO UPDATE SET count=count+1, last_at=excluded.last_at",
                (device_id, received_at))

    def _upsert_device(self, device_id: str, kind: str, seq: int, fw: str | None,
                       received_at: float) -> None:
        self.conn.execute(
            "INSERT INTO devices (device_id, kind, first_seen, last_seen, last_seq, fw) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET "
            # last_seen is the gateway's time of the latest message, even if that is
            # earlier than a stored one: after the clock is corrected backwards, a value
            # kept in the future would blind silence detection.
            "kind=excluded.kind, last_seen=excluded.last_seen, "
            "last_seq=MAX(last_seq, excluded.last_seq), fw=COALESCE(excluded.fw, fw)",
            (device_id, kind, received_at, received_at, seq, fw),
        )

    def _flush_state(self, batch: _StateBatch, received_at: float) -> None:
        """Apply the batch's device repeats and each consumable's newest reading.

        Gives the same rows as applying every message in order: the device upsert only
        keeps the latest kind, the highest seq and the latest firmware, and see
        :meth:`_StateBatch.reading` for the "last" values.
        """
        for device_id, d in batch.devices.items():
            if d.repeated:
                self._upsert_device(device_id, d.kind, d.last_seq, d.fw, received_at)
        for cid, last in batch.lasts.items():
            c = last.consumable
            # Late catch-up readings must not overwrite a newer "last" value, but a "last"
            # dated in the future of the gateway clock never pins it (see FUTURE_SLACK_S).
            self.conn.execute(
                "UPDATE consumables SET last_level=?, last_state=?, last_ts=?, "
                "last_counters=?, unit=?, "
                "sku=COALESCE(?, CASE WHEN last_ts IS NULL OR last_ts <= ? THEN ? END, sku), "
                "capacity=COALESCE(?, CASE WHEN last_ts IS NULL OR last_ts <= ? THEN ? END, "
                "capacity) WHERE cid=? AND (last_ts IS NULL OR last_ts <= ? OR last_ts > ?)",
                (c.level, c.state.value if c.state else None, last.ts,
                 json.dumps(c.counters) if c.counters else None, c.unit.value,
                 c.sku, last.sku_ts, last.sku, c.capacity, last.capacity_ts, last.capacity,
                 cid, last.ts, received_at + FUTURE_SLACK_S),
            )

    def _write_event(self, msg: EventMessage, received_at: float) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO events (device_id, seq, ts, type, consumable_id, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (msg.device_id, msg.seq, msg.ts.timestamp(), msg.type.value, msg.consumable_id,
             received_at),
        )

    def _write_status(self, item: StatusUpdate, received_at: float) -> None:
        # Devices announce themselves (retained status) before their first reading.
        self.conn.execute(
            "INSERT INTO devices (device_id, kind, first_seen, last_seen, last_seq, online, "
            "status_at) VALUES (?, 'other', ?, ?, 0, ?, ?) ON CONFLICT(device_id) DO UPDATE "
            "SET online=excluded.online, status_at=excluded.status_at",
            (item.device_id, received_at, received_at, int(item.online), received_at),
        )

    def _write_reject(self, item: Rejected, received_at: float) -> None:
        self.conn.execute(
            "INSERT INTO rejects (device_id, reason, topic, payload_head, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (item.device_id, item.reason, item.topic[:200], item.payload[:PAYLOAD_HEAD_BYTES],
             received_at),
        )
        self.conn.execute(
            "INSERT INTO reject_counts (device_id, reason, count, last_at) VALUES (?, ?, 1, ?) "
            "ON CONFLICT(device_id, reason) DO UPDATE SET count=count+1, last_at=excluded.last_at",
            (item.device_id, item.reason, received_at),
        )

    def _trim_rejects(self) -> None:
        self.conn.execute(
            "DELETE FROM rejects WHERE id <= (SELECT MAX(id) FROM rejects) - ?",
            (self.rejects_kept,),
        )

    # ---- reads --------------------------------------------------------------------

    def devices(self) -> list[dict[str, Any]]:
        """Every known device with its last contact, ordered by id."""
        return self._dicts("SELECT * FROM devices ORDER BY device_id")

    def consumables(self, *, counts: bool = True) -> list[dict[str, Any]]:
        """Every consumable with its latest level and the number of stored readings.

        Counting walks every stored reading (~200 ms with 50 devices and a year of
        history): periodic jobs that only need the rows pass ``counts=False``.
        """
        count = ", (SELECT COUNT(*) FROM readings r WHERE r.cid = c.cid) AS readings"
        return self._dicts(
            f"SELECT c.*{count if counts else ''} "
            "FROM consumables c ORDER BY c.device_id, c.consumable_id"
        )

    def pending(self, limit: int) -> list[PendingRow]:
        """The oldest messages kept while the clock was not trusted."""
        rows = self.conn.execute(
            "SELECT id, device_id, topic, payload, received_at FROM pending ORDER BY id LIMIT ?",
            (limit,))
        return [PendingRow(int(r[0]), r[1], r[2], bytes(r[3]), float(r[4])) for r in rows]

    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def reject_counts(self) -> list[dict[str, Any]]:
        return self._dicts("SELECT * FROM reject_counts ORDER BY device_id, reason")

    def reading_count(self, device_id: str | None = None) -> int:
        if device_id is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM readings r JOIN consumables c USING (cid) "
                "WHERE c.device_id = ?",
                (device_id,),
            ).fetchone()[0]
        )

    def seqs(self, device_id: str) -> list[int]:
        """Distinct message sequence numbers stored for a device (tests and diagnostics)."""
        rows = self.conn.execute(
            "SELECT DISTINCT r.seq FROM readings r JOIN consumables c USING (cid) "
            "WHERE c.device_id = ? ORDER BY r.seq",
            (device_id,),
        )
        return [int(r[0]) for r in rows]

    def readings(self, cid: int, since: float | None = None) -> list[ReadingRow]:
        """Readings of one consumable in time order (late arrivals sorted in)."""
        rows = self.conn.execute(
            "SELECT ts, level, state, counter FROM readings WHERE cid = ? AND ts >= ? "
            "ORDER BY ts",
            (cid, since if since is not None else float("-inf")),
        )
        return [ReadingRow(*r) for r in rows]

    def history(self, cid: int, since: float, fine_since: float, *, fine_bucket_s: float,
                coarse_bucket_s: float) -> list[ReadingRow]:
        """Readings thinned for forecasting, in time order: the last reading of each
        ``fine_bucket_s`` from ``fine_since`` on, of each ``coarse_bucket_s`` before it.

        The decision pass reads about a thousand rows per consumable this way instead of
        every five-minute reading of four months; grouping in SQL keeps the rest out of
        Python. (SQLite takes the bare columns from the row that holds ``MAX(ts)``.)
        """
        sql = ("SELECT MAX(ts), level, state, counter FROM readings "
               "WHERE cid = ? AND ts >= ? AND ts < ? GROUP BY CAST(ts / ? AS INTEGER) "
               "ORDER BY 1")
        rows = self.conn.execute(sql, (cid, since, fine_since, coarse_bucket_s)).fetchall()
        rows += self.conn.execute(sql, (cid, max(since, fine_since), float("inf"),
                                        fine_bucket_s))
        return [ReadingRow(*r) for r in rows]

    def events(self, device_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM events"
        params: list[Any] = []
        if device_id is not None:
            sql += " WHERE device_id = ?"
            params.append(device_id)
        return self._dicts(sql + " ORDER BY ts", params)

    # ---- maintenance --------------------------------------------------------------

    def downsample(self, older_than: float, bucket_s: float) -> int:
        """Keep one reading per consumable per ``bucket_s`` before ``older_than``.

        The last reading of each bucket survives, and so does every upward jump (a refill
        or a replacement), so the forecast still sees where each cycle began. Returns the
        number of rows deleted.
        """
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
                        FROM readings WHERE cid = :cid AND ts < :cut
                        WINDOW w AS (PARTITION BY cid, CAST(ts / :bucket AS INTEGER)
                                     ORDER BY ts DESC)
                    ) WHERE rn = 1 OR (prev IS NOT NULL AND level IS NOT NULL
                                       AND level > prev * 1.2 + 1)
                    """,
                    params,
                )
                cur = self.conn.execute(
                    "DELETE FROM readings WHERE cid = :cid AND ts < :cut AND NOT EXISTS "
                    "(SELECT 1 FROM temp.keep_rows k WHERE k.cid = readings.cid "
                    "AND k.seq = readings.seq)",
                    params,
                )
                deleted = int(cur.rowcount)
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
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY rowid")]
        return {n: int(self.conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0])
                for n in names}

    def _dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur]
