"""The ingest shares the GIL in short slices: paho's network thread must not wait 5 ms
(CPython's default) behind the writer for every packet (agent.mqtt.ingest)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import IngestSettings, MqttSettings
from agent.errors import BrokerError
from agent.mqtt.ingest import MqttIngest
from agent.storage.store import Store


@pytest.fixture
def default_switch() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_starting_the_ingest_shortens_the_gil_switch_interval(
        tmp_path: Path, default_switch: None) -> None:
    ingest = MqttIngest(MqttSettings(port=_closed_port()), IngestSettings(),
                        lambda: Store(tmp_path / "a.db"))
    with pytest.raises(BrokerError):  # nothing listens there: start gives up at once
        ingest.start(timeout=1.0)
    # 1 ms: measured against the default 5 ms in the ingest benchmark's latency run.
    assert sys.getswitchinterval() == pytest.approx(0.001)
