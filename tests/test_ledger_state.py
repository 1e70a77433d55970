"""Intent state as data (issue 14): ``decided_by``, the snooze table, migration 3 and the
ledger's state transitions, tested on the ledger directly (real SQLite files)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agent.consent import Mandate, Mode, Proposal
from agent.errors import ConsentError
from agent.storage.ledger import DecidedBy, Ledger, State, VendorAnswer
from agent.storage.ledger.base import LedgerBase
from agent.storage.migrations import LATEST_VERSION, MIGRATIONS, _statements, current_version
from agent.storage.store import Store
from agent.storage.tx import immediate

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)
CID = "printer-1/black"
TONER = Proposal(CID, "shop", "TONER-TN2420", 1, 1, Decimal("54.90"), "Toner TN-2420")

# (state, reason, order_status, attempts) as the version-2 code wrote them, and who the
# migration must say decided each one.
V2_INTENTS = [
    ("cancelled", "cancelled by household", None, 0, "household"),
    ("cancelled", "cancelled by household-snooze", None, 0, "household"),
    ("cancelled", "consent revoked", None, 0, "consent"),
    ("cancelled", "mandate replaced by confirm", None, 0, "consent"),
    ("cancelled", "mandate expired", None, 0, "expiry"),
    ("cancelled", "not resent: consent changed after sending (audit 3)", None, 1, "consent"),
    ("cancelled", None, "cancelled", 1, "household"),  # the household cancelled at the vendor
    ("cancelled", None, "cancelled", 1, "vendor"),  # the vendor cancelled it
    ("delivered", None, "delivered", 1, "vendor"),
    ("rejected", "price_above_max", "rejected", 1, "vendor"),
    ("failed", "vendor place_order: HTTP 404 (audit 9)", None, 1, "vendor"),
    ("placed", None, "pending", 1, None),
    ("sending", "retrying: timeout", None, 1, None),
    ("queued", "", None, 0, None),
]


def version_2_db(path: Path) -> None:
    """A database exactly as the version-2 agent left it, audit chain included."""
    conn = sqlite3.connect(path)
    for version, script in MIGRATIONS:
        if version > 2:
            break
        with immediate(conn):
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
    old = LedgerBase(conn)
    with immediate(conn):
        for n, (state, reason, status, attempts, _) in enumerate(V2_INTENTS, start=1):
            conn.execute(
                "INSERT INTO intents (consumable, vendor, sku, quantity, pack_size, unit_price,"
                " currency, mode, state, idem_key, audit_id, reason, created_at, attempts, "
                "order_id, order_status, updated_at) VALUES (?, 'shop', 'TONER-TN2420', 1, 1,"
                " '54.90', 'EUR', 'auto', ?, ?, 1, ?, ?, ?, ?, ?, ?)",
                (CID, state, f"key-{n}", reason, T0.timestamp(), attempts,
                 f"ord_{n}" if attempts else None, status, T0.timestamp() + n))
        old._audit("consent_set", CID, {"mode": "auto"}, T0)
        old._audit("order_cancel_requested", CID, {"intent": 7, "order": "ord_7",
                                                   "by": "household"}, T0)
        week, day = T0 + timedelta(days=7), T0 + timedelta(days=1, microseconds=250_000)
        old._audit("proposal_snoozed", CID, {"intent": 2, "until": week.isoformat()}, T0)
        old._audit("proposal_snoozed", CID, {"intent": 2, "until": day.isoformat()}, T0)
        old._audit("proposal_snoozed", "fridge-1/milk",
                   {"intent": 3, "until": week.isoformat()}, T0)
    conn.close()


def rows(path: Path, table: str) -> list[dict[str, object]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
    finally:
        conn.close()


def test_a_version_2_database_upgrades_without_loss(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    version_2_db(db)
    before = {t: rows(db, t) for t in ("intents", "audit", "consent")}
    with Store(db) as store:
        assert current_version(store.conn) == LATEST_VERSION
    after = {t: rows(db, t) for t in ("intents", "audit", "consent")}
    assert after["audit"] == before["audit"] and after["consent"] == before["consent"]
    added = ("decided_by", "lead_days", "lead_p90_days")  # columns of later versions
    assert [{k: v for k, v in r.items() if k not in added} for r in after["intents"]] \
        == before["intents"]
    assert {r["lead_days"] for r in after["intents"]} == {None}
    assert [r["decided_by"] for r in after["intents"]] == [w[-1] for w in V2_INTENTS]
    ledger = Ledger.open(db)
    try:
        assert ledger.verify_audit().ok
        # The newest snooze wins (a shorter one replaced the week), to the millisecond.
        assert ledger.snoozed_until(CID) == T0 + timedelta(days=1, microseconds=250_000)
        assert ledger.snoozed_until("fridge-1/milk") == T0 + timedelta(days=7)
        assert ledger.intent(1).decided_by is DecidedBy.HOUSEHOLD
        assert ledger.declined_since(CID, T0)  # the household's "not now" still counts
    finally:
        ledger.close()


# ---- transitions, each with who decided ------------------------------------------------


def auto(ledger: Ledger) -> int:
    return ledger.set_consent(CID, Mode.AUTO, Mandate(
        skus=("TONER-TN2420",), max_unit_price=Decimal("60"), max_quantity=2,
        monthly_budget=Decimal("200"), expires_at=T0 + timedelta(days=1)), T0)


def test_consent_changes_and_expiry_end_pending_intents_as_consent_or_expiry(
        ledger: Ledger) -> None:
    auto(ledger)
    a = ledger.create_intent(TONER, Mode.AUTO, State.QUEUED, T0)
    ledger.revoke(CID, T0 + timedelta(minutes=1))
    assert ledger.intent(a.id).decided_by is DecidedBy.CONSENT
    auto(ledger)
    b = ledger.create_intent(TONER, Mode.AUTO, State.QUEUED, T0)
    assert ledger.expire_mandates(T0 + timedelta(days=2)) == [CID]
    assert ledger.intent(b.id).decided_by is DecidedBy.EXPIRY
    assert not ledger.declined_since(CID, T0)  # neither was the household's decision


def test_household_cancel_and_snooze_are_the_households(ledger: Ledger) -> None:
    ledger.set_consent(CID, Mode.CONFIRM, None, T0)
    a = ledger.create_intent(TONER, Mode.CONFIRM, State.PROPOSED, T0)
    assert not ledger.declined_since(CID, T0)
    done = ledger.cancel_pending(a.id, T0 + timedelta(minutes=1))
    assert (done.state, done.decided_by) == (State.CANCELLED, DecidedBy.HOUSEHOLD)
    assert ledger.declined_since(CID, T0)
    b = ledger.create_intent(TONER, Mode.CONFIRM, State.PROPOSED, T0 + timedelta(hours=1))
    until = T0 + timedelta(days=3)
    snoozed = ledger.snooze(b.id, until, T0 + timedelta(hours=1))
    assert (snoozed.state, snoozed.decided_by) == (State.CANCELLED, DecidedBy.HOUSEHOLD)
    assert ledger.snoozed_until(CID) == until
    shorter = ledger.create_intent(TONER, Mode.CONFIRM, State.PROPOSED, T0 + timedelta(hours=2))
    ledger.snooze(shorter.id, T0 + timedelta(days=1), T0 + timedelta(hours=2))
    assert ledger.snoozed_until(CID) == T0 + timedelta(days=1)
    with pytest.raises(ConsentError):
        ledger.snooze(a.id, until, T0 + timedelta(hours=3))  # already decided
    assert [r.kind for r in ledger.audit_records()].count("proposal_snoozed") == 2


def test_vendor_answers_end_intents_as_the_vendors(ledger: Ledger) -> None:
    auto(ledger)
    it = ledger.create_intent(TONER, Mode.AUTO, State.QUEUED, T0)
    ledger.mark_sending(it.id, 1, T0, T0, ledger.consent(CID).audit_id)  # type: ignore[union-attr]
    placed = ledger.mark_placed(it.id, VendorAnswer(id="ord_1", status="pending",
                                                    total=Decimal("54.90")), T0, T0)
    assert (placed.state, placed.decided_by, placed.expected_delivery) == (
        State.PLACED, None, None)
    done = ledger.update_status(it.id, "delivered", None, T0 + timedelta(days=2), None,
                                T0 + timedelta(days=2))
    assert (done.state, done.decided_by) == (State.DELIVERED, DecidedBy.VENDOR)
    lost = ledger.create_intent(TONER, Mode.AUTO, State.QUEUED, T0)
    gone = ledger.finish(lost.id, State.LOST, "vendor no longer knows it", T0, "order_lost",
                         DecidedBy.VENDOR)
    assert (gone.state, gone.decided_by) == (State.LOST, DecidedBy.VENDOR)
    assert gone.next_attempt_at is None and ledger.due(T0 + timedelta(days=9)) == []


def test_approve_queues_a_proposal_once(ledger: Ledger) -> None:
    ledger.set_consent(CID, Mode.CONFIRM, None, T0)
    it = ledger.create_intent(TONER, Mode.CONFIRM, State.PROPOSED, T0)
    later = T0 + timedelta(minutes=5)
    queued = ledger.approve(it.id, later)
    assert (queued.state, queued.send_after, queued.next_attempt_at) == (State.QUEUED, later,
                                                                         later)
    assert [r.kind for r in ledger.audit_records()][-1] == "order_approved"
    assert queued.audit_id == ledger.audit_records()[-1].id  # the approval allows it
    with pytest.raises(ConsentError, match="is queued, not proposed"):
        ledger.approve(it.id, later)
    assert ledger.due(later) == [ledger.intent(it.id)]


def test_sending_counts_attempts_and_refuses_after_a_consent_change(ledger: Ledger) -> None:
    grant = auto(ledger)
    it = ledger.create_intent(TONER, Mode.AUTO, State.QUEUED, T0)
    retry = T0 + timedelta(minutes=1)
    sent = ledger.mark_sending(it.id, grant, T0, retry, ledger.consent(CID).audit_id)  # type: ignore[union-attr]
    assert sent is not None
    assert (sent.state, sent.attempts, sent.first_sent_at, sent.next_attempt_at) == (
        State.SENDING, 1, T0, retry)
    ledger.retry_later(it.id, T0 + timedelta(minutes=7), "retrying: timeout", T0)
    waiting = ledger.intent(it.id)
    assert (waiting.state, waiting.attempts, waiting.reason) == (State.SENDING, 1,
                                                                 "retrying: timeout")
    assert ledger.due(T0 + timedelta(minutes=6)) == []
    assert ledger.due(T0 + timedelta(minutes=7)) == [waiting]
    # Once sent, its terms are fixed: no new proposal, no new price.
    with pytest.raises(ConsentError, match="already sent"):
        ledger.repropose(it.id, TONER, ["price changed"], T0)
    with pytest.raises(ConsentError, match="already sent"):
        ledger.reprice(it.id, Decimal("50.00"), T0)
    seen = ledger.consent(CID).audit_id  # type: ignore[union-attr]
    auto(ledger)  # the household changed its consent: the next attempt must not go out
    assert ledger.mark_sending(it.id, grant, T0 + timedelta(minutes=7), retry, seen) is None
    assert ledger.intent(it.id).attempts == 1


def test_an_unsent_intent_is_reproposed_with_a_new_key_and_repriced(ledger: Ledger) -> None:
    auto(ledger)
    it = ledger.create_intent(TONER, Mode.AUTO, State.QUEUED, T0)
    cheaper = ledger.reprice(it.id, Decimal("52.50"), T0)
    assert (cheaper.state, cheaper.unit_price, cheaper.idem_key) == (State.QUEUED,
                                                                     Decimal("52.50"),
                                                                     it.idem_key)
    later = T0 + timedelta(hours=1)
    again = ledger.repropose(it.id, TONER, ["product changed"], later)
    assert (again.state, again.created_at, again.send_after, again.reason) == (
        State.PROPOSED, later, None, "product changed")
    assert again.idem_key != it.idem_key and again.unit_price == TONER.unit_price
