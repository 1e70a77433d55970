"""The real ``replenish run --clock`` process decides like the in-process agent.

A short ``python -m firmware_sim.closed_loop``: the demo world (real Mosquitto, the
vendor sandbox over HTTP, SQLite files) four simulated days with the agent in-process,
then the same with the real agent process on the sandbox's clock; the verdict with the
stated tolerances must pass, and something must have been ordered on both sides (a
verdict over two empty runs would pass too). ``make sim-year`` runs the year.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_sim import closed_loop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DAYS = 4


def test_four_days_in_process_and_as_a_process_pass_the_verdict(tmp_path: Path) -> None:
    code = closed_loop.main(["--days", str(DAYS), "--seconds-per-day", "0",
                             "--state-dir", str(tmp_path / "state"),
                             "--out", str(tmp_path), "--name", "loop"])
    data = json.loads((tmp_path / "loop.json").read_text())
    runs = {r["mode"]: r for r in data["runs"]}
    assert set(runs) == {"in-process", "process"}
    for run in runs.values():
        assert run["days"] == DAYS
        assert run["orders_total"] >= 1  # the positive marker: the loop did order
        assert run["reminders"] >= 1
    assert data["verdict"]["passed"], (tmp_path / "loop.md").read_text()
    assert code == 0
    kinds = {(row["kind"], row["key"]) for row in data["verdict"]["rows"]}
    assert ("stockout days", "fridge-1/milk") in kinds
    assert any(kind == "orders" for kind, _ in kinds)
    # The process's settle waited for the counts the loop announced on the clock, never
    # into its bound (a timeout would mean a pass ran before the readings were in).
    log = (tmp_path / "state" / "process" / "agent.log").read_text()
    assert "clock.simulated source=" in log
    assert "simtime.settle_timeout" not in log
