"""The household side over MQTT: publish what the agent knows, execute what it is told.

Notifications are derived from the ledger (the single source of truth), not emitted by
the code paths that change it: each sync compares intent states with the previous sync
and turns transitions into events, so nothing is announced that did not happen and a
restart re-announces retained state without repeating events.

Commands (``approve``, ``cancel``, ``snooze``) arrive on paho's thread, are queued, and
run on the agent's worker through the same ledger calls as the CLI, so they land in the
audit chain the same way; refused commands are audited too.
"""

from __future__ import annotations

import hashlib
import logging
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from agent.consent import Mode
from agent.errors import ConsentError, StoreError, VendorRetryable
from agent.household.discovery import DeviceInfo, discovery_for_device, discovery_for_proposal
from agent.mqtt.ingest import HouseholdRoute
from agent.storage.alerts import AlertLedger
from agent.storage.ledger import PENDING, Intent, Ledger, State
from agent.wire.household import (
    COMMAND_PREFIX,
    DEFAULT_DISCOVERY_PREFIX,
    HA_STATUS_TOPIC,
    CommandResult,
    ConsumableState,
    EventKind,
    Outgoing,
    Proposal,
    Verb,
    availability_message,
    consumable_message,
    event,
    event_message,
    parse_command,
    proposal_cleared,
    proposal_message,
)

log = logging.getLogger(__name__)


class OrderNow(Protocol):
    """The app's one "order now" path: returns the outcome and the household's message."""

    def __call__(self, ledger: Ledger, consumable: str, quantity: int | None, via: str,
                 now: datetime) -> tuple[CommandResult, str]: ...


class OrderCanceller(Protocol):
    """What the link needs of the dispatcher: its one cancel path (the app wires it in)."""

    def cancel(self, intent_id: int, now: datetime) -> Intent: ...

DEFAULT_PROPOSAL_TTL = timedelta(hours=48)
DEFAULT_SNOOZE = timedelta(hours=24)
DEFAULT_SILENT_AFTER = timedelta(hours=24)
MAX_QUEUED_COMMANDS = 100
# Calls in a row without a usable answer before the household hears the vendor is down:
# one timeout is a blip the outbox retries anyway.
VENDOR_DOWN_AFTER = 3

_EVENTS: dict[State, EventKind] = {
    State.PROPOSED: EventKind.PROPOSAL,
    State.PLACED: EventKind.ORDER_PLACED,
    State.DELIVERED: EventKind.ORDER_DELIVERED,
    State.CANCELLED: EventKind.ORDER_CANCELLED,
    State.REJECTED: EventKind.PROBLEM,
    State.FAILED: EventKind.PROBLEM,
    State.LOST: EventKind.PROBLEM,
}


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


def _device_of(consumable: str) -> tuple[str, str]:
    device, _, item = consumable.partition("/")
    return device, item


@dataclass(slots=True)
class LinkStats:
    commands: int = 0
    refused: int = 0
    dropped: int = 0


class HouseholdLink:
    """Publishes household topics and Home Assistant discovery; runs household commands."""

    def __init__(
        self,
        publish: Callable[[Outgoing], None],
        *,
        discovery: bool = True,
        prefix: str = DEFAULT_DISCOVERY_PREFIX,
        proposal_ttl: timedelta = DEFAULT_PROPOSAL_TTL,
        silent_after: timedelta = DEFAULT_SILENT_AFTER,
        order_now: OrderNow | None = None,
    ) -> None:
        self.publish = publish
        self.order_now = order_now
        self.discovery = discovery
        self.prefix = prefix
        self.proposal_ttl = proposal_ttl
        self.silent_after = silent_after
        self.stats = LinkStats()
        self.commands: queue.Queue[tuple[str, bytes]] = queue.Queue(MAX_QUEUED_COMMANDS)
        # A command the database could not record (disk full), run first next time.
        self._held: tuple[str, bytes] | None = None
        self._known: dict[int, tuple[State, str | None]] | None = None
        self._last_reminder: int | None = None
        self._devices: dict[str, DeviceInfo] = {}
        self._proposals: dict[str, Intent] = {}
        self._reannounce = True
        self._retained: dict[str, bytes] = {}
        self._silent: set[str] | None = None
        self._vendor_down = False

    # ---- paho thread: never blocks, never raises ----------------------------------

    def route(self) -> HouseholdRoute:
        return HouseholdRoute([f"{COMMAND_PREFIX}/#", HA_STATUS_TOPIC], self.deliver)

    def deliver(self, topic: str, payload: bytes) -> None:
        if topic == HA_STATUS_TOPIC:
            if payload.strip() == b"online":
                self._reannounce = True  # Home Assistant restarted: announce everything
            return
        try:
            self.commands.put_nowait((topic, payload))
        except queue.Full:
            self.stats.dropped += 1

    # ---- worker thread ------------------------------------------------------------

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
            result, message = self.order_now(ledger, f"{device}/{item}", quantity,
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

    # ---- publishing ---------------------------------------------------------------

    @property
    def reannounce_due(self) -> bool:
        """Home Assistant came (back) online: the next sync must be a full one."""
        return self._reannounce

    def sync_orders(self, ledger: Ledger, now: datetime) -> None:
        """The frequent part of a sync: proposals, order events and reminders."""
        self._sync_ledger(ledger, now, reannounce=False)

    def sync(self, ledger: Ledger, devices: Sequence[DeviceInfo],
             availability: dict[str, bool], states: Sequence[ConsumableState],
             now: datetime) -> None:
        """Publish retained state, discovery, proposals and transition events."""
        reannounce, self._reannounce = self._reannounce, False
        current = {d.device_id: d for d in devices}
        if self.discovery:
            for gone in self._devices.keys() - current.keys():
                self._send(discovery_for_device(self._devices[gone], self.prefix, remove=True))
            for device in current.values():
                if reannounce or self._devices.get(device.device_id) != device:
                    self._send(discovery_for_device(device, self.prefix))
        self._devices = current
        for device_id, online in availability.items():
            self._publish_changed(availability_message(device_id, online), reannounce)
        for state in states:
            self._publish_changed(consumable_message(state), reannounce)
        self._sync_ledger(ledger, now, reannounce)

    def _sync_ledger(self, ledger: Ledger, now: datetime, reannounce: bool) -> None:
        auto = {c.consumable for c in ledger.consents() if c.mode is Mode.AUTO}
        self._sync_intents(ledger.intents(), now, reannounce, auto)
        self._sync_reminders(ledger.reminders())

    def check_problems(self, last_seen: dict[str, datetime], vendor_unanswered: int,
                       now: datetime) -> None:
        """Announce a device gone silent and a vendor that stopped answering, once each
        time it happens (a restarted agent takes the current state as known)."""
        silent = {d for d, seen in last_seen.items() if now - seen >= self.silent_after}
        if self._silent is not None:
            for device_id in sorted(silent - self._silent):
                hours = (now - last_seen[device_id]).total_seconds() / 3600
                self.problem(f"device {device_id} silent for {hours:.0f} h: check its power "
                             "and network", now, device_id=device_id)
        self._silent = silent
        down = vendor_unanswered >= VENDOR_DOWN_AFTER
        if down and not self._vendor_down:
            self.problem(f"vendor not answering ({vendor_unanswered} calls in a row): orders "
                         "wait and are retried with the same key, never twice", now)
        self._vendor_down = down

    def _sync_reminders(self, reminders: Sequence[dict[str, Any]]) -> None:
        """Publish reminders stored since the last sync (not the backlog after a restart)."""
        newest = max((int(r["id"]) for r in reminders), default=0)
        if self._last_reminder is not None:
            for r in reminders:
                if int(r["id"]) > self._last_reminder:
                    at = datetime.fromtimestamp(float(r["ts"]), UTC)
                    self.reminder(str(r["consumable"]), str(r["kind"]), str(r["message"]), at)
        self._last_reminder = max(newest, self._last_reminder or 0)

    def _sync_intents(self, intents: Sequence[Intent], now: datetime, reannounce: bool,
                      auto: set[str]) -> None:
        first = self._known is None
        known = self._known or {}
        open_proposals: dict[str, Intent] = {}
        for it in intents:
            key = (it.state, it.order_status)
            if it.state is State.PROPOSED and now < it.created_at + self.proposal_ttl:
                open_proposals[proposal_ref(it)] = it
            if not first and known.get(it.id) != key:
                self._announce(it, known.get(it.id), now, it.consumable in auto)
            known[it.id] = key
        self._known = known
        if first:
            # A restarted agent does not know what it announced before: clear what a
            # proposal decided or expired meanwhile may have left retained.
            for it in intents:
                ref = proposal_ref(it)
                if ref not in open_proposals:
                    self.publish(proposal_cleared(ref))
                    self._send(self._buttons(it, remove=True))
        for ref in self._proposals.keys() - open_proposals.keys():
            self.publish(proposal_cleared(ref))
            self._send(self._buttons(self._proposals[ref], remove=True))
        for ref, it in open_proposals.items():
            if reannounce or ref not in self._proposals:
                self.publish(proposal_message(self._view(it, ref)))
                self._send(self._buttons(it))
        self._proposals = open_proposals

    def _announce(self, it: Intent, before: tuple[State, str | None] | None,
                  now: datetime, auto: bool) -> None:
        kind = _EVENTS.get(it.state)
        if it.state is State.PLACED and before is not None and before[0] is State.PLACED:
            # Within PLACED only the step to shipped is news (pending -> confirmed is not).
            if it.order_status != "shipped":
                return
            kind = EventKind.ORDER_SHIPPED
        if it.state is State.QUEUED and it.mode is Mode.AUTO and it.send_after is not None:
            kind = EventKind.ORDER_ANNOUNCED
        if kind is None:
            return
        device, item = _device_of(it.consumable)
        text = f"{kind.value.replace('_', ' ')}: {it.quantity}x {it.name or it.sku}"
        if kind is EventKind.PROPOSAL:
            text += f" at {it.unit_price} {it.currency} each, approve or cancel"
        elif kind is EventKind.ORDER_ANNOUNCED and it.send_after is not None:
            text += (f" at {it.unit_price} {it.currency} each goes out "
                     f"{it.send_after:%Y-%m-%d %H:%M} UTC unless you cancel")
        elif kind is EventKind.PROBLEM:
            text = f"order {it.id} {it.state.value}: {it.reason or 'see replenish orders'}"
        ref = proposal_ref(it) if kind is EventKind.PROPOSAL else f"o{it.id}"
        self.publish(event_message(event(kind, now, text, device_id=device,
                                         consumable_id=item, ref=ref)))
        if kind is EventKind.PROPOSAL and auto:
            # The household allowed automatic orders: one that needs a tap went outside
            # the mandate (price, product, pack size, budget) and says why.
            self.problem(f"automatic order needs your approval: {it.reason or 'see proposal'}",
                         now, device_id=device, consumable_id=item, ref=ref)

    def reminder(self, consumable: str, kind: str, message: str, now: datetime) -> None:
        """Publish a reminder or care tip the planner stored."""
        device, item = _device_of(consumable)
        event_kind = EventKind.CARE_TIP if kind == "care" else EventKind.REMINDER
        self.publish(event_message(event(event_kind, now, message, device_id=device,
                                         consumable_id=item)))

    def problem(self, message: str, now: datetime, device_id: str | None = None,
                consumable_id: str | None = None, ref: str | None = None) -> None:
        self.publish(event_message(event(EventKind.PROBLEM, now, message, device_id=device_id,
                                         consumable_id=consumable_id, ref=ref)))

    def _view(self, it: Intent, ref: str) -> Proposal:
        device, item = _device_of(it.consumable)
        return Proposal(
            proposal_id=ref, device_id=device, consumable_id=item, sku=it.sku,
            product=it.name or it.sku, quantity=it.quantity, unit_price=float(it.unit_price),
            currency=it.currency, expected_arrival=it.expected_delivery,
            expires_at=it.created_at + self.proposal_ttl, reason=it.reason or "",
        )

    def _buttons(self, it: Intent, remove: bool = False) -> list[Outgoing]:
        if not self.discovery:
            return []
        device, _ = _device_of(it.consumable)
        info = self._devices.get(device) or DeviceInfo(device, "other", ())
        return discovery_for_proposal(self._view(it, proposal_ref(it)), info, self.prefix,
                                      remove=remove)

    def _publish_changed(self, message: Outgoing, reannounce: bool) -> None:
        """Retained state goes out when it changed (or on re-announce), not every sync."""
        if reannounce or self._retained.get(message.topic) != message.payload:
            self._retained[message.topic] = message.payload
            self.publish(message)

    def _send(self, messages: list[Outgoing]) -> None:
        for m in messages:
            self.publish(m)
