"""A vendor's view: a printer runs low, the household said auto, the vendor gets one order.

Only the plugin's fixtures are used: ``replenish_broker``, ``replenish_vendor``,
``replenish_device`` and ``replenish_agent`` (see docs/vendor-testing.md).
"""

from __future__ import annotations

import json

from firmware_sim.pytest_plugin import wait_for, wait_for_order


def test_low_toner_with_an_auto_mandate_orders_once(
    replenish_agent, replenish_device, replenish_vendor  # type: ignore[no-untyped-def]
) -> None:
    agent = replenish_agent()
    printer = replenish_device("printer-1", kind="printer")
    printer.state({"id": "black", "level": 4, "unit": "percent", "sku": "TN-2420"})
    wait_for(lambda: agent.knows("printer-1/black"), "the agent to store the reading")
    agent.cli("consent", "set", "printer-1/black", "auto", "--sku", "TN-2420",
              "--max-price", "80", "--max-qty", "1", "--budget", "200")
    (order,) = wait_for_order(replenish_vendor, timeout=90)
    assert order["sku"] == "TN-2420" and order["quantity"] == 1
    # The same need is not ordered twice while the order is on its way.
    printer.state({"id": "black", "level": 3, "unit": "percent", "sku": "TN-2420"})
    listed = json.loads(agent.cli("orders", "list", "--json").stdout)
    assert [o["state"] for o in listed] in (["placed"], ["sending"], ["queued"])
    assert len(replenish_vendor.orders()) == 1


def test_a_household_tap_orders_now(replenish_agent, replenish_device,  # type: ignore[no-untyped-def]
                                    replenish_vendor) -> None:
    agent = replenish_agent()
    fridge = replenish_device("fridge-1", kind="fridge")
    # Well stocked: the agent's own decision passes (every 10 s here) have no reason to
    # propose, so the proposal below is the tap's (a low level raced them).
    fridge.state({"id": "milk", "level": 1600, "unit": "grams", "capacity": 2000,
                  "sku": "MILK-1L"})
    wait_for(lambda: agent.knows("fridge-1/milk"), "the agent to store the reading")
    agent.cli("consent", "set", "fridge-1/milk", "confirm", "--sku", "MILK-1L")
    proposed = agent.cli("orders", "now", "fridge-1/milk", "--qty", "2")
    assert "approve order" in proposed.stdout
    order_id = proposed.stdout.rsplit("approve order ", 1)[1].split()[0]
    agent.cli("orders", "approve", order_id)
    (order,) = wait_for_order(replenish_vendor, timeout=60)
    assert order["quantity"] == 2
