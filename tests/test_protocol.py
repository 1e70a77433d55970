"""Device protocol: topics, payload validation, committed schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.domain import CoarseState
from agent.errors import PayloadError
from agent.wire.device import (
    Channel,
    Topic,
    device_topic,
    encode,
    parse_event,
    parse_state,
    parse_status,
    parse_topic,
    schema_text,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "tests" / "fixtures").glob("payload_*.json"))
TOPIC = Topic("printer-1", Channel.STATE)


def state(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "device_id": "printer-1",
        "seq": 7,
        "ts": "2026-11-01T08:00:00Z",
        "kind": "printer",
        "consumables": [{"id": "black", "level": 42.0, "unit": "percent"}],
    }
    body.update(overrides)
    return body


def raw(body: object) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "topic,expected",
    [
        ("replenish/v1/devices/printer-1/state", Topic("printer-1", Channel.STATE)),
        ("replenish/v1/devices/fridge_2/events", Topic("fridge_2", Channel.EVENTS)),
        ("replenish/v1/devices/W3/status", Topic("W3", Channel.STATUS)),
    ],
)
def test_valid_topics(topic: str, expected: Topic) -> None:
    assert parse_topic(topic) == expected
    assert device_topic(expected.device_id, expected.channel) == topic


@pytest.mark.parametrize(
    "topic",
    [
        "replenish/v1/devices//state",
        "replenish/v1/devices/+/state",
        "replenish/v1/devices/#",
        "replenish/v1/devices/a/../b/state",
        "replenish/v1/devices/../state",
        "replenish/v1/devices/printer-1/state/extra",
        "replenish/v1/devices/printer-1/unknown",
        "replenish/v1/devices/" + "x" * 65 + "/state",
        "replenish/v2/devices/printer-1/state",
        "other/printer-1/state",
        "replenish/v1/devices/printer 1/state",
        "replenish/v1/devices/.hidden/state",
    ],
)
def test_bad_topics_rejected(topic: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_topic(topic)
    assert err.value.reason == "bad_topic"


def test_valid_state_round_trips() -> None:
    msg = parse_state(TOPIC, raw(state()))
    assert msg.consumables[0].level == 42.0
    assert parse_state(TOPIC, encode(msg)) == msg


@pytest.mark.parametrize(
    "body,reason",
    [
        (state(device_id="printer-2"), "device_mismatch"),
        (state(seq=-1), "schema"),
        (state(ts="2026-11-01T08:00:00"), "schema"),  # naive timestamps are ambiguous
        (state(kind="toaster"), "schema"),
        (state(consumables=[]), "schema"),
        (state(extra="x"), "schema"),
        (state(consumables=[{"id": "black", "level": -1}]), "schema"),
        (state(consumables=[{"id": "black", "level": 101, "unit": "percent"}]), "schema"),
        (state(consumables=[{"id": "milk", "level": 1e9, "unit": "grams"}]), "schema"),
        (state(consumables=[{"id": "m", "level": 5000, "unit": "grams", "capacity": 1000}]),
         "schema"),
        (state(consumables=[{"id": "black"}]), "schema"),
        (state(consumables=[{"id": "a", "level": 1}, {"id": "a", "level": 2}]), "schema"),
        (state(consumables=[{"id": "../x", "level": 1}]), "schema"),
    ],
)
def test_invalid_state_rejected(body: dict[str, object], reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_state(TOPIC, raw(body))
    assert err.value.reason == reason


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_levels_rejected(literal: bytes) -> None:
    payload = raw(state()).replace(b"42.0", literal)
    with pytest.raises(PayloadError) as err:
        parse_state(TOPIC, payload)
    assert err.value.reason == "schema"


def test_error_text_never_echoes_payload_values() -> None:
    secretish = "canary-VALUE-123"
    with pytest.raises(PayloadError) as err:
        parse_state(TOPIC, raw(state(kind=secretish)))
    assert secretish not in str(err.value)


def test_oversized_and_garbage_payloads() -> None:
    with pytest.raises(PayloadError) as err:
        parse_state(TOPIC, b"{" + b" " * 20_000 + b"}")
    assert err.value.reason == "too_large"
    for junk in (b"", b"{", b"\xff\xfe", b"[1,2]", b"null", b"[" * 5000):
        with pytest.raises(PayloadError):
            parse_state(TOPIC, junk)


def test_coarse_state_without_level() -> None:
    body = state(consumables=[{"id": "drum", "state": "some_remaining"}])
    assert parse_state(TOPIC, raw(body)).consumables[0].state is CoarseState.SOME_REMAINING


def test_status_and_events() -> None:
    assert parse_status(b'{"state":"offline"}').state == "offline"
    event = {"device_id": "printer-1", "seq": 3, "ts": "2026-11-01T08:00:00+01:00",
             "type": "cartridge_replaced", "consumable_id": "black"}
    assert parse_event(Topic("printer-1", Channel.EVENTS), raw(event)).type == "cartridge_replaced"
    with pytest.raises(PayloadError):
        parse_status(b'{"state":"sleepy"}')


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_payload_error(data: bytes) -> None:
    try:
        parse_state(TOPIC, data)
    except PayloadError:
        pass


@given(st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=20,
))
def test_arbitrary_json_raises_only_payload_error(value: object) -> None:
    try:
        parse_state(TOPIC, json.dumps(value).encode())
    except PayloadError:
        pass


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_recorded_device_payloads_are_valid(path: Path) -> None:
    body = json.loads(path.read_text())
    msg = parse_state(Topic(body["device_id"], Channel.STATE), path.read_bytes())
    assert msg.consumables


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "docs" / "protocol.schema.json").read_text()
    assert committed == schema_text(), "stale docs/protocol.schema.json: run `make schema`"
