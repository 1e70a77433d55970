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
from collections.abc import Iterable, Sequence
from pathlib import Path

from agent.errors import StoreError
from agent.storage.connect import connect, held_elsewhere
from agent.storage.migrations import migrate
from agent.storage.readonly import connect_readonly
from agent.storage.reads import StoreReads
from agent.storage.recent import RecentKeys
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
from agent.storage.upkeep import StoreUpkeep
from agent.wire.device import EventMessage, StateMessage

# Re-exported: callers import the rows from here, next to the Store that returns them.
__all__ = [
    "UNKNOWN_DEVICE", "BatchResult", "Item", "Pending", "PendingRow", "ReadingRow",
    "Rejected", "StatusUpdate", "Store", "consumable_key", "fault_reason",
]

log = logging.getLogger(__name__)


# Small pages for a new database: a commit rewrites whole pages in the WAL (and again
# at the checkpoint), and at household load a commit changes a few rows on a few pages.
# Measured at four messages a commit: 27 KB written per message with 4 KB pages, 12 KB
# with 1 KB pages. An existing file keeps its page size (changing it needs a VACUUM).
NEW_PAGE_SIZE = 1024
# Checkpoints come from the ingest writer's schedule; this is only the safety cap for
# any connection (pages of WAL before a commit checkpoints on its own).
WAL_AUTOCHECKPOINT_PAGES = 8192


class Store(StoreReads, StoreUpkeep):
    """A connection to the agent's database, migrated on open."""

    def __init__(self, path: Path | str, *, rejects_kept: int = 1_000) -> None:
        self.path = str(path)
        self.rejects_kept = rejects_kept
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.conn = connect(self.path)
            if self.conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                self.conn.execute(f"PRAGMA page_size={NEW_PAGE_SIZE}")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            migrate(self.conn)
            self.recent = RecentKeys()
            self._init_lasts()
        except (sqlite3.Error, RuntimeError, OSError) as err:
            held = isinstance(err, sqlite3.Error) and held_elsewhere(err)
            raise held or StoreError(f"cannot open database {self.path}: {err}") from err

    @classmethod
    def open_readonly(cls, path: Path | str) -> Store:
        """For commands that only read: never creates, migrates or writes the file."""
        store = cls.__new__(cls)
        store.path, store.rejects_kept = str(path), 1_000
        store.conn = connect_readonly(path)
        store.recent = RecentKeys()
        store._init_lasts()
        return store

    def _init_lasts(self) -> None:
        # How long a device's "last seen"/``last_seq`` and a consumable's "last" values
        # may wait in memory before their rows are rewritten (0: with every batch). At
        # household load each commit would otherwise rewrite the devices' and the
        # consumables' pages for values the next message replaces anyway (issue 21).
        # A new device's row is written at once; a crash loses only the wait, which the
        # device's next message repairs (its row is written again on first sight).
        self.lasts_every_s = 0.0
        self._held = _StateBatch()
        self._lasts_flushed_at: float | None = None

    @property
    def holds_lasts(self) -> bool:
        """Device or "last" values wait in memory for :meth:`flush_lasts`."""
        return self._held.held

    def flush_lasts(self, received_at: float) -> None:
        """Write the held device and "last" values now (the writer calls this when the
        stream goes quiet, before a fold and at a clean stop)."""
        if not self._held.held:
            return
        held = self._held.carry()
        try:
            with immediate(self.conn):
                self._flush_state(held, received_at)
        except sqlite3.Error as err:
            raise StoreError(f"write failed: {err}", reason=fault_reason(err)) from err
        held.flushed()
        self._held, self._lasts_flushed_at = held, received_at

    def _lasts_due(self, received_at: float) -> bool:
        last = self._lasts_flushed_at
        # abs(): a clock stepped back must not postpone the flush by the step.
        return last is None or abs(received_at - last) >= self.lasts_every_s

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writes -------------------------------------------------------------------

    def write_batch(self, items: Iterable[Item], received_at: float,
                    resolved: Sequence[int] = ()) -> BatchResult:
        """Commit a batch of validated messages and rejects in one durable transaction;
        ``resolved`` pending rows (judged again into ``items``) are deleted in it too.
        ``items`` is read once, in order: a generator keeps one message alive at a time."""
        stored = duplicates = rejected = pending = 0
        devices: set[str] = set()
        rejects: list[Rejected] = []
        flush = False
        try:
            self.recent.sync(self.conn)
            with immediate(self.conn):
                self.conn.executemany("DELETE FROM pending WHERE id = ?",
                                      [(i,) for i in resolved])
                batch = self._held.carry()
                for item in items:
                    if isinstance(item, StateMessage):
                        devices.add(item.device_id)
                        if self._write_state(item, batch, received_at):
                            stored += 1
                        else:
                            duplicates += 1
                    elif isinstance(item, EventMessage):
                        self._write_event(item, received_at)
                    elif isinstance(item, Rejected):
                        self._write_reject(item, received_at)
                        rejects.append(item)
                        rejected += 1
                    elif isinstance(item, Pending):
                        pending += 1
                        self.conn.execute(
                            "INSERT INTO pending (device_id, topic, payload, received_at) "
                            "VALUES (?, ?, ?, ?)",
                            (item.device_id, item.topic, item.payload, received_at))
                    else:
                        self._write_status(item, received_at)
                flush = self._lasts_due(received_at)
                if flush:
                    self._flush_state(batch, received_at)
                if rejected:
                    self._trim_rejects()
        except sqlite3.Error as err:
            self.recent.rolled_back()
            raise StoreError(f"write failed: {err}", reason=fault_reason(err)) from err
        except BaseException:
            self.recent.rolled_back()
            raise
        self.recent.committed(self.conn)
        if flush:
            batch.flushed()
            self._lasts_flushed_at = received_at
        self._held = batch
        return BatchResult(stored, duplicates, rejected, pending, frozenset(devices),
                           tuple(rejects))

    def _cid(self, msg: StateMessage, consumable_id: str, unit: str, sku: str | None,
             capacity: float | None, received_at: float) -> int:
        device_id = msg.device_id
        row = self.conn.execute(
            "SELECT cid FROM consumables WHERE device_id=? AND consumable_id=?",
            (device_id, consumable_id),
        ).fetchone()
        if row:
            return int(row[0])
        # A held device row may have been deleted since (``forget``): write it first.
        self._upsert_device(device_id, msg.kind.value, msg.seq, msg.fw, received_at)
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
        if device is not None:
            device.repeat(msg.kind.value, msg.seq, msg.fw, received_at)
        elif msg.device_id in batch.known:  # its row exists: update it with the lasts
            batch.devices[msg.device_id] = _DeviceUpdate(msg.kind.value, msg.seq, msg.fw,
                                                         received_at, repeated=True)
        else:
            batch.devices[msg.device_id] = _DeviceUpdate(msg.kind.value, msg.seq, msg.fw,
                                                         received_at)
            batch.known.add(msg.device_id)
            self._upsert_device(msg.device_id, msg.kind.value, msg.seq, msg.fw, received_at)
        new = False
        execute = self.conn.execute
        for c in msg.consumables:
            key = (msg.device_id, c.id)
            cid = batch.cids.get(key)
            if cid is None:
                cid = self._cid(msg, c.id, c.unit.value, c.sku, c.capacity, received_at)
                batch.cids[key] = cid
            counter = next(iter(c.counters.values())) if c.counters else None
            content = (ts, c.level, c.state.value if c.state else None)
            # The (cid, seq) key deduplicates redeliveries: in memory for the recent
            # tier, in the packed row of the reading's hour for the folded one (a read,
            # no write; the same seq in another hour is a new reading, see packed).
            stored = (self.recent.get(self.conn, cid, msg.seq)
                      or self.recent.packed(self.conn, cid, msg.seq, ts))
            if stored is None:
                cur = execute(
                    "INSERT INTO readings_recent (cid, seq, ts, level, state, counter) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (cid, msg.seq, *content, counter))
                self.recent.stage(cid, msg.seq, int(cur.lastrowid or 0))
                new = True
                batch.reading(cid, ts, c, received_at + FUTURE_SLACK_S)
            else:
                self._check_replay(msg.device_id, stored, content, received_at)
        return new

    def _check_replay(self, device_id: str, stored: tuple[float, float | None, str | None],
                      content: tuple[float, float | None, str | None],
                      received_at: float) -> None:
        # A redelivery repeats the stored reading; the same seq with other content is a
        # device reusing seq numbers (reset, bug) or a forgery: still dropped, but counted.
        if stored != content:
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
                self._upsert_device(device_id, d.kind, d.last_seq, d.fw, d.seen_at)
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
