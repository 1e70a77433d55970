"""Household messages and Home Assistant discovery payloads (pure builders)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.household.discovery import DeviceInfo, discovery_for_device, discovery_for_proposal
from agent.wire.household import (
    ConsumableState,
    EventKind,
    Proposal,
    Verb,
    availability_message,
    consumable_message,
    event,
    event_message,
    parse_command,
    proposal_cleared,
    proposal_message,
)

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)
PRINTER = DeviceInfo("printer-1", "printer", (("black", "percent"), ("drum", "percent")))
FRIDGE = DeviceInfo("fridge-1", "fridge", (("milk", "grams"),))
PROPOSAL = Proposal(
    proposal_id="p-42", device_id="fridge-1", consumable_id="milk", sku="MILK-1L",
    product="Whole milk 1 l", quantity=2, unit_price=Decimal("1.19"), currency="EUR",
    expected_arrival=NOW + timedelta(days=1), expires_at=NOW + timedelta(hours=12),
)
# Fields Home Assistant's MQTT discovery documents for these entities.
SENSOR_REQUIRED = {"unique_id", "name", "state_topic", "device", "availability"}
BUTTON_REQUIRED = {"unique_id", "name", "command_topic", "payload_press", "device"}


def configs(messages: list) -> dict[str, dict]:
    return {m.topic: json.loads(m.payload) for m in messages}


def test_sensor_discovery_has_documented_fields() -> None:
    everything = configs(discovery_for_device(PRINTER))
    found = {t: c for t, c in everything.items() if "/sensor/" in t}
    assert len(found) == 4  # level + days left per consumable
    for topic, config in found.items():
        assert topic.startswith("homeassistant/sensor/replenish_printer-1/")
        assert topic.endswith("/config")
        assert SENSOR_REQUIRED <= config.keys()
        assert config["state_class"] == "measurement"
        assert config["device"]["identifiers"] == ["replenish_printer-1"]
        assert {"manufacturer", "model", "sw_version"} <= config["device"].keys()
        assert config["availability"][0]["topic"].endswith("/printer-1/availability")
    level = found["homeassistant/sensor/replenish_printer-1/black_level/config"]
    assert level["unit_of_measurement"] == "%"
    milk = configs(discovery_for_device(FRIDGE))[
        "homeassistant/sensor/replenish_fridge-1/milk_level/config"]
    assert (milk["unit_of_measurement"], milk["device_class"]) == ("g", "weight")


def test_unique_ids_are_stable_and_distinct() -> None:
    first = [c["unique_id"] for c in configs(discovery_for_device(PRINTER)).values()]
    again = [c["unique_id"] for c in configs(discovery_for_device(PRINTER)).values()]
    assert first == again and len(set(first)) == len(first)


def ids_of(device: DeviceInfo) -> tuple[set[str], set[str], set[str]]:
    """Unique ids, config topics and device identifiers one device announces."""
    found = configs(discovery_for_device(device))
    return ({c["unique_id"] for c in found.values()}, set(found),
            {i for c in found.values() for i in c["device"]["identifiers"]})


def test_ids_that_slug_alike_get_distinct_entities() -> None:
    dash = ids_of(DeviceInfo("a-b", "fridge", (("c", "grams"),)))
    under = ids_of(DeviceInfo("a_b", "fridge", (("c", "grams"),)))
    split = ids_of(DeviceInfo("a", "fridge", (("b_c", "grams"),)))
    upper = ids_of(DeviceInfo("A-b", "fridge", (("c", "grams"),)))
    for i in range(3):
        kinds = [dash[i], under[i], split[i], upper[i]]
        assert all(a.isdisjoint(b) for n, a in enumerate(kinds) for b in kinds[n + 1:])
    # Ids of letters, digits and "-" stay readable: no digest.
    assert dash[0] == {"replenish_a-b_c_level", "replenish_a-b_c_days_left",
                       "replenish_a-b_c_order_now"}


# A tiny alphabet, so pairs that only differ in "-", "_", case or the split are common.
IDENT = st.from_regex(r"[aA1][aA1_-]{0,4}", fullmatch=True)


@given(st.tuples(IDENT, IDENT), st.tuples(IDENT, IDENT))
def test_entity_ids_are_injective(one: tuple[str, str], two: tuple[str, str]) -> None:
    first = ids_of(DeviceInfo(one[0], "printer", ((one[1], "percent"),)))
    second = ids_of(DeviceInfo(two[0], "printer", ((two[1], "percent"),)))
    assert (first[0] == second[0]) == (one == two)
    assert (first[1] == second[1]) == (one == two)
    assert (first[2] == second[2]) == (one[0] == two[0])
    for topic in first[1]:
        assert re.fullmatch(r"homeassistant/(sensor|button)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config",
                            topic)


@given(IDENT, IDENT)
def test_proposal_button_ids_are_injective(one: str, two: str) -> None:
    def buttons(ref: str) -> set[str]:
        proposal = PROPOSAL.model_copy(update={"proposal_id": ref})
        return {c["unique_id"] for c in configs(discovery_for_proposal(proposal, FRIDGE))
                .values()}
    assert (buttons(one) == buttons(two)) == (one == two)


def test_every_consumable_has_an_order_now_button() -> None:
    buttons = {t: c for t, c in configs(discovery_for_device(PRINTER)).items()
               if "/button/" in t}
    assert len(buttons) == 2
    black = buttons["homeassistant/button/replenish_printer-1/black_order_now/config"]
    assert BUTTON_REQUIRED <= black.keys()
    assert black["command_topic"] == "replenish/v1/household/commands/order_now"
    assert json.loads(black["payload_press"]) == {"ref": "printer-1:black",
                                                  "source": "homeassistant"}


def test_removal_clears_every_entity_with_empty_retained_payloads() -> None:
    announce = discovery_for_device(PRINTER)
    remove = discovery_for_device(PRINTER, remove=True)
    assert [m.topic for m in remove] == [m.topic for m in announce]
    assert all(m.payload == b"" and m.retain for m in remove)


def test_proposal_buttons_press_the_command_topic() -> None:
    buttons = configs(discovery_for_proposal(PROPOSAL, FRIDGE))
    assert len(buttons) == 2
    for config in buttons.values():
        assert BUTTON_REQUIRED <= config.keys()
        assert json.loads(config["payload_press"])["ref"] == "p-42"
    verbs = sorted(c["command_topic"].rsplit("/", 1)[1] for c in buttons.values())
    assert verbs == ["approve", "cancel"]
    assert all(m.payload == b"" for m in discovery_for_proposal(PROPOSAL, FRIDGE, remove=True))


def test_household_state_messages() -> None:
    state = ConsumableState(device_id="fridge-1", consumable_id="milk", level=800, unit="grams",
                            days_left=3.5, confidence="high", mode="confirm", updated_at=NOW)
    msg = consumable_message(state)
    assert msg.retain and msg.topic == "replenish/v1/household/consumables/fridge-1/milk"
    assert json.loads(msg.payload)["days_left"] == 3.5
    assert availability_message("fridge-1", False).payload == b"offline"
    assert json.loads(proposal_message(PROPOSAL).payload)["unit_price"] == "1.19"  # a string
    assert proposal_cleared("p-42").payload == b""
    ev = event_message(event(EventKind.ORDER_PLACED, NOW, "ordered 2x milk", ref="o-1"))
    assert not ev.retain and json.loads(ev.payload)["kind"] == "order_placed"


def test_parse_command() -> None:
    verb, cmd = parse_command("replenish/v1/household/commands/approve", b'{"ref": "p-42"}')
    assert verb is Verb.APPROVE and cmd.ref == "p-42"
    with pytest.raises(ValueError):
        parse_command("replenish/v1/household/commands/explode", b'{"ref": "p-42"}')
    with pytest.raises(ValidationError):
        parse_command("replenish/v1/household/commands/approve", b'{"ref": "../x"}')
    with pytest.raises(ValueError):
        parse_command("replenish/v1/devices/x/state", b"{}")
