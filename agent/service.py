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

    def start(self) -> None:
        self.ingest.start()
        self.scheduler.start()
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
        self.scheduler.shutdown(wait=False)
        self.ingest.stop()
        log.info("agent.stopped")
