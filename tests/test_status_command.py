"""``replenish status``: stored levels plus each consumable's forecast and consent mode."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.consent import Mode
from agent.domain import CoarseState, DeviceKind, Unit
from agent.storage.ledger import Ledger
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage
from tests.vendor_fake import T0

NOW = T0 + timedelta(days=30)


def config(tmp_path: Path) -> Path:
    db = tmp_path / "agent.db"
    with Store(db) as store:
        store.write_batch([StateMessage(
            device_id="printer-1", seq=day, ts=T0 + timedelta(days=day),
            kind=DeviceKind.PRINTER,
            consumables=[Consumable(id="black", level=100.0 - 2.0 * day, unit=Unit.PERCENT,
                                    capacity=100)]) for day in range(31)],
            received_at=NOW.timestamp())
    ledger = Ledger.open(db)
    ledger.set_consent("printer-1/black", Mode.REMIND, None, T0)
    ledger.close()
    path = tmp_path / "agent.toml"
    path.write_text(f'[storage]\npath = "{db}"\n')
    return path


def test_status_shows_days_left_and_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = config(tmp_path)
    monkeypatch.setenv("REPLENISH_NOW", NOW.isoformat())
    assert main(["--config", str(path), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    [row] = data["consumables"]
    assert (row["last_level"], row["mode"]) == (40.0, "remind")
    assert row["days_left"] == pytest.approx(20.0, rel=0.25)  # 40 % at 2 % a day
    assert row["days_left_p10"] <= row["days_left"] <= row["days_left_p90"]
    assert row["confidence"] in {"low", "medium", "high"}
    assert main(["--config", str(path), "status"]) == 0
    table = capsys.readouterr().out
    line = next(ln for ln in table.splitlines() if ln.startswith("printer-1") and "black" in ln)
    assert f" {row['days_left']:.0f}" in line and "remind" in line


def test_status_json_shows_what_was_learned(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.storage.learned import LearnedRow, save_learned
    path = config(tmp_path)
    ledger = Ledger.open(tmp_path / "agent.db")
    save_learned(ledger.conn, [
        LearnedRow("consumable:printer-1/black", "yield_per_pack", 2550.0, 3000.0, 3),
        LearnedRow("sku:TONER-TN2420", "lead_time_p90", 6.5, None, 12)], NOW)
    ledger.close()
    monkeypatch.setenv("REPLENISH_NOW", NOW.isoformat())
    assert main(["--config", str(path), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    [row] = data["consumables"]
    assert row["learned"]["yield_per_pack"] == {"value": 2550.0, "prior": 3000.0, "cycles": 3}
    assert data["learned"]["sku:TONER-TN2420"]["lead_time_p90"]["value"] == 6.5


# The consumable keys of ``status --json`` as scripts read them today, in order: the
# table's columns, the count of readings, then what the dashboard view adds.
STATUS_CONSUMABLE_KEYS = [
    "cid", "device_id", "consumable_id", "sku", "unit", "capacity", "last_level",
    "last_state", "last_ts", "last_counters", "readings",
    "mode", "days_left", "days_left_p10", "days_left_p90", "confidence", "learned"]


def test_status_json_consumable_keys_and_stored_values_are_pinned(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = config(tmp_path)
    db = tmp_path / "agent.db"
    with Store(db) as store:  # a second consumable with every optional column set
        store.write_batch([StateMessage(
            device_id="printer-1", seq=100, ts=NOW - timedelta(hours=1),
            kind=DeviceKind.PRINTER, consumables=[
                Consumable(id="drum", sku="DR-2400", level=70.0, unit=Unit.PERCENT,
                           capacity=100, state=CoarseState.OK, counters={"pages": 1234})])],
            received_at=NOW.timestamp())
        columns = [d[0] for d in store.conn.execute("SELECT * FROM consumables").description]
        stored = {r[2]: dict(zip(columns, r, strict=True)) for r in store.conn.execute(
            "SELECT * FROM consumables")}
        counts = dict(store.conn.execute(
            "SELECT c.consumable_id, COUNT(*) FROM readings r JOIN consumables c USING (cid) "
            "GROUP BY c.consumable_id").fetchall())
    monkeypatch.setenv("REPLENISH_NOW", NOW.isoformat())
    assert main(["--config", str(path), "status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["consumables"]
    assert [r["consumable_id"] for r in rows] == ["black", "drum"]
    for row in rows:
        assert list(row) == STATUS_CONSUMABLE_KEYS
        name = row["consumable_id"]
        assert {k: row[k] for k in columns} == stored[name]  # the columns, as stored
        assert row["readings"] == counts[name]
    assert isinstance(rows[1]["last_counters"], str)  # the stored JSON text, not an object
    assert json.loads(rows[1]["last_counters"]) == {"pages": 1234}
