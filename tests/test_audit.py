"""The hash-chained audit trail: every consent action is recorded; tampering is found."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agent.consent import Mandate, Mode, Proposal
from agent.storage.ledger import Ledger, State
from agent.storage.ledger.audit import GENESIS, canonical, verify

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
CID = "printer-1/black"


def _fill(ledger: Ledger) -> None:
    ledger.set_consent(CID, Mode.AUTO, Mandate(skus=("TN-2420",),
                                               max_unit_price=Decimal("60")), NOW)
    it = ledger.create_intent(Proposal(CID, "shop", "TN-2420", 1, 1, Decimal("54.90")),
                              Mode.CONFIRM, State.PROPOSED, NOW)
    ledger.approve(it.id, NOW + timedelta(minutes=1))
    ledger.revoke(CID, NOW + timedelta(minutes=2))


def test_every_action_is_recorded_and_the_chain_verifies(ledger: Ledger) -> None:
    _fill(ledger)
    kinds = [r.kind for r in ledger.audit_records()]
    assert kinds == ["consent_set", "order_proposed", "order_approved", "consent_revoked"]
    result = ledger.verify_audit()
    assert result.ok and result.checked == 4
    assert result.head == ledger.audit_records()[-1].hash
    assert ledger.audit_records()[0].prev_hash == GENESIS


def test_sql_edits_are_refused(ledger: Ledger) -> None:
    _fill(ledger)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.conn.execute("UPDATE audit SET body='{}' WHERE id=2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.conn.execute("DELETE FROM audit WHERE id=2")


def _tamper(ledger: Ledger, sql: str) -> None:
    ledger.conn.execute("DROP TRIGGER audit_no_update")
    ledger.conn.execute("DROP TRIGGER audit_no_delete")
    ledger.conn.execute(sql)


@pytest.mark.parametrize(("sql", "bad_id", "problem"), [
    ("UPDATE audit SET body=replace(body, '54.90', '5.49') WHERE id=2", 2, "content"),
    ("UPDATE audit SET kind='order_cancelled' WHERE id=3", 3, "content"),
    ("DELETE FROM audit WHERE id=2", 3, "jump"),
    ("UPDATE audit SET ts=ts+1 WHERE id=1", 1, "content"),
])
def test_verify_finds_the_first_broken_link(ledger: Ledger, sql: str, bad_id: int,
                                            problem: str) -> None:
    _fill(ledger)
    _tamper(ledger, sql)
    result = ledger.verify_audit()
    assert not result.ok
    assert result.first_bad_id == bad_id
    assert problem in (result.problem or "")


def test_rehashing_one_record_breaks_the_next_link(ledger: Ledger) -> None:
    _fill(ledger)
    records = ledger.audit_records()
    forged = records[1]
    from agent.storage.ledger.audit import link_hash
    new_hash = link_hash(forged.prev_hash, forged.id, forged.ts, forged.kind,
                         forged.consumable, canonical({"sku": "OTHER"}))
    _tamper(ledger, f"UPDATE audit SET body='{canonical({'sku': 'OTHER'})}', "
                    f"hash='{new_hash}' WHERE id=2")
    result = ledger.verify_audit()
    assert result.first_bad_id == 3 and result.problem == "previous hash does not match"


def test_chain_survives_reopen(tmp_path: Path) -> None:
    first = Ledger.open(tmp_path / "a.db")
    _fill(first)
    first.close()
    again = Ledger.open(tmp_path / "a.db")
    again.record("note", None, {"x": 1}, NOW)
    assert again.verify_audit().ok and again.verify_audit().checked == 5


def test_empty_chain_is_valid() -> None:
    assert verify([]).ok
