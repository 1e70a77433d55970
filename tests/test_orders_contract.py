"""The agent relies only on what docs/vendor-api.yaml promises (issue 15, agent side).

One test (or two) per finding: an order is on order until the vendor ends it, whatever
optional fields are missing; an unknown outcome stays unknown; every vendor answer ends
in a defined state; a household cancel of a placed order holds the consumable; an order
the vendor no longer knows becomes ``lost``. The vendor is the in-memory fake behind
``httpx.MockTransport`` with its optional fields switched off where that matters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agent.app.dispatcher import Dispatcher
from agent.app.planner import Planner
from agent.consent import Mandate, Mode, Proposal
from agent.errors import ConsentError
from agent.household.link import HouseholdLink
from agent.ops import doctor
from agent.ops.doctor import Level
from agent.storage.ledger import DecidedBy, Intent, Ledger, State
from agent.storage.store import Store
from agent.wire.household import EventKind, Outgoing
from tests.outbox_helpers import CID, PRE_NOTICE, grant
from tests.test_planner import history
from tests.vendor_fake import T0, FakeVendor

SEND = T0 + PRE_NOTICE
NOW = T0 + timedelta(days=30)  # the planner tests' "now": 30 days of toner history


def announce(ledger: Ledger) -> Intent:
    prop = Proposal(CID, "shop", "TONER-TN2420", 1, 1, Decimal("54.90"), "Toner TN-2420")
    consent = ledger.consent(CID)
    return ledger.create_intent(prop, Mode.AUTO, State.QUEUED, T0, send_after=SEND,
                                allowed_by=consent.audit_id if consent else None)


def passes(dispatcher: Dispatcher, start: object, minutes: int, step: int = 1) -> None:
    for m in range(0, minutes + 1, step):
        dispatcher.run_once(start + timedelta(minutes=m))  # type: ignore[operator]


# ---- finding 1: a null expected_delivery is still on order ------------------------------


def test_placed_order_without_expected_delivery_counts_as_on_order(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    vendor.omit_optional = True
    grant(ledger)
    it = announce(ledger)
    dispatcher.run_once(SEND)
    placed = ledger.intent(it.id)
    assert placed.state is State.PLACED and placed.expected_delivery is None
    on_order = ledger.expected_deliveries(CID, unknown_at=SEND)
    assert on_order == [(SEND, 1)]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Store, Ledger, FakeVendor]]:
    store = Store(tmp_path / "agent.db")
    ledger = Ledger.open(tmp_path / "agent.db")
    yield store, ledger, FakeVendor()
    ledger.close()
    store.close()


def low_toner(env: tuple[Store, Ledger, FakeVendor], **kw: object
              ) -> tuple[Planner, Dispatcher]:
    """A low black toner with an ``auto`` mandate; planner and dispatcher on one vendor."""
    store, ledger, vendor = env
    history(store, {"black": 4.0})
    ledger.set_consent(CID, Mode.AUTO, Mandate(
        skus=("TONER-TN2420",), max_unit_price=Decimal("60"), max_quantity=1,
        monthly_budget=Decimal("500")), T0)
    client = vendor.client()
    planner = Planner(store, ledger, client.catalog, vendor_name="shop",
                      pre_notice=timedelta(0), **kw)  # type: ignore[arg-type]
    dispatcher = Dispatcher(ledger, client, vendor_name="shop",
                            backoff=lambda attempt, after: 10.0)
    return planner, dispatcher


def live_orders(vendor: FakeVendor) -> int:
    return sum(1 for o in vendor.orders.values()
               if o["status"] not in ("cancelled", "rejected", "delivered"))


def test_planner_never_orders_twice_while_an_order_without_dates_is_live(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    _, ledger, vendor = env
    vendor.omit_optional = True
    planner, dispatcher = low_toner(env)
    for minute in range(0, 60, 5):  # one decision and one dispatch pass every 5 minutes
        t = NOW + timedelta(minutes=minute)
        planner.run_once(t)
        dispatcher.run_once(t)
    assert live_orders(vendor) == 1
    assert len(ledger.intents()) == 1


# ---- finding 2: an unknown outcome stays unknown ---------------------------------------


def test_empty_lookup_after_settle_is_not_read_as_never_committed(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    vendor.post_status = [504]  # the POST is still held at the vendor when we give up
    dispatcher.run_once(SEND)
    # The household edits its mandate meanwhile: the order may not be resent ...
    grant(ledger, max_price="58")
    passes(dispatcher, SEND + timedelta(minutes=1), 30)
    assert ledger.intent(it.id).state is State.SENDING  # ... but it is not "not ordered"
    # The vendor commits the held POST late; the next lookup finds it.
    vendor.post_status = []
    vendor.commit(it.idem_key, "TONER-TN2420", 1, SEND)
    passes(dispatcher, SEND + timedelta(hours=2), 120, step=10)
    assert ledger.intent(it.id).state is State.PLACED
    assert vendor.order_posts == 1


def test_unknown_outcome_gives_up_by_asking_the_household_never_by_reordering(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    _, ledger, vendor = env
    planner, dispatcher = low_toner(env)
    dispatcher.unknown_give_up = timedelta(hours=48)
    vendor.post_status = [504]
    planner.run_once(NOW)
    dispatcher.run_once(NOW)
    [it] = ledger.intents()
    ledger.set_consent(CID, Mode.CONFIRM, None, NOW + timedelta(seconds=1))
    for hour in range(1, 60):
        t = NOW + timedelta(hours=hour)
        dispatcher.run_once(t)
        planner.run_once(t)
    given_up = ledger.intent(it.id)
    assert given_up.state is State.LOST and given_up.decided_by is DecidedBy.AGENT
    assert vendor.order_posts == 1 and len(ledger.intents()) == 1  # no new key, no proposal
    assert "ask" in (given_up.reason or "")


# ---- finding 3: a replayed 404 ends the intent ------------------------------------------


def test_replayed_404_for_an_unknown_sku_ends_the_intent(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    vendor.post_status = [504] + [404] * 50  # timeout, then the SKU's 404 replayed
    passes(dispatcher, SEND, 24 * 60, step=30)
    done = ledger.intent(it.id)
    assert done.state is State.FAILED and done.decided_by is DecidedBy.VENDOR
    assert vendor.order_posts == 2
    assert ledger.due(SEND + timedelta(days=2)) == []


# ---- finding 4: a household cancel of a placed order holds the consumable ---------------


def test_household_cancel_of_a_placed_order_holds_the_consumable(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    _, ledger, vendor = env
    planner, dispatcher = low_toner(env, cancel_hold=timedelta(days=3))
    planner.run_once(NOW)
    dispatcher.run_once(NOW)
    [it] = ledger.intents()
    assert ledger.intent(it.id).state is State.PLACED
    cancelled = dispatcher.cancel(it.id, NOW + timedelta(minutes=5))
    assert cancelled.state is State.CANCELLED and cancelled.decided_by is DecidedBy.HOUSEHOLD
    for hours in (1, 6, 25, 71):  # the device still reports LOW the whole time
        planner.run_once(NOW + timedelta(hours=hours))
    assert len(ledger.intents()) == 1
    # After the quiet time the forecast decides again: it still shows the need.
    planner.run_once(NOW + timedelta(days=3, hours=1))
    assert len(ledger.intents()) == 2


def test_household_cancel_hold_ends_when_the_household_sets_consent_again(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    _, ledger, vendor = env
    planner, dispatcher = low_toner(env, cancel_hold=timedelta(days=3))
    planner.run_once(NOW)
    dispatcher.run_once(NOW)
    [it] = ledger.intents()
    dispatcher.cancel(it.id, NOW + timedelta(minutes=5))
    planner.run_once(NOW + timedelta(hours=1))
    assert len(ledger.intents()) == 1
    ledger.set_consent(CID, Mode.CONFIRM, None, NOW + timedelta(hours=2))
    planner.run_once(NOW + timedelta(hours=3))
    assert [i.state for i in ledger.intents()] == [State.CANCELLED, State.PROPOSED]


# ---- finding 5: an order the vendor no longer knows is lost -----------------------------


def test_order_the_vendor_no_longer_knows_becomes_lost_once(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher,
        caplog: pytest.LogCaptureFixture) -> None:
    grant(ledger)
    it = announce(ledger)
    dispatcher.run_once(SEND)
    vendor.orders.clear()  # the vendor forgot it
    caplog.set_level(logging.INFO)
    for hours in range(1, 6):
        dispatcher.run_once(SEND + timedelta(hours=hours, minutes=1))
    lost = ledger.intent(it.id)
    assert lost.state is State.LOST and lost.decided_by is DecidedBy.VENDOR
    assert [r.levelno for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert sum("order.lost" in r.getMessage() for r in caplog.records) == 1
    assert ledger.intents([State.LOST]) == [lost]


def test_lost_order_is_a_household_problem_event(ledger: Ledger, vendor: FakeVendor,
                                                  dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    dispatcher.run_once(SEND)
    sent: list[Outgoing] = []
    link = HouseholdLink(sent.append)
    link.sync_orders(ledger, SEND)  # first sync: takes the current state as known
    vendor.orders.clear()
    dispatcher.run_once(SEND + timedelta(hours=1, minutes=1))
    link.sync_orders(ledger, SEND + timedelta(hours=1, minutes=2))
    events = [json.loads(m.payload) for m in sent if "/events" in m.topic]
    problems = [e for e in events if e["kind"] == EventKind.PROBLEM.value]
    assert len(problems) == 1 and f"order {it.id} lost" in problems[0]["message"]


def test_damage_report_refused_for_an_order_never_delivered(
        ledger: Ledger, vendor: FakeVendor, dispatcher: Dispatcher) -> None:
    grant(ledger)
    it = announce(ledger)
    dispatcher.run_once(SEND)
    assert ledger.intent(it.id).state is State.PLACED
    with pytest.raises(ConsentError, match="never delivered"):
        ledger.report(it.id, "damaged", SEND + timedelta(hours=1))
    vendor.deliver(vendor.orders[ledger.intent(it.id).order_id or ""]["id"],
                   SEND + timedelta(days=1))
    dispatcher.run_once(SEND + timedelta(days=2))
    assert ledger.report(it.id, "damaged", SEND + timedelta(days=2)) > 0


def test_doctor_warns_about_a_lost_order(ledger: Ledger, vendor: FakeVendor,
                                          dispatcher: Dispatcher) -> None:
    db = Path(ledger.conn.execute("PRAGMA database_list").fetchone()[2])
    assert doctor.check_orders(db).level is Level.OK
    grant(ledger)
    it = announce(ledger)
    dispatcher.run_once(SEND)
    vendor.orders.clear()
    dispatcher.run_once(SEND + timedelta(hours=1, minutes=1))
    result = doctor.check_orders(db)
    assert result.level is Level.WARN and "1 lost order" in result.summary
    assert result.details[0].startswith(f"order {it.id} ({CID}, vendor id ord_0001)")
    assert "orders cancel" in result.fix


def test_household_cancel_of_a_lost_order_ends_it_and_holds_the_consumable(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    _, ledger, vendor = env
    planner, dispatcher = low_toner(env, cancel_hold=timedelta(days=3))
    planner.run_once(NOW)
    dispatcher.run_once(NOW)
    [it] = ledger.intents()
    vendor.orders.clear()
    dispatcher.run_once(NOW + timedelta(hours=2))
    assert ledger.intent(it.id).state is State.LOST
    planner.run_once(NOW + timedelta(hours=3))
    assert len(ledger.intents()) == 1  # lost still holds the consumable
    done = dispatcher.cancel(it.id, NOW + timedelta(hours=4))
    assert (done.state, done.decided_by) == (State.CANCELLED, DecidedBy.HOUSEHOLD)
    with pytest.raises(ConsentError):
        ledger.cancel_lost(it.id, NOW + timedelta(hours=5))
    planner.run_once(NOW + timedelta(hours=5))
    assert len(ledger.intents()) == 1  # the household's cancel hold
    planner.run_once(NOW + timedelta(days=3, hours=5))
    assert len(ledger.intents()) == 2
