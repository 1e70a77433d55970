"""State of the vendor sandbox: catalog view, orders, idempotency keys, deliveries.

No sockets here; :mod:`firmware_sim.vendor.http` serves this over HTTP. Every method of
:class:`SandboxState` is thread-safe (one lock), because the server calls it from its
request threads while a test moves the clock or reads the orders. The order lifecycle is
described in :mod:`firmware_sim.vendor.orders`.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from firmware_sim.vendor.catalog import CatalogEntry, validate_catalog
from firmware_sim.vendor.faults import Clock, Faults, SimClock, money
from firmware_sim.vendor.orders import ApiError, KeyRecord, Order, OrderRequest, RecordedOrder
from firmware_sim.vendor.profile import FULL, Profile

log = logging.getLogger(__name__)

DEFAULT_CANCEL_WINDOW = timedelta(hours=24)
DEFAULT_KEY_RETENTION = timedelta(hours=24)
CONFIRM_DELAY = timedelta(minutes=15)
MIN_LEAD_DAYS = 0.25


class SandboxState:
    """Catalog, orders and idempotency keys of one sandbox, on a simulated clock."""

    def __init__(
        self,
        catalog: Iterable[CatalogEntry],
        clock: Clock,
        *,
        cancel_window: timedelta = DEFAULT_CANCEL_WINDOW,
        key_retention: timedelta | None = None,
        seed: int = 0,
        profile: Profile = FULL,
    ) -> None:
        self._catalog = {e.sku: e for e in validate_catalog(catalog)}
        self.clock = clock
        self.faults = Faults()
        self.cancel_window = cancel_window
        self.profile = profile
        if key_retention is None:
            key_retention = profile.key_retention or DEFAULT_KEY_RETENTION
        self.key_retention = key_retention
        # Real seconds an order POST stays in flight before it commits (tests may change it).
        self.commit_delay_s = profile.commit_delay_s
        self.on_delivered: Callable[[RecordedOrder], None] | None = None
        self._rng = random.Random(seed)
        # Its own stream, so switching error_rate on does not change the lead times drawn.
        self._fault_rng = random.Random(seed ^ 0x5EED)
        self._lock = threading.Lock()
        # Reentrant so a delivery hook may move the clock (which ticks again).
        self._notify_lock = threading.RLock()
        self._orders: dict[str, Order] = {}
        self._keys: dict[str, KeyRecord] = {}
        self._rate_window_start = time.monotonic()
        self._rate_count = 0

    # -- catalog -------------------------------------------------------------------

    def _effective(self, sku: str) -> tuple[CatalogEntry, Decimal, bool]:
        entry = self._catalog.get(sku)
        if entry is None:
            raise ApiError(404, "unknown_sku", "no such sku")
        price = self.faults.prices.get(sku, entry.price)
        return entry, price, sku not in self.faults.out_of_stock

    def _substitutes(self, entry: CatalogEntry) -> list[str]:
        if entry.sku in self.faults.out_of_stock:
            sub = self.faults.out_of_stock[entry.sku]
            return [sub] if sub is not None else []
        return list(entry.substitutes)

    def catalog_item(self, sku: str) -> dict[str, Any]:
        """The catalog answer for ``sku`` with current price and availability."""
        with self._lock:
            entry, price, in_stock = self._effective(sku)
            return self.profile.catalog_view({
                "sku": entry.sku,
                "name": entry.name,
                "price": money(price),
                "currency": entry.currency,
                "availability": "in_stock" if in_stock else "out_of_stock",
                "lead_time_days": entry.lead_time_days,
                "lead_time_sd_days": entry.lead_time_sd_days,
                "substitutes": self._substitutes(entry),
                "pack_size": entry.pack_size,
                "unit": entry.unit,
                "free_shipping_threshold": money(entry.free_shipping_threshold),
                "shipping_fee": money(entry.shipping_fee),
            })

    def catalog_skus(self) -> list[str]:
        return sorted(self._catalog)

    # -- faults that gate every public request ---------------------------------------

    def gate(self) -> None:
        """Raise the ApiError an outage, rate limit or random 5xx calls for, if any."""
        now = self.clock.now()
        f = self.faults
        for start, end in f.outages:
            if start <= now < end:
                wait = math.ceil((end - now).total_seconds())
                raise ApiError(503, "unavailable", "vendor outage", retry_after=max(1, wait))
        with self._lock:
            if f.rate_limit is not None:
                mono = time.monotonic()
                if mono - self._rate_window_start >= f.rate_window:
                    self._rate_window_start, self._rate_count = mono, 0
                self._rate_count += 1
                if self._rate_count > f.rate_limit:
                    left = f.rate_window - (mono - self._rate_window_start)
                    raise ApiError(
                        429,
                        "rate_limited",
                        "too many requests",
                        retry_after=max(1, math.ceil(left)),
                    )
            if f.error_rate > 0 and self._fault_rng.random() < f.error_rate:
                raise ApiError(500, "internal", "injected server error")

    # -- orders ----------------------------------------------------------------------

    def begin_order(self, key: str, req: OrderRequest) -> tuple[int, dict[str, Any]] | None:
        """Claim ``key`` for ``req``: the stored response to replay, or None to go ahead.

        Raises 409 while the first request with this key is in flight and 422 when the
        key was used for another body.
        """
        fp = req.fingerprint()
        with self._lock:
            self._prune_keys(self.clock.now())
            rec = self._keys.get(key)
            if rec is None:
                self._keys[key] = KeyRecord(fp, self.clock.now())
                return None
            if rec.fingerprint != fp:
                raise ApiError(422, "idempotency_key_reused", "key was used with another body")
            if rec.response is None:
                raise ApiError(
                    409, "idempotency_in_flight", "first request still in flight", retry_after=1
                )
            return rec.response

    def abandon(self, key: str) -> None:
        """Forget an in-flight key whose request failed before anything was committed."""
        with self._lock:
            rec = self._keys.get(key)
            if rec is not None and rec.response is None:
                del self._keys[key]

    def commit_order(self, key: str, req: OrderRequest) -> tuple[int, dict[str, Any]]:
        """Record the order for a claimed key and store the response replayed later."""
        with self._lock:
            now = self.clock.now()
            try:
                order = self._new_order(key, req, now)
            except ApiError as err:
                response = (err.status, {"error": err.code, "message": str(err)})
            else:
                self._orders[order.id] = order
                response = (201, self._view(order, now))
                log.info("order %s key=%s status=%s", order.id, key, order.status(now))
            self._keys[key].response = response
            return response

    def _new_order(self, key: str, req: OrderRequest, now: datetime) -> Order:
        entry, price, in_stock = self._effective(req.sku)
        reason: str | None = None
        if not in_stock:
            sub = self.faults.out_of_stock.get(req.sku)
            reason = "out_of_stock"
            if sub is not None and req.allow_substitute:
                sub_entry, sub_price, sub_in_stock = self._effective(sub)
                if sub_in_stock:
                    entry, price, reason = sub_entry, sub_price, None
        if reason is None and req.max_unit_price is not None and price > req.max_unit_price:
            reason = "price_above_max"
        goods = price * req.quantity
        shipping = Decimal(0) if goods >= entry.free_shipping_threshold else entry.shipping_fee
        order = Order(
            id=f"ord_{len(self._orders) + 1:06d}",
            key=key,
            req=req,
            entry=entry,
            unit_price=price,
            shipping=shipping,
            created_at=now,
            cancel_until=now + self.cancel_window,
        )
        if reason is not None:
            order.closed, order.closed_at, order.reject_reason = "rejected", now, reason
            return order
        lead = max(MIN_LEAD_DAYS, draw_lead_time(entry, self._rng))
        order.confirmed_at = now + CONFIRM_DELAY
        # Whole seconds keep the timestamps readable in logs and admin listings.
        order.delivered_at = now + timedelta(seconds=round(lead * 86_400))
        order.shipped_at = max(order.confirmed_at, now + timedelta(seconds=round(lead * 43_200)))
        return order

    def get_order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                raise ApiError(404, "not_found", "no such order")
            return self._view(order, self.clock.now())

    def find_orders(
        self, key: str | None = None, client_ref: str | None = None
    ) -> list[dict[str, Any]]:
        """Orders (oldest first) matching the filters; lookup by key outlives key pruning."""
        with self._lock:
            now = self.clock.now()
            return [
                self._view(o, now)
                for o in self._orders.values()
                if (key is None or o.key == key)
                and (client_ref is None or o.req.client_ref == client_ref)
            ]

    def cancel(self, order_id: str) -> dict[str, Any]:
        """Cancel inside the window and before shipping; cancelling twice is a no-op."""
        with self._lock:
            now = self.clock.now()
            order = self._orders.get(order_id)
            if order is None:
                raise ApiError(404, "not_found", "no such order")
            status = order.status(now)
            if status == "cancelled":
                return self._view(order, now)
            if status not in ("pending", "confirmed"):
                raise ApiError(409, "not_cancellable", f"order is {status}")
            if now >= order.cancel_until:
                raise ApiError(409, "cancel_window_closed", "the cancel window has closed")
            order.closed, order.closed_at = "cancelled", now
            log.info("order %s cancelled", order.id)
            return self._view(order, now)

    def _view(self, order: Order, now: datetime) -> dict[str, Any]:
        return self.profile.order_view(order.to_json(now))

    def orders(self) -> list[RecordedOrder]:
        """Every order ever recorded, oldest first (tests count these)."""
        with self._lock:
            now = self.clock.now()
            return [o.snapshot(now) for o in self._orders.values()]

    # -- time --------------------------------------------------------------------------

    def _sim_clock(self) -> SimClock:
        if not isinstance(self.clock, SimClock):
            raise ApiError(409, "clock_external", "the clock is driven from outside")
        return self.clock

    def advance(self, delta: timedelta) -> list[RecordedOrder]:
        """Move the simulated clock forward and report what got delivered meanwhile."""
        self._sim_clock().advance(delta)
        return self.tick()

    def set_time(self, when: datetime) -> list[RecordedOrder]:
        """Jump the simulated clock to ``when`` and report what got delivered meanwhile."""
        self._sim_clock().set(when)
        return self.tick()

    def _prune_keys(self, now: datetime) -> None:
        cutoff = now - self.key_retention
        for key in [k for k, r in self._keys.items() if r.response and r.created_at <= cutoff]:
            del self._keys[key]

    def tick(self) -> list[RecordedOrder]:
        """Catch up with the clock: prune keys, report deliveries to ``on_delivered``.

        Test orders are never fulfilled, so they do not reach the callback. Returns the
        orders delivered by this call.
        """
        with self._notify_lock:
            return self._tick()

    def _tick(self) -> list[RecordedOrder]:
        with self._lock:
            now = self.clock.now()
            self._prune_keys(now)
            due = [
                o
                for o in self._orders.values()
                if not o.notified and not o.req.test and o.status(now) == "delivered"
            ]
            for o in due:
                o.notified = True
            delivered = [o.snapshot(now) for o in sorted(due, key=lambda o: o.delivered_at or now)]
        callback = self.on_delivered
        for snap in delivered:
            if callback is not None:
                try:
                    callback(snap)
                except Exception:
                    # A broken household hook must not take the vendor down with it.
                    log.exception("on_delivered failed for %s", snap.id)
        return delivered


def draw_lead_time(entry: CatalogEntry, rng: random.Random) -> float:
    """Lead time in days: lognormal with the entry's mean and sd (as the household model)."""
    mean, sd = entry.lead_time_days, entry.lead_time_sd_days
    if sd <= 0:
        return mean
    sigma2 = math.log(1 + (sd / mean) ** 2)
    return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
