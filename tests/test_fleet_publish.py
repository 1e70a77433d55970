"""What the agent publishes on the fleet topics, and when (agent.app.fleet)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from agent.app.fleet import HEALTH_EVERY, HEALTH_TOPIC, FleetPublisher
from agent.consent import Mode
from agent.storage.ledger import Intent, State

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def intent(id_: int, state: State, created: datetime = NOW) -> Intent:
    return Intent(
        id=id_, consumable="printer-1/toner", vendor="sandbox", sku="TN-2410", name="Toner",
        quantity=1, pack_size=1, unit_price=Decimal("39.90"), currency="EUR", mode=Mode.AUTO,
        state=state, idem_key="secret-idem-key", audit_id=1, reason="level 4% CANARY",
        created_at=created, send_after=None, next_attempt_at=None, attempts=0,
        first_sent_at=None, last_sent_at=None, order_id=None, order_status=None, total=None,
        cancel_until=None, expected_delivery=None, delivered_at=None)


class Book:
    def __init__(self, *intents: Intent) -> None:
        self.rows = list(intents)

    def intents(self) -> list[Intent]:
        return self.rows


def publisher() -> tuple[FleetPublisher, list[tuple[str, bytes, bool, int]]]:
    sent: list[tuple[str, bytes, bool, int]] = []
    return FleetPublisher(lambda *m: sent.append(m), "simulated"), sent


def test_orders_go_out_retained_when_they_change_without_key_or_reason() -> None:
    fleet, sent = publisher()
    book = Book(intent(1, State.QUEUED))
    assert fleet.orders(book, NOW) == 1  # type: ignore[arg-type]
    topic, payload, retain, qos = sent[0]
    assert topic == "replenish/v1/fleet/orders/1" and retain and qos == 1
    body = json.loads(payload)
    assert body["state"] == "queued" and body["sku"] == "TN-2410"
    assert b"secret-idem-key" not in payload and b"CANARY" not in payload
    assert fleet.orders(book, NOW) == 0  # unchanged: not repeated
    book.rows = [replace(book.rows[0], state=State.PLACED, order_id="ord-9")]
    assert fleet.orders(book, NOW) == 1  # type: ignore[arg-type]
    assert json.loads(sent[-1][1])["order_id"] == "ord-9"


def test_after_a_restart_only_open_and_recent_orders_go_out_again() -> None:
    fleet, sent = publisher()
    old = NOW - timedelta(days=30)
    book = Book(intent(1, State.DELIVERED, old), intent(2, State.PLACED, old),
                intent(3, State.CANCELLED, NOW - timedelta(days=1)))
    assert fleet.orders(book, NOW) == 2  # type: ignore[arg-type]
    assert sorted(t for t, *_ in sent) == ["replenish/v1/fleet/orders/2",
                                           "replenish/v1/fleet/orders/3"]


def test_health_on_change_or_every_five_minutes() -> None:
    fleet, sent = publisher()
    facts = {"ready": True, "open_orders": 1}
    assert fleet.health(NOW, facts)
    assert not fleet.health(NOW + timedelta(seconds=30), dict(facts))
    assert fleet.health(NOW + timedelta(seconds=31), {**facts, "open_orders": 2})
    assert fleet.health(NOW + timedelta(seconds=31) + HEALTH_EVERY, {**facts, "open_orders": 2})
    assert [t for t, *_ in sent] == [HEALTH_TOPIC] * 3
    body = json.loads(sent[0][1])
    assert body["clock"] == "simulated" and body["version"] and "level" not in body
