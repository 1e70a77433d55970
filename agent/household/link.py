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

import logging
import queue
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agent.consent import Mode
from agent.domain import ConsumableKey
from agent.household.commands import DEFAULT_SNOOZE as DEFAULT_SNOOZE
from agent.household.commands import HouseholdCommands, LinkStats, OrderNow
from agent.household.commands import OrderCanceller as OrderCanceller
from agent.household.commands import proposal_ref as proposal_ref
from agent.household.discovery import DeviceInfo, discovery_for_device, discovery_for_proposal
from agent.storage.ledger import Intent, Ledger, ReminderRow, State
from agent.wire.household import (
    COMMAND_PREFIX,
    DEFAULT_DISCOVERY_PREFIX,
    HA_STATUS_TOPIC,
    ConsumableState,
    EventKind,
    Outgoing,
    Proposal,
    availability_message,
    consumable_message,
    event,
    event_message,
    proposal_cleared,
    proposal_message,
)

if TYPE_CHECKING:
    from agent.mqtt.ingest import HouseholdRoute

log = logging.getLogger(__name__)


DEFAULT_PROPOSAL_TTL = timedelta(hours=48)
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


class HouseholdLink(HouseholdCommands):
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
        # Imported here: the web process uses this module's household actions and must
        # not load paho (agent.mqtt.ingest) for them.
        from agent.mqtt.ingest import HouseholdRoute  # noqa: PLC0415

        return HouseholdRoute([f"{COMMAND_PREFIX}/#", HA_STATUS_TOPIC], self.deliver,
                              self.session_lost)

    def deliver(self, topic: str, payload: bytes) -> None:
        if topic == HA_STATUS_TOPIC:
            if payload.strip() == b"online":
                self._reannounce = True  # Home Assistant restarted: announce everything
            return
        try:
            self.commands.put_nowait((topic, payload))
        except queue.Full:
            self.stats.dropped += 1

    def session_lost(self) -> None:
        # A broker that lost our session restarted from an older snapshot (or none):
        # its retained levels, proposals and discovery may be old, so send all again.
        self._reannounce = True

    # ---- worker thread: commands (agent.household.commands), then publishing ------

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

    def _sync_reminders(self, reminders: Sequence[ReminderRow]) -> None:
        """Publish reminders stored since the last sync (not the backlog after a restart)."""
        newest = max((r.id for r in reminders), default=0)
        if self._last_reminder is not None:
            for r in reminders:
                if r.id > self._last_reminder:
                    at = datetime.fromtimestamp(r.ts, UTC)
                    self.reminder(r.consumable, r.kind, r.message, at)
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
        key = it.key
        text = f"{kind.value.replace('_', ' ')}: {it.quantity}x {it.name or it.sku}"
        if kind is EventKind.PROPOSAL:
            text += f" at {it.unit_price} {it.currency} each, approve or cancel"
        elif kind is EventKind.ORDER_ANNOUNCED and it.send_after is not None:
            text += (f" at {it.unit_price} {it.currency} each goes out "
                     f"{it.send_after:%Y-%m-%d %H:%M} UTC unless you cancel")
        elif kind is EventKind.PROBLEM:
            text = f"order {it.id} {it.state.value}: {it.reason or 'see replenish orders'}"
        ref = proposal_ref(it) if kind is EventKind.PROPOSAL else f"o{it.id}"
        self.publish(event_message(event(kind, now, text, device_id=key.device_id,
                                         consumable_id=key.consumable_id, ref=ref)))
        if kind is EventKind.PROPOSAL and auto:
            # The household allowed automatic orders: one that needs a tap went outside
            # the mandate (price, product, pack size, budget) and says why.
            self.problem(f"automatic order needs your approval: {it.reason or 'see proposal'}",
                         now, device_id=key.device_id, consumable_id=key.consumable_id,
                         ref=ref)

    def reminder(self, consumable: str, kind: str, message: str, now: datetime) -> None:
        """Publish a reminder or care tip the planner stored."""
        key = ConsumableKey.parse(consumable)
        event_kind = EventKind.CARE_TIP if kind == "care" else EventKind.REMINDER
        self.publish(event_message(event(event_kind, now, message, device_id=key.device_id,
                                         consumable_id=key.consumable_id)))

    def problem(self, message: str, now: datetime, device_id: str | None = None,
                consumable_id: str | None = None, ref: str | None = None) -> None:
        self.publish(event_message(event(EventKind.PROBLEM, now, message, device_id=device_id,
                                         consumable_id=consumable_id, ref=ref)))

    def _view(self, it: Intent, ref: str) -> Proposal:
        key = it.key
        return Proposal(
            proposal_id=ref, device_id=key.device_id, consumable_id=key.consumable_id,
            sku=it.sku,
            product=it.name or it.sku, quantity=it.quantity, unit_price=it.unit_price,
            currency=it.currency, expected_arrival=it.expected_delivery,
            expires_at=it.created_at + self.proposal_ttl, reason=it.reason or "",
        )

    def _buttons(self, it: Intent, remove: bool = False) -> list[Outgoing]:
        if not self.discovery:
            return []
        device = it.key.device_id
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
