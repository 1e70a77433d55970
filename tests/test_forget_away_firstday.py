"""``forget --all`` under a live agent, away days in the household's zone, wrong calendars."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.ops import running
from tests.test_household_cli import seed_consumables

HOLD = """import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1]); conn.execute("SELECT 1").fetchall()
print("open", flush=True); time.sleep(60)
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'time_zone = "Europe/Berlin"\n[storage]\npath = "{tmp_path / "a.db"}"\n')
    seed_consumables(tmp_path / "a.db")
    return path


def readings(db: Path) -> int:
    import sqlite3
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
    finally:
        conn.close()


def test_forget_refuses_while_another_process_holds_the_database(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(running, "unit_active", lambda unit=running.UNIT: False)
    db = config.with_name("a.db")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert main(["--config", str(config), "forget", "--all", "--yes"]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "stop it first" in err
        assert readings(db) > 0
    finally:
        holder.kill()
        holder.wait()
    assert main(["--config", str(config), "forget", "--all", "--yes"]) == 0
    assert readings(db) == 0


def test_forget_refuses_a_running_unit_unless_told_to_stop_it(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = {"active": True, "stops": 0}

    def stop(unit: str = running.UNIT) -> None:
        state["stops"] += 1
        state["active"] = False

    monkeypatch.setattr(running, "unit_active", lambda unit=running.UNIT: state["active"])
    monkeypatch.setattr(running, "stop_unit", stop)
    db = config.with_name("a.db")
    assert main(["--config", str(config), "forget", "--all", "--yes"]) == 2
    assert "--stop-service" in capsys.readouterr().err and readings(db) > 0
    assert main(["--config", str(config), "forget", "--all", "--yes", "--stop-service"]) == 0
    assert state["stops"] == 1 and readings(db) == 0


def test_holders_finds_a_real_process(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    db.write_bytes(b"")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert [pid for pid, _ in running.holders(db)] == [holder.pid]
    finally:
        holder.kill()
        holder.wait()
    assert running.holders(db) == []


def test_away_days_are_the_households_midnight(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "away", "add", "2026-12-20", "2026-12-27"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "away", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    # Berlin is UTC+1 in December: its midnight is 23:00 UTC the day before.
    assert (row["start"], row["end"]) == ("2026-12-19T23:00:00+00:00",
                                          "2026-12-27T23:00:00+00:00")


def test_importing_a_non_calendar_file_is_an_error(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("holiday in August\n")
    assert main(["--config", str(config), "away", "import", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "not an iCalendar" in err and "Traceback" not in err
    assert main(["--config", str(config), "away", "import", str(tmp_path / "missing.ics")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_orders_show_times_in_the_households_zone(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from agent.consent import Mode, Proposal
    from agent.storage.ledger import Ledger, State

    ledger = Ledger.open(config.with_name("a.db"))
    try:
        prop = Proposal("printer-1/toner", "sandbox", "TN-2420", 1, 1, Decimal("54.90"))
        now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        ledger.create_intent(prop, Mode.AUTO, State.QUEUED, now,
                             send_after=datetime(2026, 12, 1, 18, 0, tzinfo=UTC))
    finally:
        ledger.close()
    assert main(["--config", str(config), "orders"]) == 0
    out = capsys.readouterr().out
    assert "2026-12-01 19:00" in out and "(times in Europe/Berlin)" in out


def test_away_list_shows_the_households_days(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "away", "add", "2026-12-20", "2026-12-27"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "away", "list"]) == 0
    out = capsys.readouterr().out
    assert "2026-12-20 00:00 .. 2026-12-28 00:00" in out and "(times in Europe/Berlin)" in out
