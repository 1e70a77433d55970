"""Household notes in the ledger: feedback, blocked SKUs, reminders, snoozes and away
periods."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from agent.errors import ConsentError
from agent.storage.ledger.base import LedgerBase
from agent.storage.ledger.rows import FEEDBACK_KINDS, State, dt, ts


class LedgerNotes(LedgerBase):
    """What the household tells the agent (and is reminded of) besides consent and orders."""

    # ---- feedback, reminders, blocked SKUs ----------------------------------------

    def report(self, intent_id: int, kind: str, now: datetime) -> int:
        """Household feedback on a delivered order; wrong-item blocks the SKU."""
        if kind not in FEEDBACK_KINDS:
            raise ConsentError(f"feedback must be one of {', '.join(FEEDBACK_KINDS)}")
        with self._tx():
            it = self.intent(intent_id)
            if it.state not in (State.PLACED, State.DELIVERED):
                raise ConsentError(f"order {intent_id} is {it.state.value}; nothing to report")
            rid = self._audit("order_feedback", it.consumable,
                              {"intent": it.id, "kind": kind, "sku": it.sku}, now)
            self.conn.execute("INSERT INTO feedback (intent_id, kind, ts, audit_id) "
                              "VALUES (?, ?, ?, ?)", (it.id, kind, ts(now), rid))
            if kind == "wrong-item":
                self.conn.execute("INSERT OR IGNORE INTO blocked_skus VALUES (?, ?, ?)",
                                  (it.consumable, it.sku, ts(now)))
                self.conn.execute(
                    "INSERT INTO reminders (consumable, ts, kind, message) VALUES (?, ?, ?, ?)",
                    (it.consumable, ts(now), "choose_product",
                     f"{it.sku} was the wrong item and is blocked: choose a new product with "
                     f"replenish consent set {it.consumable} ... --sku SKU"))
            return rid

    def feedback(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._q("SELECT * FROM feedback ORDER BY id")]

    def blocked_skus(self, consumable: str) -> list[str]:
        return [r[0] for r in self._q("SELECT sku FROM blocked_skus WHERE consumable=?",
                                      (consumable,))]

    def remind(self, consumable: str, kind: str, message: str, now: datetime,
               quiet: timedelta = timedelta(hours=24)) -> bool:
        """Store a reminder unless the same kind was given within ``quiet``."""
        with self._tx():
            recent = self.conn.execute(
                "SELECT 1 FROM reminders WHERE consumable=? AND kind=? AND ts > ?",
                (consumable, kind, ts(now - quiet))).fetchone()
            if recent:
                return False
            self.conn.execute("INSERT INTO reminders (consumable, ts, kind, message) "
                              "VALUES (?, ?, ?, ?)", (consumable, ts(now), kind, message))
            return True

    def reminders(self, since: datetime | None = None) -> list[dict[str, Any]]:
        return [dict(r) for r in self._q("SELECT * FROM reminders WHERE ts >= ? ORDER BY id",
                                         (ts(since) if since else 0.0,))]

    def snoozed_until(self, consumable: str) -> datetime | None:
        """The ``until`` of the household's latest snooze of ``consumable`` (None if never).

        Read from the newest ``proposal_snoozed`` audit record, so a later, shorter snooze
        replaces a longer one; whether it is still running is the caller's comparison.
        """
        rows = self._q("SELECT body FROM audit WHERE kind='proposal_snoozed' AND consumable=? "
                       "ORDER BY id DESC LIMIT 1", (consumable,))
        if not rows:
            return None
        until = json.loads(rows[0]["body"]).get("until")
        return datetime.fromisoformat(until) if isinstance(until, str) else None

    # ---- away periods -------------------------------------------------------------

    def add_away(self, start: datetime, end: datetime, label: str, source: str,
                 now: datetime, uid: str | None = None) -> int | None:
        """Add an away period (an iCalendar UID is imported once); returns its id."""
        if end <= start:
            raise ConsentError("away period must end after it starts")
        with self._tx():
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO away_periods (start, end, label, source, uid) "
                "VALUES (?, ?, ?, ?, ?)", (ts(start), ts(end), label, source, uid))
            if not cur.rowcount:
                return None
            self._audit("away_added", None, {"start": start.isoformat(),
                                             "end": end.isoformat(), "source": source}, now)
            return int(cur.lastrowid or 0)

    def remove_away(self, away_id: int, now: datetime) -> bool:
        with self._tx():
            cur = self.conn.execute("DELETE FROM away_periods WHERE id=?", (away_id,))
            if cur.rowcount:
                self._audit("away_removed", None, {"id": away_id}, now)
            return bool(cur.rowcount)

    def sync_away(self, source: str, periods: dict[str, tuple[datetime, datetime, str]],
                  now: datetime) -> tuple[int, int]:
        """Make the coming absences of one subscribed ``source`` exactly ``periods``.

        ``periods`` maps a uid to (start, end, label). Periods of that source that end
        before ``now`` stay as history (the forecast reads them as idle days) even when
        the calendar no longer lists them. Returns (added, removed).
        """
        added = removed = 0
        with self._tx():
            rows = self._q("SELECT id, uid, end FROM away_periods WHERE source=?", (source,))
            known = {r["uid"] for r in rows}
            for r in rows:
                if r["uid"] not in periods and r["end"] > ts(now):
                    self.conn.execute("DELETE FROM away_periods WHERE id=?", (r["id"],))
                    removed += 1
            for uid, (start, end, label) in periods.items():
                if uid in known or end <= start:
                    continue
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO away_periods (start, end, label, source, uid) "
                    "VALUES (?, ?, ?, ?, ?)", (ts(start), ts(end), label, source, uid))
                added += cur.rowcount
            if added or removed:
                self._audit("away_synced", None, {"source": source, "added": added,
                                                  "removed": removed}, now)
        return added, removed

    def away_periods(self) -> list[tuple[int, datetime, datetime, str]]:
        rows = self._q("SELECT id, start, end, label FROM away_periods ORDER BY start")
        return [(r["id"], dt(r["start"]) or datetime.min, dt(r["end"]) or datetime.min,
                 r["label"] or "") for r in rows]
