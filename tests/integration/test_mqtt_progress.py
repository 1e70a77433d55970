"""The watchdog's view of paho's loop: the ingest's progress mark, never paho internals.

Against a real Mosquitto: an idle connection stays fresh through its keepalive answers
(PINGRESP, seen through paho's public ``on_log``), and the loop counts as dead once
stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_settings
from agent.mqtt.ingest import MqttIngest
from agent.ops import systemd
from agent.storage.store import Store
from firmware_sim.broker import LocalBroker
from tests.integration.agent_harness import write_agent_config
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_an_idle_connection_stays_fresh_through_keepalive_answers(
    tmp_path: Path, broker: LocalBroker
) -> None:
    settings = load_settings(write_agent_config(tmp_path / "agent", broker))
    # Below the settings' floor of 5 s, so the test waits one second per ping, not five.
    mqtt = settings.mqtt.model_copy(update={"keepalive_s": 1})
    Store(settings.storage.path).close()
    ingest = MqttIngest(mqtt, settings.ingest, lambda: Store(settings.storage.path))
    probe = systemd.thread_probe(lambda: ingest.loop_alive, ingest.progress)
    ingest.start()
    try:
        connected_at = probe()
        assert connected_at is not None
        # Nothing is published: only PINGRESPs can move the mark, twice over.
        first = wait_until(lambda: (p := probe()) is not None and p > connected_at and p,
                           timeout=10, what="a keepalive answer")
        wait_until(lambda: (p := probe()) is not None and p > first, timeout=10,
                   what="a second keepalive answer")
        assert ingest.loop_alive
    finally:
        ingest.stop()
    assert not ingest.loop_alive
    assert probe() is None
