"""The alert queue in SQLite: events become alerts, fold, survive, and are acknowledged."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.errors import ConsentError
from agent.storage.alerts import AlertLedger
from agent.storage.migrations import LATEST_VERSION, MIGRATIONS, migrate
from agent.storage.store import Store
from agent.wire.device import EventMessage

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
FOLD = {"fall_alert": timedelta(minutes=30)}


def fall(store: Store, seq: int, at: datetime, device: str = "watch-1",
         kind: str = "fall_alert") -> None:
    msg = EventMessage(device_id=device, seq=seq, ts=at, type=kind)  # type: ignore[arg-type]
    store.write_batch([msg], received_at=at.timestamp())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "agent.db"
    Store(path).close()
    return path


def test_a_stored_fall_event_becomes_one_alert_with_an_audit_record(db: Path) -> None:
    with Store(db) as store:
        fall(store, 1, T0)
    ledger = AlertLedger.open(db)
    assert len(ledger.absorb_events(FOLD, T0)) == 1
    assert ledger.absorb_events(FOLD, T0) == []  # each event is absorbed once
    (alert,) = ledger.open_alerts()
    assert (alert.device_id, alert.type, alert.events) == ("watch-1", "fall_alert", 1)
    kinds = [r.kind for r in ledger.audit_records()]
    assert kinds.count("alert_raised") == 1
    assert ledger.verify_audit().ok


def test_a_flood_from_one_device_folds_into_one_alert(db: Path) -> None:
    with Store(db) as store:
        for seq in range(1, 101):
            fall(store, seq, T0 + timedelta(seconds=seq))
        fall(store, 101, T0 + timedelta(seconds=5), device="watch-2")
    ledger = AlertLedger.open(db)
    raised = ledger.absorb_events(FOLD, T0 + timedelta(minutes=2))
    assert len(raised) == 2
    by_device = {a.device_id: a for a in ledger.open_alerts()}
    assert by_device["watch-1"].events == 100
    assert by_device["watch-2"].events == 1


def test_after_acknowledgement_a_new_fall_raises_a_new_alert(db: Path) -> None:
    with Store(db) as store:
        fall(store, 1, T0)
    ledger = AlertLedger.open(db)
    (first,) = ledger.absorb_events(FOLD, T0)
    ledger.acknowledge(first, "anna", T0 + timedelta(minutes=1))
    ledger.acknowledge(first, "ben", T0 + timedelta(minutes=2))  # the first ack stays
    assert ledger.alert(first).acked_by == "anna"
    with Store(db) as store:
        fall(store, 2, T0 + timedelta(minutes=3))
    assert len(ledger.absorb_events(FOLD, T0 + timedelta(minutes=3))) == 1


def test_unknown_alert_is_an_error(db: Path) -> None:
    with pytest.raises(ConsentError, match="no alert 9"):
        AlertLedger.open(db).acknowledge(9, "x", T0)


def test_an_event_of_a_type_without_a_rule_raises_nothing(db: Path) -> None:
    with Store(db) as store:
        fall(store, 1, T0, kind="low_battery")
    assert AlertLedger.open(db).absorb_events(FOLD, T0) == []


def test_a_days_old_event_is_recorded_but_not_paged(db: Path) -> None:
    with Store(db) as store:
        fall(store, 1, T0)
    ledger = AlertLedger.open(db)
    assert ledger.absorb_events(FOLD, T0 + timedelta(days=2)) == []
    (alert,) = ledger.alerts()
    assert alert.acked_by == "agent:stale"
    assert "alert_not_sent" in [r.kind for r in ledger.audit_records()]


def test_sends_are_kept_per_alert_across_connections(db: Path) -> None:
    with Store(db) as store:
        fall(store, 1, T0)
    first = AlertLedger.open(db)
    (alert_id,) = first.absorb_events(FOLD, T0)
    first.record_send(alert_id, "anna", False, "timeout", T0)
    first.close()
    again = AlertLedger.open(db)  # a restarted agent
    (send,) = again.sends([alert_id])[alert_id]
    assert (send.contact, send.ok) == ("anna", False)
    assert again.failed_sends_since(T0 - timedelta(hours=1)) == {"anna": 1}


def test_a_database_before_alerts_upgrades_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    alerts_version = next(v for v, s in MIGRATIONS if "CREATE TABLE alerts" in s)
    before = [(v, s) for v, s in MIGRATIONS if v < alerts_version]
    for version, script in before:
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO events (device_id, seq, ts, type, consumable_id, received_at) "
                 "VALUES ('watch-1', 1, ?, 'fall_alert', NULL, ?)", (T0.timestamp(),) * 2)
    assert migrate(conn) == LATEST_VERSION
    conn.close()
    ledger = AlertLedger.open(path)
    assert len(ledger.absorb_events(FOLD, T0)) == 1
