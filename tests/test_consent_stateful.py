"""Stateful property: interleave grants, revocations, expiries, caps, price changes,
readings, approvals, vendor faults and dispatcher passes; the vendor must never receive
an order call that a valid mandate or an explicit approval does not cover at that moment.

An independent model of the household's decisions is checked inside the vendor seam
(``httpx.MockTransport``), at the instant of every order POST.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from agent.app.dispatcher import Dispatcher
from agent.app.planner import Planner
from agent.consent import Mandate, Mode, month_start
from agent.domain import CoarseState, DeviceKind, Unit
from agent.storage.ledger import Ledger, State
from agent.storage.store import Store
from agent.vendor.client import VendorClient
from agent.wire.device import Consumable, StateMessage
from tests.vendor_fake import T0, FakeVendor

CONSUMABLES = ("printer-1/black", "printer-1/cyan")
SKUS = ("TONER-TN2420", "TONER-TN2410")


class ConsentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="consent-sm-"))
        self.store = Store(self.dir / "agent.db")
        self.ledger = Ledger.open(self.dir / "agent.db")
        # The seam runs on the client's worker threads (one at a time): its own connection.
        self.seam_ledger = Ledger(sqlite3.connect(self.dir / "agent.db",
                                                  check_same_thread=False))
        self.vendor = FakeVendor()
        self.now = T0
        self.seq = 0
        self.posts = 0
        self.violations: list[str] = []
        # The model: what the household said, independent of the ledger.
        self.mode: dict[str, Mode] = {}
        self.mandate: dict[str, Mandate] = {}
        self.approved: set[int] = set()
        self.withdrawn: set[int] = set()
        inner = self.vendor.handle

        def seam(request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path == "/v1/orders":
                self.posts += 1
                self._check(json.loads(request.content), request.headers["Idempotency-Key"])
            return inner(request)

        self.client = VendorClient("http://vendor.test", "tok",
                                   transport=httpx.MockTransport(seam))
        self.dispatcher = Dispatcher(self.ledger, self.client, vendor_name="shop",
                                     settle=timedelta(minutes=5),
                                     backoff=lambda attempt, after: 60.0)
        self.planner = Planner(self.store, self.ledger, self.client.catalog, vendor_name="shop",
                               pre_notice=timedelta(hours=1))

    # ---- the property, checked at the vendor seam -----------------------------------

    def _check(self, body: dict[str, object], key: str) -> None:
        intent_id = int(str(body["client_ref"]).removeprefix("intent-"))
        it = self.seam_ledger.intent(intent_id)
        if intent_id in self.withdrawn:
            self.violations.append(f"intent {intent_id} sent after consent was withdrawn")
        elif intent_id in self.approved:
            if self.mode.get(it.consumable) not in (Mode.CONFIRM, Mode.AUTO):
                self.violations.append(f"approved intent {intent_id} sent in wrong mode")
        else:
            self._check_mandate(it.consumable, body, key)

    def _check_mandate(self, consumable: str, body: dict[str, object], key: str) -> None:
        m = self.mandate.get(consumable)
        if self.mode.get(consumable) is not Mode.AUTO or m is None:
            self.violations.append(f"{consumable}: order without auto mandate")
            return
        price = Decimal(str(body["max_unit_price"]))
        qty = int(str(body["quantity"]))
        problems = [
            m.expired(self.now) and "expired",
            body["sku"] not in m.skus and "sku",
            m.max_quantity is not None and qty > m.max_quantity and "quantity",
            m.max_unit_price is not None and price > m.max_unit_price and "price",
        ]
        spent = sum((Decimal(o["unit_price"]) * o["quantity"] for o in self.vendor.orders.values()
                     if o["client_ref"] and o["status"] != "rejected"
                     and o["idempotency_key"] != key
                     and self.seam_ledger.intent(int(o["client_ref"][7:])).consumable
                     == consumable
                     and o["created_at"] >= month_start(self.now).isoformat()), Decimal(0))
        if m.monthly_budget is not None and spent + price * qty > m.monthly_budget:
            problems.append("budget")
        if any(problems):
            self.violations.append(f"{consumable}: {[p for p in problems if p]}")

    def _withdraw(self, consumable: str, keep_approved: bool) -> None:
        for it in self.ledger.intents(consumable=consumable):
            if it.state in (State.PROPOSED, State.QUEUED, State.SENDING):
                if not (keep_approved and it.id in self.approved):
                    self.withdrawn.add(it.id)

    # ---- household rules ---------------------------------------------------------------

    @initialize(skus=st.sets(st.sampled_from(SKUS), min_size=1),
                price=st.sampled_from(["40", "55", "60"]), qty=st.integers(1, 3),
                budget=st.sampled_from(["50", "120", "500"]), days=st.integers(1, 40))
    def first_grant(self, skus: set[str], price: str, qty: int, budget: str,
                    days: int) -> None:
        for c in CONSUMABLES:
            self.grant(c, skus, price, qty, budget, days)

    @rule(c=st.sampled_from(CONSUMABLES), skus=st.sets(st.sampled_from(SKUS), min_size=1),
          price=st.sampled_from(["40", "55", "60"]), qty=st.integers(1, 3),
          budget=st.sampled_from(["50", "120", "500"]), days=st.integers(1, 40))
    def grant(self, c: str, skus: set[str], price: str, qty: int, budget: str,
              days: int) -> None:
        m = Mandate(tuple(sorted(skus)), "shop", Decimal(price), qty, Decimal(budget),
                    self.now + timedelta(days=days))
        self.ledger.set_consent(c, Mode.AUTO, m, self.now)
        self.mode[c], self.mandate[c] = Mode.AUTO, m

    @rule(c=st.sampled_from(CONSUMABLES), mode=st.sampled_from([Mode.CONFIRM, Mode.REMIND,
                                                                Mode.MONITOR]))
    def set_mode(self, c: str, mode: Mode) -> None:
        # Leaving auto withdraws announced orders; leaving ordering withdraws everything.
        self._withdraw(c, keep_approved=mode is Mode.CONFIRM)
        self.ledger.set_consent(c, mode, None, self.now)
        self.mode[c] = mode
        self.mandate.pop(c, None)

    @rule(c=st.sampled_from(CONSUMABLES))
    def revoke(self, c: str) -> None:
        self._withdraw(c, keep_approved=False)
        self.ledger.revoke(c, self.now)
        self.mode[c] = Mode.MONITOR
        self.mandate.pop(c, None)

    @rule(data=st.data())
    def approve(self, data: st.DataObject) -> None:
        proposed = self.ledger.intents([State.PROPOSED])
        if proposed:
            it = data.draw(st.sampled_from(proposed))
            self.ledger.approve(it.id, self.now)
            self.approved.add(it.id)
            self.withdrawn.discard(it.id)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        pending = self.ledger.intents([State.PROPOSED, State.QUEUED])
        if pending:
            it = data.draw(st.sampled_from(pending))
            self.dispatcher.cancel(it.id, self.now)
            self.withdrawn.add(it.id)

    # ---- the world ----------------------------------------------------------------------

    def reading(self, c: str, level: float) -> None:
        self.seq += 1
        self.store.write_batch([StateMessage(
            device_id="printer-1", seq=self.seq, ts=self.now, kind=DeviceKind.PRINTER,
            consumables=[Consumable(
                id=c.split("/")[1], level=level, unit=Unit.PERCENT, capacity=100,
                state=CoarseState.LOW if level < 15 else CoarseState.OK,
                sku="TONER-TN2420")])], self.now.timestamp())

    @rule(c=st.sampled_from(CONSUMABLES), level=st.sampled_from([2.0, 9.0, 14.0, 40.0, 95.0]),
          hours=st.sampled_from([0.5, 1, 6, 24, 24 * 10]))
    def world(self, c: str, level: float, hours: float) -> None:
        """A reading arrives, the planner runs, time passes, the dispatcher runs."""
        self.reading(c, level)
        self.planner.run_once(self.now)
        self.time_passes(hours)
        self.dispatch()

    def time_passes(self, hours: float) -> None:
        self.now += timedelta(hours=hours)
        self.vendor.now = self.now

    @rule(sku=st.sampled_from(SKUS), price=st.sampled_from(["35.00", "54.90", "59.99", "75.00"]))
    def price_change(self, sku: str, price: str) -> None:
        self.vendor.prices[sku] = price

    @rule(sku=st.sampled_from(SKUS), out=st.booleans())
    def stock(self, sku: str, out: bool) -> None:
        (self.vendor.out_of_stock.add if out else self.vendor.out_of_stock.discard)(sku)

    @rule(status=st.sampled_from([500, 503, 429]), committed=st.booleans())
    def vendor_fault(self, status: int, committed: bool) -> None:
        self.vendor.post_status.append(status)
        self.vendor.commit_before_error = committed

    @rule()
    def dispatch(self) -> None:
        self.dispatcher.run_once(self.now)

    @precondition(lambda self: self.posts > 0)
    @invariant()
    def no_order_outside_consent(self) -> None:
        assert self.violations == []

    @invariant()
    def note_coverage(self) -> None:
        if self.posts:
            event("at least one order call")  # --hypothesis-show-statistics: most cases

    @invariant()
    def at_most_one_order_per_intent(self) -> None:
        refs = [o["client_ref"] for o in self.vendor.orders.values()]
        assert len(refs) == len(set(refs))

    def teardown(self) -> None:
        self.ledger.close()
        self.seam_ledger.close()
        self.store.close()
        self.client.close()
        shutil.rmtree(self.dir, ignore_errors=True)


ConsentMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestConsentMachine = ConsentMachine.TestCase


def test_the_model_catches_an_unconsented_call() -> None:
    """The seam check itself must fire: a POST for an auto intent without a mandate."""
    machine = ConsentMachine()
    try:
        machine.grant("printer-1/black", {"TONER-TN2420"}, "60", 1, "500", 30)
        machine.reading("printer-1/black", 3.0)
        machine.planner.run_once(machine.now)
        [it] = machine.ledger.intents([State.QUEUED])
        machine.mode["printer-1/black"] = Mode.MONITOR  # the model says: withdrawn
        machine.time_passes(6)
        machine.dispatch()
        assert machine.violations and machine.posts == 1
        assert it.mode is Mode.AUTO
    finally:
        machine.teardown()
