"""ConsumableKey: one parse for CLI, MQTT and web input, and the text form kept as is."""

import pytest

from agent.domain import BadConsumableKey, ConsumableKey
from agent.storage.rows import consumable_key


def test_text_form_round_trips() -> None:
    key = ConsumableKey.parse("printer-1/black")
    assert key == ConsumableKey(device_id="printer-1", consumable_id="black")
    assert str(key) == "printer-1/black"


@pytest.mark.parametrize("text", ["printer-1", "printer-1/", "/black", "a/b/c", "a b/c",
                                  "a/b\n", ""])
def test_bad_text_is_refused_with_the_text_named(text: str) -> None:
    with pytest.raises(BadConsumableKey, match="DEVICE/CONSUMABLE"):
        ConsumableKey.parse(text)


def test_store_rows_name_their_key_the_same_way() -> None:
    assert consumable_key({"device_id": "fridge-1", "consumable_id": "milk"}) == "fridge-1/milk"
