"""End to end: devices publish to a real Mosquitto from broker_config/, the agent stores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent.ops.progress import FILE_NAME, RUNTIME_ENV
from agent.storage.store import Store
from firmware_sim.broker import LocalBroker
from tests.integration.agent_harness import (
    AgentProcess,
    committed_since_start,
    db_count,
    device_client,
    payload,
    publish_through_kills,
    write_agent_config,
)
from tests.integration.conftest import run_mosquitto_pub
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_mosquitto_pub_and_paho_readings_arrive(broker: LocalBroker, tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent", broker)
    db = tmp_path / "agent" / "agent.db"
    with AgentProcess(config):
        topic = "replenish/v1/devices/printer-1/state"
        assert (
            run_mosquitto_pub(broker, "printer-1", topic, payload("printer-1", 1)).returncode == 0
        )
        client = device_client(broker, "fridge-1")
        body = json.dumps(
            {
                "device_id": "fridge-1",
                "seq": 1,
                "ts": "2026-11-20T10:00:00Z",
                "kind": "fridge",
                "consumables": [{"id": "milk", "level": 812.5, "unit": "grams"}],
            }
        )
        client.publish("replenish/v1/devices/fridge-1/state", body, qos=1).wait_for_publish(5)
        wait_until(lambda: db_count(db, "printer-1") == 1 and db_count(db, "fridge-1") == 1)
        client.loop_stop()
        client.disconnect()
    with Store(db) as store:
        levels = {c.consumable_id: c.last_level for c in store.consumables()}
    assert levels == {"black": 50.0, "milk": 812.5}


def test_malformed_payload_rejected_next_good_lands(broker: LocalBroker, tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent", broker)
    db = tmp_path / "agent" / "agent.db"
    topic = "replenish/v1/devices/printer-1/state"
    with AgentProcess(config) as agent:
        run_mosquitto_pub(broker, "printer-1", topic, "{not json")
        run_mosquitto_pub(broker, "printer-1", topic, payload("printer-1", 1, level=101))
        run_mosquitto_pub(broker, "printer-1", topic, payload("printer-2", 2))
        run_mosquitto_pub(broker, "printer-1", topic, payload("printer-1", 3))
        wait_until(lambda: db_count(db, "printer-1") == 1)
        assert agent.proc is not None and agent.proc.poll() is None
        log = agent.log()
    with Store(db) as store:
        counts = {r.reason: r.count for r in store.reject_counts()}
        assert store.seqs("printer-1") == [3]
    assert counts == {"bad_json": 1, "schema": 1, "device_mismatch": 1}
    # One summary line per device per interval: the first reject is logged at once.
    assert "not json" not in log
    assert re.search(r"ingest\.reject device=printer-1 count=\d reasons=bad_json:1", log)


@pytest.mark.slow
def test_sigkill_while_publishing_loses_nothing_duplicates_nothing(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """Every reading the broker accepted ends up in SQLite exactly once across kills,
    counted while the agent runs (readers share the on-disk wal-index)."""
    config = write_agent_config(tmp_path / "agent", broker)
    db = tmp_path / "agent" / "agent.db"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    agent = AgentProcess(config, env={RUNTIME_ENV: str(run_dir)}).start()
    total = 3000
    seqs, count = publish_through_kills(
        agent, broker, db, total=total,
        committed=lambda: committed_since_start(agent, run_dir / FILE_NAME),
        all_stored=lambda: db_count(db, "printer-1") == total)
    assert seqs == list(range(1, total + 1))
    assert count == total
