"""Household commands and notifications derived from the ledger (real SQLite ledger)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from agent.app.dispatcher import Dispatcher
from agent.consent import Mandate, Mode, Proposal
from agent.errors import VendorRetryable
from agent.household.discovery import DeviceInfo
from agent.household.link import HouseholdLink, proposal_ref
from agent.storage.ledger import Ledger, State, VendorAnswer
from agent.wire.household import Outgoing

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)
FRIDGE = DeviceInfo("fridge-1", "fridge", (("milk", "grams"),))
MILK = Proposal("fridge-1/milk", "sandbox", "MILK-1L", 2, 1, Decimal("1.19"), "Whole milk 1 l")


class VendorDown:
    """A vendor that cannot be reached for a cancel (timeouts, 5xx)."""

    def cancel(self, order_id: str) -> Any:
        raise VendorRetryable("vendor cancel: timed out")


class NoVendor:
    """The vendor seam: any call here would be an order the household did not allow."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected vendor call: {name}")


@pytest.fixture
def sent() -> list[Outgoing]:
    return []


@pytest.fixture
def link(sent: list[Outgoing]) -> HouseholdLink:
    return HouseholdLink(sent.append)


def command(verb: str, ref: str) -> tuple[str, bytes]:
    return f"replenish/v1/household/commands/{verb}", json.dumps({"ref": ref}).encode()


def propose(ledger: Ledger) -> Any:
    ledger.set_consent("fridge-1/milk", Mode.CONFIRM, None, NOW)
    return ledger.create_intent(MILK, Mode.CONFIRM, State.PROPOSED, NOW)


def run(link: HouseholdLink, ledger: Ledger, verb: str, ref: str,
        now: datetime = NOW) -> str:
    return link.execute(*command(verb, ref), ledger, Dispatcher(ledger, NoVendor()), now)


def test_approve_once_then_already_decided(link: HouseholdLink, ledger: Ledger) -> None:
    it = propose(ledger)
    assert run(link, ledger, "approve", proposal_ref(it)) == "accepted"
    assert ledger.intent(it.id).state is State.QUEUED
    assert run(link, ledger, "approve", proposal_ref(it)) == "already_decided"
    kinds = [r.kind for r in ledger.audit_records()]
    assert kinds.count("order_approved") == 1
    assert kinds[-1] == "household_command_refused"
    assert ledger.verify_audit().ok


def test_expired_stale_and_unknown_refs_are_refused(link: HouseholdLink, ledger: Ledger) -> None:
    it = propose(ledger)
    late = NOW + timedelta(hours=49)
    assert run(link, ledger, "approve", proposal_ref(it), late) == "expired"
    stale = f"p{it.id}-00000000"  # terms digest from an older proposal
    assert run(link, ledger, "approve", stale) == "unknown"
    assert run(link, ledger, "approve", "p9999-abcdef12") == "unknown"
    assert run(link, ledger, "approve", "garbage") == "unknown"
    assert ledger.intent(it.id).state is State.PROPOSED


def test_malformed_command_is_denied(link: HouseholdLink, ledger: Ledger) -> None:
    dispatcher = Dispatcher(ledger, NoVendor())
    topic = "replenish/v1/household/commands/approve"
    assert link.execute(topic, b"{not json", ledger, dispatcher, NOW) == "denied"
    assert link.execute(topic + "x", b'{"ref":"p1-a"}', ledger, dispatcher, NOW) == "denied"


def test_cancel_and_snooze_pending_proposals(link: HouseholdLink, ledger: Ledger) -> None:
    it = propose(ledger)
    assert run(link, ledger, "cancel", proposal_ref(it)) == "accepted"
    assert ledger.intent(it.id).state is State.CANCELLED
    second = ledger.create_intent(MILK, Mode.CONFIRM, State.PROPOSED, NOW)
    assert run(link, ledger, "snooze", proposal_ref(second)) == "accepted"
    assert ledger.intent(second.id).state is State.CANCELLED
    assert "proposal_snoozed" in [r.kind for r in ledger.audit_records()]


def test_queued_commands_run_on_the_worker(link: HouseholdLink, ledger: Ledger) -> None:
    it = propose(ledger)
    link.deliver(*command("approve", proposal_ref(it)))
    assert ledger.intent(it.id).state is State.PROPOSED  # nothing happens on paho's thread
    link.handle_commands(ledger, Dispatcher(ledger, NoVendor()), NOW)
    assert ledger.intent(it.id).state is State.QUEUED
    assert link.stats.commands == 1 and link.stats.refused == 0


def test_sync_publishes_proposal_buttons_then_removes_them(
    link: HouseholdLink, ledger: Ledger, sent: list[Outgoing]
) -> None:
    link.sync(ledger, [FRIDGE], {"fridge-1": True}, [], NOW)
    it = propose(ledger)
    sent.clear()
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    topics = {m.topic: m for m in sent}
    ref = proposal_ref(it)
    assert f"replenish/v1/household/proposals/{ref}" in topics
    buttons = [t for t in topics if t.startswith("homeassistant/button/")]
    assert len(buttons) == 2 and all(topics[b].payload for b in buttons)
    events = [json.loads(m.payload) for m in sent if m.topic.endswith("/events")]
    assert [e["kind"] for e in events] == ["proposal"] and events[0]["ref"] == ref

    run(link, ledger, "approve", ref)
    sent.clear()
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    cleared = {m.topic for m in sent if m.payload == b""}
    assert f"replenish/v1/household/proposals/{ref}" in cleared
    assert set(buttons) <= cleared


@pytest.mark.parametrize("trigger", [
    # Home Assistant restarted (its birth message).
    lambda link: link.deliver("homeassistant/status", b"online"),
    # The broker lost our session: it restarted from an older snapshot, or none.
    lambda link: link.route().session_lost(),
], ids=["home_assistant_online", "broker_lost_the_session"])
def test_what_asks_for_everything_again(
    link: HouseholdLink, ledger: Ledger, sent: list[Outgoing],
    trigger: Callable[[HouseholdLink], None],
) -> None:
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    sent.clear()
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    assert not [m for m in sent if m.topic.startswith("homeassistant/")]
    trigger(link)
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    assert len([m for m in sent if m.topic.startswith("homeassistant/sensor/")]) == 2


def test_removed_device_leaves_no_entity_behind(
    link: HouseholdLink, ledger: Ledger, sent: list[Outgoing]
) -> None:
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    announced = {m.topic for m in sent if m.topic.startswith("homeassistant/")}
    sent.clear()
    link.sync(ledger, [], {}, [], NOW)
    removed = {m.topic for m in sent if m.payload == b""}
    assert announced and announced <= removed


def place(ledger: Ledger) -> Any:
    """An order the vendor holds: only the vendor can cancel it now."""
    ledger.set_consent("fridge-1/milk", Mode.CONFIRM, None, NOW)
    it = ledger.create_intent(MILK, Mode.CONFIRM, State.QUEUED, NOW)
    ledger.mark_sending(it.id, it.audit_id or 0, NOW, NOW + timedelta(minutes=1),
                        ledger.consent("fridge-1/milk").audit_id)  # type: ignore[union-attr]
    order = VendorAnswer(id="ord-1", status="confirmed", total=Decimal("2.38"))
    return ledger.mark_placed(it.id, order, NOW, NOW + timedelta(hours=1))


def test_commands_without_a_vendor_client_still_reach_the_ledger(
    link: HouseholdLink, ledger: Ledger
) -> None:
    approved, cancelled, snoozed = (propose(ledger) for _ in range(3))
    for verb, it in (("approve", approved), ("cancel", cancelled), ("snooze", snoozed)):
        link.deliver(*command(verb, proposal_ref(it)))
    link.handle_commands(ledger, None, NOW)
    assert link.stats.commands == 3 and link.stats.refused == 0
    assert ledger.intent(approved.id).state is State.QUEUED
    assert ledger.intent(cancelled.id).state is State.CANCELLED
    assert ledger.intent(snoozed.id).state is State.CANCELLED
    assert ledger.snoozed_until("fridge-1/milk") == NOW + timedelta(hours=24)
    # An announced (queued) order is cancelled in the ledger too, no vendor needed.
    queued = ledger.create_intent(MILK, Mode.CONFIRM, State.QUEUED, NOW)
    assert link.execute(*command("cancel", f"o{queued.id}"), ledger, None, NOW) == "accepted"
    assert ledger.intent(queued.id).state is State.CANCELLED


def test_cancel_of_a_placed_order_without_vendor_is_unavailable(
    link: HouseholdLink, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    it = place(ledger)
    caplog.set_level(logging.INFO, logger="agent.household.link")
    assert link.execute(*command("cancel", f"o{it.id}"), ledger, None, NOW) == "unavailable"
    assert ledger.intent(it.id).state is State.PLACED
    refused = ledger.audit_records()[-1]
    assert refused.kind == "household_command_refused"
    assert json.loads(refused.body)["result"] == "unavailable"
    assert "reason=no_vendor_client" in caplog.text
    assert "outcome=unavailable" in caplog.text


def test_cancel_of_a_placed_order_with_the_vendor_down_is_unavailable(
    link: HouseholdLink, ledger: Ledger
) -> None:
    it = place(ledger)
    dispatcher = Dispatcher(ledger, VendorDown())
    result = link.execute(*command("cancel", f"o{it.id}"), ledger, dispatcher, NOW)
    assert result == "unavailable"
    assert ledger.intent(it.id).state is State.PLACED


def problems(sent: list[Outgoing]) -> list[dict[str, Any]]:
    events = [json.loads(m.payload) for m in sent if m.topic.endswith("/events")]
    return [e for e in events if e["kind"] == "problem"]


def test_a_silent_device_is_announced_once_per_silence(
        link: HouseholdLink, sent: list[Outgoing]) -> None:
    seen = {"fridge-1": NOW - timedelta(hours=30), "printer-1": NOW - timedelta(hours=1)}
    link.check_problems(seen, 0, NOW)  # first look (e.g. after a restart): the baseline
    assert problems(sent) == []
    seen["printer-1"] = NOW - timedelta(hours=1)
    link.check_problems(seen, 0, NOW + timedelta(hours=23))  # printer now silent 24 h
    [silent] = problems(sent)
    assert silent["device_id"] == "printer-1" and "silent for 24 h" in silent["message"]
    link.check_problems(seen, 0, NOW + timedelta(hours=30))
    assert len(problems(sent)) == 1  # still the same silence
    seen["printer-1"] = NOW + timedelta(hours=31)  # it reported again, then fell silent
    link.check_problems(seen, 0, NOW + timedelta(hours=32))
    link.check_problems(seen, 0, NOW + timedelta(hours=56))
    assert [p["device_id"] for p in problems(sent)] == ["printer-1", "printer-1"]


def test_vendor_down_is_announced_after_a_run_of_unanswered_calls(
        link: HouseholdLink, sent: list[Outgoing]) -> None:
    for unanswered in (0, 1, 2):
        link.check_problems({}, unanswered, NOW)
    assert problems(sent) == []
    link.check_problems({}, 3, NOW)
    link.check_problems({}, 7, NOW)
    [down] = problems(sent)
    assert "vendor not answering (3 calls in a row)" in down["message"]
    link.check_problems({}, 0, NOW)  # answered again
    link.check_problems({}, 3, NOW)
    assert len(problems(sent)) == 2


def test_an_auto_order_outside_the_mandate_is_a_problem_too(
        link: HouseholdLink, ledger: Ledger, sent: list[Outgoing]) -> None:
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    ledger.set_consent("fridge-1/milk", Mode.AUTO, Mandate(skus=("MILK-1L",),
                                                            max_unit_price=Decimal("1.30")), NOW)
    it = ledger.create_intent(MILK, Mode.CONFIRM, State.PROPOSED, NOW,
                              reason="price 1.49 EUR above 1.30; P(run out) = 0.2")
    sent.clear()
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    [problem] = problems(sent)
    assert problem["ref"] == proposal_ref(it) and problem["consumable_id"] == "milk"
    assert "needs your approval: price 1.49 EUR above 1.30" in problem["message"]
    propose_only = [e for e in (json.loads(m.payload) for m in sent
                                if m.topic.endswith("/events")) if e["kind"] == "proposal"]
    assert len(propose_only) == 1


def test_a_confirm_proposal_is_not_a_problem(
        link: HouseholdLink, ledger: Ledger, sent: list[Outgoing]) -> None:
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    propose(ledger)
    link.sync(ledger, [FRIDGE], {}, [], NOW)
    assert problems(sent) == []
