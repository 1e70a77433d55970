"""The agent's own fleet topics: its orders and its health, for a vendor's bridge.

``broker_config/bridge.conf.template`` carries ``replenish/v1/fleet/orders/#`` and
``replenish/v1/fleet/health`` (and nothing else) to the vendor's broker. What goes there
is chosen here field by field: an order's identity, terms and vendor state; the agent's
version, clock and counts. No reading, device payload, idempotency key or secret.

Orders are retained (the vendor side sees each order's latest state after a reconnect)
and published only when they change; after a restart every open order and those that
changed in the last week go out again once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from agent import __version__
from agent.domain import JsonObject
from agent.storage.ledger import OPEN, Intent, Ledger
from agent.storage.store import Store

log = logging.getLogger(__name__)

ORDERS_TOPIC = "replenish/v1/fleet/orders/{id}"
HEALTH_TOPIC = "replenish/v1/fleet/health"
REPUBLISH_WINDOW = timedelta(days=7)
# Health goes out when a fact changes, else this often: a vendor's broker carries
# every gateway's, so an unchanged summary is not repeated each pass.
HEALTH_EVERY = timedelta(minutes=5)

Publish = Callable[[str, bytes, bool, int], None]


def order_view(it: Intent) -> JsonObject:
    """What the vendor's fleet sees of one order (no key, no reason text)."""

    def iso(when: datetime | None) -> str | None:
        return when.isoformat() if when is not None else None

    return {
        "intent": it.id, "consumable": it.consumable, "vendor": it.vendor, "sku": it.sku,
        "quantity": it.quantity, "unit_price": str(it.unit_price), "currency": it.currency,
        "mode": it.mode.value, "state": it.state.value, "order_id": it.order_id,
        "order_status": it.order_status,
        "total": str(it.total) if it.total is not None else None,
        "created_at": iso(it.created_at), "first_sent_at": iso(it.first_sent_at),
        "expected_delivery": iso(it.expected_delivery), "delivered_at": iso(it.delivered_at),
        "decided_by": it.decided_by.value if it.decided_by is not None else None,
    }


class FleetPublisher:
    """Publishes changed orders and the health summary on the fleet topics."""

    def __init__(self, publish: Publish, clock_kind: str) -> None:
        self._publish = publish
        self.clock_kind = clock_kind  # "system" or "simulated"
        self._sent: dict[int, str] = {}  # intent id -> fingerprint last published
        self._started = False
        self._health: tuple[JsonObject, datetime] | None = None

    def orders(self, ledger: Ledger, now: datetime) -> int:
        """Publish every order whose fleet view changed; returns how many went out."""
        sent = 0
        for it in ledger.intents():
            view = order_view(it)
            fingerprint = json.dumps(view, sort_keys=True)
            if self._sent.get(it.id) == fingerprint:
                continue
            if not self._started and not self._worth_republishing(it, now):
                self._sent[it.id] = fingerprint
                continue
            self._publish(ORDERS_TOPIC.format(id=it.id),
                          json.dumps(view, separators=(",", ":")).encode(), True, 1)
            self._sent[it.id] = fingerprint
            sent += 1
        self._started = True
        if sent:
            log.info("fleet.orders published=%d", sent)
        return sent

    @staticmethod
    def _worth_republishing(it: Intent, now: datetime) -> bool:
        changed = max(t for t in (it.created_at, it.last_sent_at, it.delivered_at) if t)
        return it.state in OPEN or now - changed <= REPUBLISH_WINDOW

    def health(self, now: datetime, facts: JsonObject) -> bool:
        """The health summary (retained): version, clock, counts, faults; True if sent."""
        if self._health is not None:
            last, at = self._health
            if last == facts and timedelta(0) <= now - at < HEALTH_EVERY:
                return False
        self._health = (dict(facts), now)
        body = {"version": __version__, "at": now.isoformat(), "clock": self.clock_kind,
                **facts}
        self._publish(HEALTH_TOPIC, json.dumps(body, separators=(",", ":")).encode(), True, 1)
        return True


def fleet_pass(fleet: FleetPublisher, ledger: Callable[[], AbstractContextManager[Ledger]],
               store: Callable[[], Store], now: datetime, *, connected: bool,
               ordering: bool, ingest_fault: str | None) -> None:
    """One fleet pass: changed orders, then the health summary (counts, never readings)."""
    with ledger() as book:
        fleet.orders(book, now)
        open_orders = len(book.intents(OPEN))
    with store() as db:
        devices = len(db.devices())
    fleet.health(now, {"ready": True, "broker": "connected" if connected else "disconnected",
                       "ordering": "on" if ordering else "off", "devices": devices,
                       "open_orders": open_orders, "ingest_fault": ingest_fault})
