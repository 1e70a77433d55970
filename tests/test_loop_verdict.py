"""The closed loop's verdict: hand-made runs within and outside the stated tolerances."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from firmware_sim.loop_verdict import LoopResult, Tolerance, judge, write


def run(mode: str, orders: dict[str, int], stockouts: dict[str, float],
        days: int = 365, reminders: int = 3) -> LoopResult:
    return LoopResult(mode, days, Counter(orders), dict(stockouts), reminders, wall_s=12.34)


def rows_by_key(verdict_rows: object) -> dict[str, bool]:
    return {f"{r.kind}:{r.key}": r.passed for r in verdict_rows}  # type: ignore[attr-defined]


def test_identical_runs_pass() -> None:
    a = run("in-process", {"MILK-1L": 93, "TN-2410": 2}, {"fridge-1/milk": 0.48})
    b = run("process", {"MILK-1L": 93, "TN-2410": 2}, {"fridge-1/milk": 0.48})
    verdict = judge(a, b)
    assert verdict.passed
    assert [r.key for r in verdict.rows] == ["MILK-1L", "TN-2410", "fridge-1/milk"]
    assert verdict.failures == ()


def test_orders_allow_one_or_two_percent_whichever_is_larger() -> None:
    # 100 vs 102: 2 % of 102 is 2.04 -> pass; 100 vs 103 -> fail. 3 vs 4: one order -> pass.
    a = run("in-process", {"MILK-1L": 100, "TN-2410": 3, "EGGS-10": 0}, {})
    b = run("process", {"MILK-1L": 102, "TN-2410": 4, "EGGS-10": 2}, {})
    assert rows_by_key(judge(a, b).rows) == {
        "orders:EGGS-10": False, "orders:MILK-1L": True, "orders:TN-2410": True}
    c = run("process", {"MILK-1L": 103, "TN-2410": 4, "EGGS-10": 1}, {})
    verdict = judge(a, c)
    assert not verdict.passed
    assert [r.key for r in verdict.failures] == ["MILK-1L"]


def test_stockout_days_allow_half_a_day_plus_ten_percent() -> None:
    a = run("in-process", {}, {"fridge-1/milk": 0.10, "fridge-1/eggs": 54.3})
    ok = run("process", {}, {"fridge-1/milk": 0.60, "fridge-1/eggs": 60.0})
    # milk: 0.5 + 0.06 allowed for 0.50; eggs: 0.5 + 6.0 allowed for 5.7
    assert judge(a, ok).passed
    bad = run("process", {}, {"fridge-1/milk": 1.08, "fridge-1/eggs": 54.3})
    verdict = judge(a, bad)
    assert [r.key for r in verdict.failures] == ["fridge-1/milk"]
    assert verdict.failures[0].diff == pytest.approx(0.98)


def test_a_key_missing_on_one_side_counts_as_zero() -> None:
    a = run("in-process", {"MILK-1L": 1}, {})
    b = run("process", {}, {"printer-1/toner": 2.0})
    verdict = judge(a, b)
    assert rows_by_key(verdict.rows) == {"orders:MILK-1L": True,
                                         "stockout days:printer-1/toner": False}


def test_a_stricter_tolerance_is_applied() -> None:
    a = run("in-process", {"MILK-1L": 10}, {})
    b = run("process", {"MILK-1L": 11}, {})
    assert judge(a, b).passed
    assert not judge(a, b, Tolerance(orders_min=0, orders_share=0.0)).passed


def test_runs_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="different spans"):
        judge(run("in-process", {}, {}, days=4), run("process", {}, {}, days=5))


def test_write_puts_verdict_runs_and_load_in_json_and_markdown(tmp_path: Path) -> None:
    a = run("in-process", {"MILK-1L": 93}, {"fridge-1/milk": 0.48})
    b = run("process", {"MILK-1L": 97}, {"fridge-1/milk": 0.48})
    verdict = judge(a, b)
    json_path, md_path = write(verdict, [a, b], tmp_path / "out", "sim_year",
                               "python -m firmware_sim.closed_loop --days 365",
                               (1.5, 1.25, 1.0))
    data = json.loads(json_path.read_text())
    assert data["verdict"]["passed"] is False
    assert data["verdict"]["rows"][0] == {
        "kind": "orders", "key": "MILK-1L", "in_process": 93, "process": 97, "diff": 4,
        "allowed": 1.94, "passed": False}
    assert [r["mode"] for r in data["runs"]] == ["in-process", "process"]
    assert data["load_avg_at_start"] == [1.5, 1.25, 1.0]
    md = md_path.read_text()
    assert "**Verdict: FAIL** (1 of 2 rows within tolerance)" in md
    assert "| orders | MILK-1L | 93 | 97 | +4.00 | 1.94 | FAIL |" in md
    assert "1.50 / 1.25 / 1.00" in md


@pytest.mark.parametrize(("process_milk", "code", "word"), [(93, 0, "PASS"), (99, 1, "FAIL")])
def test_closed_loop_main_exits_1_on_a_failed_verdict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    process_milk: int, code: int, word: str,
) -> None:
    from firmware_sim import closed_loop

    fake = {"in-process": lambda days, spd, state: run("in-process", {"MILK-1L": 93}, {},
                                                       days=days),
            "process": lambda days, spd, state: run("process", {"MILK-1L": process_milk}, {},
                                                    days=days)}
    monkeypatch.setattr(closed_loop, "MODES", fake)
    argv = ["--days", "7", "--state-dir", str(tmp_path / "s"), "--out", str(tmp_path),
            "--name", "week"]
    assert closed_loop.main(argv) == code
    out = capsys.readouterr().out
    assert f"verdict: {word}" in out
    assert json.loads((tmp_path / "week.json").read_text())["verdict"]["days"] == 7


def test_closed_loop_judges_two_halves_saved_by_separate_mode_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from firmware_sim import closed_loop

    a = run("in-process", {"MILK-1L": 93}, {"fridge-1/milk": 0.48})
    b = run("process", {"MILK-1L": 94}, {"fridge-1/milk": 0.9})
    (tmp_path / "a.log").write_text("noise\n" + json.dumps(a.to_json()) + "\n")
    (tmp_path / "b.log").write_text(json.dumps(b.to_json()) + "\n| table |\n")
    code = closed_loop.main(["--days", "365", "--judge", str(tmp_path / "a.log"),
                             str(tmp_path / "b.log"), "--out", str(tmp_path)])
    assert code == 0 and "verdict: PASS" in capsys.readouterr().out
    data = json.loads((tmp_path / "sim_year.json").read_text())
    assert [r["orders"] for r in data["runs"]] == [{"MILK-1L": 93}, {"MILK-1L": 94}]
    with pytest.raises(SystemExit):
        closed_loop.main(["--judge", str(tmp_path / "a.log")])  # one half only
