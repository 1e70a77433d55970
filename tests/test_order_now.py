"""Order now: one household tap -> one purchase intent, through the planner's rules.

Real SQLite ledger and store; the vendor is the httpx MockTransport fake (one seam).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agent.app.order_now import Outcome, order_now_for
from agent.consent import Mandate, Mode, Proposal
from agent.domain import DeviceKind, Unit
from agent.errors import ConsentError, VendorRetryable
from agent.storage.ledger import Ledger, State
from agent.storage.store import Store
from agent.vendor.client import CatalogItem
from agent.wire.device import Consumable, StateMessage
from tests.vendor_fake import T0, FakeVendor

NOW = T0 + timedelta(days=3)
TONER = "printer-1/black"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Store, Ledger, FakeVendor]]:
    store = Store(tmp_path / "agent.db")
    store.write_batch([StateMessage(
        device_id="printer-1", seq=1, ts=T0, kind=DeviceKind.PRINTER,
        consumables=[Consumable(id="black", level=12, unit=Unit.PERCENT, sku="TONER-TN2420"),
                     Consumable(id="drum", level=40, unit=Unit.PERCENT)])],
        received_at=T0.timestamp())
    ledger = Ledger.open(tmp_path / "agent.db")
    yield store, ledger, FakeVendor()
    ledger.close()
    store.close()


def tap(env: tuple[Store, Ledger, FakeVendor], consumable: str = TONER, **kw: object):  # type: ignore[no-untyped-def]
    store, ledger, vendor = env
    return order_now_for(store, ledger, vendor.client().catalog, consumable, via="cli",
                         vendor_name="shop", now=NOW, **kw)  # type: ignore[arg-type]


def auto(ledger: Ledger, max_price: str = "60") -> int:
    return ledger.set_consent(TONER, Mode.AUTO, Mandate(
        skus=("TONER-TN2420",), max_unit_price=Decimal(max_price), max_quantity=2,
        monthly_budget=Decimal("200")), T0)


def test_inside_an_auto_mandate_the_order_is_queued_to_go_out_at_once(env) -> None:  # type: ignore[no-untyped-def]
    _, ledger, vendor = env
    grant = auto(ledger)
    result = tap(env)
    assert result.outcome is Outcome.QUEUED
    it = result.intent
    assert it is not None and it.state is State.QUEUED and it.send_after == NOW
    assert it.audit_id == grant  # allowed by the mandate's grant
    assert "54.90 EUR" in result.message and "Toner TN-2420" in result.message
    assert vendor.order_posts == 0  # the dispatcher sends it, exactly once, by its key
    records = [r for r in ledger.audit_records() if r.kind == "order_announced"]
    assert "requested by the household via cli" in records[-1].body


def test_outside_the_mandate_it_is_a_proposal_showing_price_and_arrival(env) -> None:  # type: ignore[no-untyped-def]
    _, ledger, _ = env
    auto(ledger, max_price="50")
    result = tap(env)
    assert result.outcome is Outcome.PROPOSED
    assert result.intent is not None and result.intent.state is State.PROPOSED
    assert "above 50" in (result.intent.reason or "")
    assert "expected" in result.message and "approve order" in result.message


def test_confirm_mode_proposes_the_reported_product(env) -> None:  # type: ignore[no-untyped-def]
    _, ledger, _ = env
    ledger.set_consent(TONER, Mode.CONFIRM, None, T0)
    result = tap(env, quantity=2)
    assert result.outcome is Outcome.PROPOSED
    assert result.intent is not None
    assert (result.intent.sku, result.intent.quantity) == ("TONER-TN2420", 2)


def test_a_second_tap_says_what_is_already_on_its_way(env) -> None:  # type: ignore[no-untyped-def]
    _, ledger, _ = env
    auto(ledger)
    first = tap(env)
    second = tap(env)
    assert second.outcome is Outcome.ALREADY_ON_ORDER
    assert second.intent is not None and first.intent is not None
    assert second.intent.id == first.intent.id
    assert f"order {first.intent.id}" in second.message
    assert len(ledger.intents(consumable=TONER)) == 1


def test_the_open_order_check_and_the_new_intent_share_one_transaction(env) -> None:  # type: ignore[no-untyped-def]
    _, ledger, _ = env
    auto(ledger)
    tap(env)
    proposal = Proposal(TONER, "shop", "TONER-TN2420", 1, 1, Decimal("54.90"))
    with pytest.raises(ConsentError, match="already has an open order"):
        ledger.create_intent(proposal, Mode.AUTO, State.QUEUED, NOW, unless_open=True)


def test_a_monitored_consumable_without_a_sku_asks_which_product(env) -> None:  # type: ignore[no-untyped-def]
    _, ledger, _ = env
    result = tap(env, consumable="printer-1/drum")
    assert result.outcome is Outcome.NEEDS_SKU and "--sku" in result.message
    assert ledger.intents(consumable="printer-1/drum") == []
    chosen = tap(env, consumable="printer-1/drum", sku="TONER-TN2410")
    assert chosen.outcome is Outcome.PROPOSED  # monitor: asked for, so proposed, not placed
    guessed = tap(env)  # black reports TONER-TN2420 but is only monitored: still asked
    assert guessed.outcome is Outcome.NEEDS_SKU and "reports TONER-TN2420" in guessed.message


def test_unknown_consumable_and_unreachable_vendor(env) -> None:  # type: ignore[no-untyped-def]
    store, ledger, _ = env
    assert tap(env, consumable="printer-1/tonr").outcome is Outcome.UNKNOWN

    def down(sku: str) -> CatalogItem:
        raise VendorRetryable("timeout")

    result = order_now_for(store, ledger, down, TONER, via="mqtt", vendor_name="shop", now=NOW,
                           sku="TONER-TN2420")
    assert result.outcome is Outcome.UNAVAILABLE and "did not answer" in result.message
    assert ledger.intents() == []
