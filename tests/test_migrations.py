"""The migration list itself: versions in order, no gap, and a fresh database gets them all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.storage.migrations import LATEST_VERSION, MIGRATIONS, migrate


def test_versions_are_contiguous_and_in_order() -> None:
    # A version appended out of order would be skipped by migrate() on every new database.
    assert [v for v, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert LATEST_VERSION == len(MIGRATIONS)


def test_a_fresh_database_gets_every_table(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "agent.db", isolation_level=None)
    assert migrate(conn) == LATEST_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for table in ("readings_main", "readings_recent", "intents", "snoozes", "pending",
                  "learned", "source_entities", "alerts", "alert_sends"):
        assert table in tables, table
