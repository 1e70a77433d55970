"""Household commands (``approve``, ``cancel``, ``snooze``, ``order_now``, ``ack``): each
is checked against the proposal's id, terms and expiry and run through the same ledger
calls as the CLI, so it lands in the audit chain the same way; a refused one is audited
too. They run on the agent's worker thread, never on paho's.
"""

from __future__ import annotations

import hashlib
import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import ValidationError

from agent.domain import ConsumableKey
from agent.errors import ConsentError, StoreError, VendorRetryable
from agent.storage.alerts import AlertLedger
from agent.storage.ledger import PENDING, Intent, Ledger, State
from agent.wire.household import (
    CommandResult,
    EventKind,
    Outgoing,
    Verb,
    event,
    event_message,
    parse_command,
)

log = logging.getLogger("agent.household.link")  # one logger name for the whole link

DEFAULT_SNOOZE = timedelta(hours=24)


class OrderNow(Protocol):
    """The app's one "order now" path: returns the outcome and the household's message."""

    def __call__(self, ledger: Ledger, consumable: str, quantity: int | None, via: str,
                 now: datetime) -> tuple[CommandResult, str]: ...


class OrderCanceller(Protocol):
    """What the link needs of the dispatcher: its one cancel path (the app wires it in)."""

    def cancel(self, intent_id: int, now: datetime) -> Intent: ...


def proposal_ref(it: Intent) -> str:
    """``p<intent>-<digest>``: the digest pins product, quantity and price, so a button
    pressed for an old price cannot approve a re-proposed order."""
    terms = f"{it.sku}|{it.quantity}|{it.unit_price}|{it.currency}".encode()
    return f"p{it.id}-{hashlib.sha256(terms).hexdigest()[:8]}"


def _intent_id(ref: str) -> int | None:
    head = ref.split("-", 1)[0]
    if head[:1] in ("p", "o") and head[1:].isdigit():
        return int(head[1:])
    return None


@dataclass(slots=True)
class LinkStats:
    commands: int = 0
    refused: int = 0
    dropped: int = 0


class HouseholdCommands:
    """The command half of :class:`agent.household.link.HouseholdLink` (which sets these
    attributes and feeds ``commands`` from paho's thread)."""

    publish: Callable[[Outgoing], None]
    order_now: OrderNow | None
    proposal_ttl: timedelta
    stats: LinkStats
    commands: queue.Queue[tuple[str, bytes]]
    _held: tuple[str, bytes] | None  # a command the database could not record, run first

    def handle_commands(self, ledger: Ledger, dispatcher: OrderCanceller | None,
                        now: datetime) -> None:
        """Run every queued household command.

        ``dispatcher`` is None when no vendor client is configured: approvals, snoozes and
        cancels of unsent orders still run on the ledger; cancelling a placed order needs
        the vendor and is refused as ``unavailable``.
        """
        while True:
            if self._held is not None:
                (topic, payload), self._held = self._held, None
            else:
                try:
                    topic, payload = self.commands.get_nowait()
                except queue.Empty:
                    return
            try:
                result = self.execute(topic, payload, ledger, dispatcher, now)
            except StoreError:
                # It was acknowledged on receipt: keep it (and the ones queued behind it)
                # for the next sync instead of losing it to a full disk.
                self._held = (topic, payload)
                raise
            self.stats.commands += 1
            if result != "accepted":
                self.stats.refused += 1

    def execute(self, topic: str, payload: bytes, ledger: Ledger,
                dispatcher: OrderCanceller | None, now: datetime) -> CommandResult:
        """One command, checked against the proposal's id, terms and expiry."""
        try:
            verb, cmd = parse_command(topic, payload)
        except (ValueError, ValidationError):
            log.warning("household.command refused reason=malformed")
            return "denied"
        if verb is Verb.ACK:
            return self._ack(cmd.ref, cmd.source, ledger, now)
        if verb is Verb.ORDER_NOW:
            return self._order_now(cmd.ref, cmd.quantity, cmd.source, ledger, now)
        intent_id = _intent_id(cmd.ref)
        try:
            it = ledger.intent(intent_id) if intent_id is not None else None
        except (ConsentError, KeyError, LookupError):
            it = None
        result = self._check(verb, cmd.ref, it, now)
        if result == "accepted" and it is not None:
            try:
                if verb is Verb.APPROVE:
                    ledger.approve(it.id, now)
                elif verb is Verb.CANCEL:
                    result = self._cancel(it, ledger, dispatcher, now)
                else:
                    ledger.snooze(it.id, cmd.until or now + DEFAULT_SNOOZE, now)
            except ConsentError:
                result = "already_decided"
        consumable = it.consumable if it else None
        if result != "accepted":
            ledger.record("household_command_refused", consumable,
                          {"verb": verb.value, "ref": cmd.ref, "result": result,
                           "source": cmd.source}, now)
        log.info("household.command verb=%s ref=%s source=%s outcome=%s",
                 verb.value, cmd.ref, cmd.source, result)
        return result

    def _order_now(self, ref: str, quantity: int | None, source: str, ledger: Ledger,
                   now: datetime) -> CommandResult:
        """``ref`` is ``<device>:<consumable>``; the answer goes out as a household event."""
        device, _, item = ref.partition(":")
        result: CommandResult = "unavailable"
        message = "ordering is not set up on this gateway"
        if self.order_now is not None and device and item:
            result, message = self.order_now(ledger, str(ConsumableKey(device, item)), quantity,
                                              source, now)
        elif self.order_now is not None:
            result, message = "unknown", f"order_now needs ref DEVICE:CONSUMABLE, got {ref}"
        self.publish(event_message(event(EventKind.ORDER_NOW, now, message,
                                         device_id=device or None,
                                         consumable_id=item or None)))
        log.info("household.command verb=order_now ref=%s source=%s outcome=%s",
                 ref, source, result)
        return result

    @staticmethod
    def _ack(ref: str, source: str, ledger: Ledger, now: datetime) -> CommandResult:
        """A caregiver acknowledges an urgent alert: escalation stops."""
        alert_id = int(ref[1:]) if ref[:1] == "a" and ref[1:].isdigit() else None
        result: CommandResult = "unknown"
        if alert_id is not None:
            try:
                AlertLedger(ledger.conn).acknowledge(alert_id, f"mqtt:{source}", now)
                result = "accepted"
            except ConsentError:
                result = "unknown"
        log.info("household.command verb=ack ref=%s source=%s outcome=%s", ref, source, result)
        return result

    @staticmethod
    def _cancel(it: Intent, ledger: Ledger, dispatcher: OrderCanceller | None,
                now: datetime) -> CommandResult:
        """Unsent orders are cancelled in the ledger; a placed one only at the vendor."""
        if it.state in PENDING:
            ledger.cancel_pending(it.id, now)
            return "accepted"
        if it.state is State.LOST:  # the household's answer to a lost order: no vendor call
            ledger.cancel_lost(it.id, now)
            return "accepted"
        if dispatcher is None:
            log.warning("household.command cancel intent=%d refused reason=no_vendor_client",
                        it.id)
            return "unavailable"
        try:
            dispatcher.cancel(it.id, now)
        except VendorRetryable as err:
            log.warning("household.command cancel intent=%d outcome=vendor_unavailable "
                        "reason=%s", it.id, type(err).__name__)
            return "unavailable"
        return "accepted"

    def _check(self, verb: Verb, ref: str, it: Intent | None, now: datetime) -> CommandResult:
        if it is None:
            return "unknown"
        if verb is Verb.CANCEL:
            return "accepted" if it.state in (State.PROPOSED, State.QUEUED, State.PLACED,
                                              State.LOST) \
                else "already_decided"
        if it.state is not State.PROPOSED:
            return "already_decided"
        if ref != proposal_ref(it):
            return "unknown"  # terms changed since this button was published
        if now >= it.created_at + self.proposal_ttl:
            return "expired"
        return "accepted"
