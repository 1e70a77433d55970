"""The ``forecasts`` table (schema step 8): the decision pass's forecasts
for readers such as the web app; an older database upgrades without loss."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from agent.forecast.types import Confidence, Forecast
from agent.storage.forecasts import load_forecasts, save_forecasts
from agent.storage.migrations import LATEST_VERSION, MIGRATIONS, _statements, current_version
from agent.storage.store import Store

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _fc(level: float | None, p50: float | None, low: bool = False) -> Forecast:
    return Forecast(now=NOW, level=level, level_sd=1.0, rate_per_day=2.5, rate_sd=0.1,
                    time_to_empty_days=(None if p50 is None else p50 - 1, p50,
                                        None if p50 is None else p50 + 2),
                    confidence=Confidence.HIGH if p50 else Confidence.INSUFFICIENT_DATA,
                    score=0.9, basis="robust slope of 30 days", low_signal=low)


def test_each_pass_replaces_the_stored_forecasts(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.db") as store:
        save_forecasts(store.conn, {"p/black": _fc(40.0, 16.0), "gone/x": _fc(None, None)})
        save_forecasts(store.conn, {"p/black": _fc(30.0, 12.0, low=True),
                                    "f/milk": _fc(None, None)})
        got = load_forecasts(store.conn)
        assert set(got) == {"p/black", "f/milk"}  # a forgotten consumable's row went
        black = got["p/black"]
        assert black.time_to_empty_days == (11.0, 12.0, 14.0)
        assert (black.level, black.rate_per_day, black.confidence, black.low_signal) == (
            30.0, 2.5, "high", True)
        assert black.computed_at == NOW and black.basis == "robust slope of 30 days"
        milk = load_forecasts(store.conn, "f/milk")["f/milk"]
        assert milk.level is None and milk.p50_days is None
        assert milk.confidence == "insufficient_data"


def test_previous_version_upgrades_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in [(v, s) for v, s in MIGRATIONS if v < 8]:
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO devices (device_id, kind, first_seen, last_seen, last_seq) "
                 "VALUES ('printer-1', 'printer', 1, 2, 3)")
    conn.execute("INSERT INTO learned (subject, name, value, prior, cycles, updated_at) "
                 "VALUES ('consumable:printer-1/black', 'yield_per_pack', 1.0, 2.0, 3, 4)")
    conn.close()
    with Store(path) as store:
        assert current_version(store.conn) == LATEST_VERSION
        assert [d.device_id for d in store.devices()] == ["printer-1"]
        assert store.conn.execute("SELECT cycles FROM learned").fetchall() == [(3,)]
        assert load_forecasts(store.conn) == {}
        save_forecasts(store.conn, {"printer-1/black": _fc(50.0, 20.0)})
        assert load_forecasts(store.conn)["printer-1/black"].p50_days == 20.0
