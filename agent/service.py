"""Wiring: the one place that creates the adapters and connects them.

The CLI's ``run`` builds an :class:`AgentService` from settings and calls :meth:`run`.
Everything else (forecast, policy, store, ingest) knows nothing about the others.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from agent import systemd
from agent.config import Settings
from agent.ingest import MqttIngest
from agent.store import Store

log = logging.getLogger(__name__)

FULL_RESOLUTION_S = 24 * 3600
THIN_BUCKET_S = 300
ARCHIVE_BUCKET_S = 3600


class AgentService:
    """The running agent: ingest, periodic jobs and shutdown."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._stop = threading.Event()
        # Migrate once, up front, so READY means the schema is current.
        Store(settings.storage.path).close()
        self.ingest = MqttIngest(
            settings.mqtt, settings.ingest, self.open_store, on_stored=self._on_stored
        )
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.scheduler_heartbeat = time.monotonic()
        self.watchdog: systemd.Watchdog | None = None
        self.scheduler.add_job(self._heartbeat, "interval", seconds=10, id="heartbeat")
        self.scheduler.add_job(self.compact, "interval", hours=1, id="retention")

    def open_store(self) -> Store:
        return Store(self.settings.storage.path, rejects_kept=self.settings.ingest.rejects_kept)

    def _heartbeat(self) -> None:
        self.scheduler_heartbeat = time.monotonic()

    def _on_stored(self, device_ids: set[str]) -> None:
        log.debug("stored readings from %d devices", len(device_ids))

    def compact(self) -> None:
        """Thin old readings: 5-minute resolution after a day, hourly after raw_days."""
        now = self.clock()
        with self.open_store() as store:
            thinned = store.downsample(now - FULL_RESOLUTION_S, THIN_BUCKET_S)
            archived = store.downsample(
                now - self.settings.retention.raw_days * 86_400, ARCHIVE_BUCKET_S
            )
        if thinned or archived:
            log.info("retention.compact thinned=%d archived=%d", thinned, archived)

    def _mqtt_progress(self) -> float | None:
        """Last sign of life from paho's loop: None once its thread is dead.

        paho records every packet it reads (keepalive PINGRESPs included) in
        ``_last_msg_in`` on the monotonic clock, so an idle but healthy loop stays fresh.
        """
        if not self.ingest.loop_alive:
            return None
        last_in = getattr(self.ingest.client, "_last_msg_in", None)
        return max(float(last_in or 0.0), self.ingest.last_network_activity)

    def _writer_progress(self) -> float | None:
        return time.monotonic() if self.ingest.writer.alive else None

    def _watch(self) -> systemd.Watchdog | None:
        watchdog = systemd.Watchdog.from_env()
        if watchdog is None:
            return None
        keepalive = self.settings.mqtt.keepalive_s
        watchdog.add_probe("mqtt-loop", self._mqtt_progress, max_age_s=keepalive * 3)
        watchdog.add_probe("ingest-writer", self._writer_progress, max_age_s=60)
        watchdog.add_probe("scheduler", lambda: self.scheduler_heartbeat, max_age_s=60)
        return watchdog

    def start(self) -> None:
        self.ingest.start()
        self.scheduler.start()
        self.watchdog = self._watch()
        if self.watchdog is not None:
            self.watchdog.start()
        systemd.ready()
        log.info(
            "agent.ready broker=%s:%d db=%s",
            self.settings.mqtt.host, self.settings.mqtt.port, self.settings.storage.path,
        )

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Start, then block until SIGTERM/SIGINT; returns the exit code."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("agent.stopping signal=%d", signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        try:
            while not self._stop.wait(1.0):
                if not self.ingest.writer.alive:
                    log.critical("agent.failed ingest writer died")
                    return 1
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        systemd.stopping()
        if self.watchdog is not None:
            self.watchdog.stop()
        self.scheduler.shutdown(wait=False)
        self.ingest.stop()
        log.info("agent.stopped")
