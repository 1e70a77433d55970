"""Unit tests for waiting on a late broker (agent.mqtt.backoff), one seam at a time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.mqtt.backoff import MAX_DELAY_S, WARN_AFTER_S, BrokerWait, WaitAttempt, delays


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class InstantStop(threading.Event):
    """A stop event whose wait() returns at once, advancing a fake clock by the pause."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.pauses: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses.append(timeout or 0.0)
        self.clock.now += timeout or 0.0
        return self.is_set()


def failing_connect(failures: int) -> tuple[list[int], Callable[[], None]]:
    calls: list[int] = []

    def connect() -> None:
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionRefusedError(111, "Connection refused")

    return calls, connect


def test_delays_double_then_cap_with_bounded_jitter() -> None:
    exact = delays(rand=lambda: 0.0)
    assert [exact(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, MAX_DELAY_S]
    assert exact(1000) == MAX_DELAY_S
    jittered = delays(rand=lambda: 0.999)
    assert 1.19 < jittered(1) < 1.2
    assert jittered(50) == MAX_DELAY_S


def test_retries_until_the_broker_answers_reporting_each_attempt() -> None:
    clock = FakeClock()
    stop = InstantStop(clock)
    seen: list[WaitAttempt] = []
    begun: list[bool] = []
    wait = BrokerWait("gw", 1883, stop, on_wait=seen.append, on_begin=lambda: begun.append(True),
                      delay=delays(rand=lambda: 0.0), clock=clock)
    calls, connect = failing_connect(3)
    assert wait.until_connected(connect) is True
    assert len(calls) == 4 and begun == [True]
    assert [a.attempt for a in seen] == [1, 2, 3]
    assert stop.pauses == [1.0, 2.0, 4.0]
    assert seen[0].status == "waiting for MQTT broker gw:1883 (attempt 1, next in 1s)"
    assert "ConnectionRefusedError" in seen[0].error
    assert not wait.waiting and wait.progress() is None


def test_progress_is_fresh_while_waiting() -> None:
    clock = FakeClock()
    stop = InstantStop(clock)
    marks: list[float | None] = []
    wait = BrokerWait("gw", 1883, stop, delay=lambda n: 10.0, clock=clock)

    def connect() -> None:
        marks.append(wait.progress())
        if len(marks) < 3:
            raise OSError("unreachable")

    assert wait.until_connected(connect) is True
    # Touched before each attempt: the watchdog never sees a stale mark during the wait.
    assert marks == [100.0, 110.0, 120.0]


def test_stop_ends_the_wait_without_connecting() -> None:
    clock = FakeClock()
    stop = InstantStop(clock)
    stop.set()
    calls, connect = failing_connect(100)
    wait = BrokerWait("gw", 1883, stop, clock=clock)
    assert wait.until_connected(connect) is False
    assert calls == []

    stop2 = InstantStop(clock)
    calls2: list[int] = []

    def connect_then_stop() -> None:
        calls2.append(1)
        stop2.set()
        raise OSError("down")

    assert BrokerWait("gw", 1883, stop2, clock=clock).until_connected(connect_then_stop) is False
    assert calls2 == [1]


def test_other_errors_are_not_retried() -> None:
    clock = FakeClock()

    def connect() -> None:
        raise ValueError("Invalid host")

    with pytest.raises(ValueError):
        BrokerWait("", 1883, InstantStop(clock), clock=clock).until_connected(connect)


def test_a_late_broker_is_info_a_long_outage_warns_once(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    clock = FakeClock()
    wait = BrokerWait("gw", 1883, InstantStop(clock), delay=lambda n: 5.0, clock=clock)
    failures = int(WARN_AFTER_S / 5) + 5
    _, connect = failing_connect(failures)
    with caplog.at_level(logging.INFO, logger="agent.mqtt.backoff"):
        assert wait.until_connected(connect) is True
    waits = [r for r in caplog.records if "mqtt.waiting" in r.getMessage()]
    assert len(waits) == failures
    warnings = [r for r in waits if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert all(r.levelno == logging.INFO for r in waits[: int(WARN_AFTER_S / 5)])
    assert "mqtt.broker_up broker=gw:1883" in caplog.text


def test_a_failing_status_hook_does_not_end_the_wait() -> None:
    clock = FakeClock()

    def broken(_: WaitAttempt) -> None:
        raise RuntimeError("boom")

    _, connect = failing_connect(2)
    wait = BrokerWait("gw", 1883, InstantStop(clock), on_wait=broken, clock=clock)
    assert wait.until_connected(connect) is True


# ---- the service's watchdog probes while it waits ------------------------------------


def test_service_probes_count_a_live_wait_as_progress(tmp_path: Path) -> None:
    from agent.app.service import AgentService
    from agent.config import Settings

    svc = AgentService(Settings.model_validate({"storage": {"path": tmp_path / "agent.db"}}))
    clock = FakeClock()
    stop = InstantStop(clock)
    svc.broker_wait = BrokerWait("gw", 1883, stop, delay=lambda n: 5.0, clock=clock)
    seen: list[tuple[float | None, float | None]] = []

    def connect() -> None:
        # paho's loop has not started and neither has the scheduler: only the wait lives.
        seen.append((svc._mqtt_progress(), svc._scheduler_progress()))
        if len(seen) < 3:
            raise OSError("down")

    assert svc.broker_wait.until_connected(connect)
    assert seen == [(100.0, 100.0), (105.0, 105.0), (110.0, 110.0)]
    # The wait is over and paho's loop never ran: the MQTT probe is dead, not fresh.
    assert svc._mqtt_progress() is None
