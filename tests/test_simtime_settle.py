"""The simulated-time runner waits for the count of messages the rig announced."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from agent.app import simtime
from agent.app.simtime import Settle, SimPass, SimTimeRunner
from agent.clock import SimulatedClock, UrlClock

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


class Ingest:
    """A writer's counters, committed by a thread a little later (as ingest does)."""

    def __init__(self) -> None:
        self.received = 0
        self.lock = threading.Lock()

    def commit_later(self, count: int, after_s: float) -> threading.Thread:
        def run() -> None:
            time.sleep(after_s)
            with self.lock:
                self.received += count

        thread = threading.Thread(target=run)
        thread.start()
        return thread


def runner(tmp_path: Path, ingest: Ingest, announced: dict[datetime, int],
           seen: list[int]) -> SimTimeRunner:
    clock = SimulatedClock("test", lambda: T0)
    settle = Settle(received=lambda: ingest.received, idle=lambda: True,
                    announced=announced.get, announces=lambda: True)
    return SimTimeRunner(clock, [SimPass("decide", timedelta(0),
                                         lambda: seen.append(ingest.received))],
                         settle, tmp_path / "simulated-clock", threading.Event())


def test_the_passes_wait_for_the_announced_count_not_a_quiet_moment(tmp_path: Path) -> None:
    ingest, seen = Ingest(), []
    loop = runner(tmp_path, ingest, {T1: 5}, seen)
    late = ingest.commit_later(5, after_s=0.2)  # far beyond the 30 ms quiet window
    loop.tick(T1)
    late.join()
    assert seen == [5]  # the pass saw every announced message committed
    assert loop.settle_timeouts == 0


def test_an_unmet_count_waits_at_most_the_bound_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(simtime, "SETTLE_MAX_S", 0.05)
    ingest, seen = Ingest(), []
    ingest.received = 3
    loop = runner(tmp_path, ingest, {T1: 4}, seen)
    with caplog.at_level(logging.WARNING, logger=simtime.__name__):
        loop.tick(T1)
        loop.tick(T1 + timedelta(hours=1))  # not announced at all: also bounded
    assert seen == [3, 3]  # time goes on: the passes ran anyway
    assert loop.settle_timeouts == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(
        f"simtime.settle_timeout at={T1.isoformat()} published=4 received=3")


def test_the_url_clock_reads_the_rigs_announcement(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [{"now": T0.isoformat()},
               {"now": T1.isoformat()},
               {"now": T1.isoformat(), "published": {"at": T1.isoformat(), "count": 12}}]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(answers.pop(0)))

    source = UrlClock("http://sandbox/_sandbox/clock", None)
    monkeypatch.setattr(source, "_client", httpx.Client(transport=httpx.MockTransport(handler)))
    assert source.read() == T0 and not source.announces  # a plain clock: quiet waits
    assert source.announced(T1) is None  # moved, nothing said for T1 yet
    assert source.announced(T1) == 12 and source.announces
    assert source.announced(T1) == 12 and answers == []  # cached: no further request
