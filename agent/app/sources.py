"""Wiring of the foreign sources (issue 19): discovery/Zigbee2MQTT reader, Nightscout,
calendar subscriptions. Kept apart from :mod:`agent.app.service` so the service only
creates one :class:`SourceJobs` and schedules what it returns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent.config import Settings
from agent.mqtt.ingest import ForeignRoute
from agent.sources.calendar.subscription import CalendarSubscriptions, away_rule, calendar_dir
from agent.sources.nightscout.source import SOURCE as NIGHTSCOUT
from agent.sources.nightscout.source import NightscoutSource
from agent.sources.reader import ForeignReader
from agent.storage.ledger import Ledger
from agent.storage.sources import SourceStore
from agent.storage.store import Store


class SourceJobs:
    """The periodic jobs of the foreign sources; each opens its own connections."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime],
                 press: Callable[[str, int | None, str], None] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.press = press  # a mapped button was pressed: (consumable, quantity, topic)
        self.foreign = ForeignReader(settings.sources, str(settings.storage.path))
        ns = settings.sources.nightscout
        self.nightscout = NightscoutSource(ns) if ns is not None else None

    def route(self) -> ForeignRoute:
        """The hook for the agent's one paho connection."""
        return ForeignRoute(self.foreign.topics, self.foreign.wants, self.foreign.deliver)

    def jobs(self) -> list[tuple[Callable[[], Any], dict[str, Any]]]:
        """(function, APScheduler ``add_job`` keyword arguments) for each job."""
        now = datetime.now(UTC)
        out: list[tuple[Callable[[], Any], dict[str, Any]]] = [
            (self.drain, {"trigger": "interval", "id": "foreign-sources",
                                  "seconds": self.settings.sources.drain_interval_s}),
            (self.foreign.refresh_adoptions, {"trigger": "interval", "seconds": 30,
                                              "id": "foreign-adoptions"}),
            # The first calendar refresh right away, then every refresh_interval_min.
            (self.refresh_calendars, {"trigger": "interval", "id": "calendars",
                                      "minutes": self.settings.calendar.refresh_interval_min,
                                      "next_run_time": now}),
        ]
        if self.nightscout is not None:
            out.append((self.poll_nightscout, {
                "trigger": "interval", "id": "nightscout", "next_run_time": now,
                "minutes": self.nightscout.settings.poll_interval_min}))
        return out

    def drain(self) -> None:
        """Foreign messages into readings; mapped button presses into "order now"."""
        self.foreign.drain()
        for consumable, quantity, topic in self.foreign.take_presses():
            if self.press is not None:
                self.press(consumable, quantity, topic)

    def poll_nightscout(self) -> None:
        """Read the wearer's consumables; a fault is counted for doctor, never raised."""
        if self.nightscout is None:
            return
        result = self.nightscout.poll(self.clock())
        if result.states:
            with Store(self.settings.storage.path) as store:
                store.write_batch(result.states, received_at=self.clock().timestamp())
        if result.fault:
            with SourceStore(self.settings.storage.path) as db:
                db.count_rejects({(NIGHTSCOUT, result.fault): 1}, self.clock().timestamp())

    def refresh_calendars(self) -> None:
        """Fetch every subscribed calendar; a fault keeps its last good copy."""
        subs = CalendarSubscriptions(calendar_dir(self.settings))
        names = subs.names()
        if not names:
            return
        cs, now = self.settings.calendar, self.clock()
        ledger = Ledger.open(self.settings.storage.path)
        try:
            for name in names:
                subs.refresh(name, ledger, now, rule=away_rule(self.settings),
                             timeout_s=cs.timeout_s, deadline_s=cs.deadline_s)
        finally:
            ledger.close()

    def close(self) -> None:
        if self.nightscout is not None:
            self.nightscout.close()
