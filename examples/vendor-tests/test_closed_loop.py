"""Three weeks of the demo household against the real agent process on simulated time.

``replenish_closed_loop`` wires the scenario's devices (live on the broker), the sandbox
(selling the scenario's SKUs, delivering into the household) and ``replenish run
--clock`` on the sandbox's clock. Each ``loop.step()`` moves simulated time and waits
for the agent's passes, so three weeks take about a minute and the outcome does not depend
on how loaded the machine is.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from firmware_sim.pytest_plugin import wait_for

DAYS = 24
STEP = timedelta(hours=3)


@pytest.mark.timeout(400)
@pytest.mark.replenish_scenario("demo")
def test_a_month_of_the_demo_household_on_simulated_time(
    replenish_closed_loop, replenish_vendor  # type: ignore[no-untyped-def]
) -> None:
    loop = replenish_closed_loop()
    agent = loop.agent
    start = loop.household.start
    loop.step(STEP)
    wait_for(lambda: agent.knows("fridge-1/milk") and agent.knows("printer-1/toner"),
             "the agent to store the first readings")
    agent.cli("consent", "set", "printer-1/toner", "auto", "--sku", "TN-2410",
              "--max-price", "80", "--max-qty", "2", "--budget", "150")
    agent.cli("consent", "set", "fridge-1/milk", "confirm")
    approved = 0
    while (now := loop.step(STEP)) < start + timedelta(days=DAYS):
        if (now - start) % timedelta(hours=12) == timedelta(0):  # the household checks twice a day
            for order in json.loads(agent.cli("orders", "list", "--json").stdout):
                if order["state"] == "proposed":
                    agent.cli("orders", "approve", str(order["id"]))
                    approved += 1
    orders = replenish_vendor.orders()
    skus = {o["sku"] for o in orders}
    assert "TN-2410" in skus  # the auto mandate ordered toner
    assert approved >= 1 and len(orders) > 1  # and the approved milk went out
    for order in orders:  # every time is simulated time, in order
        assert start <= order["created_at"] <= now
        if order["delivered_at"] is not None:
            assert order["delivered_at"] >= order["created_at"]
    assert any(o["delivered_at"] is not None for o in orders)
    stockouts = loop.stockout_days()
    assert stockouts["printer-1/toner"] < 1.0 and stockouts["fridge-1/milk"] < 1.0
    # Household commands run at the simulated instant too (REPLENISH_NOW).
    assert agent.status()["now"] == agent.sim.now().isoformat()
