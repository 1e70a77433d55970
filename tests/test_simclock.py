"""The simulated clock of ``replenish run --clock``: refusal, sources, passes on moves."""

from __future__ import annotations

import configparser
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.app.simtime import Settle, SimPass, SimTimeRunner, read_marker
from agent.cli.main import main
from agent.clock import (
    SIM_OPT_IN_ENV,
    SimulatedClock,
    file_reader,
    simulated_clock,
    simulated_clock_refusal,
)
from agent.errors import ConfigError
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "replenish-agent.service"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
OPTED_IN = {SIM_OPT_IN_ENV: "1"}


def clock_file(tmp_path: Path, when: datetime = T0) -> Path:
    path = tmp_path / "clock"
    path.write_text(when.isoformat().replace("+00:00", "Z") + "\n")
    return path


def test_refused_without_the_opt_in_and_under_systemd() -> None:
    assert simulated_clock_refusal({}) is not None
    assert SIM_OPT_IN_ENV in (simulated_clock_refusal({SIM_OPT_IN_ENV: "yes"}) or "")
    assert simulated_clock_refusal(OPTED_IN) is None
    refusal = simulated_clock_refusal({**OPTED_IN, "NOTIFY_SOCKET": "/run/systemd/notify"})
    assert refusal is not None and "systemd" in refusal


def test_the_installed_unit_cannot_enable_it() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    service = parser["Service"]
    assert "--clock" not in service["ExecStart"]
    assert SIM_OPT_IN_ENV in service["UnsetEnvironment"].split()
    # Type=notify is what gives the agent NOTIFY_SOCKET, the second refusal.
    assert service["Type"] == "notify"


def test_run_refuses_the_clock_without_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(SIM_OPT_IN_ENV, raising=False)
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "agent.db"}"\n')
    code = main(["--config", str(config), "run", "--clock", str(clock_file(tmp_path))])
    assert code == 2
    err = capsys.readouterr().err
    assert "--clock" in err and SIM_OPT_IN_ENV in err and "Traceback" not in err


def test_a_clock_file_moves_forward_only(tmp_path: Path) -> None:
    path = clock_file(tmp_path)
    clock = simulated_clock(str(path), env=OPTED_IN)
    assert clock.now() == T0 and clock.refresh() is None  # unchanged: no move
    clock_file(tmp_path, T0 + timedelta(hours=1))
    assert clock.refresh() == T0 + timedelta(hours=1)
    clock_file(tmp_path, T0)  # backwards: ignored and counted
    assert clock.refresh() is None
    assert clock.now() == T0 + timedelta(hours=1) and clock.backwards == 1
    path.write_text("tomorrow")
    assert clock.refresh() is None and clock.failures == 1


def test_bad_clock_sources_are_one_line_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the clock"):
        simulated_clock(str(tmp_path / "missing"), env=OPTED_IN)
    naive = tmp_path / "naive"
    naive.write_text("2026-01-05T08:00:00")
    with pytest.raises(ConfigError, match="no time zone"):
        simulated_clock(str(naive), env=OPTED_IN)
    with pytest.raises(ConfigError, match="cannot read the clock"):
        simulated_clock("http://127.0.0.1:9/_sandbox/clock", env=OPTED_IN)


def test_passes_run_when_the_clock_moves_each_on_its_simulated_interval(
        tmp_path: Path) -> None:
    path = clock_file(tmp_path)
    clock = SimulatedClock(str(path), file_reader(path))
    ran: list[tuple[str, datetime]] = []
    passes = [SimPass("decide", timedelta(hours=6), lambda: ran.append(("decide", clock.now()))),
              SimPass("sync", timedelta(0), lambda: ran.append(("sync", clock.now())))]
    runner = SimTimeRunner(clock, passes, Settle(lambda: 0, lambda: True),
                           tmp_path / "simulated-clock", threading.Event())
    runner.tick(T0)
    for hour in range(1, 8):
        clock_file(tmp_path, T0 + timedelta(hours=hour))
        moved = clock.refresh()
        assert moved is not None
        runner.tick(moved)
    decided = [at for name, at in ran if name == "decide"]
    assert decided == [T0, T0 + timedelta(hours=6)]
    assert len([1 for name, _ in ran if name == "sync"]) == 8
    assert ran[0] == ("decide", T0) and ran[1] == ("sync", T0)  # decide first, as the demo
    marker = json.loads((tmp_path / "simulated-clock").read_text())
    assert marker["passes_at"] == (T0 + timedelta(hours=7)).isoformat()
    assert read_marker(tmp_path / "agent.db") == marker


def test_a_rig_that_ticks_the_runner_itself_gets_its_passes_at_that_instant(
        tmp_path: Path) -> None:
    """The in-process closed loop ticks the runner after moving the clock's source, with
    no refresh thread: every pass and the marker must see that instant (the alerts pass
    and the service's "now" stayed at the start instant, unlike in the process)."""
    path = clock_file(tmp_path)
    clock = SimulatedClock("in-process", file_reader(path))
    seen: list[datetime] = []
    runner = SimTimeRunner(clock, [SimPass("alerts", timedelta(0),
                                           lambda: seen.append(clock.now()))],
                           Settle(lambda: 0, lambda: True), tmp_path / "simulated-clock",
                           threading.Event())
    runner.tick(T0)
    later = T0 + timedelta(hours=5)
    clock_file(tmp_path, later)
    runner.tick(later)
    assert seen == [T0, later]
    marker = json.loads((tmp_path / "simulated-clock").read_text())
    assert marker["now"] == marker["passes_at"] == later.isoformat()


def test_a_failing_pass_is_counted_and_time_goes_on(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    path = clock_file(tmp_path)
    clock = SimulatedClock(str(path), file_reader(path))

    def boom() -> None:
        raise RuntimeError("no")

    ran: list[datetime] = []
    passes = [SimPass("decide", timedelta(0), boom),
              SimPass("fleet", timedelta(0), lambda: ran.append(clock.now()))]
    runner = SimTimeRunner(clock, passes, Settle(lambda: 0, lambda: True),
                           tmp_path / "simulated-clock", threading.Event())
    runner.tick(T0)
    assert passes[0].failures == 1 and ran == [T0]
    assert "simtime.pass_failed pass=decide error=RuntimeError" in caplog.text


def test_the_runner_follows_the_file_and_removes_its_marker(tmp_path: Path) -> None:
    path = clock_file(tmp_path)
    clock = SimulatedClock(str(path), file_reader(path))
    seen: list[datetime] = []
    runner = SimTimeRunner(clock, [SimPass("p", timedelta(0), lambda: seen.append(clock.now()))],
                           Settle(lambda: 0, lambda: True), tmp_path / "simulated-clock",
                           threading.Event())
    runner.start()
    try:
        clock_file(tmp_path, T0 + timedelta(days=1))
        wait_until(lambda: T0 + timedelta(days=1) in seen, timeout=10.0, every=0.01,
                   what=lambda: f"the pass at the moved clock (seen {seen})")
        assert seen[0] == T0 and T0 + timedelta(days=1) in seen
        assert (tmp_path / "simulated-clock").exists()
    finally:
        runner.close()
    assert not (tmp_path / "simulated-clock").exists()


def test_doctor_says_when_the_clock_is_simulated_and_when_a_marker_is_stale(
        tmp_path: Path) -> None:
    from agent.app.simtime import doctor_check
    from agent.ops.doctor import Level

    db = tmp_path / "agent.db"
    assert doctor_check(db) is None
    marker = tmp_path / "simulated-clock"
    marker.write_text(json.dumps({"source": "clockfile", "now": T0.isoformat(),
                                  "passes_at": T0.isoformat(), "pid": os.getpid()}))
    live = doctor_check(db)
    assert live is not None and live.level is Level.WARN and "SIMULATED" in live.summary
    marker.write_text(json.dumps({"source": "clockfile", "pid": 2**22 + 7}))
    stale = doctor_check(db)
    assert stale is not None and "left over" in stale.summary
