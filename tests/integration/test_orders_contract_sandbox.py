"""Issue 15 over real HTTP: a POST the sandbox holds past the client's deadline, while the
household edits its mandate, is found by key once the vendor commits it, never taken for
"not ordered" and never ordered twice (the sandbox's ``latency`` fault holds the POST)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from agent.app.dispatcher import Dispatcher
from agent.consent import Mandate, Mode, Proposal
from agent.storage.ledger import Ledger, State
from agent.vendor.client import Order, OrderRequest, VendorClient
from firmware_sim.vendor import VendorSandbox
from tests.integration.conftest import wait_until

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
