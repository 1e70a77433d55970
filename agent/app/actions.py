"""Household actions shared by the web app and the CLI: approve, cancel, snooze.

They are the same ledger calls the MQTT household commands make
(:meth:`agent.household.link.HouseholdLink.execute`), with the same checks: a proposal is
approved only while it is still proposed, within its time to decide and with the terms
(product, quantity, price) the household saw, pinned by :func:`proposal_ref`. The ledger's
``approve`` runs in one ``BEGIN IMMEDIATE`` transaction, so two taps (or a tap and a
phone notification button) queue the intent once, and one intent carries one idempotency
key to the vendor: exactly one order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.errors import ConsentError, VendorRetryable
from agent.household.link import DEFAULT_SNOOZE, OrderCanceller, proposal_ref
from agent.storage.ledger import PENDING, Intent, Ledger, State

__all__ = ["DEFAULT_SNOOZE", "Outcome", "approve", "cancel", "proposal_ref", "snooze",
           "stale_reason"]


@dataclass(slots=True, frozen=True)
class Outcome:
    """What an action did: ``ok`` False carries the reason shown to the household."""

    ok: bool
    message: str
    intent: Intent | None = None


def stale_reason(it: Intent, ref: str, now: datetime, ttl: timedelta) -> str | None:
    """Why this proposal cannot be approved as seen (None: it can)."""
    if it.state is not State.PROPOSED:
        return f"order {it.id} is already {it.state.value}"
    if ref != proposal_ref(it):
        return (f"order {it.id} changed since you saw it (now {it.quantity} x {it.sku} at "
                f"{it.unit_price} {it.currency}); check the new terms")
    if now >= it.created_at + ttl:
        return f"order {it.id} expired: proposals wait {ttl.total_seconds() / 3600:g} h"
    return None


def _refused(ledger: Ledger, it: Intent | None, verb: str, ref: str, why: str, source: str,
             now: datetime) -> Outcome:
    ledger.record("household_command_refused", it.consumable if it else None,
                  {"verb": verb, "ref": ref, "result": why, "source": source}, now)
    return Outcome(False, why, it)


def _intent(ledger: Ledger, intent_id: int) -> Intent | None:
    try:
        return ledger.intent(intent_id)
    except ConsentError:
        return None


def approve(ledger: Ledger, intent_id: int, ref: str | None, now: datetime, ttl: timedelta,
            source: str = "web") -> Outcome:
    """Approve proposal ``intent_id`` as shown by ``ref`` (None: as it stands now, for the
    CLI, which prints the terms it approves); a repeat of an approval that already went
    through answers ok without a second order."""
    it = _intent(ledger, intent_id)
    if it is None:
        return _refused(ledger, None, "approve", ref or str(intent_id), f"no order {intent_id}",
                        source, now)
    ref = proposal_ref(it) if ref is None else ref
    if it.state in (State.QUEUED, State.SENDING, State.PLACED, State.DELIVERED) \
            and it.mode.value == "confirm" and ref == proposal_ref(it):
        return Outcome(True, f"order {it.id} was already approved", it)
    why = stale_reason(it, ref, now, ttl)
    if why is not None:
        return _refused(ledger, it, "approve", ref, why, source, now)
    try:
        it = ledger.approve(it.id, now)
    except ConsentError as err:  # decided by someone else between the read and the write
        return _refused(ledger, it, "approve", ref, str(err), source, now)
    return Outcome(True, f"order {it.id} approved: {it.quantity} x {it.sku} at "
                         f"{it.unit_price} {it.currency}; it goes out on the agent's next pass",
                   it)


def cancel(ledger: Ledger, intent_id: int, now: datetime,
           dispatcher: Callable[[], OrderCanceller] | None = None,
           source: str = "web") -> Outcome:
    """Cancel before sending in the ledger; a placed order through the dispatcher (the
    vendor's cancel window), built only when needed."""
    it = _intent(ledger, intent_id)
    if it is None:
        return _refused(ledger, None, "cancel", str(intent_id), f"no order {intent_id}",
                        source, now)
    try:
        if it.state in PENDING:
            it = ledger.cancel_pending(it.id, now)
        elif it.state is State.LOST:  # the household's answer: no vendor call needed
            it = ledger.cancel_lost(it.id, now)
        elif dispatcher is None:
            return _refused(ledger, it, "cancel", str(intent_id),
                            "no vendor client configured to cancel a placed order",
                            source, now)
        else:
            it = dispatcher().cancel(it.id, now)
    except (ConsentError, VendorRetryable) as err:
        return _refused(ledger, it, "cancel", str(intent_id), str(err), source, now)
    return Outcome(True, f"order {it.id}: {it.state.value}", it)


def snooze(ledger: Ledger, intent_id: int, now: datetime, until: datetime | None = None,
           source: str = "web") -> Outcome:
    """Decline the proposal for now; the planner does not propose again before ``until``."""
    it = _intent(ledger, intent_id)
    if it is None or it.state is not State.PROPOSED:
        why = f"order {intent_id} is not a proposal" if it else f"no order {intent_id}"
        return _refused(ledger, it, "snooze", str(intent_id), why, source, now)
    until = until or now + DEFAULT_SNOOZE
    try:
        ledger.snooze(it.id, until, now)
    except ConsentError as err:
        return _refused(ledger, it, "snooze", str(intent_id), str(err), source, now)
    return Outcome(True, f"{it.consumable}: snoozed until {until:%Y-%m-%d %H:%M} UTC", it)
