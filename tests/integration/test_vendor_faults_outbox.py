"""Every fault knob of the vendor sandbox, through the dispatcher, over real HTTP.

The dispatcher runs on the sandbox's simulated clock; each pass is one ``run_once``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from agent.app.dispatcher import Dispatcher
from agent.consent import Mandate, Mode, Proposal
from agent.errors import ConsentError
from agent.storage.ledger import Intent, Ledger, State
from agent.vendor.client import Order, OrderRequest, VendorClient
from firmware_sim.vendor import VendorSandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "faults-token"
CID = "printer-1/black"
SKU = "TN-2420"
STEP = timedelta(minutes=1)


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    with VendorSandbox(token=TOKEN) as running:
        yield running


@pytest.fixture
def client(sandbox: VendorSandbox) -> Iterator[VendorClient]:
    with VendorClient(sandbox.url, TOKEN, timeout=1.0, deadline_s=1.5) as c:
        yield c


def make(ledger: Ledger, vendor: Any) -> Dispatcher:
    return Dispatcher(ledger, vendor, vendor_name="sandbox", settle=timedelta(0),
                      backoff=lambda attempt, after: max(after or 0.0, 30.0))


def announce(ledger: Ledger, now: datetime, qty: int = 1, max_price: str = "70") -> Intent:
    ledger.set_consent(CID, Mode.AUTO, Mandate(skus=(SKU,), max_unit_price=Decimal(max_price),
                                               monthly_budget=Decimal("1000")), now)
    prop = Proposal(CID, "sandbox", SKU, qty, 1, Decimal("64.90"), "Toner TN-2420")
    return ledger.create_intent(prop, Mode.AUTO, State.QUEUED, now, send_after=now)


def drive(dispatcher: Dispatcher, sandbox: VendorSandbox, passes: int = 20) -> None:
    """Run passes, moving simulated time a minute each, until nothing is in flight."""
    for _ in range(passes):
        dispatcher.run_once(sandbox.now())
        if not dispatcher.ledger.intents([State.QUEUED, State.SENDING]):
            return
        sandbox.advance(STEP)


class FaultBeforePost:
    """Catalog goes through; a fault is switched on just before the order POST."""

    def __init__(self, client: VendorClient, switch_on: Any) -> None:
        self.client, self.switch_on = client, switch_on

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def place_order(self, request: OrderRequest, idempotency_key: str, *,
                    attempt: int | None = None) -> Order:
        self.switch_on()
        return self.client.place_order(request, idempotency_key, attempt=attempt)


def test_random_5xx_ends_with_one_order_per_intent(
        sandbox: VendorSandbox, ledger: Ledger, client: VendorClient) -> None:
    sandbox.faults.error_rate = 0.5
    intents = [announce(ledger, sandbox.now()) for _ in range(5)]
    drive(make(ledger, client), sandbox, passes=60)
    assert [ledger.intent(i.id).state for i in intents] == [State.PLACED] * 5
    assert sorted(o.client_ref or "" for o in sandbox.orders()) == sorted(
        f"intent-{i.id}" for i in intents)


def test_commit_then_500_is_found_by_key_not_resent(
        sandbox: VendorSandbox, ledger: Ledger, client: VendorClient) -> None:
    it = announce(ledger, sandbox.now())
    sandbox.faults.commit_then_500 = True
    dispatcher = make(ledger, client)
    dispatcher.run_once(sandbox.now())
    assert ledger.intent(it.id).state is State.SENDING
    sandbox.advance(STEP)
    dispatcher.run_once(sandbox.now())
    assert ledger.intent(it.id).state is State.PLACED
    assert len(sandbox.orders()) == 1 and ledger.intent(it.id).attempts == 1


def test_lookup_by_key_after_offline_longer_than_key_retention(
        sandbox: VendorSandbox, ledger: Ledger, client: VendorClient) -> None:
    it = announce(ledger, sandbox.now())
    sandbox.faults.commit_then_500 = True
    dispatcher = make(ledger, client)
    dispatcher.run_once(sandbox.now())
    sandbox.faults.commit_then_500 = False
    sandbox.advance(timedelta(hours=30))  # the vendor has pruned the key by now
    dispatcher.run_once(sandbox.now())
    assert ledger.intent(it.id).state is State.PLACED
    assert len(sandbox.orders()) == 1


def test_slow_drip_hits_the_deadline_then_reconciles(
        sandbox: VendorSandbox, ledger: Ledger, client: VendorClient) -> None:
    it = announce(ledger, sandbox.now())

    def drip() -> None:
        sandbox.faults.slow_drip = 5.0

    dispatcher = make(ledger, FaultBeforePost(client, drip))
    report = dispatcher.run_once(sandbox.now())  # returns at the 1.5 s deadline, not 5 s
    assert report.retries == 1 and ledger.intent(it.id).state is State.SENDING
    sandbox.faults.slow_drip = 0.0
    sandbox.advance(STEP)
    dispatcher.run_once(sandbox.now())
    assert ledger.intent(it.id).state is State.PLACED
    assert len(sandbox.orders()) == 1


def test_429_retry_after_is_a_floor(sandbox: VendorSandbox, ledger: Ledger,
                                    client: VendorClient) -> None:
    it = announce(ledger, sandbox.now())
    sandbox.faults.rate_limit, sandbox.faults.rate_window = 0, 90.0
    dispatcher = Dispatcher(ledger, client, settle=timedelta(0),
                            backoff=lambda attempt, after: after or 0.5)
    t = sandbox.now()
    assert dispatcher.run_once(t).retries == 1
    retry_at = ledger.intent(it.id).next_attempt_at
    assert retry_at is not None and retry_at >= t + timedelta(seconds=89)
    sandbox.faults.rate_limit = None
    dispatcher.run_once(t + timedelta(seconds=30))
    assert ledger.intent(it.id).state is State.QUEUED  # still waiting as told
    dispatcher.run_once(retry_at)
    assert ledger.intent(it.id).state is State.PLACED


def test_outage_waits_it_out(sandbox: VendorSandbox, ledger: Ledger,
                             client: VendorClient) -> None:
    it = announce(ledger, sandbox.now())
    start = sandbox.now()
    sandbox.faults.outages = [(start, start + timedelta(hours=2))]
    dispatcher = Dispatcher(ledger, client, settle=timedelta(0),
                            backoff=lambda attempt, after: after or 1.0)
    dispatcher.run_once(start)
    retry_at = ledger.intent(it.id).next_attempt_at
    assert retry_at is not None and retry_at >= start + timedelta(hours=2)
    sandbox.set_time(retry_at)
    dispatcher.run_once(retry_at)
    assert ledger.intent(it.id).state is State.PLACED and len(sandbox.orders()) == 1


def test_price_above_mandate_becomes_a_proposal(sandbox: VendorSandbox, ledger: Ledger,
                                                client: VendorClient) -> None:
    it = announce(ledger, sandbox.now(), max_price="65")
    sandbox.faults.prices[SKU] = Decimal("69.90")
    make(ledger, client).run_once(sandbox.now())
    shown = ledger.intent(it.id)
    assert shown.state is State.PROPOSED and shown.unit_price == Decimal("69.90")
    assert sandbox.orders() == []


def test_price_rise_between_check_and_post_is_refused_by_the_vendor(
        sandbox: VendorSandbox, ledger: Ledger, client: VendorClient) -> None:
    it = announce(ledger, sandbox.now())

    def rise() -> None:
        sandbox.faults.prices[SKU] = Decimal("66.00")  # still within the 70 mandate

    make(ledger, FaultBeforePost(client, rise)).run_once(sandbox.now())
    assert ledger.intent(it.id).state is State.REJECTED
    assert [o.status for o in sandbox.orders()] == ["rejected"]


def test_substitute_is_proposed_then_ordered_once_approved(
        sandbox: VendorSandbox, ledger: Ledger, client: VendorClient) -> None:
    it = announce(ledger, sandbox.now())
    sandbox.faults.out_of_stock[SKU] = "TN-2410"
    dispatcher = make(ledger, client)
    dispatcher.run_once(sandbox.now())
    shown = ledger.intent(it.id)
    assert shown.state is State.PROPOSED
    assert (shown.sku, shown.unit_price) == ("TN-2410", Decimal("39.90"))
    assert sandbox.orders() == []
    ledger.approve(it.id, sandbox.now())
    dispatcher.run_once(sandbox.now())
    assert [(o.sku, o.unit_price) for o in sandbox.orders()] == [("TN-2410", Decimal("39.90"))]


def test_followed_until_delivered_and_cancel_window(
        sandbox: VendorSandbox, ledger: Ledger, client: VendorClient) -> None:
    dispatcher = make(ledger, client)
    kept = announce(ledger, sandbox.now())
    dropped = announce(ledger, sandbox.now())
    dispatcher.run_once(sandbox.now())
    assert dispatcher.cancel(dropped.id, sandbox.now()).state is State.CANCELLED
    assert ledger.expected_deliveries(CID)[0][0] > sandbox.now()
    sandbox.advance(timedelta(days=6))
    with pytest.raises(ConsentError, match="refused to cancel"):
        dispatcher.cancel(kept.id, sandbox.now())
    dispatcher.run_once(sandbox.now())
    done = ledger.intent(kept.id)
    assert done.state is State.DELIVERED and done.delivered_at is not None
    assert [o.status for o in sandbox.orders()] == ["delivered", "cancelled"]
