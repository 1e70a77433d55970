"""Households and scenarios: loading, shipped scenarios, offline traces, closed loop."""

from __future__ import annotations

import json
import random
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.domain import DeviceKind
from agent.wire.device import EventType, StateMessage, parse_state, parse_topic
from firmware_sim.__main__ import main as sim_main
from firmware_sim.household.live import load_passwords
from firmware_sim.household.scenario import (
    Household,
    load_scenario,
    run_offline,
    scenario_path,
    shipped_scenarios,
)

START = datetime(2026, 1, 5, tzinfo=UTC)
DAY = timedelta(days=1)


def small(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "small", "seed": 3, "start": "2026-01-05T00:00:00+00:00", "people": 2,
        "lead_time": {"mean_days": 2.0, "sd_days": 0.5,
                      "skus": {"TN-1": {"mean_days": 5.0, "sd_days": 0.0}}},
        "away": [{"start": "2026-01-20", "end": "2026-01-25"}],
        "devices": [
            {"id": "printer-1", "kind": "printer", "pages_per_day": 20.0,
             "toner": {"sku": "TN-1", "yield_pages": 800, "initial": 30,
                       "refill": {"mode": "when_low", "threshold": 0.1, "delay_days": 1}}},
            {"id": "fridge-1", "kind": "fridge",
             "milk": {"sku": "MILK-1", "refill": {"mode": "every", "every_days": 7,
                                                   "fill": True}}},
        ],
    }
    data.update(extra)
    return data


def test_shipped_scenarios_load_and_demo_has_the_demo_ids() -> None:
    names = shipped_scenarios()
    assert {"demo", "family-of-four", "single-office-printer", "cgm-user"} <= set(names)
    for name in names:
        hh = Household.from_scenario(name)
        assert hh.devices and hh.start.tzinfo is not None
    demo = Household.from_scenario("demo")
    assert [(d.device_id, d.kind) for d in demo.devices] == [
        ("printer-1", DeviceKind.PRINTER),
        ("fridge-1", DeviceKind.FRIDGE),
        ("wearable-1", DeviceKind.WEARABLE),
    ]


def test_toml_file_and_dict_give_the_same_household(tmp_path: Path) -> None:
    path = scenario_path("family-of-four")
    copy = tmp_path / "copy.toml"
    copy.write_bytes(path.read_bytes())
    with path.open("rb") as fh:
        as_dict = tomllib.load(fh)
    a = run_offline(copy, days=20)
    b = run_offline(as_dict, days=20)
    assert a.raw == b.raw and a.truth == b.truth


def test_seed_argument_overrides_the_scenario_seed() -> None:
    a = run_offline(small(), days=15)
    b = run_offline(small(), days=15, seed=99)
    c = run_offline(small(seed=99), days=15)
    assert a.raw != b.raw
    assert b.raw == c.raw


def test_adding_a_device_does_not_change_the_others() -> None:
    base = small()
    more = small()
    more["devices"] = [*base["devices"], {"id": "wearable-1", "kind": "wearable"}]
    a, b = run_offline(base, days=15), run_offline(more, days=15)
    assert a.truth[("printer-1", "toner")] == b.truth[("printer-1", "toner")]


def test_away_periods_and_lead_times() -> None:
    hh = Household.from_scenario(small())
    assert hh.is_away(datetime(2026, 1, 22, tzinfo=UTC))
    assert not hh.is_away(datetime(2026, 1, 26, tzinfo=UTC))
    rng = random.Random(1)
    assert hh.lead_time_days("TN-1", rng) == 5.0
    draws = [hh.lead_time_days("MILK-1", rng) for _ in range(4000)]
    mean = sum(draws) / len(draws)
    sd = (sum((d - mean) ** 2 for d in draws) / len(draws)) ** 0.5
    assert mean == pytest.approx(2.0, rel=0.05) and sd == pytest.approx(0.5, rel=0.15)
    assert min(draws) > 0


def test_offline_trace_truth_run_outs_and_readings_agree() -> None:
    trace = run_offline(small(), days=60)
    toner = trace.truth[("printer-1", "toner")]
    assert all(0 <= level <= 100 for _, level in toner)
    assert [t for t, _ in toner] == sorted(t for t, _ in toner)
    for out in trace.run_outs[("printer-1", "toner")]:
        assert (out, 0.0) in toner
        assert trace.level_at(("printer-1", "toner"), out) <= 100
    assert trace.level_at(("printer-1", "toner"), trace.start) == pytest.approx(30.0)
    milk = trace.truth[("fridge-1", "milk")]
    (t0, l0), (t1, _) = milk[5], milk[6]
    assert trace.level_at(("fridge-1", "milk"), t0 + (t1 - t0) / 2) == l0
    # Household buys toner at 10 % with a one-day delay: it never waits long.
    assert trace.stockout_days(("printer-1", "toner")) < 5
    received = [at for at, _ in trace.readings]
    assert received == sorted(received)
    assert all(isinstance(m, StateMessage) for _, m in trace.readings)
    kinds = {m.device_id for _, m in trace.readings}
    assert kinds == {"printer-1", "fridge-1"}
    assert trace.events == sorted(trace.events, key=lambda e: (e.ts, e.device_id, e.seq))


def test_no_use_while_away_in_the_trace() -> None:
    trace = run_offline(small(devices=[small()["devices"][0]]), days=30)
    away_start = datetime(2026, 1, 20, tzinfo=UTC)
    away_end = datetime(2026, 1, 25, tzinfo=UTC)
    during = [level for t, level in trace.truth[("printer-1", "toner")]
              if away_start < t < away_end]
    assert len(set(during)) <= 1


def test_report_every_overrides_heartbeats() -> None:
    hourly = run_offline(small(), days=10, report_every=timedelta(hours=1))
    daily = run_offline(small(), days=10, report_every=timedelta(days=1))
    assert len(hourly.raw) > len(daily.raw) + 300


def test_closed_loop_household_readings_and_delivery() -> None:
    data = small()
    data["devices"][0]["toner"]["refill"] = {"mode": "none"}
    hh = Household.from_scenario(data)
    printer = hh.device("printer-1")
    t = hh.start
    seen: list[StateMessage] = []
    while not printer.stock_out("toner"):
        t += timedelta(hours=6)
        hh.advance(t)
        seen += hh.readings(t)
    assert seen and [m.ts for m in seen] == sorted(m.ts for m in seen)
    device, cid = hh.find_sku("TN-1")
    assert (device, cid) == (printer, "toner")
    hh.deliver("printer-1", "toner", 1, t)
    hh.advance(t + timedelta(hours=2))
    assert not printer.stock_out("toner")


@pytest.mark.parametrize("bad, message", [
    ({"devices": []}, "at least one"),
    ({"devices": [{"id": "x", "kind": "toaster"}]}, "kind"),
    ({"devices": [{"id": "x", "kind": "printer", "colour": "red"}]}, "colour"),
    ({"devices": [{"id": "x", "kind": "fridge"}, {"id": "x", "kind": "fridge"}]}, "unique"),
    ({"devices": [{"id": "x", "kind": "printer", "profile": "psychic"}]}, "profile"),
])
def test_bad_scenarios_are_rejected(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Household.from_scenario(small(**bad))


def test_unknown_scenario_name_lists_the_shipped_ones() -> None:
    with pytest.raises(FileNotFoundError, match="demo"):
        Household.from_scenario("no-such-household")


# -- CLI -------------------------------------------------------------------------------


def test_cli_generate_writes_readings_events_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, truth = tmp_path / "r.jsonl", tmp_path / "t.json"
    code = sim_main(["generate", "demo", "--days", "20", "--out", str(out),
                     "--truth", str(truth), "--seed", "5"])
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    topics = {line["topic"].rsplit("/", 2)[1] for line in lines}
    assert topics == {"printer-1", "fridge-1", "wearable-1"}
    states = [line for line in lines if line["topic"].endswith("/state")]
    for line in states:
        topic = parse_topic(line["topic"])
        parse_state(topic, json.dumps(line["payload"]).encode())
    assert any(line["topic"].endswith("/events") for line in lines)
    received = [line["received_at"] for line in lines]
    assert received == sorted(received)
    doc = json.loads(truth.read_text())
    assert set(doc["consumables"]) >= {"printer-1/toner", "fridge-1/milk", "wearable-1/sensors"}
    assert doc["seed"] == 5
    summary = capsys.readouterr().out
    assert "fridge-1/milk" in summary and "run-outs" in summary


def test_cli_scenarios_timeit_and_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sim_main(["scenarios"]) == 0
    assert "demo: printer-1 (printer), fridge-1 (fridge), wearable-1 (wearable)" in (
        capsys.readouterr().out)
    assert sim_main(["timeit", "cgm-user", "--households", "2", "--days", "10"]) == 0
    assert "per household" in capsys.readouterr().out
    assert sim_main(["generate", "no-such", "--out", str(tmp_path / "x")]) == 2
    assert "no scenario" in capsys.readouterr().err


def test_cli_fixtures_regenerates_identical_files(tmp_path: Path) -> None:
    assert sim_main(["fixtures", "--out", str(tmp_path)]) == 0
    fixtures = Path(__file__).parent / "fixtures"
    written = sorted(tmp_path.glob("payload_*.json"))
    assert written
    for path in written:
        assert path.read_bytes() == (fixtures / path.name).read_bytes()


def test_password_file_format(tmp_path: Path) -> None:
    good = tmp_path / "pw"
    good.write_text("# devices\nprinter-1:s3cret\n\nfridge-1 : with:colon\n")
    assert load_passwords(good) == {"printer-1": "s3cret", "fridge-1": "with:colon"}
    bad = tmp_path / "bad"
    bad.write_text("printer-1:ok\nwearable-1 s3cret-leak\n")
    with pytest.raises(ValueError, match="line 2") as err:
        load_passwords(bad)
    assert "s3cret-leak" not in str(err.value)


def test_a_wearable_can_fall() -> None:
    scenario = load_scenario("cgm-user")
    scenario["devices"][0]["falls_per_year"] = 40.0
    trace = run_offline(scenario, days=120, seed=3)
    falls = [e for e in trace.events if e.type is EventType.FALL_ALERT]
    assert 3 <= len(falls) <= 40, len(falls)
    assert all(e.device_id == "cgm-adult" and e.consumable_id is None for e in falls)
    quiet = run_offline("cgm-user", days=120, seed=3)
    assert not [e for e in quiet.events if e.type is EventType.FALL_ALERT]
