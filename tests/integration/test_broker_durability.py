"""A broker SIGKILL with QoS 1 messages queued for the agent's persistent session: what
the broker's snapshot settings (autosave_on_changes + autosave_interval) bound it to lose.

The figure measured here is the one broker_config/README.md states."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.broker import LocalBroker
from tests.integration.conftest import Session

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "broker_config" / "mosquitto.conf.template"
SENT = 1_000


def autosave_changes() -> int:
    text = TEMPLATE.read_text()
    assert re.search(r"^autosave_on_changes true$", text, re.M), "snapshots are not by change"
    match = re.search(r"^autosave_interval (\d+)$", text, re.M)
    assert match
    return int(match.group(1))


def drain(session: Session, quiet_s: float = 1.5, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    seen, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        if len(session.messages) != seen:
            seen, last_change = len(session.messages), time.monotonic()
        elif seen >= SENT or time.monotonic() - last_change > quiet_s:
            return
        time.sleep(0.05)


def test_broker_sigkill_loses_at_most_one_autosave_interval(
        broker: LocalBroker, sessions: Callable[..., Session]) -> None:
    bound = autosave_changes()
    persistent = {"client_id": "durability-agent", "clean_start": False,
                  "session_expiry": 3600}
    agent = sessions(broker, "agent", **persistent)
    assert agent.connect() == 0
    assert agent.subscribe("replenish/v1/devices/+/state") < 128
    agent.close()  # offline: from now on the broker queues for the session
    device = sessions(broker, "printer-1")
    assert device.connect() == 0
    for i in range(SENT):
        assert device.publish("replenish/v1/devices/printer-1/state", b"%d" % i) == 0
    device.close()
    broker.restart(crash=True)  # SIGKILL: only the last snapshot survives
    back = sessions(broker, "agent", **persistent)
    assert back.connect() == 0
    drain(back)
    received = {int(p) for _, p in back.messages}
    lost = SENT - len(received)
    print(f"broker SIGKILL: {lost} of {SENT} PUBACKed queued messages lost "
          f"(autosave_interval {bound} changes)")
    assert received  # a positive marker: the session and its queue came back
    assert lost <= bound
