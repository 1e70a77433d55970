"""Wiring: the one place that creates the adapters and connects them.

The CLI's ``run`` builds an :class:`AgentService` from settings and calls :meth:`run`.
Everything else (forecast, policy, store, ingest, outbox) knows nothing about the others.
Every periodic job opens its own SQLite connections (one per thread) and takes ``now``
from the injected clock, so the demo can run the whole agent on a simulated month.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from agent.app import factory, simtime
from agent.app.alerting import alert_pass_for
from agent.app.batteries import BatteryPlans
from agent.app.dispatcher import Dispatcher
from agent.app.fleet import FleetPublisher, fleet_pass
from agent.app.history import HistoryCache
from agent.app.household_passes import HouseholdPasses
from agent.app.liveness import Liveness
from agent.app.planner import Planner
from agent.app.sources import SourceJobs
from agent.app.storage_faults import CLEARED_PROBLEM, INGEST, Fault, StorageFaults, bring_forward
from agent.app.supplies import ShelfPlans, chain, wearer_spec
from agent.clock import SimulatedClock
from agent.config import Settings
from agent.errors import AgentError, StoreError, VendorRetryable
from agent.forecast import Forecast
from agent.household.link import HouseholdLink
from agent.mqtt.backoff import BrokerWait, WaitAttempt
from agent.mqtt.ingest import MqttIngest
from agent.ops import systemd
from agent.ops.progress import ProgressFile, progress_path
from agent.sources.ipp.source import IppPrinterSource
from agent.storage.forecasts import save_forecasts
from agent.storage.ledger import Ledger
from agent.storage.store import Store
from agent.vendor.client import CatalogItem, VendorClient
from agent.wire.household import Outgoing

log = logging.getLogger(__name__)

FLEET_INTERVAL_S = 60


def utc_now() -> datetime:
    return datetime.now(UTC)


class AgentService(Liveness):
    """The running agent: ingest, printers, decisions, orders, household link, shutdown."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now,
                 simulated: SimulatedClock | None = None) -> None:
        self.settings = settings
        # ``replenish run --clock``: "now" everywhere, and passes on the clock's moves.
        self.simulated = simulated
        self.sim_runner: simtime.SimTimeRunner | None = None
        if simulated is not None:
            clock = simulated.now
        self.clock = clock
        self._stop = threading.Event()
        # Migrate once, up front, so READY means the schema is current.
        Store(settings.storage.path).close()
        hs = settings.household
        # Commands in, dashboards out, "order now": the vendor and link are set below.
        self.household_passes = HouseholdPasses(
            settings=settings, clock=lambda: self.clock(), open_store=self.open_store,
            ledger=self.ledger, dispatcher=self.dispatcher, catalog=self._catalog,
            publish=self._publish, vendor=None)
        self.household: HouseholdLink | None = None
        if hs.enabled:
            self.household = HouseholdLink(
                self._publish, discovery=hs.homeassistant, prefix=hs.discovery_prefix,
                proposal_ttl=timedelta(hours=hs.proposal_ttl_h),
                silent_after=timedelta(hours=hs.silent_after_h),
                order_now=self.household_passes.order_now,
            )
        self.household_passes.link = self.household
        # Foreign devices, Nightscout, calendars; mapped buttons order now.
        self.sources = SourceJobs(settings, clock, self.household_passes.button_press)
        self.ingest = MqttIngest(
            settings.mqtt, settings.ingest, self.open_store,
            household=self.household.route() if self.household else None,
            foreign=self.sources.route(),
            clock_trusted=self._ingest_clock_trusted,
        )
        self.sources.foreign.subscribe = self.ingest.subscribe_foreign
        self._mqtt_probe = systemd.thread_probe(lambda: self.ingest.loop_alive,
                                                self.ingest.progress)
        if simulated is not None:  # reading timestamps are judged against simulated time
            self.ingest.wall = self.ingest.writer.wall = simulated.timestamp
            self.sources.foreign.clock = simulated.timestamp
            self.ingest.writer.commit_window_s = 0.0  # each simulated step commits at once
            self.ingest.writer.last_values_interval_s = 0.0  # ... with its "last" values
        self.fleet = FleetPublisher(lambda *message: self.ingest.publish(*message),
                                    "system" if simulated is None else "simulated")
        self.vendor = self._vendor_client()
        self.household_passes.vendor = self.vendor
        self.printers = [IppPrinterSource(p) for p in settings.printers]
        # A job whose first run fell due while the agent waited for a late broker runs at
        # start (late, once) instead of being reported as missed.
        self.scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"misfire_grace_time": None, "coalesce": True})
        self.scheduler_heartbeat = time.monotonic()
        self.watchdog: systemd.Watchdog | None = None
        # Set while ``run`` waits for a broker that is not up yet (see agent.mqtt.backoff).
        self.broker_wait: BrokerWait | None = None
        # The last decision pass's forecasts, for the household dashboards.
        self.forecasts: dict[str, Forecast] = {}
        self.history = HistoryCache()
        self.alerts = alert_pass_for(self.settings, self._publish if self.household else None)
        # Storage faults of every writer (ingest and the jobs below), said in one place.
        self.storage = StorageFaults(self._storage_changed, bring_forward(self.scheduler))
        # Passes completed and ingest writes, as data for doctor and tests (agent.ops.progress).
        self.progress = ProgressFile(progress_path())
        self._schedule()

    # ---- construction -------------------------------------------------------------

    def _ingest_clock_trusted(self) -> bool:
        if self.settings.ingest.trust_clock == "always" or self.simulated is not None:
            return True
        if self.settings.ingest.trust_clock == "flag":
            return self.settings.ingest.clock_flag_file.exists()
        return systemd.clock_synchronized() is True

    def _vendor_client(self) -> VendorClient | None:
        client = factory.vendor_client(self.settings)
        if client is None:
            log.warning("vendor.disabled reason=no_token_file effect=orders_stay_proposals")
        return client

    def _schedule(self) -> None:
        add = self.scheduler.add_job
        def guard(writer: str, job: Callable[[], None], job_id: str) -> Callable[[], None]:
            # A full disk is retried with backoff, never raised; a pass that returns counts.
            return self.storage.guard(writer, self.progress.counted(job_id, job), job_id)

        add(self._heartbeat, "interval", seconds=10, id="heartbeat")
        add(guard("retention", self.compact, "retention"), "interval", hours=1,
            id="retention")
        # The first pass runs at start, so dashboards show days left without waiting.
        add(guard("decision", self.decide, "decide"), "interval",
            seconds=self.settings.forecast.interval_s, id="decide",
            coalesce=True, next_run_time=datetime.now(UTC))
        if self.vendor is not None:
            add(guard("outbox", self.dispatch, "dispatch"), "interval",
                seconds=self.settings.vendor.dispatch_interval_s, id="dispatch", coalesce=True)
        if self.household is not None:
            add(guard("household", self.sync_household, "household"), "interval",
                seconds=self.settings.household.sync_interval_s, id="household", coalesce=True)
        if self.alerts is not None:
            add(self._alerts_job, "date", id="alerts")
        # Orders change in dispatch passes: the fleet hears of them as soon as the next one.
        add(self.publish_fleet, "interval", id="fleet", coalesce=True,
            seconds=min(FLEET_INTERVAL_S, self.settings.vendor.dispatch_interval_s))
        for source in self.printers:
            add(self.poll_printer, "date", args=[source], id=f"printer-{source.device_id}")
        for job in self.sources.jobs():
            first = {} if job.first_run is None else {"next_run_time": job.first_run}
            add(job.func, "interval", seconds=job.every.total_seconds(), id=job.id,
                coalesce=True, **first)

    def _storage_changed(self, before: Fault | None, now: Fault | None) -> None:
        """Say a storage fault where systemctl, doctor and the household look."""
        mq = self.settings.mqtt
        systemd.status(now.status if now is not None
                       else f"running: MQTT broker {mq.host}:{mq.port} connected")
        if self.household is None or (before and now and before.reason == now.reason):
            return
        self.household.problem(now.problem if now is not None else CLEARED_PROBLEM,
                               self.clock(), ref="storage")

    def _alerts_job(self) -> None:
        self.storage.guard("alerts", self.send_alerts)()

    def open_store(self) -> Store:
        return Store(self.settings.storage.path, rejects_kept=self.settings.ingest.rejects_kept)

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        ledger = Ledger.open(self.settings.storage.path)
        try:
            yield ledger
        finally:
            ledger.close()

    def dispatcher(self, ledger: Ledger) -> Dispatcher:
        if self.vendor is None:
            raise AgentError("no vendor token configured: cannot reach the vendor")
        return factory.dispatcher(self.settings, ledger, self.vendor)

    def planner(self, store: Store, ledger: Ledger) -> Planner:
        fs, vs = self.settings.forecast, self.settings.vendor
        return Planner(
            store, ledger, self._catalog, vendor_name=vs.name,
            pre_notice=timedelta(hours=vs.pre_notice_h),
            consolidate_window=timedelta(days=vs.consolidate_window_days),
            free_shipping_slack=timedelta(days=vs.free_shipping_slack_days),
            review_interval=timedelta(hours=fs.review_interval_h),
            service_level=fs.service_level,
            cancel_hold=timedelta(days=vs.cancel_hold_days),
            adjust=chain(BatteryPlans(self.settings.storage.path,
                                      self.settings.sources.zigbee2mqtt), ShelfPlans()),
            spec_for=wearer_spec,
            history=self.history,
        )

    # ---- jobs ---------------------------------------------------------------------

    def _heartbeat(self) -> None:
        self.scheduler_heartbeat = time.monotonic()

    def _publish(self, message: Outgoing) -> None:
        self.ingest.publish(message.topic, message.payload, message.retain, message.qos)

    def _catalog(self, sku: str) -> CatalogItem:
        if self.vendor is None:
            raise VendorRetryable("no vendor configured")
        return self.vendor.catalog(sku)

    def _clock_trusted(self, job: str) -> bool:
        """A gateway without an RTC boots in the past: never decide or order before NTP."""
        if not self.settings.vendor.require_synced_clock or self.simulated is not None:
            return True
        if systemd.clock_synchronized() is not True:
            log.warning("%s.skipped reason=clock_not_synchronized", job)
            return False
        return True

    def decide(self) -> None:
        """One decision pass: forecasts, reorder timing and consent for every consumable."""
        if not self._clock_trusted("decision"):
            return
        with self.open_store() as store, self.ledger() as ledger:
            report = self.planner(store, ledger).run_once(self.clock())
            # H-web (issue 20): the web app shows these instead of recomputing them all.
            save_forecasts(ledger.conn, report.forecasts)
        self.forecasts = report.forecasts

    def dispatch(self) -> None:
        """One outbox pass: send due intents, reconcile, follow placed orders."""
        if not self._clock_trusted("dispatch"):
            return
        with self.ledger() as ledger:
            self.dispatcher(ledger).run_once(self.clock())

    def sync_household(self) -> None:
        """Run queued household commands, then publish what changed."""
        self.household_passes.sync(self.forecasts)

    def send_alerts(self) -> None:
        """One alert pass: urgent events to caregivers. Alerts never wait for NTP: a late
        fall alert with a wrong clock beats none."""
        assert self.alerts is not None
        try:
            self.alerts.run_once(self.clock())
        finally:
            # Rescheduled after each pass (not an interval job): a pass that takes longer
            # than the interval while sending never overlaps the next one.
            if not self._stop.is_set():
                self.scheduler.add_job(
                    self._alerts_job, "date", id="alerts", replace_existing=True,
                    run_date=datetime.now(UTC) + timedelta(seconds=self.settings.alerts.interval_s))

    def poll_printer(self, source: IppPrinterSource) -> None:
        """Poll one printer, store what it read, and schedule the next poll."""
        result = source.poll(self.clock())
        items = ([result.state] if result.state else []) + list(result.events)
        if items:
            try:
                with self.open_store() as store:
                    store.write_batch(items, received_at=self.clock().timestamp())
            except StoreError as err:  # this poll's reading is lost; the next one reads anew
                self.storage.failed("printer", err.reason, str(err))
            else:
                self.storage.succeeded("printer")
        if not self._stop.is_set():
            self.scheduler.add_job(
                self.poll_printer, "date", args=[source], id=f"printer-{source.device_id}",
                replace_existing=True,
                run_date=datetime.now(UTC) + timedelta(seconds=result.next_poll_in_s),
            )

    def publish_fleet(self) -> None:
        """The fleet topics a vendor's bridge carries: changed orders, then health."""
        fleet_pass(self.fleet, self.ledger, self.open_store, self.clock(),
                   connected=self.ingest.connected.is_set(), ordering=self.vendor is not None,
                   ingest_fault=self.ingest.writer.fault)

    def compact(self) -> None:
        """Thin old readings: 5-minute resolution after a day, hourly after raw_days."""
        with self.open_store() as store:
            store.compact(self.clock(), raw_days=self.settings.retention.raw_days)

    # ---- lifecycle ----------------------------------------------------------------

    def start(self, background_jobs: bool = True, wait_for_broker: bool = False) -> None:
        """Connect and start; ``background_jobs=False`` leaves the periodic passes to the
        caller (the demo drives them on its simulated clock).

        ``wait_for_broker`` (``replenish run``): READY once the database is migrated, then
        wait for the broker with backoff (STATUS= says so, the watchdog stays fed) until it
        answers or we are stopped. Without it an unreachable broker raises BrokerError."""
        mq = self.settings.mqtt
        if wait_for_broker:
            self.broker_wait = BrokerWait(mq.host, mq.port, self._stop,
                                          on_wait=self._on_broker_wait,
                                          on_begin=self._ready_before_broker)
        self.ingest.start(wait=self.broker_wait)
        if self._stop.is_set():
            return
        if background_jobs:
            # The first pass runs now, not when the service was built (that may be
            # minutes ago after a wait for the broker, and APScheduler would skip it).
            if self.simulated is None:
                self.scheduler.modify_job("decide", next_run_time=datetime.now(UTC))
            else:  # the passes follow the simulated clock (agent.app.simtime)
                simtime.release_jobs(self.scheduler)
            self.scheduler_heartbeat = time.monotonic()  # its first beat is 10 s away
            self.scheduler.start()
            if self.simulated is not None:
                self.sim_runner = simtime.runner_for(self, self.simulated)
                self.sim_runner.start()
        if not wait_for_broker:
            self._start_watchdog()
            systemd.ready()
        systemd.status(f"running: MQTT broker {mq.host}:{mq.port} connected")
        log.info(
            "agent.ready broker=%s:%d db=%s printers=%d ordering=%s clock=%s",
            self.settings.mqtt.host, self.settings.mqtt.port, self.settings.storage.path,
            len(self.printers), "on" if self.vendor else "off", self.fleet.clock_kind,
        )

    def _start_watchdog(self) -> None:
        self.watchdog = self._watch()
        if self.watchdog is not None:
            self.watchdog.start()

    def _ready_before_broker(self) -> None:
        self._start_watchdog()
        systemd.ready()
        mq = self.settings.mqtt
        systemd.status(f"connecting to MQTT broker {mq.host}:{mq.port}")

    @staticmethod
    def _on_broker_wait(attempt: WaitAttempt) -> None:
        systemd.status(attempt.status)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Start, then block until SIGTERM/SIGINT; returns the exit code."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("agent.stopping signal=%d", signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start(wait_for_broker=True)
        try:
            while not self._stop.wait(1.0):
                if not self.ingest.writer.alive:
                    log.critical("agent.failed ingest writer died")
                    return 1
                self.storage.observe(INGEST, self.ingest.writer.fault)
                self.progress.publish(self.ingest.writer.stats)
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        self._stop.set()
        systemd.stopping()
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.sim_runner is not None:
            self.sim_runner.close()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.ingest.stop()
        for source in self.printers:
            source.close()
        self.sources.close()
        if self.vendor is not None:
            self.vendor.close()
        log.info("agent.stopped")

