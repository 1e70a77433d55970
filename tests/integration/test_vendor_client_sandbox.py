"""agent.vendor.client.VendorClient against the real sandbox over HTTP: each fault knob with the
outcome the outbox dispatcher relies on, and reconciliation by key."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from agent.errors import VendorFinal, VendorRetryable
from agent.vendor.client import Availability, Order, OrderRequest, OrderStatus, VendorClient
from firmware_sim.vendor import VendorSandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "client-canary-4d1e8b"
TONER = OrderRequest(sku="TN-2420", quantity=1, max_unit_price=Decimal("70.00"))


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    with VendorSandbox(token=TOKEN, seed=3) as sb:
        yield sb


@pytest.fixture
def client(sandbox: VendorSandbox) -> Iterator[VendorClient]:
    with VendorClient(sandbox.url, TOKEN, timeout=2.0, deadline_s=3.0) as c:
        yield c


def reconcile_then_place(client: VendorClient, request: OrderRequest, key: str) -> Order:
    """What the dispatcher does after an unknown outcome: look up by key, else resend."""
    return client.find_by_key(key) or client.place_order(request, key)


def test_order_round_trip(sandbox: VendorSandbox, client: VendorClient) -> None:
    item = client.catalog("TN-2420")
    assert item.price == Decimal("64.90") and item.availability is Availability.IN_STOCK
    order = client.place_order(TONER, "intent-1")
    assert order.status is OrderStatus.PENDING and not order.replayed
    assert order.unit_price == item.price and order.idempotency_key == "intent-1"
    replay = client.place_order(TONER, "intent-1")
    assert replay.replayed and replay.id == order.id
    assert client.get_order(order.id).status is OrderStatus.PENDING
    found = client.find_by_key("intent-1")
    assert found is not None and found.id == order.id
    assert client.find_by_key("intent-unknown") is None
    assert client.cancel(order.id).status is OrderStatus.CANCELLED
    assert [o.status for o in sandbox.orders()] == ["cancelled"]


def test_status_followed_until_delivery(sandbox: VendorSandbox, client: VendorClient) -> None:
    order = client.place_order(TONER, "intent-1")
    assert order.expected_delivery is not None
    sandbox.advance(timedelta(minutes=20))
    assert client.get_order(order.id).status is OrderStatus.CONFIRMED
    sandbox.advance(timedelta(days=10))
    done = client.get_order(order.id)
    assert done.status is OrderStatus.DELIVERED and done.status.is_final
    assert [h.status for h in done.history][-1] is OrderStatus.DELIVERED
    assert done.history[-1].at == order.expected_delivery


def test_wrong_token_is_final_and_not_leaked(sandbox: VendorSandbox) -> None:
    with VendorClient(sandbox.url, "wrong-" + TOKEN) as bad:
        with pytest.raises(VendorFinal) as info:
            bad.catalog("TN-2420")
    assert info.value.status == 401
    assert TOKEN not in str(info.value)


def test_unknown_sku_is_final(client: VendorClient) -> None:
    with pytest.raises(VendorFinal) as info:
        client.catalog("NOPE-1")
    assert info.value.status == 404


def test_reused_key_with_another_body_is_final(client: VendorClient) -> None:
    client.place_order(TONER, "intent-1")
    with pytest.raises(VendorFinal) as info:
        client.place_order(OrderRequest(sku="TN-2420", quantity=2), "intent-1")
    assert info.value.status == 422


def test_5xx_is_retryable_and_nothing_was_ordered(
    sandbox: VendorSandbox, client: VendorClient
) -> None:
    sandbox.faults.error_rate = 1.0
    with pytest.raises(VendorRetryable) as info:
        client.place_order(TONER, "intent-1")
    assert info.value.status == 500
    sandbox.faults.error_rate = 0.0
    assert client.find_by_key("intent-1") is None
    assert not reconcile_then_place(client, TONER, "intent-1").replayed
    assert len(sandbox.orders()) == 1


def test_commit_then_500_is_retryable_and_the_order_is_found_by_key(
    sandbox: VendorSandbox, client: VendorClient
) -> None:
    sandbox.faults.commit_then_500 = True
    with pytest.raises(VendorRetryable) as info:
        client.place_order(TONER, "intent-1")
    assert info.value.status == 500
    found = client.find_by_key("intent-1")
    assert found is not None and found.status is OrderStatus.PENDING
    # A resend with the same key (even while the fault is on) replays, never duplicates.
    again = client.place_order(TONER, "intent-1")
    assert again.replayed and again.id == found.id
    assert len(sandbox.orders()) == 1


@pytest.mark.parametrize("drip_s", [20.0, 4000.0], ids=["drip", "stall-between-bytes"])
def test_drip_is_retryable_within_the_deadline(sandbox: VendorSandbox, drip_s: float) -> None:
    # 20 s: bytes keep coming (the read loop's check ends it); 4000 s: ~8 s between bytes,
    # longer than the 5 s read timeout (only the hard deadline can end it in time).
    sandbox.faults.slow_drip = drip_s
    with VendorClient(sandbox.url, TOKEN, timeout=5.0, deadline_s=0.5) as c:
        started = time.monotonic()
        with pytest.raises(VendorRetryable, match="deadline"):
            c.place_order(TONER, "intent-1")
        # Ended by the 0.5 s deadline, well before the drip or a 5 s read timeout would.
        assert time.monotonic() - started < 4.5
        sandbox.faults.slow_drip = 0.0
        found = c.find_by_key("intent-1")
    assert found is not None  # the order was committed before the body started dripping
    assert len(sandbox.orders()) == 1


def test_429_is_retryable_with_retry_after(sandbox: VendorSandbox, client: VendorClient) -> None:
    sandbox.faults.rate_limit = 0
    sandbox.faults.rate_window = 30.0
    with pytest.raises(VendorRetryable) as info:
        client.place_order(TONER, "intent-1")
    assert info.value.status == 429
    assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 30
    assert sandbox.orders() == []


def test_outage_is_retryable_with_retry_after(sandbox: VendorSandbox, client: VendorClient) -> None:
    now = sandbox.now()
    sandbox.faults.outages.append((now, now + timedelta(minutes=10)))
    with pytest.raises(VendorRetryable) as info:
        client.catalog("TN-2420")
    assert (info.value.status, info.value.retry_after) == (503, 600.0)
    sandbox.advance(timedelta(minutes=10))
    assert client.catalog("TN-2420").sku == "TN-2420"


def test_in_flight_409_is_retryable(sandbox: VendorSandbox) -> None:
    sandbox.faults.latency = 0.5  # the first request holds the key in flight this long
    barrier = threading.Barrier(2)
    outcomes: list[Order | VendorRetryable] = []

    def attempt() -> None:
        with VendorClient(sandbox.url, TOKEN, deadline_s=5.0) as c:
            barrier.wait()
            try:
                outcomes.append(c.place_order(TONER, "intent-1"))
            except VendorRetryable as err:
                outcomes.append(err)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    orders = [o for o in outcomes if isinstance(o, Order)]
    conflicts = [o for o in outcomes if isinstance(o, VendorRetryable)]
    assert len(orders) == 1 and len(conflicts) == 1
    assert (conflicts[0].status, conflicts[0].retry_after) == (409, 1.0)
    sandbox.faults.latency = 0.0
    with VendorClient(sandbox.url, TOKEN) as c:
        assert c.place_order(TONER, "intent-1").replayed  # the retry after the back-off
    assert len(sandbox.orders()) == 1


def test_timeout_is_retryable(sandbox: VendorSandbox) -> None:
    sandbox.faults.latency = 3.0
    with VendorClient(sandbox.url, TOKEN, timeout=0.3, deadline_s=5.0) as c:
        with pytest.raises(VendorRetryable, match="timed out"):
            c.catalog("TN-2420")


def test_connection_refused_is_retryable() -> None:
    sb = VendorSandbox(token=TOKEN).start()
    url = sb.url
    sb.stop()
    with VendorClient(url, TOKEN, deadline_s=3.0) as c:
        with pytest.raises(VendorRetryable, match="ConnectError"):
            c.catalog("TN-2420")


def test_price_change_is_visible_and_caps_the_order(
    sandbox: VendorSandbox, client: VendorClient
) -> None:
    sandbox.faults.prices["TN-2420"] = Decimal("74.90")
    assert client.catalog("TN-2420").price == Decimal("74.90")
    order = client.place_order(TONER, "intent-1")  # max_unit_price 70.00
    assert order.status is OrderStatus.REJECTED and order.reject_reason == "price_above_max"


def test_out_of_stock_offers_a_substitute(sandbox: VendorSandbox, client: VendorClient) -> None:
    sandbox.faults.out_of_stock["TN-2420"] = "TN-2410"
    item = client.catalog("TN-2420")
    assert item.availability is Availability.OUT_OF_STOCK and item.substitutes == ("TN-2410",)
    assert client.place_order(TONER, "intent-1").reject_reason == "out_of_stock"
    sub = client.catalog(item.substitutes[0])
    assert sub.availability is Availability.IN_STOCK
    order = client.place_order(
        OrderRequest(sku="TN-2420", quantity=1, max_unit_price=sub.price, allow_substitute=True),
        "intent-2",
    )
    assert (order.status, order.sku, order.requested_sku) == (
        OrderStatus.PENDING,
        "TN-2410",
        "TN-2420",
    )


def test_cancel_after_window_is_final(sandbox: VendorSandbox, client: VendorClient) -> None:
    order = client.place_order(OrderRequest(sku="DR-3400", quantity=1), "intent-1")
    sandbox.advance(timedelta(hours=24, seconds=1))
    with pytest.raises(VendorFinal, match="cancel_window_closed|not_cancellable") as info:
        client.cancel(order.id)
    assert info.value.status == 409


def test_after_a_long_outage_lookup_prevents_the_duplicate(
    sandbox: VendorSandbox, client: VendorClient
) -> None:
    sandbox.faults.commit_then_500 = True
    with pytest.raises(VendorRetryable):
        client.place_order(TONER, "intent-1")
    sandbox.faults.commit_then_500 = False
    sandbox.advance(timedelta(days=3))  # the agent was offline; the vendor pruned the key
    order = reconcile_then_place(client, TONER, "intent-1")
    assert not order.replayed and order.status is OrderStatus.DELIVERED
    assert len(sandbox.orders()) == 1
    # The control: resending blindly after the pruning does order twice.
    client.place_order(TONER, "intent-1")
    assert len(sandbox.orders()) == 2


def test_test_mode_orders_are_marked(sandbox: VendorSandbox, client: VendorClient) -> None:
    order = client.place_order(OrderRequest(sku="EGGS-10", quantity=1, test=True), "t-1")
    assert order.test
    assert [o.test for o in sandbox.orders()] == [True]


def test_no_token_in_logs_across_a_faulty_session(
    sandbox: VendorSandbox, client: VendorClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.place_order(TONER, "intent-1")
    for knob, value in (("error_rate", 1.0), ("commit_then_500", True), ("rate_limit", 0)):
        setattr(sandbox.faults, knob, value)
        with pytest.raises(VendorRetryable) as info:
            client.place_order(TONER, f"intent-{knob}")
        assert TOKEN not in str(info.value)
        sandbox.faults.reset()
    assert "vendor.call order_id=" in caplog.text  # the call lines were captured...
    assert "outcome=retryable" in caplog.text
    assert TOKEN not in caplog.text  # ...without the token
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("agent.")]
    assert ours and not [m for m in ours if "intent-1" in m]  # nor the key (a header)
