"""The Store's reads: devices, consumables, readings thinned for the forecast, rejects.

A mixin of :class:`agent.storage.store.Store` (one class for callers, one file per role).
Readings are read through the ``readings`` view, which spans both tiers (see
:mod:`agent.storage.recent`).
"""

from __future__ import annotations

import math
import sqlite3

from agent.domain import CoarseState, DeviceKind, Unit
from agent.storage import packed
from agent.storage.rows import (
    FUTURE_SLACK_S,
    ConsumableRow,
    DeviceRow,
    HistoryChanges,
    PendingRow,
    ReadingRow,
    RejectCountRow,
)


class StoreReads:
    conn: sqlite3.Connection

    def devices(self) -> list[DeviceRow]:
        """Every known device with its last contact, ordered by id."""
        rows = self.conn.execute(
            "SELECT device_id, kind, first_seen, last_seen, last_seq, online, status_at, fw "
            "FROM devices ORDER BY device_id")
        return [DeviceRow(device_id=r[0], kind=DeviceKind(r[1]), first_seen=float(r[2]),
                          last_seen=float(r[3]), last_seq=int(r[4]),
                          online=None if r[5] is None else bool(r[5]), status_at=r[6],
                          fw=r[7]) for r in rows]

    def consumables(self, *, counts: bool = True, as_of: float | None = None,
                    ) -> list[ConsumableRow]:
        """Every consumable with its latest level, its device's kind and (``counts``) the
        number of stored readings, ordered by device and consumable id.

        Counting walks every stored reading (~200 ms with 50 devices and a year of
        history): periodic jobs that only need the rows pass ``counts=False``. Dashboards
        pass ``as_of`` (their "now") to see a level the ingest writer still holds.
        """
        # One pass over the packed rows for all consumables (the view filtered by cid
        # would walk every packed row once per consumable).
        count = "COALESCE(k.n, 0)" if counts else "NULL"
        tally = ("SELECT cid, SUM(n) AS n FROM (SELECT (id >> 8) & 1048575 AS cid, "
                 "json_array_length(rows) AS n FROM readings_main UNION ALL "
                 "SELECT cid, 1 FROM readings_recent) GROUP BY cid" if counts else
                 "SELECT NULL AS cid, NULL AS n")
        # ``as_of`` (epoch seconds, for dashboards): the ingest writer holds the "last"
        # columns in memory for minutes between commits (Store.lasts_every_s), so another
        # connection would read a stale level; the newest reading already committed to
        # readings_recent (at most one fold interval) wins unless it is dated past
        # ``as_of`` plus FUTURE_SLACK_S (a clock running ahead never pins the level).
        # SQLite gives the bare columns of the MAX(ts) row.
        newest = ("SELECT cid, level, state, MAX(ts) AS ts FROM readings_recent "
                  "WHERE ts <= ? GROUP BY cid" if as_of is not None else
                  "SELECT NULL AS cid, NULL AS level, NULL AS state, NULL AS ts")
        bound = float("inf") if as_of is None else as_of + FUTURE_SLACK_S
        rows = self.conn.execute(
            "SELECT c.cid, c.device_id, c.consumable_id, c.sku, c.unit, c.capacity, "
            "c.last_level, c.last_state, c.last_ts, c.last_counters, "
            f"COALESCE(d.kind, '{DeviceKind.OTHER.value}'), {count}, "
            "n.level, n.state, n.ts "
            "FROM consumables c LEFT JOIN devices d USING (device_id) "
            f"LEFT JOIN ({newest}) n ON n.cid = c.cid LEFT JOIN ({tally}) k ON k.cid = c.cid "
            "ORDER BY c.device_id, c.consumable_id",
            () if as_of is None else (bound,))
        out = []
        for r in rows:
            newer = r[14] is not None and (r[8] is None or r[14] > r[8] or r[8] > bound)
            level, state, ts = (r[12], r[13], r[14]) if newer else (r[6], r[7], r[8])
            out.append(ConsumableRow(
                cid=int(r[0]), device_id=r[1], consumable_id=r[2], sku=r[3], unit=Unit(r[4]),
                capacity=r[5], last_level=level,
                last_state=None if state is None else CoarseState(state), last_ts=ts,
                last_counters=r[9], device_kind=DeviceKind(r[10]), readings=r[11]))
        return out

    def pending(self, limit: int) -> list[PendingRow]:
        """The oldest messages kept while the clock was not trusted."""
        rows = self.conn.execute(
            "SELECT id, device_id, topic, payload, received_at FROM pending ORDER BY id LIMIT ?",
            (limit,))
        return [PendingRow(int(r[0]), r[1], r[2], bytes(r[3]), float(r[4])) for r in rows]

    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def reject_counts(self) -> list[RejectCountRow]:
        rows = self.conn.execute("SELECT device_id, reason, count, last_at FROM reject_counts "
                                 "ORDER BY device_id, reason")
        return [RejectCountRow(str(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in rows]

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
        low = since if since is not None else float("-inf")
        rows = [packed.reading_row(h, e) for h, es in packed.hour_rows(self.conn, cid, since)
                for e in es]
        rows = [r for r in rows if r.ts >= low]
        rows += [ReadingRow(*r) for r in self.conn.execute(
            "SELECT ts, level, state, counter FROM readings_recent WHERE cid = ? AND ts >= ?",
            (cid, low))]
        return sorted(rows, key=lambda r: r.ts)

    def history(self, cid: int, since: float, fine_since: float, *, fine_bucket_s: float,
                coarse_bucket_s: float) -> list[ReadingRow]:
        """Readings thinned for forecasting, in time order: the last reading of each
        ``fine_bucket_s`` from ``fine_since`` on, of each ``coarse_bucket_s`` before it.

        The decision pass reads about a thousand rows per consumable this way instead of
        every five-minute reading of four months: for whole-hour buckets, the last
        element of each packed hour (one rowid lookup each) and the recent tier's last
        of each hour. (SQLite takes the bare columns from the row that holds ``MAX(ts)``.)
        """
        hourly = all(x % packed.HOUR_S == 0 for x in (fine_bucket_s, coarse_bucket_s))
        if not hourly or (math.isfinite(fine_since) and fine_since % packed.HOUR_S):
            return self._history_view(cid, since, fine_since, fine_bucket_s, coarse_bucket_s)
        # The last reading of each hour: a rowid lookup per packed hour, and the recent
        # tier's (a later reading of the same hour wins).
        last = {packed.hour_of(r.ts): r for r in packed.hour_lasts(self.conn, cid, since)}
        for r in self.conn.execute(
                "SELECT MAX(ts), level, state, counter FROM readings_recent "
                "WHERE cid = ? AND ts >= ? GROUP BY CAST(ts / 3600 AS INTEGER)", (cid, since)):
            row = ReadingRow(*r)
            hour = packed.hour_of(row.ts)
            if hour not in last or row.ts >= last[hour].ts:
                last[hour] = row
        buckets: dict[tuple[bool, int], ReadingRow] = {}
        for row in sorted(last.values(), key=lambda r: r.ts):
            if row.ts >= since:
                fine = row.ts >= fine_since
                size = fine_bucket_s if fine else coarse_bucket_s
                buckets[(fine, int(row.ts // size))] = row  # in time order: the last wins
        return list(buckets.values())

    def _history_view(self, cid: int, since: float, fine_since: float,
                      fine_bucket_s: float, coarse_bucket_s: float) -> list[ReadingRow]:
        """:meth:`history` through the view, for buckets that are not whole hours."""
        sql = ("SELECT MAX(ts), level, state, counter FROM readings "
               "WHERE cid = ? AND ts >= ? AND ts < ? GROUP BY CAST(ts / ? AS INTEGER) "
               "ORDER BY 1")
        rows = self.conn.execute(sql, (cid, since, fine_since, coarse_bucket_s)).fetchall()
        rows += self.conn.execute(sql, (cid, max(since, fine_since), float("inf"),
                                        fine_bucket_s))
        return [ReadingRow(*r) for r in rows]

    def history_changes(self, after_id: int) -> HistoryChanges:
        """What changed in the stored readings since a reader last looked (one snapshot):
        the generations of ``history_marks`` and, per consumable, the oldest reading
        appended to ``readings_recent`` after row ``after_id``."""
        own = not self.conn.in_transaction
        if own:
            self.conn.execute("BEGIN")  # both reads from one snapshot
        try:
            marks = {int(r[0]): (int(r[1]), float(r[2])) for r in self.conn.execute(
                "SELECT cid, gen, low_ts FROM history_marks")}
            fresh = {int(r[0]): float(r[1]) for r in self.conn.execute(
                "SELECT cid, MIN(ts) FROM readings_recent WHERE id > ? GROUP BY cid",
                (after_id,))}
            top = self.conn.execute("SELECT MAX(id) FROM readings_recent").fetchone()[0]
        finally:
            if own:
                self.conn.execute("COMMIT")
        return HistoryChanges(marks, fresh, int(top or 0))
