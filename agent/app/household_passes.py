"""The household side of the running agent: the sync pass (commands in, orders and
dashboard states out, problems) and "order now" from a tap or a mapped button.

Kept apart from :mod:`agent.app.service` (which builds it and owns the scheduling): every
collaborator is passed in, so this reads top to bottom without the rest of the wiring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agent.app.dispatcher import Dispatcher
from agent.app.order_now import Outcome, order_now_for
from agent.config import Settings
from agent.domain import ConsumableKey
from agent.forecast import Forecast
from agent.household.link import HouseholdLink
from agent.household.views import consumable_states, consumable_views, device_views
from agent.storage.ledger import Ledger
from agent.storage.store import Store
from agent.vendor.client import CatalogItem, VendorClient
from agent.wire.household import CommandResult, EventKind, Outgoing, event, event_message

log = logging.getLogger("agent.app.service")  # the lines support staff already grep for

COMMAND_RESULT: dict[Outcome, CommandResult] = {
    Outcome.QUEUED: "accepted", Outcome.PROPOSED: "accepted",
    Outcome.ALREADY_ON_ORDER: "already_on_order", Outcome.NEEDS_SKU: "needs_sku",
    Outcome.UNKNOWN: "unknown", Outcome.UNAVAILABLE: "unavailable"}


@dataclass(kw_only=True)
class HouseholdPasses:
    settings: Settings
    clock: Callable[[], datetime]
    open_store: Callable[[], Store]
    ledger: Callable[[], AbstractContextManager[Ledger]]
    dispatcher: Callable[[Ledger], Dispatcher]
    catalog: Callable[[str], CatalogItem]
    publish: Callable[[Outgoing], None]
    vendor: VendorClient | None
    link: HouseholdLink | None = None
    states_at: datetime | None = field(default=None)  # when dashboard states last went out

    def sync(self, forecasts: dict[str, Forecast]) -> None:
        """Run queued household commands, then publish what changed."""
        assert self.link is not None
        now = self.clock()
        with self.ledger() as ledger, self.open_store() as store:
            dispatcher = self.dispatcher(ledger) if self.vendor is not None else None
            self.link.handle_commands(ledger, dispatcher, now)
            device_rows = store.devices()
            if self._states_due(now):
                consumable_rows = store.consumables(counts=False, as_of=now.timestamp())
                devices, availability = device_views(device_rows, consumable_rows)
                states = consumable_states(consumable_views(
                    device_rows, consumable_rows, ledger, forecasts))
                self.link.sync(ledger, devices, availability, states, now)
                self.states_at = now
            else:
                self.link.sync_orders(ledger, now)
        last_seen = {d.device_id: datetime.fromtimestamp(d.last_seen, UTC) for d in device_rows}
        unanswered = self.vendor.unanswered if self.vendor is not None else 0
        self.link.check_problems(last_seen, unanswered, now)

    def _states_due(self, now: datetime) -> bool:
        assert self.link is not None
        interval = timedelta(seconds=self.settings.household.state_interval_s)
        return (self.link.reannounce_due or self.states_at is None
                or not timedelta(0) <= now - self.states_at < interval)

    def order_now(self, ledger: Ledger, consumable: str, quantity: int | None, via: str,
                  now: datetime) -> tuple[CommandResult, str]:
        """A household "order now" tap from MQTT or Home Assistant."""
        with self.open_store() as store:
            result = order_now_for(store, ledger, self.catalog, consumable, via=via,
                                   vendor_name=self.settings.vendor.name, now=now,
                                   quantity=quantity)
        return COMMAND_RESULT[result.outcome], result.message

    def button_press(self, consumable: str, quantity: int | None, topic: str) -> None:
        """A physical button the household mapped to "order now" for ``consumable``."""
        with self.ledger() as ledger:
            result, message = self.order_now(ledger, consumable, quantity, "button",
                                             self.clock())
        log.info("order_now.button consumable=%s outcome=%s", consumable, result)
        if self.link is not None:
            key = ConsumableKey.parse(consumable)
            self.publish(event_message(event(EventKind.ORDER_NOW, self.clock(), message,
                                             device_id=key.device_id,
                                             consumable_id=key.consumable_id)))
