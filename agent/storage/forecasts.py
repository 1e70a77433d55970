"""The ``forecasts`` table: every consumable's forecast from the newest decision pass.

The agent forecasts every consumable each pass (monitored ones too). Readers that only
show the outcome, the web app above all, read these rows instead of loading months of
readings for every consumable again: that took seconds and tens of MB on a year of 50
devices (bench/results/web.md). One row per consumable; each pass replaces the table, so
a forgotten consumable's row goes with the next pass and a row is never a history.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.forecast.types import Confidence, Forecast
from agent.storage.tx import immediate


@dataclass(slots=True, frozen=True)
class StoredForecast:
    """What a page shows of one forecast (the demand curve stays with the agent)."""

    consumable: str
    computed_at: datetime
    level: float | None
    rate_per_day: float | None
    p10_days: float | None
    p50_days: float | None
    p90_days: float | None
    confidence: Confidence
    basis: str
    low_signal: bool

    @property
    def time_to_empty_days(self) -> tuple[float | None, float | None, float | None]:
        return self.p10_days, self.p50_days, self.p90_days


def save_forecasts(conn: sqlite3.Connection, forecasts: dict[str, Forecast]) -> None:
    """Replace the stored forecasts with this pass's, in one transaction."""
    rows = [(key, fc.now.timestamp(), fc.level, fc.rate_per_day, *fc.time_to_empty_days,
             fc.confidence.value, fc.basis, int(fc.low_signal))
            for key, fc in forecasts.items()]
    with immediate(conn):
        conn.execute("DELETE FROM forecasts")
        conn.executemany(
            "INSERT INTO forecasts (consumable, computed_at, level, rate_per_day, p10_days, "
            "p50_days, p90_days, confidence, basis, low_signal) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _opt(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def load_forecasts(conn: sqlite3.Connection,
                   consumable: str | None = None) -> dict[str, StoredForecast]:
    """``{consumable: forecast}`` of the newest pass (of one ``consumable``)."""
    sql = ("SELECT consumable, computed_at, level, rate_per_day, p10_days, p50_days, "
           "p90_days, confidence, basis, low_signal FROM forecasts")
    params: tuple[str, ...] = ()
    if consumable is not None:
        sql += " WHERE consumable=?"
        params = (consumable,)
    out = {}
    for r in conn.execute(sql, params):
        out[str(r[0])] = StoredForecast(
            str(r[0]), datetime.fromtimestamp(float(r[1]), UTC), _opt(r[2]), _opt(r[3]),
            _opt(r[4]), _opt(r[5]), _opt(r[6]), Confidence(str(r[7])), str(r[8]),
            bool(r[9]))
    return out
