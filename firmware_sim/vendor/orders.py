"""Orders of the vendor sandbox: request, lifecycle, JSON view and snapshots.

Lifecycle on the simulated clock (times fixed when the order is placed)::

    pending --15 min--> confirmed --half the lead time--> shipped --lead time--> delivered
       \\__ cancel (inside the cancel window, before shipping) --> cancelled
    rejected: max_unit_price below the current price, or out of stock
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from firmware_sim.vendor.catalog import CatalogEntry
from firmware_sim.vendor.faults import iso, money


@dataclass(frozen=True, slots=True)
class RecordedOrder:
    """A snapshot of one order as the sandbox holds it (what tests count)."""

    id: str
    idempotency_key: str
    sku: str
    requested_sku: str
    quantity: int
    pack_size: int
    unit: str
    unit_price: Decimal
    currency: str
    shipping: Decimal
    status: str
    test: bool
    client_ref: str | None
    reject_reason: str | None
    created_at: datetime
    expected_delivery: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated ``POST /v1/orders`` body."""

    sku: str
    quantity: int
    max_unit_price: Decimal | None = None
    test: bool = False
    client_ref: str | None = None
    allow_substitute: bool = False

    def fingerprint(self) -> str:
        canon = json.dumps(
            {
                "sku": self.sku,
                "quantity": self.quantity,
                "max_unit_price": None
                if self.max_unit_price is None
                else money(self.max_unit_price),
                "test": self.test,
                "client_ref": self.client_ref,
                "allow_substitute": self.allow_substitute,
            },
            sort_keys=True,
        )
        return hashlib.sha256(canon.encode()).hexdigest()


@dataclass(slots=True)
class Order:
    id: str
    key: str
    req: OrderRequest
    entry: CatalogEntry
    unit_price: Decimal
    shipping: Decimal
    created_at: datetime
    cancel_until: datetime
    confirmed_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    closed: str | None = None  # "rejected" or "cancelled"
    closed_at: datetime | None = None
    reject_reason: str | None = None
    notified: bool = False

    def history(self, now: datetime) -> list[tuple[str, datetime]]:
        steps: list[tuple[str, datetime]] = [("pending", self.created_at)]
        for name, at in (
            ("confirmed", self.confirmed_at),
            ("shipped", self.shipped_at),
            ("delivered", self.delivered_at),
        ):
            if at is not None and at <= now and (self.closed_at is None or at < self.closed_at):
                steps.append((name, at))
        if self.closed is not None and self.closed_at is not None:
            steps.append((self.closed, self.closed_at))
        return steps

    def status(self, now: datetime) -> str:
        return self.history(now)[-1][0]

    def to_json(self, now: datetime) -> dict[str, Any]:
        qty = self.req.quantity
        return {
            "id": self.id,
            "idempotency_key": self.key,
            "client_ref": self.req.client_ref,
            "sku": self.entry.sku,
            "requested_sku": self.req.sku,
            "quantity": qty,
            "pack_size": self.entry.pack_size,
            "unit": self.entry.unit,
            "unit_price": money(self.unit_price),
            "currency": self.entry.currency,
            "shipping": money(self.shipping),
            "total": money(self.unit_price * qty + self.shipping),
            "max_unit_price": None
            if self.req.max_unit_price is None
            else money(self.req.max_unit_price),
            "test": self.req.test,
            "status": self.status(now),
            "reject_reason": self.reject_reason,
            "created_at": iso(self.created_at),
            "cancel_until": iso(self.cancel_until),
            "expected_delivery": None if self.delivered_at is None else iso(self.delivered_at),
            "history": [{"status": s, "at": iso(at)} for s, at in self.history(now)],
        }

    def snapshot(self, now: datetime) -> RecordedOrder:
        status = self.status(now)
        return RecordedOrder(
            id=self.id,
            idempotency_key=self.key,
            sku=self.entry.sku,
            requested_sku=self.req.sku,
            quantity=self.req.quantity,
            pack_size=self.entry.pack_size,
            unit=self.entry.unit,
            unit_price=self.unit_price,
            currency=self.entry.currency,
            shipping=self.shipping,
            status=status,
            test=self.req.test,
            client_ref=self.req.client_ref,
            reject_reason=self.reject_reason,
            created_at=self.created_at,
            expected_delivery=self.delivered_at,
            delivered_at=self.delivered_at if status == "delivered" else None,
        )


@dataclass(slots=True)
class KeyRecord:
    fingerprint: str
    created_at: datetime
    response: tuple[int, dict[str, Any]] | None = None  # None while in flight


class ApiError(Exception):
    """An error answer: HTTP status, a stable ``code`` and a short message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: int | None = None,
        *,
        headers: dict[str, str] | None = None,
    ):
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        super().__init__(message)
