"""sd_notify over a test-owned datagram socket, and the progress-gated watchdog."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.ops import systemd
from agent.ops.systemd import ProgressMark, Watchdog


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, {"NOTIFY_SOCKET": str(path)}
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def drain(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    out = []
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return out


def test_ready_status_stopping_reach_the_socket(
    notify_socket: tuple[socket.socket, dict[str, str]],
) -> None:
    sock, env = notify_socket
    assert systemd.ready(env)
    assert recv(sock) == "READY=1"
    assert systemd.status("connected to\nbroker", env)
    assert recv(sock) == "STATUS=connected to broker"
    assert systemd.stopping(env)
    assert recv(sock) == "STOPPING=1"


def test_abstract_namespace_socket() -> None:
    name = f"replenish-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        assert systemd.notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert recv(sock) == "READY=1"
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_quiet_no_op(tmp_path: Path) -> None:
    assert systemd.ready({}) is False
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    # A socket path nobody listens on: the agent must keep running.
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


def test_watchdog_from_env_honours_usec_and_pid() -> None:
    wd = Watchdog.from_env({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())})
    assert wd is not None
    assert wd.interval_s == 60 and wd.ping_every_s == 30
    assert Watchdog.from_env({}) is None
    assert Watchdog.from_env({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, pid=42) is None
    assert Watchdog.from_env({"WATCHDOG_USEC": "garbage"}) is None
    assert Watchdog.from_env({"WATCHDOG_USEC": "0"}) is None


def test_pings_only_while_every_probe_is_fresh(
    notify_socket: tuple[socket.socket, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    sock, env = notify_socket
    clock = FakeClock()
    wd = Watchdog.from_env({**env, "WATCHDOG_USEC": "60000000"}, clock=clock)
    assert wd is not None
    mqtt = ProgressMark(clock)
    scheduler = ProgressMark(clock)
    wd.add_probe("mqtt", mqtt, max_age_s=90)
    wd.add_probe("scheduler", scheduler, max_age_s=1800)

    assert wd.tick()
    assert recv(sock) == "WATCHDOG=1"

    clock.now += 60
    mqtt.touch()
    assert wd.tick()
    assert recv(sock) == "WATCHDOG=1"

    # The MQTT loop stops making progress: pings stop, one warning names it.
    clock.now += 91
    with caplog.at_level(logging.WARNING, logger="agent.ops.systemd"):
        assert wd.tick() is False
        assert wd.tick() is False
    assert drain(sock) == ["STATUS=stalled: mqtt"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "mqtt" in warnings[0].getMessage()
    assert "scheduler" not in warnings[0].getMessage()

    mqtt.touch()
    assert wd.tick()
    assert recv(sock) == "WATCHDOG=1"


def test_dead_component_is_stale_at_once(
    notify_socket: tuple[socket.socket, dict[str, str]],
) -> None:
    sock, env = notify_socket
    clock = FakeClock()
    alive = {"paho": True}
    mark = ProgressMark(clock)
    wd = Watchdog(60, clock=clock, send=lambda s: systemd.notify(s, env))
    wd.add_probe("mqtt", systemd.thread_probe(lambda: alive["paho"], mark), max_age_s=90)
    assert wd.tick()
    alive["paho"] = False
    assert wd.stale_probes() == ["mqtt"]
    assert wd.tick() is False
    assert drain(sock) == ["WATCHDOG=1", "STATUS=stalled: mqtt"]


def test_raising_probe_counts_as_stale() -> None:
    sent: list[str] = []
    wd = Watchdog(10, clock=FakeClock(), send=lambda s: sent.append(s) is None)

    def broken() -> float:
        raise RuntimeError("probe bug")

    wd.add_probe("broken", broken, max_age_s=5)
    assert wd.tick() is False
    assert sent == ["STATUS=stalled: broken"]


def test_duplicate_or_invalid_probe_refused() -> None:
    wd = Watchdog(10, send=lambda s: True)
    wd.add_probe("a", lambda: 0.0, 5)
    with pytest.raises(ValueError):
        wd.add_probe("a", lambda: 0.0, 5)
    with pytest.raises(ValueError):
        wd.add_probe("b", lambda: 0.0, 0)


@pytest.mark.timeout(10)
def test_thread_pings_until_a_probe_goes_stale(
    notify_socket: tuple[socket.socket, dict[str, str]],
) -> None:
    sock, env = notify_socket
    clock = FakeClock()
    mark = ProgressMark(clock)
    # 20 ms interval: pings every 10 ms; the fake clock decides staleness.
    wd = Watchdog.from_env({**env, "WATCHDOG_USEC": "20000"}, clock=clock)
    assert wd is not None
    wd.add_probe("scheduler", mark, max_age_s=5)
    wd.start()
    try:
        for _ in range(3):
            assert recv(sock) == "WATCHDOG=1"
        clock.now += 6
        messages = []
        while (msg := recv(sock)) == "WATCHDOG=1":
            messages.append(msg)
        assert msg == "STATUS=stalled: scheduler"
        pings_when_stale = wd.pings
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            recv(sock)
        assert wd.pings == pings_when_stale
    finally:
        wd.stop()


def test_clock_synchronized_sources(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"

    def never() -> bool | None:
        raise AssertionError("not consulted")

    assert systemd.clock_synchronized(lambda: 0, never, flag) is True
    assert systemd.clock_synchronized(lambda: 5, never, flag) is False  # TIME_ERROR
    # adjtimex filtered (inside the unit): timesyncd's flag file, then timedated.
    assert systemd.clock_synchronized(lambda: -1, lambda: False, flag) is False
    assert systemd.clock_synchronized(lambda: -1, lambda: None, flag) is None
    flag.touch()
    assert systemd.clock_synchronized(lambda: -1, never, flag) is True
    # On this machine the real sources answer something sensible and never raise.
    assert systemd.clock_synchronized() in (True, False, None)
