"""Issue 15 over real HTTP against the vendor sandbox.

A POST the sandbox holds past the client's deadline, while the household edits its
mandate, is found by key once the vendor commits it, never taken for "not ordered" and
never ordered twice (the ``latency`` fault holds the POST). And the planner and the
dispatcher together, against a vendor that leaves every optional order field out and
fails a third of its calls, keep one live order per consumable need.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agent.app.dispatcher import Dispatcher
from agent.app.planner import Planner
from agent.consent import Mandate, Mode, Proposal
from agent.domain import DeviceKind, Unit
from agent.storage.ledger import Ledger, State
from agent.storage.store import Store
from agent.vendor.client import Order, OrderRequest, VendorClient
from agent.wire.device import Consumable, StateMessage
from firmware_sim.vendor import VendorSandbox
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "contract-token"
CID = "printer-1/black"
SKU = "TN-2420"


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    with VendorSandbox(token=TOKEN) as running:
        yield running


class HoldThePost:
    """The catalog answers at once; the order POST is held ``seconds`` at the vendor."""

    def __init__(self, client: VendorClient, sandbox: VendorSandbox, seconds: float) -> None:
        self.client, self.sandbox, self.seconds = client, sandbox, seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def place_order(self, request: OrderRequest, idempotency_key: str, *,
                    attempt: int | None = None) -> Order:
        self.sandbox.faults.latency = self.seconds  # read once, when the POST arrives
        try:
            return self.client.place_order(request, idempotency_key, attempt=attempt)
        finally:
            self.sandbox.faults.latency = 0.0


def mandate(max_price: str) -> Mandate:
    return Mandate(skus=(SKU,), max_unit_price=Decimal(max_price),
                   monthly_budget=Decimal("1000"))


def test_held_post_committed_after_a_mandate_edit_is_found_not_reordered(
        sandbox: VendorSandbox, ledger: Ledger) -> None:
    now = sandbox.now()
    ledger.set_consent(CID, Mode.AUTO, mandate("70"), now)
    it = ledger.create_intent(Proposal(CID, "sandbox", SKU, 1, 1, Decimal("64.90"), "Toner"),
                              Mode.AUTO, State.QUEUED, now, send_after=now)
    with VendorClient(sandbox.url, TOKEN, timeout=1.0, deadline_s=1.0) as client:
        dispatcher = Dispatcher(ledger, HoldThePost(client, sandbox, 3.0),
                                vendor_name="sandbox", settle=timedelta(0),
                                backoff=lambda attempt, after: 30.0)
        dispatcher.run_once(now)  # the client gives up at 1 s; the vendor holds the POST
        assert ledger.intent(it.id).state is State.SENDING
        assert sandbox.orders() == []
        ledger.set_consent(CID, Mode.AUTO, mandate("68"), now)  # the household edits
        # Past the retry time, the lookup is empty: the POST is still in flight.
        dispatcher.run_once(now + timedelta(minutes=1))
        assert ledger.intent(it.id).state is State.SENDING
        assert ledger.intent(it.id).attempts == 1  # the edited mandate forbids a resend
        assert sandbox.orders() == []
        wait_until(lambda: len(sandbox.orders()) == 1, timeout=10.0)  # committed late
        for minute in range(2, 10):
            dispatcher.run_once(now + timedelta(minutes=minute))
        placed = ledger.intent(it.id)
    assert placed.state is State.PLACED
    assert [o.idempotency_key for o in sandbox.orders()] == [it.idem_key]


class LeavesOptionalFieldsOut:
    """A vendor that, as the spec allows, gives no dates and no history (yet)."""

    def __init__(self, client: VendorClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    @staticmethod
    def _strip(order: Order) -> Order:
        return order.model_copy(update={"expected_delivery": None, "cancel_until": None,
                                        "history": ()})

    def place_order(self, request: OrderRequest, idempotency_key: str, *,
                    attempt: int | None = None) -> Order:
        return self._strip(self.client.place_order(request, idempotency_key,
                                                   attempt=attempt))

    def get_order(self, order_id: str) -> Order:
        return self._strip(self.client.get_order(order_id))

    def find_by_key(self, idempotency_key: str) -> Order | None:
        found = self.client.find_by_key(idempotency_key)
        return None if found is None else self._strip(found)


TONERS = {"black": "TN-2420", "cyan": "TN-2410"}


def low_printer(store: Store, now: datetime) -> None:
    """30 days of two toners falling 3 % a day, both at 4 % now: both need an order."""
    store.write_batch([StateMessage(
        device_id="printer-1", seq=day, ts=now - timedelta(days=30 - day),
        kind=DeviceKind.PRINTER,
        consumables=[Consumable(id=cid, level=4.0 + 3.0 * (30 - day), unit=Unit.PERCENT,
                                capacity=100, sku=sku) for cid, sku in TONERS.items()])
        for day in range(31)], received_at=now.timestamp())


def test_one_live_order_per_consumable_need_without_optional_fields(
        sandbox: VendorSandbox, tmp_path: Path) -> None:
    now = sandbox.now()
    store = Store(tmp_path / "agent.db")
    ledger = Ledger.open(tmp_path / "agent.db")
    low_printer(store, now)
    for cid, sku in TONERS.items():
        ledger.set_consent(f"printer-1/{cid}", Mode.AUTO, Mandate(
            skus=(sku,), max_unit_price=Decimal("70"), max_quantity=1,
            monthly_budget=Decimal("1000")), now)
    sandbox.faults.error_rate = 0.3
    worst: Counter[str] = Counter()
    with VendorClient(sandbox.url, TOKEN, timeout=1.0, deadline_s=2.0) as client:
        vendor = LeavesOptionalFieldsOut(client)
        planner = Planner(store, ledger, client.catalog, vendor_name="sandbox",
                          pre_notice=timedelta(0))
        dispatcher = Dispatcher(ledger, vendor, vendor_name="sandbox", settle=timedelta(0),
                                backoff=lambda attempt, after: 30.0)
        for _ in range(40):  # a decision and a dispatch pass each simulated minute
            t = sandbox.now()
            planner.run_once(t)
            dispatcher.run_once(t)
            live = Counter(ledger.intent(int(o.client_ref.removeprefix("intent-"))).consumable
                           for o in sandbox.orders()
                           if o.client_ref and o.status not in ("cancelled", "rejected"))
            worst |= live
            sandbox.advance(timedelta(minutes=1))
    states = {it.consumable: it.state for it in ledger.intents()}
    ledger.close()
    store.close()
    assert dict(worst) == {f"printer-1/{c}": 1 for c in TONERS}, worst
    assert set(states.values()) == {State.PLACED}, states
