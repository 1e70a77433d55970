"""Wiring of the foreign sources (issue 19): discovery/Zigbee2MQTT reader, Nightscout,
calendar subscriptions. Kept apart from :mod:`agent.app.service` so the service only
creates one :class:`SourceJobs` and schedules what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent.config import Settings
from agent.mqtt.ingest import ForeignRoute
from agent.sources.calendar.subscription import CalendarSubscriptions, away_rule, calendar_dir
from agent.sources.nightscout.source import SOURCE as NIGHTSCOUT
from agent.sources.nightscout.source import NightscoutSource
from agent.sources.reader import ForeignReader
from agent.storage.ledger import Ledger
from agent.storage.sources import SourceStore
from agent.storage.store import Store


@dataclass(slots=True, frozen=True)
class Job:
    """A periodic job: run ``func`` every ``every``, first at ``first_run`` (None: one
    interval after the scheduler starts)."""

    func: Callable[[], object]
    id: str
    every: timedelta
    first_run: datetime | None = None

class SourceJobs:
    """The periodic jobs of the foreign sources; each opens its own connections."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime],
                 press: Callable[[str, int | None, str], None] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.press = press  # a mapped button was pressed: (consumable, quantity, topic)
        # The service's clock, so readings carry simulated time in the demo and tests.
        self.foreign = ForeignReader(settings.sources, str(settings.storage.path),
                                     clock=lambda: clock().timestamp())
        ns = settings.sources.nightscout
        self.nightscout = NightscoutSource(ns) if ns is not None else None

    def route(self) -> ForeignRoute:
        """The hook for the agent's one paho connection."""
        return ForeignRoute(self.foreign.topics, self.foreign.wants, self.foreign.deliver)

    def jobs(self) -> list[Job]:
        """The periodic jobs of the foreign sources."""
        now = datetime.now(UTC)
        out = [
            Job(self.drain, "foreign-sources",
                timedelta(seconds=self.settings.sources.drain_interval_s)),
            Job(self.foreign.refresh_adoptions, "foreign-adoptions", timedelta(seconds=30)),
            # The first calendar refresh right away, then every refresh_interval_min.
            Job(self.refresh_calendars, "calendars",
                timedelta(minutes=self.settings.calendar.refresh_interval_min), now),
        ]
        if self.nightscout is not None:
            out.append(Job(self.poll_nightscout, "nightscout",
                           timedelta(minutes=self.nightscout.settings.poll_interval_min), now))
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
