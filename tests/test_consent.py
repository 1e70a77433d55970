"""The pure authorization rule: place, propose, remind or nothing, and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agent.consent import (
    Mandate,
    Mode,
    Proposal,
    Verdict,
    authorize,
    first_allowed,
    may_resend,
    may_send_approved,
    month_start,
    parse_consumable,
)
from agent.errors import ConsentError

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
MANDATE = Mandate(skus=("TN-2420",), vendor="shop", max_unit_price=Decimal("60"),
                  max_quantity=2, monthly_budget=Decimal("100"),
                  expires_at=datetime(2027, 6, 30, tzinfo=UTC))
PROPOSAL = Proposal("printer-1/black", "shop", "TN-2420", 1, 1, Decimal("54.90"), "Toner")


@dataclass(frozen=True)
class Offer:
    sku: str = "TN-2420"
    name: str = "Toner"
    price: Decimal = Decimal("54.90")
    currency: str = "EUR"
    availability: str = "in_stock"
    pack_size: int = 1
    substitutes: tuple[str, ...] = ()


def test_within_mandate_places() -> None:
    auth = authorize(MANDATE, Mode.AUTO, PROPOSAL, Offer(), Decimal(0), NOW)
    assert auth.verdict is Verdict.PLACE
    assert auth.why == "within mandate"


@pytest.mark.parametrize(("mode", "verdict"), [
    (Mode.MONITOR, Verdict.NOTHING), (Mode.REMIND, Verdict.REMIND),
    (Mode.CONFIRM, Verdict.PROPOSE)])
def test_modes_other_than_auto_never_place(mode: Mode, verdict: Verdict) -> None:
    assert authorize(MANDATE, mode, PROPOSAL, Offer(), Decimal(0), NOW).verdict is verdict


@pytest.mark.parametrize(("offer", "proposal", "spent", "now", "why"), [
    (Offer(price=Decimal("60.01")), PROPOSAL, Decimal(0), NOW, "above 60"),
    (Offer(sku="TN-2410"), PROPOSAL, Decimal(0), NOW, "substitute product TN-2410"),
    (Offer(availability="out_of_stock", substitutes=("TN-2410",)), PROPOSAL, Decimal(0), NOW,
     "out of stock (substitutes: TN-2410)"),
    (Offer(pack_size=2), PROPOSAL, Decimal(0), NOW, "pack size changed from 1 to 2"),
    (Offer(), PROPOSAL, Decimal("50"), NOW, "monthly budget 100"),
    (Offer(), Proposal("printer-1/black", "shop", "TN-2420", 3, 1, Decimal("20")),
     Decimal(0), NOW, "quantity 3 above 2"),
    (Offer(), Proposal("printer-1/black", "other", "TN-2420", 1, 1, Decimal("54.90")),
     Decimal(0), NOW, "vendor other not in mandate"),
    (Offer(sku="X-1"), Proposal("printer-1/black", "shop", "X-1", 1, 1, Decimal("1")),
     Decimal(0), NOW, "SKU X-1 not in mandate"),
    (Offer(), PROPOSAL, Decimal(0), datetime(2027, 6, 30, tzinfo=UTC), "mandate expired"),
    (None, PROPOSAL, Decimal(0), NOW, "no current catalog answer"),
])
def test_anything_outside_the_mandate_becomes_a_proposal(
        offer: Offer | None, proposal: Proposal, spent: Decimal, now: datetime,
        why: str) -> None:
    auth = authorize(MANDATE, Mode.AUTO, proposal, offer, spent, now)
    assert auth.verdict is Verdict.PROPOSE
    assert why in auth.why


def test_budget_boundary_is_inclusive() -> None:
    spent = Decimal("100") - Decimal("54.90")
    assert authorize(MANDATE, Mode.AUTO, PROPOSAL, Offer(), spent, NOW).verdict is Verdict.PLACE
    over = spent + Decimal("0.01")
    assert authorize(MANDATE, Mode.AUTO, PROPOSAL, Offer(), over, NOW).verdict is Verdict.PROPOSE


def test_auto_without_mandate_proposes() -> None:
    assert authorize(None, Mode.AUTO, PROPOSAL, Offer(), Decimal(0), NOW).reasons == (
        "no mandate",)


def test_approved_proposal_is_sent_only_unchanged() -> None:
    assert may_send_approved(PROPOSAL, Offer(), Mode.CONFIRM).verdict is Verdict.PLACE
    assert may_send_approved(PROPOSAL, Offer(price=Decimal("55")),
                             Mode.CONFIRM).verdict is Verdict.PROPOSE
    assert may_send_approved(PROPOSAL, Offer(), Mode.MONITOR).verdict is Verdict.NOTHING


def test_resend_rechecks_consent_but_not_the_catalog() -> None:
    ok = may_resend(MANDATE, Mode.AUTO, Mode.AUTO, PROPOSAL, Decimal(0), NOW)
    assert ok.verdict is Verdict.PLACE
    assert may_resend(MANDATE, Mode.MONITOR, Mode.AUTO, PROPOSAL, Decimal(0),
                      NOW).verdict is Verdict.NOTHING
    late = datetime(2028, 1, 1, tzinfo=UTC)
    assert may_resend(MANDATE, Mode.AUTO, Mode.AUTO, PROPOSAL, Decimal(0),
                      late).verdict is Verdict.NOTHING
    assert may_resend(None, Mode.CONFIRM, Mode.CONFIRM, PROPOSAL, Decimal(0),
                      NOW).verdict is Verdict.PLACE


def test_mandate_validation() -> None:
    with pytest.raises(ConsentError):
        Mandate(skus=())
    with pytest.raises(ConsentError):
        Mandate(skus=("A",), max_unit_price=Decimal(0))
    with pytest.raises(ConsentError):
        Mandate(skus=("A",), expires_at=datetime(2027, 1, 1))
    assert MANDATE.expired(MANDATE.expires_at or NOW)
    assert not MANDATE.expired(NOW)


def test_helpers() -> None:
    assert month_start(NOW) == datetime(2026, 6, 1, tzinfo=UTC)
    assert parse_consumable("printer-1/black") == "printer-1/black"
    with pytest.raises(ConsentError):
        parse_consumable("printer-1")
    assert first_allowed(MANDATE, ["Z"], ["TN-2420"]) is None
    assert first_allowed(None, ["A", "B"], ["A"]) == "B"
