"""Storage for consent and purchase intents (the outbox): every SQL statement for those
tables lives here; the connection and audit chain are in :mod:`agent.storage.ledger.base`,
feedback, reminders and away periods in :mod:`agent.storage.ledger.notes`.

Each public write is one ``BEGIN IMMEDIATE`` transaction that changes the state and
appends its audit record together, on the Store's connection (``synchronous=FULL``), so
an intent and its idempotency key are durable before any vendor call is made.
Times are aware datetimes at this API and epoch seconds in the file.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from agent.consent import Mandate, Mode, Proposal, month_start
from agent.errors import ConsentError
from agent.logs import canonical
from agent.storage.ledger.notes import LedgerNotes, log_cancelled
from agent.storage.ledger.rows import (
    FEEDBACK_KINDS,
    OPEN,
    PENDING,
    SPENDING,
    Consent,
    DecidedBy,
    Intent,
    State,
    VendorAnswer,
    consent_from_row,
    dt,
    epoch,
    intent_from_row,
    mandate_json,
    ts,
)

log = logging.getLogger(__name__)

__all__ = ["FEEDBACK_KINDS", "OPEN", "PENDING", "Consent", "Intent", "Ledger", "State"]


class Ledger(LedgerNotes):
    """Consent, audit and outbox storage on one SQLite connection (one per thread)."""

    # ---- consent ------------------------------------------------------------------

    def consent(self, consumable: str) -> Consent | None:
        rows = self._q("SELECT * FROM consent WHERE consumable=?", (consumable,))
        return consent_from_row(rows[0]) if rows else None

    def consents(self) -> list[Consent]:
        return [consent_from_row(r) for r in self._q("SELECT * FROM consent ORDER BY consumable")]

    def mode(self, consumable: str) -> Mode:
        c = self.consent(consumable)
        return c.mode if c else Mode.MONITOR

    def set_consent(self, consumable: str, mode: Mode, mandate: Mandate | None,
                    now: datetime) -> int:
        """Grant or change consent; returns the audit id. Leaving auto or confirm cancels
        pending intents at once, in the same transaction."""
        if mode is Mode.AUTO and mandate is None:
            raise ConsentError("auto needs a mandate (at least --sku)")
        with self._tx():
            old = self.consent(consumable)
            rid = self._audit("consent_set", consumable, {
                "mode": mode.value, "mandate": mandate_json(mandate),
                "previous_mode": old.mode.value if old else None}, now)
            m = mandate
            self.conn.execute(
                "INSERT OR REPLACE INTO consent (consumable, mode, vendor, skus, max_unit_price,"
                " max_quantity, monthly_budget, expires_at, audit_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (consumable, mode.value, m.vendor if m else None,
                 json.dumps(list(m.skus) if m else []),
                 str(m.max_unit_price) if m and m.max_unit_price is not None else None,
                 m.max_quantity if m else None,
                 str(m.monthly_budget) if m and m.monthly_budget is not None else None,
                 ts(m.expires_at) if m and m.expires_at else None, rid, ts(now)))
            if mode in (Mode.MONITOR, Mode.REMIND):
                why = f"consent changed to {mode.value}"
                cancelled = self._cancel_pending(consumable, why, rid, now, DecidedBy.CONSENT)
            elif mode is Mode.CONFIRM:
                # Announced auto orders lose their mandate; proposals stay for approval.
                why = "mandate replaced by confirm"
                cancelled = self._cancel_pending(consumable, why, rid, now, DecidedBy.CONSENT,
                                                 states=(State.QUEUED,), auto_only=True)
            else:
                why, cancelled = "", []
        log_cancelled(consumable, cancelled, why, rid)
        return rid

    def revoke(self, consumable: str, now: datetime) -> tuple[int, list[int]]:
        """Back to monitor; pending intents are cancelled in the same transaction."""
        with self._tx():
            rid = self._audit("consent_revoked", consumable, {}, now)
            self.conn.execute(
                "INSERT OR REPLACE INTO consent (consumable, mode, skus, audit_id, updated_at) "
                "VALUES (?, 'monitor', '[]', ?, ?)", (consumable, rid, ts(now)))
            cancelled = self._cancel_pending(consumable, "consent revoked", rid, now,
                                             DecidedBy.CONSENT)
        log_cancelled(consumable, cancelled, "consent revoked", rid)
        return rid, cancelled

    def expire_mandates(self, now: datetime) -> list[str]:
        """Expired auto mandates fall back to confirm; their announced orders are cancelled."""
        expired = [c for c in self.consents()
                   if c.mode is Mode.AUTO and c.mandate and c.mandate.expired(now)]
        for c in expired:
            with self._tx():
                ends = c.mandate.expires_at if c.mandate else None
                rid = self._audit("mandate_expired", c.consumable,
                                  {"expires_at": ends.isoformat() if ends else None}, now)
                self.conn.execute("UPDATE consent SET mode='confirm', audit_id=?, updated_at=? "
                                  "WHERE consumable=?", (rid, ts(now), c.consumable))
                cancelled = self._cancel_pending(c.consumable, "mandate expired", rid, now,
                                                 DecidedBy.EXPIRY, states=(State.QUEUED,),
                                                 auto_only=True)
            log_cancelled(c.consumable, cancelled, "mandate expired", rid)
        return [c.consumable for c in expired]

    def _cancel_pending(self, consumable: str, why: str, audit_id: int, now: datetime,
                        by: DecidedBy, states: Sequence[State] = PENDING,
                        auto_only: bool = False) -> list[int]:
        marks = ",".join("?" * len(states))
        sql = f"SELECT id FROM intents WHERE consumable=? AND state IN ({marks})"
        if auto_only:
            sql += " AND mode='auto'"
        ids = [int(r[0]) for r in self.conn.execute(sql, (consumable, *states))]
        for i in ids:
            self.conn.execute(
                "UPDATE intents SET state='cancelled', reason=?, decided_by=?, audit_id=?, "
                "updated_at=? WHERE id=?", (why, by.value, audit_id, ts(now), i))
        return ids

    # ---- intents ------------------------------------------------------------------

    def create_intent(self, proposal: Proposal, mode: Mode, state: State, now: datetime, *,
                      send_after: datetime | None = None, reason: str = "",
                      allowed_by: int | None = None, unless_open: bool = False,
                      lead: tuple[float, float] | None = None) -> Intent:
        """Write a new intent with a freshly minted idempotency key (durable on return).

        ``lead``: the lead time (p50, p90 days) the decision used, kept so the household
        sees the expected arrival before it approves.

        ``unless_open``: refuse (ConsentError) if the consumable already has an open
        intent, checked inside the same transaction (two taps on "order now").
        """
        key = str(uuid.uuid4())
        p = proposal
        with self._tx():
            if unless_open and self.conn.execute(
                    f"SELECT 1 FROM intents WHERE consumable=? AND state IN "
                    f"({','.join('?' * len(OPEN))})",
                    (p.consumable, *(s.value for s in OPEN))).fetchone():
                raise ConsentError(f"{p.consumable} already has an open order")
            rid = self._audit("order_announced" if state is State.QUEUED else "order_proposed",
                              p.consumable, {
                                  "sku": p.sku, "name": p.name, "quantity": p.quantity,
                                  "unit_price": str(p.unit_price), "currency": p.currency,
                                  "vendor": p.vendor, "key": key, "reason": reason,
                                  "allowed_by": allowed_by,
                                  "send_after": send_after.isoformat() if send_after else None,
                              }, now)
            cur = self.conn.execute(
                "INSERT INTO intents (consumable, vendor, sku, name, quantity, pack_size, "
                "unit_price, currency, mode, state, idem_key, audit_id, reason, created_at, "
                "send_after, next_attempt_at, updated_at, lead_days, lead_p90_days) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (p.consumable, p.vendor, p.sku, p.name, p.quantity, p.pack_size,
                 str(p.unit_price), p.currency, mode.value, state.value, key,
                 allowed_by if allowed_by is not None else rid, reason, ts(now),
                 ts(send_after) if send_after else None,
                 ts(send_after) if send_after else None, ts(now),
                 *(lead if lead is not None else (None, None))))
            it = self.intent(int(cur.lastrowid or 0))
        if state is State.QUEUED:
            _log_queued(it, rid)
        return it

    def intents(self, states: Sequence[State] | None = None,
                consumable: str | None = None) -> list[Intent]:
        sql, params = "SELECT * FROM intents WHERE 1=1", []
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params += [s.value for s in states]
        if consumable:
            sql += " AND consumable=?"
            params.append(consumable)
        return [intent_from_row(r) for r in self._q(sql + " ORDER BY id", params)]

    def due(self, now: datetime) -> list[Intent]:
        """Intents the dispatcher should act on now (send, reconcile or follow)."""
        rows = self._q(
            "SELECT * FROM intents WHERE state IN ('queued', 'sending', 'placed') "
            "AND COALESCE(next_attempt_at, 0) <= ? ORDER BY id", (ts(now),))
        return [intent_from_row(r) for r in rows]

    def spent_this_month(self, consumable: str, now: datetime,
                         exclude: int | None = None) -> Decimal:
        """What this month's orders of ``consumable`` cost (unknown outcomes included)."""
        rows = self._q(
            "SELECT unit_price, quantity, total FROM intents WHERE consumable=? AND state IN "
            "(?, ?, ?) AND COALESCE(first_sent_at, created_at) >= ? AND id != ?",
            (consumable, *SPENDING, ts(month_start(now)), -1 if exclude is None else exclude))
        return sum((Decimal(r["total"]) if r["total"] is not None
                    else Decimal(r["unit_price"]) * r["quantity"] for r in rows), Decimal(0))

    def approve(self, intent_id: int, now: datetime) -> Intent:
        """The household approves a proposal: it goes out on the next dispatcher pass."""
        with self._tx():
            it = self.intent(intent_id)
            if it.state is not State.PROPOSED:
                raise ConsentError(f"order {intent_id} is {it.state.value}, not proposed")
            rid = self._audit("order_approved", it.consumable, {
                "intent": it.id, "sku": it.sku, "quantity": it.quantity,
                "unit_price": str(it.unit_price), "currency": it.currency}, now)
            self.conn.execute(
                "UPDATE intents SET state='queued', mode='confirm', audit_id=?, send_after=?, "
                "next_attempt_at=?, updated_at=? WHERE id=?",
                (rid, ts(now), ts(now), ts(now), it.id))
            it = self.intent(it.id)
        _log_queued(it, rid)
        return it

    def cancel_pending(self, intent_id: int, now: datetime, who: str = "household") -> Intent:
        """Cancel an intent that has not been sent yet (inside the pre-notice window)."""
        with self._tx():
            it = self._cancel_unsent(intent_id, who, now)
        log_cancelled(it.consumable, [it.id], f"cancelled by {who}", it.audit_id or 0)
        return it

    def repropose(self, intent_id: int, proposal: Proposal, reasons: Sequence[str],
                  now: datetime) -> Intent:
        """Turn a queued order into a proposal showing the current product and price.

        Only for intents never sent, so the old key is retired with no order behind it;
        the new body gets a new key (a vendor refuses a key reused with another body).
        ``created_at`` becomes ``now``: the household's time to decide (the proposal
        TTL) counts from these terms; the audit chain keeps the first announcement.
        """
        with self._tx():
            it = self.intent(intent_id)
            if it.attempts:
                raise ConsentError(f"order {intent_id} was already sent")
            key = str(uuid.uuid4())
            p = proposal
            rid = self._audit("order_reproposed", it.consumable, {
                "intent": it.id, "reasons": list(reasons), "sku": p.sku, "name": p.name,
                "unit_price": str(p.unit_price), "pack_size": p.pack_size,
                "quantity": p.quantity, "old_key": it.idem_key, "key": key}, now)
            self.conn.execute(
                "UPDATE intents SET state='proposed', sku=?, name=?, unit_price=?, currency=?, "
                "pack_size=?, quantity=?, idem_key=?, audit_id=?, reason=?, send_after=NULL, "
                "next_attempt_at=NULL, created_at=?, updated_at=? WHERE id=?",
                (p.sku, p.name, str(p.unit_price), p.currency, p.pack_size, p.quantity, key,
                 rid, "; ".join(reasons), ts(now), ts(now), it.id))
            return self.intent(it.id)

    def reprice(self, intent_id: int, price: Decimal, now: datetime) -> Intent:
        """Adopt the current catalog price (already checked against the mandate)."""
        with self._tx():
            it = self.intent(intent_id)
            if it.attempts:
                raise ConsentError(f"order {intent_id} was already sent")
            self._audit("order_repriced", it.consumable, {
                "intent": it.id, "old": str(it.unit_price), "new": str(price)}, now)
            self.conn.execute("UPDATE intents SET unit_price=?, updated_at=? WHERE id=?",
                              (str(price), ts(now), it.id))
            return self.intent(it.id)

    def mark_sending(self, intent_id: int, allowed_by: int, now: datetime,
                     retry_at: datetime, consent_seen: int | None) -> Intent | None:
        """Committed before each order call: counts the attempt, names its authority.

        ``consent_seen`` is the consent record the caller authorized against; if the
        intent was cancelled or the consent changed since, nothing is written and None
        comes back (check and commit are one transaction, so a revocation either lands
        before it and stops the call, or after it and stops every later call). The
        attempt's audit record points at the record that allowed it.
        """
        with self._tx():
            it = self.intent(intent_id)
            row = self.conn.execute("SELECT audit_id FROM consent WHERE consumable=?",
                                    (it.consumable,)).fetchone()
            if it.state not in (State.QUEUED, State.SENDING) or (
                    (row[0] if row else None) != consent_seen):
                return None
            self._audit("order_sent", it.consumable, {
                "intent": it.id, "key": it.idem_key, "attempt": it.attempts + 1,
                "allowed_by": allowed_by, "sku": it.sku, "quantity": it.quantity,
                "max_unit_price": str(it.unit_price)}, now)
            self.conn.execute(
                "UPDATE intents SET state='sending', attempts=attempts+1, audit_id=?, "
                "first_sent_at=COALESCE(first_sent_at, ?), last_sent_at=?, next_attempt_at=?, "
                "updated_at=? WHERE id=?",
                (allowed_by, ts(now), ts(now), ts(retry_at), ts(now), intent_id))
            return self.intent(intent_id)

    def retry_later(self, intent_id: int, at: datetime, why: str, now: datetime) -> None:
        with self._tx():
            self.conn.execute("UPDATE intents SET next_attempt_at=?, reason=?, updated_at=? "
                              "WHERE id=?", (ts(at), why, ts(now), intent_id))

    def mark_placed(self, intent_id: int, order: VendorAnswer, now: datetime,
                    poll_at: datetime) -> Intent:
        """The vendor holds the order; rejected orders end the intent."""
        rejected = order.status == "rejected"
        with self._tx():
            it = self.intent(intent_id)
            self._audit("order_rejected" if rejected else "order_placed", it.consumable,
                        {"intent": it.id, "order": order.id, "key": it.idem_key,
                         "status": order.status, "total": str(order.total),
                         "allowed_by": it.audit_id, "reason": order.reject_reason},
                        now)
            self.conn.execute(
                "UPDATE intents SET state=?, order_id=?, order_status=?, total=?, "
                "cancel_until=?, expected_delivery=?, next_attempt_at=?, reason=?, "
                "decided_by=?, updated_at=? WHERE id=?",
                ("rejected" if rejected else "placed", order.id, order.status,
                 None if rejected else str(order.total),
                 epoch(order.cancel_until), epoch(order.expected_delivery),
                 None if rejected else ts(poll_at), order.reject_reason or it.reason,
                 DecidedBy.VENDOR.value if rejected else None, ts(now), it.id))
            return self.intent(it.id)

    def finish(self, intent_id: int, state: State, why: str, now: datetime,
               kind: str, by: DecidedBy) -> Intent:
        """End an intent (cancelled, failed, lost) with its audit record and who decided."""
        with self._tx():
            it = self.intent(intent_id)
            rid = self._audit(kind, it.consumable, {"intent": it.id, "reason": why,
                                                     "order": it.order_id, "by": by.value},
                              now)
            self.conn.execute("UPDATE intents SET state=?, reason=?, decided_by=?, audit_id=?, "
                              "next_attempt_at=NULL, updated_at=? WHERE id=?",
                              (state.value, f"{why} (audit {rid})", by.value, rid, ts(now),
                               it.id))
            return self.intent(it.id)

    def update_status(self, intent_id: int, status: str, expected: datetime | None,
                      delivered: datetime | None, poll_at: datetime | None,
                      now: datetime, by: DecidedBy = DecidedBy.VENDOR) -> Intent:
        """Record a followed order's status; delivery and vendor cancellation are audited."""
        with self._tx():
            it = self.intent(intent_id)
            state = {"delivered": State.DELIVERED, "cancelled": State.CANCELLED,
                     "rejected": State.REJECTED}.get(status, State.PLACED)
            if state is not State.PLACED and it.state is State.PLACED:
                self._audit(f"order_{status}", it.consumable,
                            {"intent": it.id, "order": it.order_id}, now)
            self.conn.execute(
                "UPDATE intents SET state=?, order_status=?, expected_delivery=COALESCE(?, "
                "expected_delivery), delivered_at=?, next_attempt_at=?, decided_by=?, "
                "updated_at=? WHERE id=?",
                (state.value, status, ts(expected) if expected else None,
                 ts(delivered) if delivered else None,
                 ts(poll_at) if poll_at and state is State.PLACED else None,
                 None if state is State.PLACED else (it.decided_by or by).value, ts(now),
                 it.id))
            return self.intent(it.id)

    def expected_deliveries(self, consumable: str, unknown_at: datetime | None = None
                            ) -> list[tuple[datetime, int]]:
        """(when, packs) of our orders for ``consumable``: arrived and still on order.

        An order is on order from its first send until the vendor ends it, whether or not
        the vendor gave a date (``expected_delivery`` is optional in the spec): undated
        ones count at ``unknown_at`` (the caller's "now"), or are left out without it.
        """
        rows = self._q(
            "SELECT COALESCE(delivered_at, expected_delivery, ?) AS t, quantity FROM intents "
            "WHERE consumable=? AND state IN ('sending', 'placed', 'lost', 'delivered') "
            "AND t IS NOT NULL ORDER BY t",
            (ts(unknown_at) if unknown_at else None, consumable))
        return [(dt(r["t"]) or datetime.min, int(r["quantity"])) for r in rows]

def _log_queued(it: Intent, audit_id: int) -> None:
    """``order.queued`` once the intent is committed: it will be sent at ``send_after``."""
    canonical(log, "order.queued", consumable=it.consumable, sku=it.sku, quantity=it.quantity,
              audit_id=audit_id, intent=it.id,
              send_after=it.send_after.isoformat() if it.send_after else None)
