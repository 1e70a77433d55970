"""ConsumableKey: one parse for CLI, MQTT and web input, and the text form kept as is."""

from datetime import UTC, datetime

import pytest

from agent.domain import BadConsumableKey, CoarseState, ConsumableKey, DeviceKind, Unit
from agent.storage.rows import consumable_key
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage


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
    with Store(":memory:") as store:
        store.write_batch([StateMessage(
            device_id="fridge-1", seq=1, ts=datetime(2026, 11, 1, tzinfo=UTC),
            kind=DeviceKind.FRIDGE, consumables=[
                Consumable(id="milk", level=900.0, unit=Unit.GRAMS, capacity=2000,
                           state=CoarseState.OK)])], received_at=1.0)
        [row] = store.consumables()
        [bare] = store.consumables(counts=False)
    assert row.key == ConsumableKey("fridge-1", "milk")
    assert consumable_key(row) == str(row.key) == "fridge-1/milk"
    # Typed as stored, with the device's kind from its own table.
    assert (row.unit, row.last_state, row.device_kind) == (Unit.GRAMS, CoarseState.OK,
                                                           DeviceKind.FRIDGE)
    assert (row.readings, bare.readings) == (1, None)
