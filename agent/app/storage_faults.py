"""Storage faults outside ingest: the decision pass, the outbox, household commands,
retention and printer polls share one database with the ingest writer.

A full disk (or an I/O error, a read-only remount) must not crash-loop the service into
systemd's start limit, nor print a traceback every pass. Each writer's first failure is
one ``store.write_failed`` line, its job is retried sooner with capped backoff, its first
success afterwards is one ``store.write_recovered`` line. :class:`StorageFaults` joins
those writers with the ingest writer's own fault into one state, and says it where the
household and the operator look: ``STATUS=`` (``systemctl status``, ``replenish doctor``)
and one household ``problem`` event when a fault starts and one when it clears.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

from agent.errors import StoreError
from agent.storage.rows import fault_reason

log = logging.getLogger(__name__)

INGEST = "ingest"
FIRST_RETRY_S = 15.0
MAX_RETRY_S = 120.0
# ``replenish doctor`` recognises a running agent's storage fault by this STATUS= prefix.
STATUS_PREFIX = "storage fault"


@dataclass(slots=True, frozen=True)
class Fault:
    """What fails (``reason``, a ``fault_reason`` token) and in which writers."""

    reason: str
    writers: tuple[str, ...]

    @property
    def status(self) -> str:
        """The ``STATUS=`` line while the fault lasts."""
        return (f"{STATUS_PREFIX} {self.reason} in {','.join(self.writers)}: readings not "
                "acknowledged (the broker keeps them), retrying")

    @property
    def problem(self) -> str:
        """The household ``problem`` event's message when the fault starts."""
        fix = ("free space on the gateway's SD card" if self.reason == "disk_full"
               else "run `replenish doctor` on the gateway")
        return (f"storage fault {self.reason}: the agent cannot write its database; "
                f"readings wait at the broker and are stored once writes succeed: {fix}")


CLEARED_PROBLEM = "storage fault cleared: writes succeed again, waiting readings are stored"


def reason_of(err: Exception) -> str:
    if isinstance(err, StoreError):
        return err.reason
    if isinstance(err, sqlite3.Error):
        return fault_reason(err)
    return "sqlite_error"


def bring_forward(scheduler: BaseScheduler) -> Callable[[str, float], None]:
    """``retry_in`` for :class:`StorageFaults`: runs a job that hit a storage fault again
    after the delay (never pushes it later)."""

    def retry_in(job_id: str, delay_s: float) -> None:
        job = scheduler.get_job(job_id)
        at = datetime.now(UTC) + timedelta(seconds=delay_s)
        if job is not None and (job.next_run_time is None or at < job.next_run_time):
            job.modify(next_run_time=at)

    return retry_in


class StorageFaults:
    """Per-writer faults, joined; ``on_change`` hears each change of the joined fault.

    ``retry_in(job_id, seconds)`` brings a failed job's next run forward (the scheduler's
    interval may be 15 minutes); a fault is cleared writer by writer, on that writer's
    next success, so a pass that happens to write nothing cannot hide a disk that is
    still full for the others.
    """

    def __init__(self, on_change: Callable[[Fault | None, Fault | None], None],
                 retry_in: Callable[[str, float], None] | None = None) -> None:
        self.on_change = on_change
        self.retry_in = retry_in
        self._lock = threading.Lock()
        self._faults: dict[str, str] = {}  # writer -> reason, in the order they failed
        self._failures: dict[str, int] = {}
        self._reported: Fault | None = None

    @property
    def current(self) -> Fault | None:
        with self._lock:
            return self._joined()

    def _joined(self) -> Fault | None:
        if not self._faults:
            return None
        first = next(iter(self._faults.values()))
        return Fault(first, tuple(self._faults))

    def failed(self, writer: str, reason: str, detail: str = "") -> float:
        """Record a failure; returns the delay before the next attempt."""
        with self._lock:
            new = self._faults.get(writer) != reason
            self._faults[writer] = reason
            n = self._failures.get(writer, 0) + 1
            self._failures[writer] = n
        if new and writer != INGEST:  # the ingest writer logs its own lines
            log.error("store.write_failed where=%s reason=%s retry=backoff detail=%s",
                      writer, reason, detail)
        self._changed()
        return min(MAX_RETRY_S, FIRST_RETRY_S * 2.0 ** min(n - 1, 10))

    def succeeded(self, writer: str) -> None:
        with self._lock:
            reason = self._faults.pop(writer, None)
            failures = self._failures.pop(writer, 0)
        if reason is None:
            return
        if writer != INGEST:
            log.warning("store.write_recovered where=%s reason=%s failures=%d", writer,
                        reason, failures)
        self._changed()

    def observe(self, writer: str, reason: str | None) -> None:
        """Take a writer's own fault flag (the ingest writer retries by itself)."""
        with self._lock:
            known = self._faults.get(writer)
        if reason == known:
            return
        if reason is None:
            self.succeeded(writer)
        else:
            self.failed(writer, reason)

    def _changed(self) -> None:
        with self._lock:
            now = self._joined()
            before, self._reported = self._reported, now
        if now != before:
            try:
                self.on_change(before, now)
            except Exception:  # noqa: BLE001 - reporting must never break a writer
                log.exception("storage.report failed")

    def guard(self, writer: str, job: Callable[[], None],
              job_id: str | None = None) -> Callable[[], None]:
        """``job`` for the scheduler: a storage fault is recorded and retried, not raised
        (APScheduler would log a traceback each time and retry only at the interval)."""

        def run() -> None:
            try:
                job()
            except (StoreError, sqlite3.Error) as err:
                delay = self.failed(writer, reason_of(err), str(err))
                if self.retry_in is not None and job_id is not None:
                    self.retry_in(job_id, delay)
                return
            self.succeeded(writer)

        run.__name__ = getattr(job, "__name__", writer)
        return run
