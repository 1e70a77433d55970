"""Foreign sources in SQLite: discovered entities, adoptions, and payload rejects.

The service writes what it finds on the broker; ``replenish sources`` (another process)
lists it and records what the household adopted; the service reads adoptions back. So
the state is in the database, not in the service's memory.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agent.errors import StoreError
from agent.storage.connect import connect, held_elsewhere
from agent.storage.migrations import migrate
from agent.storage.rows import fault_reason
from agent.storage.tx import immediate


@dataclass(slots=True, frozen=True)
class SourceEntity:
    source: str
    key: str
    name: str
    state_topic: str
    value_template: str | None
    unit: str | None  # agent unit (percent, grams ...); None: not a consumable level
    factor: float
    device_class: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    battery_type: str | None = None
    unsupported: str | None = None
    available: bool | None = None
    removed: bool = False

    @property
    def candidate(self) -> bool:
        return self.unit is not None and self.unsupported is None and not self.removed


@dataclass(slots=True, frozen=True)
class Adoption:
    source: str
    key: str
    device_id: str
    consumable_id: str
    sku: str | None
    capacity: float | None
    pack_size: int | None


@dataclass(slots=True, frozen=True)
class SourceReject:
    source: str
    reason: str
    count: int
    last_at: float


_ENTITY_COLS = ("source, key, name, state_topic, value_template, unit, factor, device_class, "
                "manufacturer, model, battery_type, unsupported, available, removed_at")


class SourceStore:
    """One connection; use one per thread like :class:`agent.storage.store.Store`."""

    def __init__(self, path: Path | str) -> None:
        try:
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.conn = connect(path)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            migrate(self.conn)
        except (sqlite3.Error, RuntimeError, OSError) as err:
            held = isinstance(err, sqlite3.Error) and held_elsewhere(err)
            raise held or StoreError(f"cannot open database {path}: {err}") from err

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SourceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            with immediate(self.conn):
                return self.conn.execute(sql, params).rowcount
        except sqlite3.Error as err:
            raise StoreError(f"sources write failed: {err}", reason=fault_reason(err)) from err

    # ---- entities -----------------------------------------------------------------

    def upsert_entity(self, e: SourceEntity, now: float) -> None:
        """Record a discovered entity (a rename or new config replaces the old one)."""
        self._write(
            f"INSERT INTO source_entities ({_ENTITY_COLS}, seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) "
            "ON CONFLICT(source, key) DO UPDATE SET name=excluded.name, "
            "state_topic=excluded.state_topic, value_template=excluded.value_template, "
            "unit=excluded.unit, factor=excluded.factor, device_class=excluded.device_class, "
            "manufacturer=excluded.manufacturer, model=excluded.model, "
            "battery_type=COALESCE(excluded.battery_type, battery_type), "
            "unsupported=excluded.unsupported, "
            "available=COALESCE(excluded.available, available), removed_at=NULL, "
            "seen_at=excluded.seen_at",
            (e.source, e.key, e.name, e.state_topic, e.value_template, e.unit, e.factor,
             e.device_class, e.manufacturer, e.model, e.battery_type, e.unsupported,
             None if e.available is None else int(e.available), now))

    def mark_removed(self, source: str, key: str, now: float) -> bool:
        return self._write("UPDATE source_entities SET removed_at=? WHERE source=? AND key=? "
                           "AND removed_at IS NULL", (now, source, key)) > 0

    def set_available(self, source: str, key: str, available: bool) -> None:
        self._write("UPDATE source_entities SET available=? WHERE source=? AND key=?",
                    (int(available), source, key))

    def entities(self, source: str | None = None,
                 include_removed: bool = False) -> list[SourceEntity]:
        where, params = [], []
        if source is not None:
            where.append("source=?")
            params.append(source)
        if not include_removed:
            where.append("removed_at IS NULL")
        sql = f"SELECT {_ENTITY_COLS} FROM source_entities"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.conn.execute(sql + " ORDER BY source, key", params).fetchall()
        return [SourceEntity(
            r["source"], r["key"], r["name"], r["state_topic"], r["value_template"], r["unit"],
            r["factor"], r["device_class"], r["manufacturer"], r["model"], r["battery_type"],
            r["unsupported"], None if r["available"] is None else bool(r["available"]),
            r["removed_at"] is not None) for r in rows]

    def entity(self, source: str, key: str) -> SourceEntity | None:
        return next((e for e in self.entities(source, include_removed=True) if e.key == key),
                    None)

    # ---- adoptions ----------------------------------------------------------------

    def adopt(self, a: Adoption, now: float) -> None:
        self._write(
            "INSERT INTO source_adoptions (source, key, device_id, consumable_id, sku, "
            "capacity, pack_size, adopted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(source, key) DO UPDATE SET sku=excluded.sku, "
            "capacity=excluded.capacity, pack_size=excluded.pack_size",
            (a.source, a.key, a.device_id, a.consumable_id, a.sku, a.capacity, a.pack_size,
             now))

    def drop(self, source: str, key: str) -> bool:
        return self._write("DELETE FROM source_adoptions WHERE source=? AND key=?",
                           (source, key)) > 0

    def adoptions(self) -> list[Adoption]:
        rows = self.conn.execute(
            "SELECT source, key, device_id, consumable_id, sku, capacity, pack_size "
            "FROM source_adoptions ORDER BY source, key").fetchall()
        return [Adoption(r["source"], r["key"], r["device_id"], r["consumable_id"], r["sku"],
                         r["capacity"], r["pack_size"]) for r in rows]

    # ---- rejects ------------------------------------------------------------------

    def count_rejects(self, counts: dict[tuple[str, str], int], now: float) -> None:
        if not counts:
            return
        try:
            with immediate(self.conn):
                for (source, reason), n in counts.items():
                    self.conn.execute(
                        "INSERT INTO source_rejects (source, reason, count, last_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT(source, reason) DO UPDATE SET "
                        "count=count+excluded.count, last_at=excluded.last_at",
                        (source, reason, n, now))
        except sqlite3.Error as err:
            raise StoreError(f"sources write failed: {err}", reason=fault_reason(err)) from err

    def rejects(self) -> list[SourceReject]:
        rows = self.conn.execute("SELECT source, reason, count, last_at FROM source_rejects "
                                 "ORDER BY source, reason").fetchall()
        return [SourceReject(r["source"], r["reason"], r["count"], r["last_at"]) for r in rows]
