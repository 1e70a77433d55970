"""Order now through Home Assistant's button: two presses, one order at the sandbox.

Reuses the household rig of ``test_household_mqtt`` (real Mosquitto, the real agent,
the vendor sandbox over HTTP, a paho client playing Home Assistant).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agent.consent import Mandate, Mode
from tests.integration.test_household_mqtt import (  # noqa: F401 (rig is a fixture)
    HOUSEHOLD,
    PREFIX,
    Rig,
    press,
    rig,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BUTTON = f"{PREFIX}/button/replenish_printer-1/black_order_now/config"


def _events(on: Rig, kind: str) -> list[dict[str, object]]:
    return [json.loads(m.payload) for m in on.ha.messages()
            if m.topic == f"{HOUSEHOLD}/events" and json.loads(m.payload)["kind"] == kind]


def test_two_presses_of_order_now_place_one_order(rig: Rig) -> None:  # noqa: F811
    led = rig.ledger()
    try:
        led.set_consent("printer-1/black", Mode.AUTO, Mandate(
            skus=("TN-2420",), max_unit_price=Decimal("80"), max_quantity=1,
            monthly_budget=Decimal("200")), datetime.now(UTC))
    finally:
        led.close()
    config = wait_until(lambda: rig.ha.retained().get(BUTTON),
                        timeout=20.0, what="the Order now button")
    assert press(rig.ha, config) < 128
    wait_until(lambda: _events(rig, "order_now"),
               timeout=20.0, what="the answer to the first press")
    assert press(rig.ha, config) < 128
    answers = wait_until(lambda: len(_events(rig, "order_now")) >= 2 and _events(rig, "order_now"),
                         timeout=20.0, what="the answer to the second press")
    assert "ordering 1 x" in str(answers[0]["message"])
    assert "already on its way" in str(answers[1]["message"])
    wait_until(lambda: rig.sandbox.orders(), timeout=20.0, what="the order at the vendor")
    # A third request, from the CLI, sees the same order and places nothing.
    done = subprocess.run([sys.executable, "-m", "agent.cli.main", "--config",
                           str(rig.agent.config), "orders", "now", "printer-1/black"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "already on its way" in done.stdout, done.stderr
    assert len(rig.sandbox.orders()) == 1
    placed = [b for b in rig.audit("order_announced")
              if b["reason"] == "requested by the household via homeassistant"]
    assert len(placed) == 1
