"""Canonical ``order.*`` lines of the ledger and the outbox (docs/operations.md table)."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest

from agent.app.dispatcher import Dispatcher
from agent.consent import Mode, Proposal
from agent.storage.ledger import Intent, Ledger, State
from tests.outbox_helpers import CID, PRE_NOTICE, grant
from tests.vendor_fake import T0, FakeVendor

SEND = T0 + PRE_NOTICE


def order_lines(caplog: pytest.LogCaptureFixture, prefix: str = "order.") -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("agent.") and r.getMessage().startswith(prefix)]


def level_of(caplog: pytest.LogCaptureFixture, event: str) -> int:
    (record,) = [r for r in caplog.records if r.getMessage().startswith(event + " ")]
    return record.levelno


def announce(ledger: Ledger, grant_id: int) -> Intent:
    prop = Proposal(CID, "shop", "TONER-TN2420", 2, 1, Decimal("54.90"), "Toner TN-2420")
    return ledger.create_intent(prop, Mode.AUTO, State.QUEUED, T0, send_after=SEND,
                                allowed_by=grant_id)


def test_queued_retry_placed_delivered(ledger: Ledger, vendor: FakeVendor,
                                       dispatcher: Dispatcher,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    grant_id = grant(ledger)
    it = announce(ledger, grant_id)
    announced = max(r.id for r in ledger.audit_records() if r.kind == "order_announced")
    vendor.post_status = [500]
    dispatcher.run_once(SEND)
    dispatcher.run_once(SEND + timedelta(seconds=10))
    vendor.deliver("ord_0001", T0 + timedelta(days=2))
    dispatcher.run_once(SEND + timedelta(hours=2))
    i = it.id
    assert order_lines(caplog) == [
        f"order.queued consumable={CID} sku=TONER-TN2420 quantity=2 audit_id={announced} "
        f"intent={i} send_after={SEND.isoformat()}",
        f"order.retry consumable={CID} sku=TONER-TN2420 "
        f'reason="vendor place_order: HTTP 500 injected" audit_id={grant_id} status=500 '
        f"outcome=unknown attempt=1 intent={i} retry_in=10",
        f"order.placed consumable={CID} sku=TONER-TN2420 quantity=2 order_id=ord_0001 "
        f"audit_id={grant_id} status=pending outcome=placed attempt=2 intent={i} via=send",
        f"order.delivered consumable={CID} sku=TONER-TN2420 quantity=2 order_id=ord_0001 "
        f"audit_id={grant_id} status=delivered intent={i}",
    ]
    assert level_of(caplog, "order.retry") == logging.WARNING
    assert level_of(caplog, "order.placed") == logging.INFO
    sends = order_lines(caplog, "vendor.call order_id=")
    assert [s.split(" op=")[1] for s in sends if "attempt=-" not in s] == ["place_order"] * 2
    assert " attempt=1 " in order_lines(caplog, "vendor.call order_id=- status=500")[0]
    # The idempotency key travels in a header and a query: no agent line names it.
    assert not [m for m in order_lines(caplog, "") if it.idem_key in m]


def test_found_by_key_after_commit_then_500(ledger: Ledger, vendor: FakeVendor,
                                            dispatcher: Dispatcher,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    announce(ledger, grant(ledger))
    vendor.post_status, vendor.commit_before_error = [500], True
    dispatcher.run_once(SEND)
    dispatcher.run_once(SEND + timedelta(minutes=1))
    placed = order_lines(caplog, "order.placed")
    assert len(placed) == 1 and placed[0].endswith(" attempt=1 intent=1 via=lookup")


def test_rejections_by_answer_and_by_status(ledger: Ledger, vendor: FakeVendor,
                                            dispatcher: Dispatcher,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    grant_id = grant(ledger)
    first = announce(ledger, grant_id)
    original = vendor.handle

    def raise_price_at_post(request):  # type: ignore[no-untyped-def]
        if request.method == "POST":
            vendor.prices["TONER-TN2420"] = "59.00"
        return original(request)

    vendor.handle = raise_price_at_post  # type: ignore[method-assign]
    dispatcher.vendor = vendor.client()
    dispatcher.run_once(SEND)
    vendor.prices.clear()
    second = announce(ledger, grant_id)
    vendor.post_status = [422]
    dispatcher.run_once(SEND)
    rejected = order_lines(caplog, "order.rejected")
    assert rejected[0] == (
        f"order.rejected consumable={CID} sku=TONER-TN2420 reason=price_above_max quantity=2 "
        f"order_id=ord_0001 audit_id={grant_id} status=rejected outcome=rejected attempt=1 "
        f"intent={first.id} via=send")
    final = ledger.intent(second.id)
    assert final.state is State.FAILED
    assert rejected[1] == (
        f'order.rejected consumable={CID} sku=TONER-TN2420 reason="vendor place_order: '
        f'HTTP 422 injected" quantity=2 audit_id={final.audit_id} status=422 outcome=failed '
        f"attempt=1 intent={second.id}")
    assert len(rejected) == 2
    assert all(r.levelno == logging.ERROR for r in caplog.records
               if r.getMessage().startswith("order.rejected"))


def test_every_cancellation_is_one_line(ledger: Ledger, vendor: FakeVendor,
                                        dispatcher: Dispatcher,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    grant_id = grant(ledger)
    by_household = announce(ledger, grant_id)
    dispatcher.cancel(by_household.id, T0 + timedelta(hours=1))
    at_vendor = announce(ledger, grant_id)
    dispatcher.run_once(SEND)
    dispatcher.cancel(at_vendor.id, SEND)
    by_revocation = announce(ledger, grant_id)
    revoke_id, _ = ledger.revoke(CID, SEND + timedelta(minutes=1))
    cancelled = order_lines(caplog, "order.cancelled")
    household_audit = ledger.intent(by_household.id).audit_id
    assert cancelled == [
        f'order.cancelled consumable={CID} reason="cancelled by household" order_id=- '
        f"audit_id={household_audit} intent={by_household.id}",
        f"order.cancelled consumable={CID} sku=TONER-TN2420 "
        f"reason=\"cancelled at the household's request\" order_id=ord_0001 "
        f"audit_id={grant_id} status=cancelled intent={at_vendor.id}",
        f'order.cancelled consumable={CID} reason="consent revoked" order_id=- '
        f"audit_id={revoke_id} intent={by_revocation.id}",
    ]


def test_unanswered_order_not_resent_after_revocation(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    it = announce(ledger, grant(ledger))
    vendor.post_status = [503]
    dispatcher.run_once(SEND)
    ledger.revoke(CID, SEND + timedelta(seconds=1))
    for minutes in range(1, 4):
        dispatcher.run_once(SEND + timedelta(minutes=minutes))
    assert order_lines(caplog, "order.cancelled") == []  # unknown is not "not ordered"
    dispatcher.run_once(SEND + dispatcher.unknown_give_up)
    (line,) = order_lines(caplog, "order.lost")
    done = ledger.intent(it.id)
    assert line == (
        f'order.lost consumable={CID} sku=TONER-TN2420 reason="no answer for this order\'s '
        f'key in 48 h and not resent (consent changed after sending)" order_id=- '
        f"audit_id={done.audit_id} attempt=1 intent={it.id}")


def test_changed_price_is_reproposed(ledger: Ledger, vendor: FakeVendor,
                                     dispatcher: Dispatcher,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    it = announce(ledger, grant(ledger))
    vendor.prices["TONER-TN2420"] = "61.00"
    dispatcher.run_once(SEND)
    (line,) = order_lines(caplog, "order.reproposed")
    shown = ledger.intent(it.id)
    assert line.startswith(f"order.reproposed consumable={CID} sku=TONER-TN2420 reason=")
    assert line.endswith(f" quantity=2 audit_id={shown.audit_id} outcome=proposed "
                         f"intent={it.id}")
    assert "above 60" in line


def test_approval_queues_with_its_record(ledger: Ledger, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    caplog.set_level(logging.INFO)
    ledger.set_consent(CID, Mode.CONFIRM, None, T0)
    prop = Proposal(CID, "shop", "TONER-TN2420", 1, 1, Decimal("54.90"), "Toner TN-2420")
    it = ledger.create_intent(prop, Mode.CONFIRM, State.PROPOSED, T0)
    assert order_lines(caplog) == []  # a proposal is not queued yet
    ledger.approve(it.id, T0 + timedelta(hours=1))
    approved = max(r.id for r in ledger.audit_records() if r.kind == "order_approved")
    assert order_lines(caplog) == [
        f"order.queued consumable={CID} sku=TONER-TN2420 quantity=1 audit_id={approved} "
        f"intent={it.id} send_after={(T0 + timedelta(hours=1)).isoformat()}"]
