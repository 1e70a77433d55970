"""What a broker restart loses of the QoS 1 messages queued for the agent's persistent
session, under the shipped snapshot setting: a timer (``autosave_on_changes false``,
``autosave_interval`` seconds in broker_config/mosquitto.conf.template).

* a clean restart (SIGTERM) loses nothing: mosquitto writes its snapshot on shutdown;
* a SIGKILL loses only what was queued after the last timer snapshot: everything queued
  before it comes back (the interval is shortened to 2 s here, the mechanism is the one
  that runs every ``autosave_interval`` s in the house);
* messages consumed live by a connected subscriber cost no snapshot within the interval
  (the former ``autosave_on_changes true`` / 100 wrote one per ~100 PUBACKs).

The figures behind the choice: bench/broker_persistence.py (bench/README.md, "The
broker's snapshots"); broker_config/README.md states the bound.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.broker import LocalBroker
from tests.integration.conftest import BROKER_USERS, Session
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "broker_config" / "mosquitto.conf.template"
TOPIC = "replenish/v1/devices/printer-1/state"
SAVED = "Saving in-memory database"
PERSISTENT = {"client_id": "durability-agent", "clean_start": False, "session_expiry": 3600}


def shipped_timer_s() -> int:
    """The template's snapshot interval; it must be a timer, not a change count."""
    text = TEMPLATE.read_text()
    assert re.search(r"^autosave_on_changes false$", text, re.M), "snapshots are not by time"
    match = re.search(r"^autosave_interval (\d+)$", text, re.M)
    assert match
    return int(match.group(1))


def drain(session: Session, expected: int, quiet_s: float = 1.5,
          timeout: float = 20.0) -> set[int]:
    """What the session receives until ``expected`` arrived or it stays quiet."""
    deadline = time.monotonic() + timeout
    seen, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        if len(session.messages) != seen:
            seen, last_change = len(session.messages), time.monotonic()
        elif seen >= expected or time.monotonic() - last_change > quiet_s:
            break
        time.sleep(0.05)
    return {int(p) for _, p in session.messages}


def offline_agent(broker: LocalBroker, sessions: Callable[..., Session]) -> None:
    """A persistent session subscribed to state, then disconnected: the broker queues."""
    agent = sessions(broker, "agent", **PERSISTENT)
    assert agent.connect() == 0
    assert agent.subscribe("replenish/v1/devices/+/state") < 128
    agent.close()


def publish(device: Session, numbers: range) -> None:
    for i in numbers:
        assert device.publish(TOPIC, b"%d" % i) == 0  # PUBACKed: the broker has it


def test_clean_restart_loses_no_queued_message(
        broker: LocalBroker, sessions: Callable[..., Session]) -> None:
    shipped_timer_s()
    offline_agent(broker, sessions)
    device = sessions(broker, "printer-1")
    assert device.connect() == 0
    publish(device, range(1_000))
    device.close()
    broker.restart()  # SIGTERM: the snapshot is written on the way out
    back = sessions(broker, "agent", **PERSISTENT)
    assert back.connect() == 0
    assert drain(back, 1_000) == set(range(1_000))


def test_sigkill_loses_only_what_came_after_the_last_timer_snapshot(
        tmp_path: Path, sessions: Callable[..., Session]) -> None:
    assert shipped_timer_s() >= 60
    # Only the interval is overridden: the timer mode comes from the template.
    with LocalBroker(tmp_path / "broker", users=dict(BROKER_USERS),
                     extra_conf="autosave_interval 2\n") as broker:
        offline_agent(broker, sessions)
        device = sessions(broker, "printer-1")
        assert device.connect() == 0
        before = range(0, 500)
        publish(device, before)
        saves = broker.log_text().count(SAVED)
        wait_until(lambda: broker.log_text().count(SAVED) > saves, timeout=10,
                   what=lambda: broker.log_text()[-500:])
        after = range(500, 1_000)
        publish(device, after)
        device.close()
        broker.restart(crash=True)  # SIGKILL: only the last snapshot survives
        back = sessions(broker, "agent", **PERSISTENT)
        assert back.connect() == 0
        received = drain(back, 1_000)
    lost = (set(before) | set(after)) - received
    print(f"broker SIGKILL: {len(lost)} of 1000 PUBACKed queued messages lost, all "
          f"queued after the last timer snapshot")
    assert set(before) <= received  # a snapshot every interval kept what was older
    assert lost <= set(after)


def test_consumed_messages_write_no_snapshot(
        broker: LocalBroker, sessions: Callable[..., Session]) -> None:
    interval = shipped_timer_s()
    started = time.monotonic()
    agent = sessions(broker, "agent", **PERSISTENT)
    assert agent.connect() == 0
    assert agent.subscribe("replenish/v1/devices/+/state") < 128
    device = sessions(broker, "printer-1")
    assert device.connect() == 0
    publish(device, range(1_000))  # 1,000 deliveries, 1,000 PUBACKs from the agent
    assert drain(agent, 1_000) == set(range(1_000))
    assert time.monotonic() - started < interval  # else a timer snapshot is due anyway
    assert broker.log_text().count(SAVED) == 0
