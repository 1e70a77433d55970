"""Unit tests of the simulated devices: every profile, refills, replacements, determinism."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.wire.device import Channel, EventType, StateMessage, Topic, parse_state
from firmware_sim.devices.appliances import Fridge, Printer, SimDevice, Wearable
from firmware_sim.devices.link import LinkProfile
from firmware_sim.devices.recorded import recorded_payloads
from firmware_sim.devices.stock import Usage

START = datetime(2026, 1, 5, tzinfo=UTC)
DAY = timedelta(days=1)


def run(dev: SimDevice, days: float) -> tuple[list[StateMessage], list[Any]]:
    """Readings (validated) and events of ``days`` simulated days."""
    end = START + timedelta(days=days)
    readings = dev.readings(end)
    return readings, dev.advance(end)


def levels(readings: list[StateMessage], cid: str) -> list[float | None]:
    return [c.level for m in readings for c in m.consumables if c.id == cid]


def states(readings: list[StateMessage], cid: str) -> list[str | None]:
    return [c.state for m in readings for c in m.consumables if c.id == cid]


def busy_printer(profile: str = "exact", **kw: Any) -> Printer:
    args: dict[str, Any] = {
        "pages_per_day": 40.0, "toner": {"yield_pages": 1000, "initial": 50}, "drum": {},
    }
    args.update(kw)
    return Printer("printer-1", start=START, seed=3, profile=profile, **args)


# -- printer ----------------------------------------------------------------------------


def test_printer_exact_levels_fall_within_range_and_counter_rises() -> None:
    readings, _ = run(busy_printer(), 30)
    toner = levels(readings, "toner")
    assert all(v is not None and 0 <= v <= 100 for v in toner)
    assert toner[0] == pytest.approx(50.0)
    assert min(v for v in toner if v is not None) == 0.0  # ran out: no spare, no habit
    pages = [c.counters["pages"] for m in readings for c in m.consumables
             if c.id == "toner" and c.counters]
    assert pages == sorted(pages) and pages[-1] > 0
    # Toner limits printing: about half a 1000-page cartridge was printed (coverage noise).
    assert 300 < pages[-1] < 800


def test_printer_steps10_reports_multiples_of_ten_rounded_up() -> None:
    dev = busy_printer("steps10")
    readings, _ = run(dev, 20)
    toner = [v for v in levels(readings, "toner") if v is not None]
    assert toner and all(v % 10 == 0 for v in toner)
    assert set(toner) >= {50.0, 10.0}
    true_level = dev.truth()["toner"].level
    last = toner[-1]
    assert last >= true_level and last - true_level < 10 + 1e-9


def test_printer_low_only_reports_states_not_levels() -> None:
    readings, _ = run(busy_printer("low_only", low_threshold=10.0), 30)
    assert all(v is None for v in levels(readings, "toner"))
    seen = states(readings, "toner")
    assert seen[0] == "some_remaining"
    order = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert order == ["some_remaining", "low", "empty"]


def test_sleepy_printer_reports_unknown_while_idle_and_levels_after_jobs() -> None:
    readings, _ = run(busy_printer("sleepy", pages_per_day=3.0), 10)
    seen = Counter(states(readings, "toner"))
    assert seen["unknown"] > 0
    assert any(v is not None for v in levels(readings, "toner"))
    for msg in readings:
        toner = next(c for c in msg.consumables if c.id == "toner")
        assert (toner.state == "unknown") == (toner.level is None)


def test_spare_cartridge_replaces_empty_one_and_emits_event() -> None:
    dev = busy_printer(toner={"yield_pages": 500, "initial": 20, "spare_packs": 1})
    readings, events = run(dev, 20)
    replaced = [e for e in events if e.type is EventType.CARTRIDGE_REPLACED]
    assert [e.consumable_id for e in replaced] == ["toner"]
    toner = levels(readings, "toner")
    jump = max(b - a for a, b in zip(toner, toner[1:], strict=False))  # type: ignore[operator]
    assert jump > 80
    assert dev.truth()["toner"].spare == 0


def test_delivered_cartridge_is_put_in_after_delay_when_empty() -> None:
    dev = busy_printer(toner={"yield_pages": 300, "initial": 10},
                       put_away_delay=timedelta(hours=3))
    dev.advance(START + 3 * DAY)
    assert dev.stock_out("toner")
    at = START + 3 * DAY
    dev.deliver("toner", 1, at)
    dev.advance(at + timedelta(hours=2, minutes=59))
    assert dev.stock_out("toner")
    events = dev.advance(at + timedelta(hours=3, minutes=1))
    assert [e.type for e in events] == [EventType.CARTRIDGE_REPLACED]
    assert dev.truth()["toner"].level == pytest.approx(100.0)
    assert dev.stockouts("toner")[-1][1] == at + timedelta(hours=3)


def test_drum_is_a_second_consumable_with_its_own_counter() -> None:
    dev = busy_printer(drum={"yield_pages": 2000, "initial": 100})
    readings, _ = run(dev, 5)
    last = readings[-1]
    drum = next(c for c in last.consumables if c.id == "drum")
    toner = next(c for c in last.consumables if c.id == "toner")
    assert drum.counters and toner.counters
    assert drum.counters["pages"] == toner.counters["pages"]  # drum new at start
    assert drum.level == pytest.approx(100 - 100 * drum.counters["pages"] / 2000, abs=0.01)


def test_no_printing_while_away_and_usage_step_change() -> None:
    usage = Usage(away=[(START + 10 * DAY, START + 20 * DAY)],
                  changes=[(START + 30 * DAY, 2.0)])
    dev = Printer("p", start=START, seed=1, pages_per_day=20.0, usage=usage,
                  toner={"yield_pages": 100000})
    dev.advance(START + 10 * DAY)
    before = dev.pages
    assert dev.truth()["toner"].rate_per_day == 0.0  # away
    dev.advance(START + 20 * DAY)
    assert dev.pages == before
    rate_before = dev.truth()["toner"].rate_per_day
    dev.advance(START + 31 * DAY)
    assert dev.truth()["toner"].rate_per_day == pytest.approx(2 * rate_before, rel=0.05)


# -- fridge -----------------------------------------------------------------------------


def test_fridge_milk_and_eggs_stay_in_range_with_noise_and_lift_zeros() -> None:
    dev = Fridge("fridge-1", start=START, seed=5, people=4, lift_prob=0.2,
                 milk={"capacity": 4000, "initial": 4000,
                       "refill": {"mode": "every", "every_days": 3, "fill": True}},
                 eggs={"capacity": 24, "initial": 24,
                       "refill": {"mode": "when_empty", "delay_days": 1}})
    readings, events = run(dev, 30)
    milk = [v for v in levels(readings, "milk") if v is not None]
    assert all(0 <= v <= 4000 * 1.05 for v in milk)
    assert milk.count(0.0) > 0 or min(milk) < 20  # lifted-jug zeros
    assert any(abs(v - round(v)) > 0 for v in milk)  # scale noise
    eggs = levels(readings, "eggs")
    assert all(v is not None and v == int(v) and 0 <= v <= 24 for v in eggs)
    refilled = Counter(e.consumable_id for e in events if e.type is EventType.REFILLED)
    assert refilled["milk"] >= 5 and refilled["eggs"] >= 1


def test_fridge_use_matches_people_and_weekday_pattern() -> None:
    dev = Fridge("f", start=START, seed=2, people=3, milk={"capacity": 100000,
                                                            "initial": 100000})
    dev.advance(START + 28 * DAY)
    used = 100000 - dev.truth()["milk"].level
    assert used / 28 == pytest.approx(3 * 120, rel=0.1)
    assert dev.truth()["milk"].rate_per_day == pytest.approx(360)


def test_milk_spoils_after_shelf_life() -> None:
    dev = Fridge("f", start=START, seed=2, people=0,
                 milk={"initial": 2000, "shelf_life_days": 5})
    dev.advance(START + 4 * DAY)
    assert dev.truth()["milk"].level == pytest.approx(2000)
    dev.advance(START + 6 * DAY)
    assert dev.stock_out("milk")
    assert dev.run_outs("milk") == [START + 5 * DAY]
    assert dev.truth()["milk"].perishable


def test_delivery_beyond_capacity_waits_as_spare() -> None:
    dev = Fridge("f", start=START, seed=2, people=0,
                 milk={"capacity": 3000, "initial": 2500, "pack_size": 1000})
    dev.deliver("milk", 2, START + DAY)
    dev.advance(START + 2 * DAY)
    truth = dev.truth()["milk"]
    assert truth.level == pytest.approx(2500) and truth.spare == pytest.approx(2000)


# -- wearable ---------------------------------------------------------------------------


def test_cgm_sensors_last_ten_days_with_early_failures() -> None:
    dev = Wearable("wearable-1", start=START, seed=9, report_every=DAY,
                   sensors={"capacity": 100, "initial": 100})
    events = dev.advance(START + 600 * DAY)
    kinds = Counter(e.type for e in events)
    replaced = kinds[EventType.SENSOR_REPLACED]
    assert 50 < replaced < 70  # about 600 / ~9.7 days
    assert 0.05 < kinds[EventType.SENSOR_FAILED] / replaced < 0.22
    assert dev.truth()["sensors"].level == 100 - replaced
    assert dev.truth()["sensors"].rate_per_day == pytest.approx(1 / 9.7, rel=0.05)
    gaps = [b - a for a, b in zip(
        [e.ts for e in events if e.type is EventType.SENSOR_REPLACED][:-1],
        [e.ts for e in events if e.type is EventType.SENSOR_REPLACED][1:], strict=True)]
    assert max(gaps) <= timedelta(days=10, hours=12)


def test_cgm_stock_out_only_without_a_working_sensor_and_delivery_fixes_it() -> None:
    dev = Wearable("w", start=START, seed=4, sensors={"initial": 1},
                   early_failure_rate=0.0, grace_use_prob=0.0)
    dev.advance(START + 11 * DAY)
    assert dev.truth()["sensors"].level == 0
    assert not dev.stock_out("sensors")  # the last one is being worn
    dev.advance(START + 25 * DAY)
    assert dev.stock_out("sensors")
    at = START + 25 * DAY
    dev.deliver("sensors", 1, at)
    events = dev.advance(at + 2 * timedelta(hours=1))
    assert EventType.SENSOR_REPLACED in [e.type for e in events]
    assert not dev.stock_out("sensors")
    assert dev.truth()["sensors"].level == 2  # a box of 3, one put on
    (out_from, out_to), = dev.stockouts("sensors")
    assert out_to is not None and out_to - out_from > DAY


def test_wearable_battery_reports_and_low_battery_events() -> None:
    dev = Wearable("w", start=START, seed=4, forget_charge_prob=0.3)
    readings, events = run(dev, 30)
    battery = levels(readings, "battery")
    assert all(v is not None and 0 <= v <= 100 for v in battery)
    assert any(e.type is EventType.LOW_BATTERY for e in events)


# -- reporting, determinism -------------------------------------------------------------


def test_same_seed_same_trace_different_seed_different() -> None:
    def trace(seed: int) -> list[Any]:
        dev = Fridge("f", start=START, seed=seed, eggs={})
        return dev.poll(START + 20 * DAY) + dev.advance(START + 20 * DAY)

    assert trace(1) == trace(1)
    assert trace(1) != trace(2)


def test_truth_does_not_depend_on_how_often_it_is_read() -> None:
    a = Printer("p", start=START, seed=8, pages_per_day=10.0)
    b = Printer("p", start=START, seed=8, pages_per_day=10.0,
                report_every=timedelta(minutes=7))
    t = START
    while t < START + 30 * DAY:
        t += timedelta(hours=5)
        a.reading(t)
    b.poll(t)
    assert a.truth() == b.truth() and a.pages == b.pages


def test_seq_increments_per_message_and_events_share_the_counter() -> None:
    dev = busy_printer(toner={"yield_pages": 500, "initial": 20, "spare_packs": 1})
    readings, events = run(dev, 10)
    seqs = sorted([m.seq for m in readings] + [e.seq for e in events])
    assert seqs == list(range(1, len(seqs) + 1))


def test_offline_spells_buffer_and_catch_up_with_original_ts_and_seq() -> None:
    dev = Fridge("f", start=START, seed=1, link=LinkProfile(
        offline_prob_per_day=0.2, offline_days=(1.0, 2.0)))
    rows = dev.poll(START + 60 * DAY)
    late = [(at, p) for at, p in rows if at > p["ts"]]
    assert late, "some readings should arrive late"
    assert [p["seq"] for _, p in rows] == sorted(p["seq"] for _, p in rows)
    assert max(at - p["ts"] for at, p in late) > timedelta(hours=12)
    for _, p in rows:
        StateMessage.model_validate(p)


def test_sparse_sync_delivers_in_batches() -> None:
    dev = Wearable("w", start=START, seed=1, link=LinkProfile(sync_every_hours=24))
    rows = dev.poll(START + 10 * DAY)
    arrivals = Counter(at for at, _ in rows)
    assert len(arrivals) < 20 and max(arrivals.values()) > 10


def test_reading_is_validated_and_none_while_offline() -> None:
    dev = Fridge("fridge-1", start=START, seed=1, link=LinkProfile(
        offline_prob_per_day=1.0, offline_days=(30.0, 30.0)))
    assert dev.reading(START + 5 * DAY) is None
    online = Fridge("fridge-1", start=START, seed=1)
    msg = online.reading(START + DAY)
    assert isinstance(msg, StateMessage) and msg.device_id == "fridge-1"


def test_deliver_rejects_unknown_consumable_and_zero_packs() -> None:
    dev = Fridge("f", start=START, seed=1)
    with pytest.raises(KeyError):
        dev.deliver("cheese", 1, START)
    with pytest.raises(ValueError):
        dev.deliver("milk", 0, START)


# -- recorded payloads ------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("stem, payload", sorted(recorded_payloads().items()))
def test_recorded_payload_fixtures_are_current_and_valid(stem: str, payload: bytes) -> None:
    path = FIXTURES / f"{stem}.json"
    assert path.read_bytes() == payload, "stale fixture: run `replenish-sim fixtures`"
    msg = parse_state(Topic(msg_id(payload), Channel.STATE), payload)
    assert msg.consumables


def msg_id(payload: bytes) -> str:
    return str(json.loads(payload)["device_id"])


def test_fixtures_cover_every_printer_profile_and_device_kind() -> None:
    payloads = [json.loads(p) for p in recorded_payloads().values()]
    kinds = {p["kind"] for p in payloads}
    assert kinds == {"printer", "fridge", "wearable"}
    toner = [next(c for c in p["consumables"] if c["id"] == "toner")
             for p in payloads if p["kind"] == "printer"]
    assert {c.get("state") for c in toner} >= {None, "some_remaining", "low", "unknown"}
    assert any(c.get("level", 0) % 10 == 0 and c.get("level", 0) > 0 for c in toner)


def test_meals_happen_at_local_time() -> None:
    usage = Usage(utc_offset=timedelta(hours=-5))
    dev = Fridge("f", start=START, seed=3, usage=usage, milk={"capacity": 100000,
                                                             "initial": 100000})
    dev.advance(START + 10 * DAY)
    uses = [t for t, _ in dev.stocks["milk"].history[1:]]
    local_hours = [(t - timedelta(hours=5)).hour for t in uses]
    assert uses and min(local_hours) >= 6  # breakfast from ~6:45 local, none at night
    assert all(h <= 21 for h in local_hours)
