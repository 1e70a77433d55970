"""`replenish forget --all`: confirmation, every record gone, audit protection restored."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.storage.store import Rejected, Store

CANARY = b"FORGET-ME-household-payload"


def populated(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "agent.db"
    with Store(db) as store:
        store.write_batch([Rejected("printer-1", "bad_json", "t", CANARY)], received_at=1.0)
        c = store.conn
        c.execute(
            "INSERT INTO devices (device_id, kind, first_seen, last_seen, last_seq) "
            "VALUES ('fridge-1', 'fridge', 1, 2, 3)"
        )
        c.execute(
            "INSERT INTO consumables (device_id, consumable_id, unit) "
            "VALUES ('fridge-1', 'milk', 'grams')"
        )
        c.execute("INSERT INTO readings (cid, seq, ts, level) VALUES (1, 1, 1.0, 900)")
        c.execute(
            "INSERT INTO audit (ts, kind, consumable, body, prev_hash, hash) "
            "VALUES (1, 'grant', 'fridge-1/milk', '{}', '', 'h1')"
        )
        c.execute(
            "INSERT INTO consent (consumable, mode, audit_id, updated_at) "
            "VALUES ('fridge-1/milk', 'auto', 1, 1)"
        )
        c.execute(
            "INSERT INTO intents (consumable, vendor, sku, quantity, pack_size, unit_price, "
            "currency, mode, state, idem_key, created_at, updated_at) VALUES "
            "('fridge-1/milk', 'v', 'MILK-1', 1, 1, '1.99', 'EUR', 'auto', 'placed', 'k1', 1, 1)"
        )
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[storage]\npath = "{db}"\n')
    return cfg, db


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        names = [
            r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}


def test_forget_all_with_yes_deletes_everything(tmp_path: Path) -> None:
    cfg, db = populated(tmp_path)
    before = counts(db)
    # Written through the view: into the recent tier (the next fold packs it).
    assert before["readings_recent"] == before["audit"] == before["intents"] == 1
    assert main(["--config", str(cfg), "forget", "--all", "--yes"]) == 0
    assert set(counts(db).values()) == {0}
    # Nothing left in free pages or the WAL either.
    for path in (db, Path(f"{db}-wal")):
        if path.exists():
            assert CANARY not in path.read_bytes()
    # The audit table is append-only again.
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO audit (ts, kind, body, prev_hash, hash) VALUES (2, 'x', '{}', '', 'h')"
        )
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit")
    # The agent can open and use it as a fresh database.
    with Store(db) as store:
        assert store.devices() == []


def test_forget_asks_and_aborts_on_anything_but_the_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, db = populated(tmp_path)
    before = counts(db)
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert main(["--config", str(cfg), "forget", "--all"]) == 1
    assert counts(db) == before
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal, no answer
    assert main(["--config", str(cfg), "forget", "--all"]) == 1
    assert counts(db) == before
    monkeypatch.setattr("sys.stdin", io.StringIO("forget\n"))
    assert main(["--config", str(cfg), "forget", "--all"]) == 0
    assert set(counts(db).values()) == {0}
    assert "deleted" in capsys.readouterr().out


def test_forget_requires_all_and_never_creates_a_database(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[storage]\npath = "{tmp_path / "none.db"}"\n')
    with pytest.raises(SystemExit):
        main(["--config", str(cfg), "forget"])
    assert main(["--config", str(cfg), "forget", "--all", "--yes"]) == 0
    assert not (tmp_path / "none.db").exists()
