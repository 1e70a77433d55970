"""A small in-memory vendor behind ``httpx.MockTransport``: the seam for unit tests.

It speaks just enough of the vendor API for the dispatcher (catalog, idempotent order
POST, lookup by key, get, cancel) and records every request, so tests count order calls
made through a real :class:`agent.vendor.client.VendorClient`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from agent.vendor.client import VendorClient

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CATALOG: dict[str, dict[str, Any]] = {
    "TONER-TN2420": {"name": "Toner TN-2420", "price": "54.90", "pack_size": 1,
                     "unit": "cartridge", "lead_time_days": 2.0, "lead_time_sd_days": 0.5,
                     "substitutes": ["TONER-TN2410"]},
    "TONER-TN2410": {"name": "Toner TN-2410", "price": "39.90", "pack_size": 1,
                     "unit": "cartridge", "lead_time_days": 2.0, "lead_time_sd_days": 0.5,
                     "substitutes": []},
    "MILK-1L": {"name": "Milk 1 l", "price": "1.19", "pack_size": 1000, "unit": "g",
                "lead_time_days": 1.0, "lead_time_sd_days": 0.2, "substitutes": []},
}


@dataclass
class FakeVendor:
    """State and knobs; ``post_status`` answers the next order POSTs with these codes,
    committing first when ``commit_before_error`` (the 'commit-then-500' fault);
    ``omit_optional`` leaves out what the spec lets a vendor leave out (dates, history)."""

    now: datetime = T0
    prices: dict[str, str] = field(default_factory=dict)
    pack_sizes: dict[str, int] = field(default_factory=dict)
    out_of_stock: set[str] = field(default_factory=set)
    post_status: list[int] = field(default_factory=list)
    commit_before_error: bool = False
    retry_after: str | None = None
    omit_optional: bool = False
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def order_posts(self) -> int:
        return sum(1 for m, p in self.calls if m == "POST" and p == "/v1/orders")

    def client(self) -> VendorClient:
        return VendorClient("http://vendor.test", "tok", transport=httpx.MockTransport(
            self.handle), deadline_s=5.0)

    def item(self, sku: str) -> dict[str, Any]:
        base = CATALOG[sku]
        return {"sku": sku, "name": base["name"], "currency": "EUR",
                "price": self.prices.get(sku, base["price"]),
                "availability": "out_of_stock" if sku in self.out_of_stock else "in_stock",
                "lead_time_days": base["lead_time_days"],
                "lead_time_sd_days": base["lead_time_sd_days"],
                "substitutes": base["substitutes"],
                "pack_size": self.pack_sizes.get(sku, base["pack_size"]),
                "unit": base["unit"], "free_shipping_threshold": "29.00",
                "shipping_fee": "3.95"}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if request.method == "GET" and path.startswith("/v1/catalog/"):
            return httpx.Response(200, json=self.item(path.rsplit("/", 1)[1]))
        if request.method == "POST" and path == "/v1/orders":
            return self._post(request)
        if request.method == "GET" and path == "/v1/orders":
            key = request.url.params.get("idempotency_key")
            return httpx.Response(200, json={"orders": [
                o for o in self.orders.values() if o["idempotency_key"] == key]})
        oid = path.split("/")[3]
        if oid not in self.orders:
            return httpx.Response(404, json={"error": "not_found"})
        order = self.orders[oid]
        if path.endswith("/cancel"):
            until = order.get("cancel_until")
            if until is not None and self.now >= datetime.fromisoformat(until):
                return httpx.Response(409, json={"error": "cancel_window_closed"})
            order["status"] = "cancelled"
        return httpx.Response(200, json=order)

    def _post(self, request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        body = json.loads(request.content)
        status = self.post_status.pop(0) if self.post_status else 201
        if status != 201 and not self.commit_before_error:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return httpx.Response(status, json={"error": "injected"}, headers=headers)
        existing = [o for o in self.orders.values() if o["idempotency_key"] == key]
        if existing:
            return httpx.Response(201, json=existing[0],
                                  headers={"Idempotent-Replayed": "true"})
        order = self.commit(key, body["sku"], body["quantity"], self.now,
                            max_unit_price=body.get("max_unit_price"),
                            client_ref=body.get("client_ref"), test=body.get("test", False))
        if status != 201:
            return httpx.Response(status, json={"error": "injected"})
        return httpx.Response(201, json=order)

    def commit(self, key: str, sku: str, quantity: int, at: datetime, *,
               max_unit_price: str | None = None, client_ref: str | None = None,
               test: bool = False) -> dict[str, Any]:
        """Store the order for ``key`` (also: a held POST the vendor commits late)."""
        item = self.item(sku)
        price = Decimal(item["price"])
        rejected = (item["availability"] != "in_stock" or (
            max_unit_price is not None and price > Decimal(max_unit_price)))
        oid = f"ord_{len(self.orders) + 1:04d}"
        order: dict[str, Any] = {
            "id": oid, "idempotency_key": key, "client_ref": client_ref,
            "sku": sku, "quantity": quantity,
            "pack_size": item["pack_size"], "unit_price": str(price), "currency": "EUR",
            "total": str(price * quantity), "test": test,
            "status": "rejected" if rejected else "pending",
            "reject_reason": "price_above_max" if rejected else None,
            "created_at": at.isoformat(),
            "cancel_until": (at + timedelta(hours=24)).isoformat(),
            "expected_delivery": (at + timedelta(days=2)).isoformat(),
            "history": [{"status": "pending", "at": at.isoformat()}]}
        if self.omit_optional:
            for name in ("client_ref", "cancel_until", "expected_delivery", "history"):
                order.pop(name)
            if not rejected:
                order.pop("reject_reason")
        self.orders[oid] = order
        return order

    def deliver(self, oid: str, at: datetime) -> None:
        order = self.orders[oid]
        order["status"] = "delivered"
        order.setdefault("history", []).append({"status": "delivered", "at": at.isoformat()})
