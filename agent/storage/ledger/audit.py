"""Hash-chained audit records: what the household allowed and what the agent did.

Each record's hash is SHA-256 over the previous record's hash and the canonical JSON
(sorted keys, no spaces, UTF-8) of the record's own fields, so changing, inserting or
removing a record anywhere breaks every link after it. The SQL lives in
:mod:`agent.storage.ledger`; this module only builds and checks hashes.

A chain cannot tell that records were cut off its end; ``replenish audit verify`` prints
the head hash so a household can note it (or a notifier can publish it) and compare.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.domain import JsonObject

GENESIS = "0" * 64


@dataclass(slots=True, frozen=True)
class AuditRecord:
    id: int
    ts: float
    kind: str
    consumable: str | None
    body: str  # canonical JSON
    prev_hash: str
    hash: str

    def fields(self) -> JsonObject:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass(slots=True, frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    head: str
    first_bad_id: int | None = None
    problem: str | None = None


def canonical(value: Mapping[str, Any]) -> str:
    """Canonical JSON: sorted keys, compact, non-ASCII kept, no floats reinterpreted."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def link_hash(prev_hash: str, record_id: int, ts: float, kind: str,
              consumable: str | None, body: str) -> str:
    """The hash of one record chained to ``prev_hash``."""
    material = canonical(
        {"id": record_id, "ts": repr(ts), "kind": kind, "consumable": consumable, "body": body}
    )
    return hashlib.sha256((prev_hash + material).encode()).hexdigest()


def verify(records: Iterable[AuditRecord]) -> VerifyResult:
    """Walk the chain in id order; report the first record whose link is broken."""
    prev = GENESIS
    checked = 0
    last_id = 0
    for rec in records:
        if rec.id != last_id + 1:
            return VerifyResult(False, checked, prev, rec.id,
                                f"record ids jump from {last_id} to {rec.id}")
        if rec.prev_hash != prev:
            return VerifyResult(False, checked, prev, rec.id, "previous hash does not match")
        expected = link_hash(prev, rec.id, rec.ts, rec.kind, rec.consumable, rec.body)
        if rec.hash != expected:
            return VerifyResult(False, checked, prev, rec.id, "content does not match its hash")
        prev = rec.hash
        last_id = rec.id
        checked += 1
    return VerifyResult(True, checked, prev)
