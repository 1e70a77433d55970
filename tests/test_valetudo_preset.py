"""The Valetudo preset: its consumable topics without Home Assistant discovery.

Payload shapes from https://valetudo.cloud/pages/integrations/mqtt.html ("Consumables
monitoring"): a retained integer of seconds left (sample ``29520``), percent when the
property's Homie ``$unit`` is ``%`` (sample ``59``), an ISO 8601 duration in older
releases (``PT8H12M0S``); ``<property>/reset`` is a command topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import SourcesSettings, ValetudoSettings
from agent.domain import Unit
from agent.errors import PayloadError
from agent.sources.reader import ForeignReader
from agent.sources.valetudo.preset import parse_topic, parse_value
from agent.storage.sources import SourceStore
from agent.storage.store import Store

NOW = datetime(2027, 1, 4, 6, 0, tzinfo=UTC).timestamp()
BASE = "valetudo/robot/ConsumableMonitoringCapability"


def test_topics_values_and_attributes() -> None:
    assert parse_topic(f"{BASE}/brush-main", "valetudo").consumable == "brush-main"  # type: ignore[union-attr]
    unit = parse_topic(f"{BASE}/mop/$unit", "valetudo")
    assert unit is not None and unit.attribute == "$unit"
    for ignored in (f"{BASE}/brush-main/reset", f"{BASE}/brush-main/reset/set",
                    f"{BASE}/$properties", "valetudo/robot/BatteryStateAttribute/level",
                    "other/robot/ConsumableMonitoringCapability/mop"):
        assert parse_topic(ignored, "valetudo") is None, ignored
    assert parse_value(b"29520", None) == (pytest.approx(29520 / 86400), Unit.DAYS)
    assert parse_value(b"PT8H12M0S", None) == (pytest.approx(29520 / 86400), Unit.DAYS)
    assert parse_value(b"59", "%") == (59.0, Unit.PERCENT)
    for bad, unit_attr in ((b"lots", None), (b"-5", None), (b"140", "%"), (b"P", None)):
        with pytest.raises(PayloadError):
            parse_value(bad, unit_attr)


def test_reader_turns_the_robot_into_readings_and_counts_bad_payloads(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    settings = SourcesSettings(valetudo=ValetudoSettings(
        skus={"filter-main": "ROBOROCK-FILTER"}, life_hours={"filter-main": 120}))
    reader = ForeignReader(settings, str(db), clock=lambda: NOW)
    assert reader.wants(f"{BASE}/filter-main")
    assert "valetudo/+/ConsumableMonitoringCapability/#" in reader.topics()
    # A value before its Homie attributes in one batch: attributes are read first.
    for topic, payload in ((f"{BASE}/mop", b"44"), (f"{BASE}/mop/$unit", b"%"),
                           (f"{BASE}/mop/$datatype", b"integer"),
                           (f"{BASE}/brush-main/$datatype", b"integer"),
                           (f"{BASE}/brush-main", b"oops"),
                           (f"{BASE}/filter-main/reset", b"PERFORM"),
                           (f"{BASE}/filter-main", b"97200")):
        reader.deliver(topic, payload, True)
    reader.drain()
    with Store(db) as store:  # filter-main: seconds or percent? held for its $datatype
        assert {r.consumable_id for r in store.consumables(counts=False)} == {"mop"}
    reader.deliver(f"{BASE}/filter-main/$datatype", b"integer", True)
    reader.drain()
    with Store(db) as store:
        rows = {r.consumable_id: r for r in store.consumables(counts=False)}
    assert set(rows) == {"mop", "filter-main"}
    assert rows["mop"].unit == "percent" and rows["mop"].last_level == 44.0
    assert rows["filter-main"].unit == "days" and rows["filter-main"].capacity == 5.0
    assert rows["filter-main"].last_level == pytest.approx(27 / 24)
    assert rows["filter-main"].sku == "ROBOROCK-FILTER"
    assert rows["filter-main"].device_id == "valetudo-robot"
    with SourceStore(db) as sdb:
        assert [(r.source, r.reason, r.count) for r in sdb.rejects()] == [
            ("valetudo", "valetudo value not a number", 1)]
