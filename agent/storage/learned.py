"""The ``learned`` table: values the decision pass learned from the household's own
history (effective yields, LOW thresholds, lead-time quantiles, realised service), one
row per subject and name, the prior it started from and the cycles it rests on.

Subjects are ``consumable:<key>`` (per printer slot, per fridge shelf) and
``sku:<vendor>/<sku>`` (per cartridge model and vendor). Rewritten by each pass, so a
row is always the newest judgement, never a history.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from agent.storage.tx import immediate


@dataclass(slots=True, frozen=True)
class LearnedRow:
    subject: str
    name: str
    value: float | None
    prior: float | None
    cycles: int


def save_learned(conn: sqlite3.Connection, rows: Iterable[LearnedRow], now: datetime) -> None:
    """Upsert the rows in one transaction."""
    data = [(r.subject, r.name, r.value, r.prior, r.cycles, now.timestamp()) for r in rows]
    if not data:
        return
    with immediate(conn):
        conn.executemany(
            "INSERT INTO learned (subject, name, value, prior, cycles, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (subject, name) DO UPDATE SET "
            "value=excluded.value, prior=excluded.prior, cycles=excluded.cycles, "
            "updated_at=excluded.updated_at", data)


def load_learned(conn: sqlite3.Connection, subject: str | None = None) -> list[LearnedRow]:
    """Every learned row (of one ``subject``), ordered by subject and name."""
    sql = "SELECT subject, name, value, prior, cycles FROM learned"
    params: tuple[str, ...] = ()
    if subject is not None:
        sql += " WHERE subject=?"
        params = (subject,)
    return [LearnedRow(str(r[0]), str(r[1]), None if r[2] is None else float(r[2]),
                       None if r[3] is None else float(r[3]), int(r[4]))
            for r in conn.execute(sql + " ORDER BY subject, name", params)]


def as_json(rows: Iterable[LearnedRow]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """``{subject: {name: {value, prior, cycles}}}`` for ``status --json``."""
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for r in rows:
        out.setdefault(r.subject, {})[r.name] = {"value": r.value, "prior": r.prior,
                                                 "cycles": r.cycles}
    return out
