"""The real agent on simulated time (``replenish run --clock URL|FILE``).

APScheduler fires on the wall clock, which a simulation compresses a thousandfold. On
simulated time the agent therefore runs its passes when the clock moves instead: a
runner thread reads the clock a few times a second and, each time it moved forward,
lets ingest commit what the devices just published, then runs every pass whose
simulated interval has elapsed, in the in-process demo's order (decide, household sync,
dispatch, retention, alerts, fleet). The clock stays frozen within a pass, so every
timestamp of one pass is the same simulated instant.

While it runs, ``simulated-clock`` in the state directory says so (source, simulated
now, and the instant the last passes ran for): ``replenish doctor`` reports it, and a
test rig that advances the clock waits for ``passes_at`` to catch up before moving on
(lockstep, so decisions do not depend on machine load).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.schedulers.base import BaseScheduler

from agent.clock import SIM_MARKER, SimulatedClock
from agent.domain import JsonObject
from agent.ops.doctor import CheckResult, Level

if TYPE_CHECKING:
    from agent.app.service import AgentService

log = logging.getLogger(__name__)

POLL_S = 0.01
SETTLE_QUIET_S = 0.03  # ingest counts as caught up after this long without a new reading
SETTLE_MAX_S = 2.0
COUNTED_POLL_S = 0.001  # waiting for a count the rig announced: no quiet window needed


@dataclass(slots=True)
class SimPass:
    """One periodic pass and its interval in simulated time."""

    name: str
    every: timedelta
    run: Callable[[], None]
    last: datetime | None = None
    failures: int = 0

    def due(self, now: datetime) -> bool:
        return self.last is None or now - self.last >= self.every


def _never() -> bool:
    return False


@dataclass(slots=True, frozen=True)
class Settle:
    """How to tell ingest has committed everything published so far.

    ``announced(at)`` is the rig's count of device messages published by instant ``at``
    (None while it has not said): once ``announces()``, the runner waits for ingest to
    have committed that many, a positive marker; otherwise for a quiet moment."""

    received: Callable[[], int]
    idle: Callable[[], bool]
    announced: Callable[[datetime], int | None] | None = None
    announces: Callable[[], bool] = _never


@dataclass
class SimTimeRunner:
    """Runs the agent's passes each time the simulated clock moves forward."""

    clock: SimulatedClock
    passes: list[SimPass]
    settle: Settle
    marker: Path
    stop: threading.Event
    ticks: int = 0
    settle_timeouts: int = 0
    passes_at: datetime | None = None
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        log.info("clock.simulated source=%s now=%s passes=%s", self.clock.source,
                 self.clock.now().isoformat(), ",".join(p.name for p in self.passes))
        self._write_marker()
        self.tick(self.clock.now())  # the first passes run at start, as on wall time
        self._thread = threading.Thread(target=self._loop, name="simtime", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.marker.unlink(missing_ok=True)

    def _loop(self) -> None:
        while not self.stop.wait(POLL_S):
            moved = self.clock.refresh()
            if moved is not None:
                self.tick(moved)

    def tick(self, now: datetime) -> None:
        """Let ingest catch up, then run every pass due at ``now``.

        A rig that ticks the runner itself (the in-process closed loop) moved the clock's
        source to ``now`` without the thread's refresh: read it here, so every pass
        (and the marker) sees ``now`` as it does in the process, not the start instant."""
        if self.clock.now() < now:
            self.clock.refresh()
        if self.settle.announced is not None and self.settle.announces():
            self._settle_counted(now, self.settle.announced)
        else:
            self._settle()
        for job in self.passes:
            if self.stop.is_set():
                return
            if not job.due(now):
                continue
            job.last = now
            try:
                job.run()
            except Exception as err:  # noqa: BLE001 - one failing pass must not stop time
                job.failures += 1
                log.error("simtime.pass_failed pass=%s error=%s failures=%d", job.name,
                          type(err).__name__, job.failures)
        self.ticks += 1
        self.passes_at = now
        self._write_marker()

    def _settle(self) -> None:
        """Wait (bounded) until the writer is idle and no reading arrived for a moment."""
        deadline = time.monotonic() + SETTLE_MAX_S
        seen, quiet_since = self.settle.received(), time.monotonic()
        while time.monotonic() < deadline and not self.stop.is_set():
            time.sleep(0.005)
            received = self.settle.received()
            if received != seen or not self.settle.idle():
                seen, quiet_since = received, time.monotonic()
            elif time.monotonic() - quiet_since >= SETTLE_QUIET_S:
                return

    def _settle_counted(self, now: datetime, announced: Callable[[datetime], int | None]) -> None:
        """Wait (bounded) until ingest committed as many messages as the rig published."""
        deadline = time.monotonic() + SETTLE_MAX_S
        count = None
        while time.monotonic() < deadline and not self.stop.is_set():
            count = announced(now)
            if count is not None and self.settle.received() >= count and self.settle.idle():
                return
            time.sleep(COUNTED_POLL_S)
        self.settle_timeouts += 1
        if self.settle_timeouts == 1 or self.settle_timeouts % 100 == 0:
            log.warning("simtime.settle_timeout at=%s published=%s received=%d timeouts=%d",
                        now.isoformat(), count, self.settle.received(), self.settle_timeouts)

    def state(self) -> JsonObject:
        return {"source": self.clock.source, "now": self.clock.now().isoformat(),
                "passes_at": self.passes_at.isoformat() if self.passes_at else None,
                "ticks": self.ticks, "pid": os.getpid(),
                "backwards": self.clock.backwards, "unreadable": self.clock.failures}

    def _write_marker(self) -> None:
        tmp = self.marker.with_name(self.marker.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.state()), encoding="utf-8")
            os.replace(tmp, self.marker)
        except OSError as err:
            log.warning("clock.marker_unwritable path=%s reason=%s", self.marker,
                        type(err).__name__)


def marker_path(db_path: Path) -> Path:
    return db_path.parent / SIM_MARKER


def read_marker(db_path: Path) -> JsonObject | None:
    """The running simulated agent's clock state, or None (no such agent)."""
    try:
        data = json.loads(marker_path(db_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# Jobs that follow the simulated clock instead of APScheduler's wall clock.
SIM_DRIVEN = ("decide", "household", "dispatch", "retention", "alerts", "fleet")


def release_jobs(scheduler: BaseScheduler) -> None:
    """Take the simulated-time passes out of the wall-clock scheduler (heartbeat, printer
    and source polls stay: they talk to real devices on real time)."""
    for job_id in SIM_DRIVEN:
        if scheduler.get_job(job_id) is not None:
            scheduler.remove_job(job_id)


def runner_for(service: AgentService, clock: SimulatedClock) -> SimTimeRunner:
    """The runner with the service's passes, in the in-process demo's order."""
    s = service.settings
    passes = [SimPass("decide", timedelta(seconds=s.forecast.interval_s), service.decide)]
    if service.household is not None:
        passes.append(SimPass("household", timedelta(seconds=s.household.sync_interval_s),
                              service.sync_household))
    if service.vendor is not None:
        passes.append(SimPass("dispatch", timedelta(seconds=s.vendor.dispatch_interval_s),
                              service.dispatch))
    passes.append(SimPass("retention", timedelta(hours=1), service.compact))
    alerts = service.alerts
    if alerts is not None:
        passes.append(SimPass("alerts", timedelta(seconds=s.alerts.interval_s),
                              lambda: _discard(alerts.run_once(clock.now()))))
    # Every tick: a rig in lockstep sees the orders of the instant it just moved to.
    passes.append(SimPass("fleet", timedelta(0), service.publish_fleet))
    writer = service.ingest.writer
    announcer = clock.announcer
    settle = Settle(received=lambda: writer.stats.received, idle=lambda: writer.idle,
                    announced=announcer.announced if announcer is not None else None,
                    announces=(lambda: announcer.announces) if announcer is not None
                    else _never)
    return SimTimeRunner(clock, passes, settle, marker_path(s.storage.path), threading.Event())


def _discard(_: object) -> None:
    """A pass's own result (counts it already logged) is not the runner's business."""


def doctor_check(db_path: Path) -> CheckResult | None:
    """``replenish doctor``'s word on a simulated clock: None when the agent is on real time."""
    state = read_marker(db_path)
    if state is None:
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not Path(f"/proc/{pid}").exists():
        return CheckResult(
            "simulated clock", Level.WARN,
            f"a simulation's clock marker is left over (process {pid} has ended)",
            f"remove {marker_path(db_path)} once no simulated agent runs here")
    return CheckResult(
        "simulated clock", Level.WARN,
        f"the agent (pid {pid}) runs on SIMULATED time from {state.get('source')}: "
        f"simulated now {state.get('now')}, passes ran for {state.get('passes_at')}",
        "a test rig only: never run a real household's agent with --clock",
        details=(f"clock source stepped back {state.get('backwards', 0)} times, "
                 f"unreadable {state.get('unreadable', 0)} times",))
