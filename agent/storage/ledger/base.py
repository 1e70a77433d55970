"""The ledger's foundation: one SQLite connection, its transactions and the audit chain.

:class:`agent.storage.ledger.Ledger` builds on this; every ledger write is one ``BEGIN IMMEDIATE``
transaction that changes state and appends its audit record together.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from agent.domain import JsonObject
from agent.errors import ConsentError, StoreError
from agent.storage.ledger import audit
from agent.storage.ledger.rows import Intent, intent_from_row, ts
from agent.storage.rows import fault_reason
from agent.storage.store import Store
from agent.storage.tx import immediate

log = logging.getLogger(__name__)


class LedgerBase:
    """A migrated connection (one per thread) with transactions and the audit chain."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.conn.row_factory = sqlite3.Row

    @classmethod
    def open(cls, path: Path | str) -> Self:
        """A ledger on its own (migrated) connection to the agent's database."""
        return cls(Store(path).conn)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            with immediate(self.conn):
                yield self.conn
        except sqlite3.Error as err:
            raise StoreError(f"ledger write failed: {err}", reason=fault_reason(err)) from err

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return list(self.conn.execute(sql, params))
        except sqlite3.Error as err:
            raise StoreError(f"ledger read failed: {err}", reason=fault_reason(err)) from err

    # ---- audit --------------------------------------------------------------------

    def _audit(self, kind: str, consumable: str | None, body: JsonObject,
               now: datetime) -> int:
        """Append one chained record; call inside a transaction."""
        last = self.conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
        row = last.fetchone()
        rid, prev = (row[0] + 1, row[1]) if row else (1, audit.GENESIS)
        text = audit.canonical(body)
        when = ts(now)
        digest = audit.link_hash(prev, rid, when, kind, consumable, text)
        self.conn.execute(
            "INSERT INTO audit (id, ts, kind, consumable, body, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (rid, when, kind, consumable, text, prev, digest))
        log.info("audit.%s id=%d consumable=%s", kind, rid, consumable)
        return rid

    def record(self, kind: str, consumable: str | None, body: JsonObject,
               now: datetime) -> int:
        """Append a free-standing audit record (its own transaction)."""
        with self._tx():
            return self._audit(kind, consumable, body, now)

    def audit_records(self) -> list[audit.AuditRecord]:
        return [audit.AuditRecord(**dict(r)) for r in self._q("SELECT * FROM audit ORDER BY id")]

    def verify_audit(self) -> audit.VerifyResult:
        return audit.verify(self.audit_records())

    def intent(self, intent_id: int) -> Intent:
        """One intent by id (ConsentError when there is none)."""
        rows = self.conn.execute("SELECT * FROM intents WHERE id=?", (intent_id,)).fetchall()
        if not rows:
            raise ConsentError(f"no order {intent_id}")
        return intent_from_row(rows[0])
