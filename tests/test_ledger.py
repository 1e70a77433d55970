"""Ledger queries and transitions the planner and the household link rely on (real SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from agent.consent import Mode, Proposal
from agent.household.link import HouseholdLink, proposal_ref
from agent.storage.ledger import Ledger, State

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)
CID = "printer-1/black"
TONER = Proposal(CID, "shop", "TONER-TN2420", 1, 1, Decimal("54.90"), "Toner TN-2420")


def test_repropose_restarts_the_proposal_clock(ledger: Ledger) -> None:
    queued = ledger.create_intent(TONER, Mode.AUTO, State.QUEUED, T0,
                                  send_after=T0 + timedelta(days=3))
    later = T0 + timedelta(days=3)
    dearer = Proposal(CID, "shop", "TONER-TN2420", 1, 1, Decimal("61.00"), "Toner TN-2420")
    shown = ledger.repropose(queued.id, dearer, ["price above mandate"], later)
    assert shown.state is State.PROPOSED
    assert shown.created_at == later
    # The household link counts the proposal TTL from the re-proposal, not the announcement.
    link = HouseholdLink(lambda _message: None)
    topic = "replenish/v1/household/commands/approve"
    payload = f'{{"ref": "{proposal_ref(shown)}"}}'.encode()
    assert link.execute(topic, payload, ledger, None, later + timedelta(hours=1)) == "accepted"
    assert ledger.intent(queued.id).state is State.QUEUED
    # The original announcement time stays in the audit chain.
    kinds = [(r.kind, r.ts) for r in ledger.audit_records()]
    assert ("order_announced", T0.timestamp()) in kinds


def test_snoozed_until_is_the_latest_snooze_of_that_consumable(ledger: Ledger) -> None:
    assert ledger.snoozed_until(CID) is None
    link = HouseholdLink(lambda _message: None)
    topic = "replenish/v1/household/commands/snooze"
    ledger.set_consent(CID, Mode.CONFIRM, None, T0)
    first = ledger.create_intent(TONER, Mode.CONFIRM, State.PROPOSED, T0)
    week = T0 + timedelta(days=7)
    payload = f'{{"ref": "{proposal_ref(first)}", "until": "{week.isoformat()}"}}'.encode()
    assert link.execute(topic, payload, ledger, None, T0) == "accepted"
    assert ledger.snoozed_until(CID) == week
    assert ledger.snoozed_until("fridge-1/milk") is None
    # A later snooze without "until" defaults to a day after it and replaces the week.
    later = T0 + timedelta(hours=2)
    second = ledger.create_intent(TONER, Mode.CONFIRM, State.PROPOSED, later)
    payload = f'{{"ref": "{proposal_ref(second)}"}}'.encode()
    assert link.execute(topic, payload, ledger, None, later) == "accepted"
    until = ledger.snoozed_until(CID)
    assert until == later + timedelta(hours=24) and until.tzinfo is not None
