"""Nightscout over real HTTP (firmware_sim's fixture site): readings and counted faults."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import NightscoutSettings
from agent.domain import Unit
from agent.sources.nightscout.mapping import levels
from agent.sources.nightscout.source import NightscoutSource
from agent.storage.store import Store
from firmware_sim.devices.nightscout import NightscoutSite

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def site() -> Iterator[tuple[NightscoutSite, str]]:
    ns = NightscoutSite()
    ns.week(START, days=4)  # up to "now" in the tests: a site has no future entries
    url = ns.start()
    yield ns, url
    ns.stop()


def source(tmp_path: Path, url: str, token: str, **kw: object) -> NightscoutSource:
    token_file = tmp_path / "ns-token"
    token_file.write_text(token)
    return NightscoutSource(NightscoutSettings(url=url, token_file=token_file,
                                               skus={"cgm-sensor": "DEXCOM-G7-1"}, **kw))


def test_poll_reads_sensor_site_reservoir_and_batteries(
        tmp_path: Path, site: tuple[NightscoutSite, str]) -> None:
    ns, url = site
    src = source(tmp_path, url, ns.token)
    now = START + timedelta(days=4, hours=1)
    result = src.poll(now)
    assert result.fault is None
    got = {s.consumables[0].id: s.consumables[0] for s in result.states}
    assert set(got) == {"cgm-sensor", "infusion-set", "insulin", "pump-battery",
                        "uploader-battery"}
    assert got["cgm-sensor"].unit == Unit.DAYS and got["cgm-sensor"].sku == "DEXCOM-G7-1"
    assert got["cgm-sensor"].level == pytest.approx(10 - (4 + 1 / 24), abs=1e-3)
    assert got["infusion-set"].level == pytest.approx(2 - 1 / 24, abs=1e-3)  # site changed on day 3
    assert got["insulin"].capacity == 300 and got["insulin"].unit == Unit.COUNT
    with Store(tmp_path / "agent.db") as store:
        assert store.write_batch(result.states, received_at=now.timestamp()).stored == 5
        # The same device status again is a duplicate, not a new reading.
        again = src.poll(now + timedelta(minutes=15))
        assert store.write_batch(again.states, received_at=now.timestamp()).duplicates == 3
    src.close()


@pytest.mark.parametrize(("fault", "reason"), [
    ("401", "HTTP 401 (token refused)"), ("500", "HTTP 500"),
    ("malformed", "malformed JSON"), ("slow", "timeout"),
])
def test_faults_are_reasons_not_exceptions(
        tmp_path: Path, site: tuple[NightscoutSite, str], fault: str, reason: str) -> None:
    ns, url = site
    ns.fault, ns.delay_s = fault, 1.0
    src = source(tmp_path, url, ns.token, timeout_s=0.3)
    result = src.poll(START + timedelta(days=1))
    assert (result.states, result.fault) == ([], reason)
    src.close()


def test_a_wrong_token_is_refused_and_unreachable_site_counted(
        tmp_path: Path, site: tuple[NightscoutSite, str]) -> None:
    _, url = site
    assert source(tmp_path, url, "wrong").poll(START).fault == "HTTP 401 (token refused)"
    gone = source(tmp_path, "http://127.0.0.1:9", "x", timeout_s=0.5).poll(START)
    assert gone.fault == "ConnectError"


def test_odd_shapes_are_skipped_or_refused() -> None:
    assert levels([{"eventType": "Sensor Change", "created_at": "yesterday"},
                   {"eventType": "Note"}, 3], [{"pump": {"reservoir": True}}], START,
                  sensor_life_days=10, site_life_days=3, reservoir_u=300) == []
    with pytest.raises(ValueError):
        levels({"treatments": []}, [], START, sensor_life_days=10, site_life_days=3,
               reservoir_u=300)
