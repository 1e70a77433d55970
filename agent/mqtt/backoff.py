"""Waiting for a broker that is not up yet: capped exponential backoff, observable.

At boot the broker can come up after the agent (another unit, a slow SD card, a broker
on another host). Exiting would let systemd restart the agent every ``RestartSec`` until
``StartLimitBurst`` marks the unit failed for good, so the agent waits instead, tells
systemd what it waits for (``STATUS=``), and keeps a progress mark fresh so the watchdog
sees a live wait rather than a hang.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
# Below every watchdog probe's limit (keepalive x 3 >= 15 s, 60 s for the scheduler), so
# the mark touched before each attempt never looks stale while the wait is healthy.
MAX_DELAY_S = 15.0
# After this long without a broker the wait is an outage, worth one WARNING.
WARN_AFTER_S = 60.0


@dataclass(slots=True, frozen=True)
class WaitAttempt:
    """One failed attempt: what was tried, why it failed, when the next one comes."""

    host: str
    port: int
    attempt: int
    next_in_s: float
    error: str

    @property
    def status(self) -> str:
        """The ``STATUS=`` line ``systemctl status`` shows while waiting."""
        return (f"waiting for MQTT broker {self.host}:{self.port} "
                f"(attempt {self.attempt}, next in {self.next_in_s:.0f}s)")


def delays(first: float = FIRST_DELAY_S, cap: float = MAX_DELAY_S,
           rand: Callable[[], float] = random.random) -> Callable[[int], float]:
    """Delay after failed attempt ``n`` (1-based): doubling, capped, with up to 20 %
    jitter so several agents on one broker do not retry in lockstep."""

    def delay(n: int) -> float:
        base = min(cap, first * float(2 ** min(n - 1, 30)))
        return min(cap, base * (1.0 + 0.2 * rand()))

    return delay


class BrokerWait:
    """Retry ``connect`` until it succeeds or ``stop`` is set.

    ``on_begin`` runs once before the first attempt (the ingest writer is running by
    then), ``on_wait`` hears about every failed attempt (the service forwards it to sd_notify);
    :attr:`waiting` and :meth:`progress` let the watchdog tell a live wait from a hang.
    """

    def __init__(self, host: str, port: int, stop: threading.Event,
                 on_wait: Callable[[WaitAttempt], None] | None = None,
                 on_begin: Callable[[], None] | None = None,
                 delay: Callable[[int], float] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.host = host
        self.port = port
        self.stop = stop
        self.on_wait = on_wait
        self.on_begin = on_begin
        self.delay = delay or delays()
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting = False
        self._last = clock()
        self.attempts = 0
        self._started = self._last
        self._warned = False

    @property
    def waiting(self) -> bool:
        with self._lock:
            return self._waiting

    def progress(self) -> float | None:
        """When the wait last did something; None unless it is waiting right now."""
        with self._lock:
            return self._last if self._waiting else None

    def _mark(self, waiting: bool) -> None:
        with self._lock:
            self._waiting = waiting
            self._last = self._clock()

    def until_connected(self, connect: Callable[[], None]) -> bool:
        """True once ``connect()`` returned; False if ``stop`` was set first.

        Only ``OSError`` (refused, unreachable, DNS, TLS) is retried: anything else is a
        bug or a configuration error that waiting cannot fix.
        """
        self._started = self._clock()
        self._warned = False
        self._mark(True)
        if self.on_begin is not None:
            self.on_begin()  # the service announces READY and starts its watchdog here
        try:
            while not self.stop.is_set():
                self.attempts += 1
                try:
                    connect()
                except OSError as err:
                    pause = self.delay(self.attempts)
                    attempt = WaitAttempt(self.host, self.port, self.attempts, pause,
                                          f"{type(err).__name__}: {err}")
                    self._report(attempt)
                    self._mark(True)
                    if self.stop.wait(pause):
                        return False
                    self._mark(True)
                    continue
                if self.attempts > 1:
                    log.info("mqtt.broker_up broker=%s:%d attempts=%d",
                             self.host, self.port, self.attempts)
                return True
            return False
        finally:
            self._mark(False)

    def _report(self, attempt: WaitAttempt) -> None:
        # A broker a few seconds late at boot is normal (it may start after us): INFO.
        # Once the wait is long enough to be an outage, one WARNING says so.
        long_wait = self._clock() - self._started >= WARN_AFTER_S
        level = logging.WARNING if long_wait and not self._warned else logging.INFO
        self._warned = self._warned or long_wait
        log.log(level, "mqtt.waiting broker=%s:%d attempt=%d next_in_s=%.1f error=%r",
                attempt.host, attempt.port, attempt.attempt, attempt.next_in_s,
                attempt.error)
        if self.on_wait is not None:
            try:
                self.on_wait(attempt)
            except Exception:  # noqa: BLE001 - a status hook must never end the wait
                log.exception("mqtt.waiting status hook failed")
