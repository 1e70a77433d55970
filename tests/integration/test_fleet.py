"""A fleet of households from one process, sharded, against a real Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.wire.device import parse_state, parse_topic
from firmware_sim.broker import LocalBroker
from firmware_sim.fleet import Fleet, fleet_device_id, parse_shard
from firmware_sim.household.scenario import Household
from tests.integration.conftest import Session
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HOUSEHOLDS = 6
SCENARIO = "family-of-four"
PASSWORD = "fleet-pw"


def _device_ids() -> list[str]:
    ids = []
    for k in range(HOUSEHOLDS):
        for dev in Household.from_scenario(SCENARIO, k).devices:
            ids.append(fleet_device_id(k, dev.device_id))
    return ids


def test_shard_parsing() -> None:
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x/2", "1", "-1/2", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_two_shards_publish_disjoint_devices_and_every_message_arrives(
    tmp_path: Path, sessions: Callable[..., Session]
) -> None:
    ids = _device_ids()
    with LocalBroker(tmp_path / "broker", users={d: PASSWORD for d in ids}) as broker:
        agent = sessions(broker, "agent")
        assert agent.connect() == 0
        assert agent.subscribe("replenish/v1/devices/#") in (0, 1)
        stats = []
        for shard in ((0, 2), (1, 2)):
            fleet = Fleet(SCENARIO, HOUSEHOLDS, broker.host, broker.port, PASSWORD,
                          shard=shard, speed=86_400 * 2)
            stats.append(fleet.run(days=3, tick_s=0.05))
        published = sum(s.published for s in stats)
        assert published > 0 and all(s.acknowledged == s.published for s in stats)
        assert sum(s.households for s in stats) == HOUSEHOLDS
        wait_until(lambda: len(agent.messages) >= published,
                   timeout=20, what=lambda: (len(agent.messages), published))
    per_device = Counter(topic.split("/")[3] for topic, _ in agent.messages)
    assert set(per_device) == set(ids)  # every device of both shards, nobody else
    for topic, payload in agent.messages:
        if topic.endswith("/state"):  # what the agent itself accepts, topic and payload
            parse_state(parse_topic(topic), payload)


def test_the_command_line_runs_a_shard_with_a_summary(tmp_path: Path) -> None:
    ids = _device_ids()
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    with LocalBroker(tmp_path / "broker", users={d: PASSWORD for d in ids}) as broker:
        done = subprocess.run(
            [sys.executable, "-m", "firmware_sim", "fleet", SCENARIO, "--households",
             str(HOUSEHOLDS), "--broker", f"{broker.host}:{broker.port}", "--password-file",
             str(secret), "--days", "1", "--speed", "172800", "--shard", "1/3", "--quiet"],
            capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 households,")
    assert "refused 0, connect failures 0" in done.stdout
