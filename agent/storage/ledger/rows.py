"""Row types of the ledger: intent states, consent and intent records, conversions.

No SQL here (that is :mod:`agent.storage.ledger`); these turn stored rows into frozen values.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from agent.consent import Mandate, Mode, Proposal
from agent.domain import ConsumableKey, JsonObject


class State(StrEnum):
    PROPOSED = "proposed"  # waiting for the household's approval
    QUEUED = "queued"  # allowed; goes out at send_after (pre-notice for auto)
    SENDING = "sending"  # the key may have reached the vendor: reconcile before resend
    PLACED = "placed"  # the vendor holds the order; followed until delivery
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # the vendor refused it (price above max, out of stock)
    FAILED = "failed"  # the vendor refused the request for good
    # The vendor no longer knows the order, or its outcome stayed unknown past the
    # give-up: the household is asked; it still holds the consumable (no re-buy).
    LOST = "lost"


class DecidedBy(StrEnum):
    """Who ended an intent: state as a column, never read back out of ``reason`` text."""

    HOUSEHOLD = "household"  # cancel, "not now" or snooze
    CONSENT = "consent"  # a consent change (revoked, monitor/remind, mandate replaced)
    EXPIRY = "expiry"  # the auto mandate expired
    VENDOR = "vendor"  # delivered, cancelled, rejected or refused by the vendor
    AGENT = "agent"  # the agent gave up looking an unknown outcome up (asks the household)


PENDING = (State.PROPOSED, State.QUEUED)
OPEN = (State.PROPOSED, State.QUEUED, State.SENDING, State.PLACED, State.LOST)
SPENDING = (State.SENDING, State.PLACED, State.DELIVERED)
# On order from the moment an intent exists until the vendor ends it: at most one of
# these per consumable (the planner's guard).
LIVE = OPEN
FEEDBACK_KINDS = ("wrong-item", "damaged", "not-needed")


@dataclass(slots=True, frozen=True, kw_only=True)
class VendorAnswer:
    """What the vendor said about a sent order, as :meth:`Ledger.mark_placed` records it
    (storage does not import the vendor client, so the dispatcher converts)."""

    id: str
    status: str
    total: Decimal
    cancel_until: datetime | None = None
    expected_delivery: datetime | None = None
    reject_reason: str | None = None


@dataclass(slots=True, frozen=True)
class ReminderRow:
    """A stored reminder for the household."""

    id: int
    consumable: str
    ts: float
    kind: str
    message: str

    def to_json(self) -> JsonObject:
        return {"id": self.id, "consumable": self.consumable, "ts": self.ts,
                "kind": self.kind, "message": self.message}


def ts(when: datetime) -> float:
    return when.timestamp()


def dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


@dataclass(slots=True, frozen=True)
class Consent:
    consumable: str
    mode: Mode
    mandate: Mandate | None
    audit_id: int
    updated_at: datetime


@dataclass(slots=True, frozen=True)
class Intent:
    """One purchase intent (an outbox row)."""

    id: int
    consumable: str
    vendor: str
    sku: str
    name: str | None
    quantity: int
    pack_size: int
    unit_price: Decimal
    currency: str
    mode: Mode
    state: State
    idem_key: str
    audit_id: int | None
    reason: str | None
    created_at: datetime  # when the current terms were written: a re-proposal resets it
    send_after: datetime | None
    next_attempt_at: datetime | None
    attempts: int
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    order_id: str | None
    order_status: str | None
    total: Decimal | None
    cancel_until: datetime | None
    expected_delivery: datetime | None
    delivered_at: datetime | None
    decided_by: DecidedBy | None = None  # set when the intent ended (or was lost)
    # The lead time (days, p50 and p90) known when the intent was written: the vendor's
    # quote moved by this household's deliveries. None for intents from before it was kept.
    lead_days: float | None = None
    lead_p90_days: float | None = None

    def arrival_if_sent(self, at: datetime) -> tuple[datetime, datetime] | None:
        """(likely, latest) arrival if sent at ``at``, from the stored lead time."""
        if self.lead_days is None:
            return None
        p90 = self.lead_days if self.lead_p90_days is None else self.lead_p90_days
        return at + timedelta(days=self.lead_days), at + timedelta(days=p90)

    @property
    def key(self) -> ConsumableKey:
        """The consumable this intent is for, its two parts apart."""
        return ConsumableKey.parse(self.consumable)

    @property
    def proposal(self) -> Proposal:
        return Proposal(self.consumable, self.vendor, self.sku, self.quantity, self.pack_size,
                        self.unit_price, self.name or "", self.currency)

    def to_json(self) -> JsonObject:
        out: JsonObject = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            out[name] = value
        return out


_DT_COLS = ("created_at", "send_after", "next_attempt_at", "first_sent_at", "last_sent_at",
            "cancel_until", "expected_delivery", "delivered_at")


def intent_from_row(row: sqlite3.Row) -> Intent:
    d = dict(row)
    d.pop("updated_at")
    for col in _DT_COLS:
        d[col] = dt(d[col])
    d["unit_price"] = Decimal(d["unit_price"])
    d["total"] = None if d["total"] is None else Decimal(d["total"])
    d["mode"] = Mode(d["mode"])
    d["state"] = State(d["state"])
    d["decided_by"] = None if d.get("decided_by") is None else DecidedBy(d["decided_by"])
    return Intent(**d)


def mandate_json(m: Mandate | None) -> JsonObject | None:
    if m is None:
        return None
    return {"skus": list(m.skus), "vendor": m.vendor,
            "max_unit_price": None if m.max_unit_price is None else str(m.max_unit_price),
            "max_quantity": m.max_quantity,
            "monthly_budget": None if m.monthly_budget is None else str(m.monthly_budget),
            "expires_at": None if m.expires_at is None else m.expires_at.isoformat()}


def consent_from_row(row: sqlite3.Row) -> Consent:
    mode = Mode(row["mode"])
    skus = tuple(json.loads(row["skus"]))
    mandate = None
    if skus:
        mandate = Mandate(
            skus=skus, vendor=row["vendor"],
            max_unit_price=None if row["max_unit_price"] is None
            else Decimal(row["max_unit_price"]),
            max_quantity=row["max_quantity"],
            monthly_budget=None if row["monthly_budget"] is None
            else Decimal(row["monthly_budget"]),
            expires_at=dt(row["expires_at"]))
    return Consent(row["consumable"], mode, mandate, row["audit_id"],
                   dt(row["updated_at"]) or datetime.min)


def epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()
