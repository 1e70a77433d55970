"""The simulator's fault modes produce exactly the bad input the protocol must refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent.errors import PayloadError
from agent.wire.device import MAX_PAYLOAD_BYTES, StateMessage, parse_state, parse_topic
from firmware_sim.devices.appliances import Fridge
from firmware_sim.devices.faults import (
    FAULTS,
    FaultPlan,
    absurd_values,
    flood,
    malformed_json,
    nan_values,
    negative_values,
    out_of_order,
    oversized,
    publication,
    replayed,
    silent,
    wrong_device_id,
)

START = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def msgs() -> list[StateMessage]:
    dev = Fridge("fridge-1", start=START, seed=1, eggs={})
    return dev.readings(START + timedelta(days=2))


def reason(topic: str, payload: bytes) -> str:
    with pytest.raises(PayloadError) as err:
        parse_state(parse_topic(topic), payload)
    return err.value.reason


def test_good_publication_parses(msgs: list[StateMessage]) -> None:
    topic, payload = publication(msgs[0])
    assert parse_state(parse_topic(topic), payload) == msgs[0]


@pytest.mark.parametrize("fault, expected", [
    (malformed_json, "bad_json"),
    (wrong_device_id, "device_mismatch"),
    (nan_values, "schema"),
    (absurd_values, "schema"),
    (negative_values, "schema"),
    (oversized, "too_large"),
])
def test_single_message_faults_are_refused(msgs: list[StateMessage], fault: object,
                                           expected: str) -> None:
    topic, payload = fault(msgs[3])  # type: ignore[operator]
    assert topic == "replenish/v1/devices/fridge-1/state"
    assert reason(topic, payload) == expected


def test_nan_is_the_json_token(msgs: list[StateMessage]) -> None:
    _, payload = nan_values(msgs[0])
    assert b"NaN" in payload
    _, big = oversized(msgs[0])
    assert len(big) > MAX_PAYLOAD_BYTES


def test_replay_out_of_order_flood_and_silence(msgs: list[StateMessage]) -> None:
    batch = msgs[:5]
    pubs = replayed(batch, times=2)
    seqs = [json.loads(p)["seq"] for _, p in pubs]
    assert seqs == [m.seq for m in batch] * 3
    desc = [json.loads(p)["seq"] for _, p in out_of_order(batch)]
    assert desc == sorted(desc, reverse=True) and len(desc) == 5
    many = flood(batch[0], 50)
    assert len({json.loads(p)["seq"] for _, p in many}) == 50
    cut = batch[2].ts
    assert [json.loads(p)["seq"] for _, p in silent(batch, cut)] == [m.seq for m in batch[:2]]


def test_fault_plan_rate_and_counts(msgs: list[StateMessage]) -> None:
    plan = FaultPlan(["malformed", "nan"], rate=0.5, seed=3)
    out = [pub for m in msgs for pub in plan.apply(m)]
    faulty = sum(plan.injected.values())
    assert 0.3 * len(msgs) < faulty < 0.7 * len(msgs)
    bad = 0
    for topic, payload in out:
        try:
            parse_state(parse_topic(topic), payload)
        except PayloadError:
            bad += 1
    assert bad == faulty
    assert FaultPlan([], rate=1.0).apply(msgs[0]) == [publication(msgs[0])]


def test_silent_fault_keeps_the_device_quiet_for_a_while(msgs: list[StateMessage]) -> None:
    plan = FaultPlan(["silent"], rate=1.0, silent_for=timedelta(days=10))
    assert all(plan.apply(m) == [] for m in msgs)
    assert plan.injected["silent"] == 1


def test_unknown_fault_and_bad_rate_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(["gremlins"], rate=0.1)
    with pytest.raises(ValueError, match="rate"):
        FaultPlan(["nan"], rate=2.0)
    assert "flood" in FAULTS and "silent" in FAULTS
