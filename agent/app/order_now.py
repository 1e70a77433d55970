"""Order now: the household asks for a refill in one tap (CLI, MQTT, Home Assistant).

Every interface calls :func:`order_now`, which makes a purchase intent the way the
planner does: inside an ``auto`` mandate it is queued to go out at once (the household
asked, so there is no pre-notice); otherwise it becomes a proposal with the current
price, product and expected arrival, one more tap to confirm. A second tap while an
order for the consumable is open says what is already on its way instead of ordering
again; the check and the new intent share one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from agent.app.planner import learned_lead
from agent.consent import Mode, Proposal, Verdict, authorize
from agent.errors import ConsentError, VendorError
from agent.logs import canonical
from agent.storage.ledger import OPEN, Intent, Ledger, State
from agent.storage.rows import consumable_key
from agent.storage.store import Store
from agent.vendor.client import CatalogItem

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    QUEUED = "queued"  # inside the mandate: goes out on the next dispatch pass
    PROPOSED = "proposed"  # shown with price and product; approve to place it
    ALREADY_ON_ORDER = "already_on_order"
    NEEDS_SKU = "needs_sku"  # nothing says which product: the household must choose
    UNKNOWN = "unknown_consumable"
    UNAVAILABLE = "unavailable"  # the vendor's catalog did not answer


@dataclass(slots=True, frozen=True)
class OrderNowResult:
    outcome: Outcome
    message: str
    intent: Intent | None = None


def _describe(it: Intent) -> str:
    when = it.expected_delivery or it.send_after
    arrival = f", expected {when:%Y-%m-%d}" if when is not None else ""
    return f"order {it.id} ({it.quantity} x {it.sku}) is {it.state.value}{arrival}"


def order_now(ledger: Ledger, catalog: Callable[[str], CatalogItem], consumable: str, *,
              known: Collection[str], via: str, vendor_name: str, now: datetime,
              quantity: int | None = None, sku: str | None = None,
              reported_sku: str | None = None) -> OrderNowResult:
    """One household request for ``consumable`` (``device/consumable``)."""
    if consumable not in known:
        return OrderNowResult(Outcome.UNKNOWN, f"no consumable {consumable}")
    open_now = ledger.intents(list(OPEN), consumable=consumable)
    if open_now:
        return OrderNowResult(Outcome.ALREADY_ON_ORDER,
                              "already on its way: " + _describe(open_now[0]), open_now[0])
    consent = ledger.consent(consumable)
    mode = consent.mode if consent else Mode.MONITOR
    mandate = consent.mandate if consent else None
    # A monitored consumable has no product the household chose: ask, never guess (the
    # device's own SKU is only offered as a hint).
    chosen = sku or (mandate.skus[0] if mandate else None) or (
        reported_sku if mode is not Mode.MONITOR else None)
    if chosen is None:
        hint = f" (the device reports {reported_sku})" if reported_sku else ""
        return OrderNowResult(Outcome.NEEDS_SKU, f"which product? {consumable} is only "
                              f"monitored: pass the SKU to order (--sku){hint}")
    try:
        offer = catalog(chosen)
    except VendorError as err:
        return OrderNowResult(Outcome.UNAVAILABLE, f"the vendor did not answer: {err}")
    qty = quantity or 1
    proposal = Proposal(consumable, vendor_name, offer.sku, qty, offer.pack_size, offer.price,
                        offer.name, offer.currency)
    reason = f"requested by the household via {via}"
    auth = authorize(mandate, mode, proposal, offer, ledger.spent_this_month(consumable, now),
                     now)
    learned = learned_lead(ledger, offer.sku, offer)
    lead = (learned.quantile(0.5), learned.quantile(0.9))
    arrival = now + timedelta(days=offer.lead_time_days)
    terms = (f"{qty} x {offer.name} ({offer.sku}) at {offer.price} {offer.currency}, "
             f"expected {arrival:%Y-%m-%d}")
    try:
        if mode is Mode.AUTO and auth.verdict is Verdict.PLACE:
            assert consent is not None
            it = ledger.create_intent(proposal, Mode.AUTO, State.QUEUED, now, send_after=now,
                                      reason=reason, allowed_by=consent.audit_id,
                                      unless_open=True, lead=lead)
            outcome, message = Outcome.QUEUED, f"ordering {terms} (order {it.id})"
        else:
            why = reason if mode is not Mode.AUTO else f"{reason}; {auth.why}"
            it = ledger.create_intent(proposal, Mode.CONFIRM, State.PROPOSED, now, reason=why,
                                      unless_open=True, lead=lead)
            outcome = Outcome.PROPOSED
            message = f"proposed {terms}: approve order {it.id} to place it"
    except ConsentError:  # another tap won the race inside the transaction
        (first, *_) = ledger.intents(list(OPEN), consumable=consumable)
        return OrderNowResult(Outcome.ALREADY_ON_ORDER, "already on its way: "
                              + _describe(first), first)
    canonical(log, "decision", consumable=consumable, sku=offer.sku, decision="order_now",
              reason=reason, quantity=qty, audit_id=it.audit_id, outcome=outcome.value,
              mode=mode.value)
    return OrderNowResult(outcome, message, it)


def order_now_for(store: Store, ledger: Ledger, catalog: Callable[[str], CatalogItem],
                  consumable: str, *, via: str, vendor_name: str, now: datetime,
                  quantity: int | None = None, sku: str | None = None) -> OrderNowResult:
    """:func:`order_now` with the known consumables and their reported SKUs from storage."""
    rows = {consumable_key(r): r for r in store.consumables(counts=False)}
    reported = rows[consumable].sku if consumable in rows else None
    return order_now(ledger, catalog, consumable, known=rows, via=via,
                     vendor_name=vendor_name, now=now, quantity=quantity, sku=sku,
                     reported_sku=reported)
