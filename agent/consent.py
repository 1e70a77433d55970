"""Consent: the four modes, the ``auto`` mandate, and the one pure authorization rule.

Per consumable the household picks a :class:`Mode`. ``auto`` orders only inside a
:class:`Mandate` (allowed vendor and SKUs, max unit price, max quantity per order, monthly
budget, expiry). :func:`authorize` is the single place that says whether an order may go
out; the planner calls it when it decides and the outbox dispatcher calls it again, with
a fresh catalog answer and a fresh mandate, right before every order call.

Following the 2019 Munich ruling, an automatic order never goes out at a price or
product the household did not agree to: a price above the mandate, a substitute product
or a changed pack size turns ``auto`` into a ``confirm`` proposal that shows the current
price and product. Pure: no I/O, no clock (``now`` is a parameter).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from agent.domain import BadConsumableKey, ConsumableKey
from agent.errors import ConsentError


class Mode(StrEnum):
    MONITOR = "monitor"  # data only
    REMIND = "remind"  # tell the household when to reorder, with care tips
    CONFIRM = "confirm"  # propose a concrete order, placed only when approved
    AUTO = "auto"  # order within the mandate


class Verdict(StrEnum):
    PLACE = "place"  # may be sent without asking (after the pre-notice)
    PROPOSE = "propose"  # show the household a concrete proposal to approve
    REMIND = "remind"  # only tell the household
    NOTHING = "nothing"  # monitor: data only


@dataclass(slots=True, frozen=True)
class Mandate:
    """What an ``auto`` consumable may order without asking."""

    skus: tuple[str, ...]
    vendor: str | None = None
    max_unit_price: Decimal | None = None
    max_quantity: int | None = None
    monthly_budget: Decimal | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.skus:
            raise ConsentError("a mandate needs at least one allowed SKU")
        if self.max_unit_price is not None and self.max_unit_price <= 0:
            raise ConsentError("max unit price must be > 0")
        if self.max_quantity is not None and self.max_quantity < 1:
            raise ConsentError("max quantity must be >= 1")
        if self.monthly_budget is not None and self.monthly_budget < 0:
            raise ConsentError("monthly budget must be >= 0")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ConsentError("expiry must be timezone-aware")

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(slots=True, frozen=True)
class Proposal:
    """A concrete order the agent would place: what, how many, at what expected price."""

    consumable: str
    vendor: str
    sku: str
    quantity: int
    pack_size: int
    unit_price: Decimal
    name: str = ""
    currency: str = "EUR"

    @property
    def cost(self) -> Decimal:
        return self.unit_price * self.quantity


class Offer(Protocol):
    """The catalog's current answer for a SKU (``agent.vendor.client.CatalogItem`` fits)."""

    @property
    def sku(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def currency(self) -> str: ...
    @property
    def availability(self) -> str: ...
    @property
    def pack_size(self) -> int: ...
    @property
    def substitutes(self) -> tuple[str, ...]: ...


@dataclass(slots=True, frozen=True)
class Authorization:
    """The verdict and every reason behind it (empty reasons: nothing stood in the way)."""

    verdict: Verdict
    reasons: tuple[str, ...] = field(default=())

    @property
    def why(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "within mandate"


def offer_changes(proposal: Proposal, offer: Offer | None,
                  max_unit_price: Decimal | None) -> list[str]:
    """What differs between what was agreed and what the vendor now offers.

    ``max_unit_price`` is the agreed ceiling: the mandate's for ``auto``, the approved
    price for an approved proposal.
    """
    if offer is None:
        return ["no current catalog answer"]
    reasons: list[str] = []
    if offer.sku != proposal.sku:
        reasons.append(f"substitute product {offer.sku} instead of {proposal.sku}")
    elif str(offer.availability) != "in_stock":
        subs = ", ".join(offer.substitutes) or "none"
        reasons.append(f"{proposal.sku} out of stock (substitutes: {subs})")
    if offer.pack_size != proposal.pack_size:
        reasons.append(f"pack size changed from {proposal.pack_size} to {offer.pack_size}")
    if max_unit_price is not None and offer.price > max_unit_price:
        reasons.append(f"price {offer.price} {offer.currency} above {max_unit_price}")
    return reasons


def authorize(
    mandate: Mandate | None,
    mode: Mode,
    proposal: Proposal,
    offer: Offer | None,
    spent_this_month: Decimal,
    now: datetime,
) -> Authorization:
    """Whether ``proposal`` may be placed now, must be proposed, or only reminded.

    ``spent_this_month`` is what this consumable's orders already cost in the current
    calendar month (UTC), not counting ``proposal``. ``offer`` is the catalog's current
    answer for the proposal's SKU (None when it could not be fetched: never place blind).
    """
    if mode is Mode.MONITOR:
        return Authorization(Verdict.NOTHING, ("mode monitor",))
    if mode is Mode.REMIND:
        return Authorization(Verdict.REMIND, ("mode remind",))
    if mode is Mode.CONFIRM:
        return Authorization(Verdict.PROPOSE, ("mode confirm",))
    if mandate is None:
        return Authorization(Verdict.PROPOSE, ("no mandate",))
    reasons = _mandate_reasons(mandate, proposal, now)
    reasons += offer_changes(proposal, offer, mandate.max_unit_price)
    if mandate.monthly_budget is not None:
        price = offer.price if offer is not None else proposal.unit_price
        cost = price * proposal.quantity
        if spent_this_month + cost > mandate.monthly_budget:
            reasons.append(
                f"monthly budget {mandate.monthly_budget}: {spent_this_month} spent, "
                f"{cost} more would exceed it"
            )
    if reasons:
        return Authorization(Verdict.PROPOSE, tuple(reasons))
    return Authorization(Verdict.PLACE)


def _mandate_reasons(mandate: Mandate, proposal: Proposal, now: datetime) -> list[str]:
    reasons: list[str] = []
    if mandate.expired(now):
        reasons.append("mandate expired")
    if mandate.vendor is not None and proposal.vendor != mandate.vendor:
        reasons.append(f"vendor {proposal.vendor} not in mandate")
    if proposal.sku not in mandate.skus:
        reasons.append(f"SKU {proposal.sku} not in mandate")
    if mandate.max_quantity is not None and proposal.quantity > mandate.max_quantity:
        reasons.append(f"quantity {proposal.quantity} above {mandate.max_quantity}")
    return reasons


def may_send_approved(approved: Proposal, offer: Offer | None, mode: Mode) -> Authorization:
    """Re-check an explicitly approved proposal right before sending it.

    The approval covers exactly the product and price the household saw; any change
    sends it back for a new approval. A consumable switched to monitor or remind since
    then has no approval left to act on.
    """
    if mode in (Mode.MONITOR, Mode.REMIND):
        return Authorization(Verdict.NOTHING, (f"mode {mode.value}",))
    reasons = offer_changes(approved, offer, approved.unit_price)
    if reasons:
        return Authorization(Verdict.PROPOSE, tuple(reasons))
    return Authorization(Verdict.PLACE, ("approved by household",))


def month_start(now: datetime) -> datetime:
    """Start of ``now``'s calendar month (budgets are per calendar month)."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def parse_consumable(text: str) -> str:
    """Validate ``device_id/consumable_id`` as the household types it (one parser:
    :meth:`agent.domain.ConsumableKey.parse`)."""
    try:
        return str(ConsumableKey.parse(text))
    except BadConsumableKey as e:
        raise ConsentError(str(e)) from e


def first_allowed(mandate: Mandate | None, candidates: Sequence[str],
                  blocked: Sequence[str]) -> str | None:
    """The SKU to order: the mandate's first unblocked SKU, else the first candidate."""
    pool = list(mandate.skus) if mandate is not None else list(candidates)
    for sku in pool:
        if sku not in blocked:
            return sku
    return None


def may_resend(mandate: Mandate | None, mode: Mode, intent_mode: Mode, proposal: Proposal,
               spent_this_month: Decimal, now: datetime) -> Authorization:
    """Re-check consent before resending an order whose first attempt had no answer.

    The catalog is not asked again: the resent body is the one first sent (the vendor
    refuses a key reused with another body), and it already caps the unit price and
    forbids substitution, so the vendor itself refuses any change of price or product.
    """
    if intent_mode is Mode.AUTO:
        if mode is not Mode.AUTO or mandate is None:
            return Authorization(Verdict.NOTHING, (f"mode {mode.value}",))
        reasons = _mandate_reasons(mandate, proposal, now)
        if (mandate.max_unit_price is not None
                and proposal.unit_price > mandate.max_unit_price):
            reasons.append(f"price {proposal.unit_price} above {mandate.max_unit_price}")
        if (mandate.monthly_budget is not None
                and spent_this_month + proposal.cost > mandate.monthly_budget):
            reasons.append(f"monthly budget {mandate.monthly_budget} would be exceeded")
        if reasons:
            return Authorization(Verdict.NOTHING, tuple(reasons))
        return Authorization(Verdict.PLACE)
    if mode in (Mode.MONITOR, Mode.REMIND):
        return Authorization(Verdict.NOTHING, (f"mode {mode.value}",))
    return Authorization(Verdict.PLACE, ("approved by household",))


@dataclass(slots=True, frozen=True)
class GrantReview:
    """What stands against a consent the household is about to give.

    ``refusals`` stop it (each says why and how to fix it); ``notes`` are told but do not
    stop it (a SKU that could not be checked because the vendor did not answer).
    """

    refusals: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def review_grant(
    consumable: str,
    mode: Mode,
    mandate: Mandate | None,
    now: datetime,
    known_consumables: Collection[str],
    known_skus: Collection[str] | None,
    unknown_skus: Collection[str] = (),
) -> GrantReview:
    """The one rule for a consent that cannot work or is unsafe (ARCHITECTURE invariant 8).

    Every interface that sets consent (the CLI now, a web app later) asks this before
    storing. ``known_skus`` are SKUs the vendor catalog confirmed, ``unknown_skus`` those
    it said it does not know; a mandate SKU in neither could not be checked (vendor
    unreachable) and is reported as unverified. ``known_skus=None`` means the catalog was
    not asked at all. An ``auto`` mandate needs a price cap and a budget or quantity
    cap: without them it is unlimited automatic spending.
    """
    refusals: list[str] = []
    notes: list[str] = []
    if consumable not in known_consumables:
        close = difflib.get_close_matches(consumable, list(known_consumables), n=1, cutoff=0.6)
        fix = (f"did you mean {close[0]}?" if close else
               "see `replenish status` for the consumables the agent knows")
        refusals.append(f"unknown consumable {consumable}: {fix}")
    if mode is Mode.AUTO:
        if mandate is None:
            refusals.append("auto needs a mandate: give at least one --sku")
        else:
            if mandate.max_unit_price is None:
                refusals.append("auto without a price cap could order at any price: "
                                "add --max-price")
            if mandate.monthly_budget is None and mandate.max_quantity is None:
                refusals.append("auto without a budget or quantity cap has no spending "
                                "limit: add --budget or --max-qty")
    if mandate is not None:
        if mandate.expired(now):
            refusals.append("the expiry is in the past: give a later --expires, or none")
        for sku in mandate.skus:
            if sku in unknown_skus:
                refusals.append(f"the vendor catalog does not know SKU {sku}: check the "
                                "product code on the vendor's site")
            elif known_skus is not None and sku not in known_skus:
                notes.append(f"SKU {sku} is unverified: the vendor catalog could not be "
                             "asked; the agent checks it again before every order")
    return GrantReview(tuple(refusals), tuple(notes))
