"""The real agent on simulated time: a week of a vendor's order lifecycle in seconds.

``replenish_sim_agent`` runs ``replenish run --clock`` on the sandbox's clock; each
``agent.step(delta)`` moves simulated time and waits for the agent's passes at the new
instant, so pre-notice, sending and delivery happen at simulated times.
"""

from __future__ import annotations

import json
from datetime import timedelta

from firmware_sim.pytest_plugin import wait_for


def test_an_auto_order_waits_out_the_pre_notice_on_simulated_time(
    replenish_sim_agent, replenish_device, replenish_vendor  # type: ignore[no-untyped-def]
) -> None:
    agent = replenish_sim_agent()
    start = agent.sim.now()
    printer = replenish_device("printer-1", kind="printer")
    printer.state({"id": "black", "level": 4, "unit": "percent", "sku": "TN-2420"}, ts=start)
    wait_for(lambda: agent.knows("printer-1/black"), "the agent to store the reading")
    agent.cli("consent", "set", "printer-1/black", "auto", "--sku", "TN-2420",
              "--max-price", "80", "--max-qty", "1", "--budget", "200")
    agent.step(timedelta(hours=6))  # the next decision pass queues the order
    (queued,) = json.loads(agent.cli("orders", "list", "--json").stdout)
    assert queued["state"] == "queued"
    assert replenish_vendor.orders() == []  # 6 h pre-notice: the household may still cancel
    for _ in range(7):
        agent.step(timedelta(hours=1))
    (order,) = replenish_vendor.orders()
    placed = order["created_at"]
    # Placed on simulated time: after the pre-notice, not at the machine's date.
    assert start + timedelta(hours=6) <= placed <= start + timedelta(hours=14)
    for _ in range(10):
        agent.step(timedelta(days=1))
    (done,) = json.loads(agent.cli("orders", "list", "--all", "--json").stdout)
    assert done["state"] == "delivered"
    assert "clock=simulated" in agent.log()
    doctor = json.loads(agent.cli("doctor", "--json", "--timeout", "2", check=False).stdout)
    (sim,) = [c for c in doctor["checks"] if c["name"] == "simulated clock"]
    assert sim["level"] == "WARN" and "SIMULATED" in sim["summary"]
