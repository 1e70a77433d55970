"""The benchmarks' --quick variants: behaviour (zero loss, results written), not speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def run_bench(module: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )


@pytest.mark.timeout(300)
def test_ingest_quick_loses_nothing_and_writes_results(tmp_path: Path) -> None:
    done = run_bench("bench.ingest", tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    res = json.loads((tmp_path / "ingest.json").read_text())
    agent = res["agent"]
    assert agent["final"]["lost"] == 0
    assert agent["final"]["stored_messages"] == agent["final"]["messages"] > 0
    assert agent["final"]["reading_rows"] == agent["final"]["expected_rows"]
    assert agent["drain"]["lost"] == 0 and agent["drain"]["drain_s"] is not None
    assert agent["latency"]["observed"] == res["latency_messages"]
    for ref in ("paho", "mosquitto_sub"):
        assert res[ref]["live"]["lost"] == 0 and res[ref]["drain"]["lost"] == 0
        assert res[ref]["latency"]["observed"] == res["latency_messages"]
    assert res["machine"]["cores"] >= 1
    verdicts = {c["name"]: c["verdict"] for c in res["checks"]}
    assert verdicts["messages lost by the agent"] == "PASS"
    md = (tmp_path / "ingest.md").read_text()
    assert "agent / bare paho" in md and "agent / mosquitto_sub" in md
    assert f"on {res['machine']['cores']} cores" in md


@pytest.mark.timeout(300)
def test_footprint_quick_measures_every_target(tmp_path: Path) -> None:
    done = run_bench("bench.footprint", tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    res = json.loads((tmp_path / "footprint.json").read_text())
    assert res["start_to_ready"]["ready_notify_s"], "the agent never sent READY=1"
    assert res["steady"]["rss_mb"] > 0 and res["steady"]["cpu_s"] >= 0
    passes = res["pass"]
    for name in ("uncached", "cold", "warm"):
        assert passes[name]["consumables"] == min(100, res["consumables"])
    # The warm pass goes through the cache: it re-reads only the consumables that got new
    # readings (tail reads), never every consumable in full as the uncached pass does.
    assert passes["uncached"]["whole_reads"] == passes["uncached"]["consumables"]
    assert passes["warm"]["whole_reads"] == 0 < passes["warm_new_consumables"]
    assert 0 < passes["warm"]["tail_reads"] <= 2 * passes["warm_new_consumables"]
    # ... and fits again only their forecasts; a pass with nothing new fits none.
    assert passes["uncached"]["fits"] == passes["cold"]["fits"] == passes["cold"]["consumables"]
    assert 0 < passes["warm"]["fits"] <= passes["warm_new_consumables"]
    assert passes["quiet"]["fits"] == 0 and passes["quiet"]["order_now"] == passes["warm"][
        "order_now"]
    assert res["size"]["readings"] > 0
    assert res["writes_household"]["write_bytes"] > 0 < res["writes_fast"]["messages"]
    # The hourly fold is charged at its interval: the fold of one interval's readings ran.
    home = res["writes_household"]
    assert not home["fold_in_window"] and home["fold_rows"] > 0 < home["fold_write_bytes"]
    assert home["bytes_per_message"] == pytest.approx(
        home["ingest_bytes_per_message"] + home["fold_bytes_per_message"])
    assert all(c["verdict"] in ("PASS", "MISS") for c in res["checks"])
    assert (tmp_path / "footprint.md").read_text().count("|") > 20


@pytest.mark.timeout(120)
def test_decisions_quick_runs_every_policy_and_never_stalls(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.decisions", "--quick", "--scenarios",
         "family_cold_start,cgm_9", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    res = json.loads((tmp_path / "decisions.json").read_text())
    assert set(res["summary"]) == {"family_cold_start", "cgm_9"}
    for scn in res["summary"].values():
        assert {"agent", "order_at_20pct", "tuned_reorder_point", "oracle"} <= set(scn)
        assert scn["agent"]["stalled_runs"] == 0
        assert scn["agent"]["orders_per_item_year"] > 0  # the cold start was ordered for
    assert "| family_cold_start | agent |" in (tmp_path / "decisions.md").read_text()


@pytest.mark.timeout(200)
def test_forecast_quick_reports_issue_18_checks(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.forecast", "--quick", "--families", "steady,cgm",
         "--ets-seeds", "0", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    res = json.loads((tmp_path / "forecast.json").read_text())
    agent = res["summary"]["steady"]["agent"]
    assert agent["cycle_service"] is not None and 0.0 <= agent["cycle_service"] <= 1.0
    assert agent["stalled_runs"] == 0
    checks = res["targets"]["steady"]
    assert {"stockouts<=3*oracle+0.5", "cycle_service>=0.95", "spare_orders<=0.5",
            "no_stalled_runs"} <= set(checks)


@pytest.mark.timeout(120)
def test_rows_quick_compares_typed_rows_with_the_replaced_dicts(tmp_path: Path) -> None:
    done = run_bench("bench.rows", tmp_path)
    res = json.loads((tmp_path / "rows.json").read_text())
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]  # 1: a MISS
    assert res["consumables"] == 4 * res["devices"] > 0
    assert res["typed_read_ms"] > 0 < res["dict_read_ms"]
    assert res["ratio_p10_p90"][0] <= res["ratio_typed_to_dict"] <= res["ratio_p10_p90"][1]
    assert [c["verdict"] for c in res["checks"]] in (["PASS"], ["MISS"])
    assert "Ratio typed/dict" in (tmp_path / "rows.md").read_text()


@pytest.mark.timeout(240)
def test_fold_hour_quick_writes_less_with_parts_than_one_row_an_hour(tmp_path: Path) -> None:
    done = run_bench("bench.fold_hour", tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    res = json.loads((tmp_path / "fold_hour.json").read_text())
    parts, hour = res["parts"], res["one_row_per_hour"]
    assert len(parts["bytes_per_message_by_slice"]) == 2 and parts["folds"] > 10
    # bytes are exact: the second ten minutes already rewrite twice as much per hour row
    assert hour["bytes_per_message_by_slice"][1] > 1.5 * parts["bytes_per_message_by_slice"][1]
    assert "By ten minutes" in (tmp_path / "fold_hour.md").read_text()


@pytest.mark.timeout(240)
def test_commit_schedule_quick_checkpoints_after_the_fold_write_less(tmp_path: Path) -> None:
    done = run_bench("bench.commit_schedule", tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = json.loads((tmp_path / "commit_schedule.json").read_text())["runs"]
    by = {(r["window_s"], r["rule"]): r for r in runs}
    for window in {r["window_s"] for r in runs}:
        before, now = by[(window, "every 300 s")], by[(window, "after the fold")]
        assert now["folds_bytes_per_message"] > 0  # the hour's fold ran in both
        # bytes are exact: one checkpoint an hour copies each page once
        assert now["checkpoints_bytes_per_message"] < 0.5 * before["checkpoints_bytes_per_message"]
    assert by[(120.0, "after the fold")]["commits"] < by[(30.0, "after the fold")]["commits"]
