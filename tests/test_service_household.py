"""AgentService.sync_household: orders every sync, dashboard states at their own pace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.app.service import AgentService
from agent.config import Settings
from agent.domain import DeviceKind, Unit
from agent.wire.device import Consumable, StateMessage

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def service(tmp_path: Path) -> tuple[AgentService, Clock, list[str]]:
    settings = Settings.model_validate({
        "storage": {"path": tmp_path / "agent.db"},
        "household": {"sync_interval_s": 5, "state_interval_s": 60},
    })
    clock = Clock()
    svc = AgentService(settings, clock=clock)
    topics: list[str] = []
    svc.ingest.publish = lambda topic, payload, retain, qos=1: topics.append(topic)  # type: ignore[method-assign]
    return svc, clock, topics


def reading(svc: AgentService, seq: int, level: float) -> None:
    with svc.open_store() as store:
        store.write_batch([StateMessage(
            device_id="fridge-1", seq=seq, ts=T0 + timedelta(seconds=seq),
            kind=DeviceKind.FRIDGE,
            consumables=[Consumable(id="milk", level=level, unit=Unit.GRAMS)])],
            received_at=T0.timestamp())


def test_levels_go_out_once_a_state_interval_not_every_sync(
        service: tuple[AgentService, Clock, list[str]]) -> None:
    svc, clock, topics = service
    state = "replenish/v1/household/consumables/fridge-1/milk"
    reading(svc, 1, 900.0)
    svc.sync_household()
    assert topics.count(state) == 1
    for step in range(1, 11):  # a new level before every sync, 5 s apart
        reading(svc, 1 + step, 900.0 - step)
        clock.now = T0 + timedelta(seconds=5 * step)
        svc.sync_household()
    assert topics.count(state) == 1
    clock.now = T0 + timedelta(seconds=61)
    svc.sync_household()
    assert topics.count(state) == 2
    svc.household.deliver("homeassistant/status", b"online")  # type: ignore[union-attr]
    clock.now += timedelta(seconds=5)
    svc.sync_household()
    assert topics.count(state) == 3  # Home Assistant restarted: everything again
