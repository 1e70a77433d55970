"""What the systemd watchdog asks of the running service: is each of its threads (paho's
loop, the ingest writer, the scheduler) still making progress? A probe answers the time
of the last progress on the monotonic clock, or None once its thread is dead."""

from __future__ import annotations

import time

from apscheduler.schedulers.background import BackgroundScheduler

from agent.config import Settings
from agent.mqtt.backoff import BrokerWait
from agent.mqtt.ingest import MqttIngest
from agent.ops import systemd


class Liveness:
    """The watchdog probes of :class:`agent.app.service.AgentService` (which sets these
    attributes); the MQTT one is :func:`agent.ops.systemd.thread_probe` over the ingest's
    progress mark."""

    settings: Settings
    ingest: MqttIngest
    scheduler: BackgroundScheduler
    scheduler_heartbeat: float
    broker_wait: BrokerWait | None
    _mqtt_probe: systemd.Probe  # thread_probe(paho loop alive, ingest progress mark)

    def _mqtt_progress(self) -> float | None:
        """Last sign of life from paho's loop (the ingest's progress mark, touched by
        every packet read, keepalive answers included): None once its thread is dead."""
        waiting = self._waiting_progress()
        if waiting is not None:
            return waiting
        if not self.ingest.connected.is_set() and self.ingest.loop_alive:
            # paho is retrying with backoff while the broker is away; a restart would not
            # bring the broker back, so a live reconnect loop counts as progress.
            return time.monotonic()
        return self._mqtt_probe()

    def _waiting_progress(self) -> float | None:
        """While waiting for the broker with backoff, the wait itself is the progress."""
        return self.broker_wait.progress() if self.broker_wait is not None else None

    def _scheduler_progress(self) -> float | None:
        # The scheduler starts once the broker is connected; until then a live wait counts.
        if not self.scheduler.running:
            waiting = self._waiting_progress()
            if waiting is not None:
                return waiting
        return self.scheduler_heartbeat

    def _writer_progress(self) -> float | None:
        return time.monotonic() if self.ingest.writer.alive else None

    def _watch(self) -> systemd.Watchdog | None:
        watchdog = systemd.Watchdog.from_env()
        if watchdog is None:
            return None
        keepalive = self.settings.mqtt.keepalive_s
        watchdog.add_probe("mqtt-loop", self._mqtt_progress, max_age_s=keepalive * 3)
        watchdog.add_probe("ingest-writer", self._writer_progress, max_age_s=60)
        watchdog.add_probe("scheduler", self._scheduler_progress, max_age_s=60)
        return watchdog
