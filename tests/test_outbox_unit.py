"""The outbox dispatcher against an in-memory vendor behind ``httpx.MockTransport``."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from agent.app.dispatcher import Dispatcher
from agent.consent import Mode, Proposal
from agent.errors import ConsentError
from agent.storage.ledger import Intent, Ledger, State
from tests.outbox_helpers import CID, PRE_NOTICE, grant
from tests.vendor_fake import T0, FakeVendor


def announce(ledger: Ledger, price: str = "54.90", qty: int = 1) -> Intent:
    prop = Proposal(CID, "shop", "TONER-TN2420", qty, 1, Decimal(price), "Toner TN-2420")
    consent = ledger.consent(CID)
    return ledger.create_intent(prop, Mode.AUTO, State.QUEUED, T0, send_after=T0 + PRE_NOTICE,
                                allowed_by=consent.audit_id if consent else None)


def test_auto_order_waits_for_the_pre_notice_then_goes_out_once(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant_id = grant(ledger)
    it = announce(ledger)
    dispatcher.run_once(T0 + PRE_NOTICE - timedelta(seconds=1))
    assert vendor.calls == []
    report = dispatcher.run_once(T0 + PRE_NOTICE)
    assert report.placed == 1 and vendor.order_posts == 1
    done = ledger.intent(it.id)
    assert done.state is State.PLACED and done.audit_id == grant_id
    placed = [r for r in ledger.audit_records() if r.kind == "order_placed"][-1]
    assert placed.fields()["allowed_by"] == grant_id
    assert placed.fields()["key"] == it.idem_key
    [sent] = [r for r in ledger.audit_records() if r.kind == "order_sent"]
    assert sent.fields()["allowed_by"] == grant_id and sent.id < placed.id
    dispatcher.run_once(T0 + PRE_NOTICE + timedelta(minutes=5))
    assert vendor.order_posts == 1


def test_pre_notice_zero_sends_on_the_first_pass(ledger: Ledger, vendor: FakeVendor,
                                                 dispatcher: Dispatcher) -> None:
    grant(ledger)
    prop = Proposal(CID, "shop", "TONER-TN2420", 1, 1, Decimal("54.90"))
    ledger.create_intent(prop, Mode.AUTO, State.QUEUED, T0, send_after=T0)
    assert dispatcher.run_once(T0).placed == 1


def test_household_cancels_inside_the_pre_notice(ledger: Ledger, vendor: FakeVendor,
                                                 dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    dispatcher.cancel(it.id, T0 + timedelta(hours=1))
    dispatcher.run_once(T0 + timedelta(days=1))
    assert vendor.order_posts == 0
    assert ledger.intent(it.id).state is State.CANCELLED


@pytest.mark.parametrize(("knob", "why", "shown_sku", "shown_price"), [
    ({"prices": {"TONER-TN2420": "61.00"}}, "above 60", "TONER-TN2420", "61.00"),
    ({"out_of_stock": {"TONER-TN2420"}}, "out of stock", "TONER-TN2410", "39.90"),
    ({"pack_sizes": {"TONER-TN2420": 2}}, "pack size changed", "TONER-TN2420", "54.90"),
])
def test_changed_offer_turns_auto_into_a_proposal(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher, knob: dict[str, object],
        why: str, shown_sku: str, shown_price: str) -> None:
    grant(ledger)
    it = announce(ledger)
    for name, value in knob.items():
        setattr(vendor, name, value)
    report = dispatcher.run_once(T0 + PRE_NOTICE)
    assert report.reproposed == 1 and vendor.order_posts == 0
    shown = ledger.intent(it.id)
    assert shown.state is State.PROPOSED and why in (shown.reason or "")
    assert (shown.sku, str(shown.unit_price)) == (shown_sku, shown_price)
    assert shown.idem_key != it.idem_key
    ledger.approve(it.id, T0 + PRE_NOTICE + timedelta(minutes=1))
    dispatcher.run_once(T0 + PRE_NOTICE + timedelta(minutes=1))
    if knob.get("out_of_stock") or knob.get("pack_sizes"):
        return  # approved the substitute / new pack: placed at what was shown
    assert vendor.order_posts == 1
    order = next(iter(vendor.orders.values()))
    assert order["unit_price"] == shown_price and order["sku"] == shown_sku


def test_lower_price_within_mandate_is_adopted_as_the_ceiling(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    vendor.prices["TONER-TN2420"] = "50.00"
    dispatcher.run_once(T0 + PRE_NOTICE)
    assert ledger.intent(it.id).unit_price == Decimal("50.00")
    assert "order_repriced" in [r.kind for r in ledger.audit_records()]


def test_5xx_is_outcome_unknown_and_the_resend_reuses_the_key(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    vendor.post_status = [500]
    t = T0 + PRE_NOTICE
    report = dispatcher.run_once(t)
    assert report.retries == 1 and ledger.intent(it.id).state is State.SENDING
    dispatcher.run_once(t + timedelta(seconds=5))  # not due yet
    assert vendor.order_posts == 1
    dispatcher.run_once(t + timedelta(seconds=10))
    assert vendor.order_posts == 2 and len(vendor.orders) == 1
    lookups = [c for c in vendor.calls if c == ("GET", "/v1/orders")]
    assert lookups, "must look the order up by key before resending"
    assert ledger.intent(it.id).state is State.PLACED
    assert next(iter(vendor.orders.values()))["idempotency_key"] == it.idem_key


def test_commit_then_500_is_reconciled_without_a_resend(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    vendor.post_status, vendor.commit_before_error = [500], True
    dispatcher.run_once(T0 + PRE_NOTICE)
    dispatcher.run_once(T0 + PRE_NOTICE + timedelta(minutes=1))
    assert vendor.order_posts == 1 and len(vendor.orders) == 1
    assert ledger.intent(it.id).state is State.PLACED


def test_429_retry_after_is_honoured(ledger: Ledger, vendor: FakeVendor,
                                     dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    vendor.post_status, vendor.retry_after = [429], "120"
    dispatcher.run_once(T0 + PRE_NOTICE)
    retry_at = ledger.intent(it.id).next_attempt_at
    assert retry_at is not None and retry_at >= T0 + PRE_NOTICE + timedelta(seconds=120)


def test_revocation_while_outcome_unknown_never_resends(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    vendor.post_status = [503]
    t = T0 + PRE_NOTICE
    dispatcher.run_once(t)
    ledger.revoke(CID, t + timedelta(seconds=1))
    for minutes in range(1, 5):
        dispatcher.run_once(t + timedelta(minutes=minutes))
    assert vendor.order_posts == 1 and vendor.orders == {}
    # Not resent, and not "never ordered" either: the outcome stays unknown (issue 15).
    assert ledger.intent(it.id).state is State.SENDING


def test_revocation_and_expiry_cancel_pending_rows_at_once(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    first = announce(ledger)
    _, cancelled = ledger.revoke(CID, T0 + timedelta(minutes=1))
    assert cancelled == [first.id]
    grant(ledger)
    second = announce(ledger)
    dispatcher.run_once(T0 + timedelta(days=31))  # past the mandate's expiry
    assert ledger.intent(second.id).state is State.CANCELLED
    assert ledger.mode(CID) is Mode.CONFIRM
    assert vendor.order_posts == 0


def test_follow_until_delivered_feeds_expected_deliveries(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger, qty=2)
    t = T0 + PRE_NOTICE
    dispatcher.run_once(t)
    expected = ledger.expected_deliveries(CID)
    assert expected == [(vendor.now + timedelta(days=2), 2)]
    vendor.deliver("ord_0001", T0 + timedelta(days=2))
    report = dispatcher.run_once(t + timedelta(hours=2))
    assert report.delivered == 1
    done = ledger.intent(it.id)
    assert done.state is State.DELIVERED and done.delivered_at == T0 + timedelta(days=2)


def test_cancel_after_sending_uses_the_vendor_window(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    a = announce(ledger)
    dispatcher.run_once(T0 + PRE_NOTICE)
    assert dispatcher.cancel(a.id, T0 + PRE_NOTICE).state is State.CANCELLED
    b = announce(ledger)
    dispatcher.run_once(T0 + PRE_NOTICE)
    vendor.now = T0 + timedelta(days=2)
    with pytest.raises(ConsentError, match="refused to cancel"):
        dispatcher.cancel(b.id, vendor.now)
    assert ledger.intent(b.id).state is State.PLACED


def test_vendor_rejection_at_a_higher_price_ends_the_intent(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    original = vendor.handle

    def raise_price_after_catalog(request):  # type: ignore[no-untyped-def]
        if request.method == "POST":
            vendor.prices["TONER-TN2420"] = "59.00"
        return original(request)

    vendor.handle = raise_price_after_catalog  # type: ignore[method-assign]
    dispatcher.vendor = vendor.client()
    assert dispatcher.run_once(T0 + PRE_NOTICE).rejected == 1
    assert ledger.intent(it.id).state is State.REJECTED


def test_budget_counts_this_months_orders(ledger: Ledger, vendor: FakeVendor,
                                          dispatcher: Dispatcher) -> None:
    grant(ledger)
    for _ in range(3):
        announce(ledger, qty=2)
    dispatcher.run_once(T0 + PRE_NOTICE)
    states = [i.state for i in ledger.intents()]
    assert states == [State.PLACED, State.PROPOSED, State.PROPOSED]  # 109.80 of 200 spent
    assert "monthly budget" in (ledger.intents()[1].reason or "")


def test_wrong_item_blocks_the_sku_and_asks_for_a_new_choice(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    dispatcher.run_once(T0 + PRE_NOTICE)
    vendor.deliver(ledger.intent(it.id).order_id or "", T0 + timedelta(days=2))
    dispatcher.run_once(T0 + timedelta(days=3))
    ledger.report(it.id, "wrong-item", T0 + timedelta(days=3))
    assert ledger.blocked_skus(CID) == ["TONER-TN2420"]
    assert [r.kind for r in ledger.reminders()] == ["choose_product"]
    with pytest.raises(ConsentError):
        ledger.report(it.id, "smelly", T0)
    assert json.loads(ledger.audit_records()[-1].body)["kind"] == "wrong-item"


def test_regrant_after_revocation_does_not_revive_an_unanswered_order(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    vendor.post_status = [500]
    t = T0 + PRE_NOTICE
    dispatcher.run_once(t)
    ledger.revoke(CID, t + timedelta(seconds=1))
    grant(ledger)  # the same mandate again: a new decision, not the old one
    for minutes in range(1, 5):
        dispatcher.run_once(t + timedelta(minutes=minutes))
    assert vendor.order_posts == 1
    assert ledger.intent(it.id).state is State.SENDING
    assert "consent changed after sending" in (ledger.intent(it.id).reason or "")


def test_revocation_racing_the_send_stops_the_call(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    original = vendor.handle
    path = ledger_path(ledger)

    def revoke_during_catalog(request):  # type: ignore[no-untyped-def]
        response = original(request)
        if request.url.path.startswith("/v1/catalog/"):
            # Another process (the CLI) revokes between the check and the commit.
            other = Ledger.open(path)
            other.revoke(CID, T0 + PRE_NOTICE)
            other.close()
        return response

    vendor.handle = revoke_during_catalog  # type: ignore[method-assign]
    dispatcher.vendor = vendor.client()
    dispatcher.run_once(T0 + PRE_NOTICE)
    assert vendor.order_posts == 0
    assert ledger.intent(it.id).state is State.CANCELLED


def ledger_path(ledger: Ledger) -> str:
    return str(ledger.conn.execute("PRAGMA database_list").fetchone()[2])


def test_refused_lookup_keeps_an_unknown_outcome_open(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    vendor.post_status, vendor.commit_before_error = [500], True
    t = T0 + PRE_NOTICE
    dispatcher.run_once(t)
    original = vendor.handle

    def unauthorized(request):  # type: ignore[no-untyped-def]
        return httpx.Response(401, json={"error": "unauthorized"})

    vendor.handle = unauthorized  # type: ignore[method-assign]
    dispatcher.vendor = vendor.client()
    dispatcher.run_once(t + timedelta(minutes=1))
    assert ledger.intent(it.id).state is State.SENDING  # not failed: an order may exist
    vendor.handle = original  # type: ignore[method-assign]
    dispatcher.vendor = vendor.client()
    dispatcher.run_once(t + timedelta(hours=2))
    assert ledger.intent(it.id).state is State.PLACED and vendor.order_posts == 1
