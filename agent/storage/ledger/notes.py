"""Household notes in the ledger: feedback, blocked SKUs, reminders, the household's
decisions on orders ("not now", snoozes, cancels) and away periods."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from agent.errors import ConsentError
from agent.logs import canonical
from agent.storage.ledger.base import LedgerBase
from agent.storage.ledger.rows import (
    FEEDBACK_KINDS,
    PENDING,
    DecidedBy,
    Intent,
    ReminderRow,
    State,
    dt,
    ts,
)

log = logging.getLogger(__name__)


class LedgerNotes(LedgerBase):
    """What the household tells the agent (and is reminded of) besides consent and orders."""

    # ---- feedback, reminders, blocked SKUs ----------------------------------------

    def report(self, intent_id: int, kind: str, now: datetime) -> int:
        """Household feedback on a delivered order; wrong-item blocks the SKU."""
        if kind not in FEEDBACK_KINDS:
            raise ConsentError(f"feedback must be one of {', '.join(FEEDBACK_KINDS)}")
        with self._tx():
            it = self.intent(intent_id)
            if it.state is not State.DELIVERED:
                # Feedback is on what arrived: a placed, lost or cancelled order never did.
                raise ConsentError(f"order {intent_id} is {it.state.value}: never delivered, "
                                   "nothing to report")
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

    def reminders(self, since: datetime | None = None) -> list[ReminderRow]:
        return [ReminderRow(r["id"], r["consumable"], r["ts"], r["kind"], r["message"])
                for r in self._q("SELECT id, consumable, ts, kind, message FROM reminders "
                                 "WHERE ts >= ? ORDER BY id", (ts(since) if since else 0.0,))]

    def snoozed_until(self, consumable: str) -> datetime | None:
        """The ``until`` of the household's latest snooze of ``consumable`` (None if never);
        a later, shorter snooze replaced a longer one. Whether it still runs is the
        caller's comparison."""
        rows = self._q("SELECT until FROM snoozes WHERE consumable=?", (consumable,))
        return dt(rows[0]["until"]) if rows else None

    # ---- the household's decisions on orders ----------------------------------------

    def declined_since(self, consumable: str, since: datetime) -> bool:
        """Whether the household cancelled (or snoozed) an unsent order since then."""
        rows = self._q("SELECT 1 FROM intents WHERE consumable=? AND state='cancelled' AND "
                       "attempts=0 AND decided_by='household' AND updated_at >= ?",
                       (consumable, ts(since)))
        return bool(rows)

    def household_cancelled_since(self, consumable: str, since: datetime) -> datetime | None:
        """When the household last cancelled a *sent* order of ``consumable`` (placed or
        lost) since ``since``; None if it did not. The planner holds the consumable."""
        rows = self._q("SELECT MAX(updated_at) AS t FROM intents WHERE consumable=? AND "
                       "state='cancelled' AND decided_by='household' AND attempts > 0 AND "
                       "updated_at >= ?", (consumable, ts(since)))
        return dt(rows[0]["t"]) if rows else None

    def snooze(self, intent_id: int, until: datetime, now: datetime) -> Intent:
        """The household's "not until ``until``": the proposal ends and the consumable is
        left alone until then (a later snooze replaces an earlier one)."""
        with self._tx():
            it = self._cancel_unsent(intent_id, "household-snooze", now)
            rid = self._audit("proposal_snoozed", it.consumable,
                              {"intent": it.id, "until": until.isoformat()}, now)
            self.conn.execute(
                "INSERT OR REPLACE INTO snoozes (consumable, until, intent_id, audit_id, ts) "
                "VALUES (?, ?, ?, ?, ?)", (it.consumable, ts(until), it.id, rid, ts(now)))
        log_cancelled(it.consumable, [it.id], "cancelled by household-snooze",
                       it.audit_id or 0)
        return it

    def cancel_lost(self, intent_id: int, now: datetime) -> Intent:
        """The household's answer to "is this lost order real?": no vendor call, the
        intent ends, and the consumable is held like any cancelled placed order."""
        with self._tx():
            it = self.intent(intent_id)
            if it.state is not State.LOST:
                raise ConsentError(f"order {intent_id} is {it.state.value}, not lost")
            rid = self._audit("order_cancelled", it.consumable,
                              {"intent": it.id, "by": "household", "sent": True,
                               "order": it.order_id}, now)
            self.conn.execute("UPDATE intents SET state='cancelled', decided_by=?, audit_id=?, "
                              "next_attempt_at=NULL, updated_at=? WHERE id=?",
                              (DecidedBy.HOUSEHOLD.value, rid, ts(now), it.id))
            return self.intent(it.id)

    def _cancel_unsent(self, intent_id: int, who: str, now: datetime) -> Intent:
        it = self.intent(intent_id)
        if it.state not in PENDING:
            raise ConsentError(f"order {intent_id} is {it.state.value}; cannot cancel here")
        rid = self._audit("order_cancelled", it.consumable,
                          {"intent": it.id, "by": who, "sent": False}, now)
        self.conn.execute("UPDATE intents SET state='cancelled', reason=?, decided_by=?, "
                          "audit_id=?, updated_at=? WHERE id=?",
                          (f"cancelled by {who}", DecidedBy.HOUSEHOLD.value, rid, ts(now),
                           it.id))
        return self.intent(it.id)

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


def log_cancelled(consumable: str, intent_ids: Sequence[int], why: str,
                   audit_id: int) -> None:
    """``order.cancelled`` for unsent intents, logged after their transaction committed."""
    for intent_id in intent_ids:
        canonical(log, "order.cancelled", consumable=consumable, reason=why, order_id=None,
                  audit_id=audit_id, intent=intent_id)
