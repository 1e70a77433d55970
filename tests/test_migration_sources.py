"""Schema step 6 (foreign sources): a database of the previous version upgrades without loss."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.storage.migrations import LATEST_VERSION, MIGRATIONS, _statements, current_version
from agent.storage.sources import Adoption, SourceEntity, SourceStore
from agent.storage.store import Store


def test_previous_version_upgrades_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    conn = sqlite3.connect(path, isolation_level=None)
    previous = [(v, s) for v, s in MIGRATIONS if v < 6]
    for version, script in previous:
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO devices (device_id, kind, first_seen, last_seen, last_seq) "
                 "VALUES ('fridge-1', 'fridge', 1, 2, 3)")
    conn.close()

    with Store(path) as store:
        assert current_version(store.conn) == LATEST_VERSION
        assert [d.device_id for d in store.devices()] == ["fridge-1"]
    with SourceStore(path) as db:
        db.upsert_entity(SourceEntity("z2m", "0x1", "s battery", "zigbee2mqtt/s",
                                      "{{ value_json.battery }}", "percent", 1.0,
                                      battery_type="CR2032"), now=10.0)
        db.adopt(Adoption("z2m", "0x1", "z2m-0x1-abc", "CR2032", "CR2032-10", None, 10), 11.0)
        db.count_rejects({("z2m", "not JSON"): 2}, 12.0)
        db.count_rejects({("z2m", "not JSON"): 1}, 13.0)
        assert [e.battery_type for e in db.entities()] == ["CR2032"]
        assert db.adoptions()[0].pack_size == 10
        assert db.rejects()[0].count == 3
        assert db.mark_removed("z2m", "0x1", 14.0) and db.entities() == []
