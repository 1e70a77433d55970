"""The decision pass: mode by mode, consolidation, and no vendor order call from it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agent.app.planner import Planner
from agent.consent import Mandate, Mode
from agent.domain import DeviceKind, Unit
from agent.storage.ledger import Intent, Ledger, State, VendorAnswer
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage
from tests.vendor_fake import T0, FakeVendor

NOW = T0 + timedelta(days=30)


def history(store: Store, levels: dict[str, float], per_day: float = 2.0) -> None:
    """30 days of a printer's two toners falling ``per_day`` percent a day."""
    msgs = []
    for day in range(31):
        msgs.append(StateMessage(
            device_id="printer-1", seq=day, ts=T0 + timedelta(days=day), kind=DeviceKind.PRINTER,
            consumables=[Consumable(id=cid, level=max(0.0, end + per_day * (30 - day)),
                                    unit=Unit.PERCENT, capacity=100, sku="TONER-TN2420")
                         for cid, end in levels.items()]))
    store.write_batch(msgs, received_at=NOW.timestamp())


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Store, Ledger, FakeVendor]]:
    store = Store(tmp_path / "agent.db")
    ledger = Ledger.open(tmp_path / "agent.db")
    yield store, ledger, FakeVendor()
    ledger.close()
    store.close()


def planner(store: Store, ledger: Ledger, vendor: FakeVendor, **kw: object) -> Planner:
    return Planner(store, ledger, vendor.client().catalog, vendor_name="shop", **kw)  # type: ignore[arg-type]


def auto(ledger: Ledger, cid: str) -> int:
    return ledger.set_consent(cid, Mode.AUTO, Mandate(
        skus=("TONER-TN2420",), max_unit_price=Decimal("60"), max_quantity=1,
        monthly_budget=Decimal("200")), T0)


def test_auto_announces_with_pre_notice_and_never_orders(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    store, ledger, vendor = env
    history(store, {"black": 6.0})
    grant = auto(ledger, "printer-1/black")
    report = planner(store, ledger, vendor).run_once(NOW)
    assert report.announced == 1
    [it] = ledger.intents()
    assert it.state is State.QUEUED and it.mode is Mode.AUTO
    assert it.send_after == NOW + timedelta(hours=6) and it.audit_id == grant
    assert (it.sku, it.quantity, it.unit_price) == ("TONER-TN2420", 1, Decimal("54.90"))
    assert vendor.order_posts == 0
    planner(store, ledger, vendor).run_once(NOW + timedelta(hours=1))
    assert len(ledger.intents()) == 1  # an open intent is not planned twice


def test_price_above_mandate_is_proposed_with_the_reason(
        env: tuple[Store, Ledger, FakeVendor], caplog: pytest.LogCaptureFixture) -> None:
    store, ledger, vendor = env
    history(store, {"black": 6.0})
    auto(ledger, "printer-1/black")
    vendor.prices["TONER-TN2420"] = "64.90"
    with caplog.at_level(logging.INFO, logger="agent.app.planner"):
        assert planner(store, ledger, vendor).run_once(NOW).proposals == 1
    [it] = ledger.intents()
    assert it.state is State.PROPOSED and "above 60" in (it.reason or "")
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("decision ")]
    assert "decision=propose" in line and "mode=auto" in line
    assert 'reason="price 64.90 EUR above 60; ' in line and f"audit_id={it.audit_id} " in line


def test_confirm_proposes_remind_reminds_monitor_is_silent(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    store, ledger, vendor = env
    history(store, {"black": 6.0, "cyan": 6.0, "magenta": 6.0})
    ledger.set_consent("printer-1/black", Mode.CONFIRM, None, T0)
    ledger.set_consent("printer-1/cyan", Mode.REMIND, None, T0)
    report = planner(store, ledger, vendor).run_once(NOW)
    assert (report.proposals, report.reminders, report.announced) == (1, 1, 0)
    assert [i.consumable for i in ledger.intents()] == ["printer-1/black"]
    [reminder] = ledger.reminders()
    assert reminder.consumable == "printer-1/cyan"
    assert "cleaning cycle" in reminder.message


def test_every_consumable_is_forecast_and_gets_one_decision_line(
        env: tuple[Store, Ledger, FakeVendor], caplog: pytest.LogCaptureFixture) -> None:
    store, ledger, vendor = env
    history(store, {"black": 6.0, "cyan": 6.0, "magenta": 40.0})
    ledger.set_consent("printer-1/black", Mode.CONFIRM, None, T0)
    ledger.set_consent("printer-1/cyan", Mode.REMIND, None, T0)
    with caplog.at_level(logging.INFO, logger="agent.app.planner"):
        report = planner(store, ledger, vendor).run_once(NOW)
    assert set(report.forecasts) == {"printer-1/black", "printer-1/cyan", "printer-1/magenta"}
    magenta = report.forecasts["printer-1/magenta"]  # monitor only, still forecast
    assert magenta.level == pytest.approx(40.0)
    assert magenta.time_to_empty_days[1] == pytest.approx(20.0, rel=0.25)
    lines = sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith(
        "decision "))
    assert len(lines) == 3
    assert lines[0].startswith("decision consumable=printer-1/black sku=TONER-TN2420 "
                               "decision=propose ")
    assert "decision=remind" in lines[1] and "outcome=reminded" in lines[1]
    assert lines[2] == ("decision consumable=printer-1/magenta decision=none "
                        'reason="monitor only" mode=monitor')


def test_outlook_forecasts_without_the_vendor(env: tuple[Store, Ledger, FakeVendor]) -> None:
    store, ledger, vendor = env
    history(store, {"black": 30.0})
    fcs = planner(store, ledger, vendor).outlook(NOW)
    assert list(fcs) == ["printer-1/black"]
    assert fcs["printer-1/black"].time_to_empty_days[1] == pytest.approx(15.0, rel=0.25)
    assert vendor.calls == []


def test_consolidation_window_pulls_in_a_soon_due_consumable(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    store, ledger, vendor = env
    history(store, {"black": 6.0, "cyan": 16.0})
    auto(ledger, "printer-1/black")
    auto(ledger, "printer-1/cyan")
    alone = planner(store, ledger, vendor, consolidate_window=timedelta(0),
                    free_shipping_slack=timedelta(0)).run_once(NOW)
    assert alone.joined == [] and alone.announced == 1
    for cid in ("printer-1/black", "printer-1/cyan"):
        ledger.revoke(cid, NOW)
        auto(ledger, cid)
    joined = planner(store, ledger, vendor, consolidate_window=timedelta(days=10)).run_once(NOW)
    assert joined.joined == ["printer-1/cyan"] and joined.announced == 2


def test_far_off_consumable_does_not_join(env: tuple[Store, Ledger, FakeVendor]) -> None:
    store, ledger, vendor = env
    history(store, {"black": 6.0, "cyan": 40.0})
    auto(ledger, "printer-1/black")
    auto(ledger, "printer-1/cyan")
    report = planner(store, ledger, vendor).run_once(NOW)
    assert report.announced == 1 and report.joined == []


def fridge(store: Store, ledger: Ledger, cream_end: float) -> None:
    """Milk runs out now; cream falls 50 g a day and ends at ``cream_end`` grams."""
    msgs = [StateMessage(
        device_id="fridge-1", seq=day, ts=T0 + timedelta(days=day), kind=DeviceKind.FRIDGE,
        consumables=[
            Consumable(id="milk", level=100.0 + 50 * (30 - day), unit=Unit.GRAMS,
                       capacity=3000, sku="MILK-1L"),
            Consumable(id="cream", level=cream_end + 50 * (30 - day), unit=Unit.GRAMS,
                       capacity=3000, sku="MILK-1L")])
        for day in range(31)]
    store.write_batch(msgs, received_at=NOW.timestamp())
    for cid in ("fridge-1/milk", "fridge-1/cream"):
        ledger.set_consent(cid, Mode.CONFIRM, None, T0)


@pytest.mark.parametrize(("price", "cream_end", "joins"), [
    ("15.00", 300.0, True),  # 15 + 15 reaches the 29.00 threshold: shipping saved
    ("10.00", 300.0, False),  # 10 + 10 stays below it: ordering early saves nothing
    ("15.00", 1200.0, False),  # cream lasts ~3 weeks: far too early
])
def test_free_shipping_pulls_in_only_when_it_saves_money(
        env: tuple[Store, Ledger, FakeVendor], price: str, cream_end: float,
        joins: bool) -> None:
    store, ledger, vendor = env
    fridge(store, ledger, cream_end)
    vendor.prices["MILK-1L"] = price
    report = planner(store, ledger, vendor, consolidate_window=timedelta(0)).run_once(NOW)
    assert (report.joined == ["fridge-1/cream"]) is joins
    assert report.proposals == (2 if joins else 1)


def test_away_period_holds_back_a_delivery(env: tuple[Store, Ledger, FakeVendor]) -> None:
    store, ledger, vendor = env
    fridge(store, ledger, 1200.0)
    ledger.add_away(NOW, NOW + timedelta(days=5), "trip", "cli", NOW)
    report = planner(store, ledger, vendor).run_once(NOW)
    assert report.proposals == 0 and ledger.intents() == []


def proposed_black(env: tuple[Store, Ledger, FakeVendor]) -> tuple[Planner, Intent]:
    """A confirm-mode toner that the planner has just proposed at ``NOW``."""
    store, ledger, vendor = env
    history(store, {"black": 6.0})
    ledger.set_consent("printer-1/black", Mode.CONFIRM, None, T0)
    plan = planner(store, ledger, vendor)
    assert plan.run_once(NOW).proposals == 1
    return plan, ledger.intents()[0]


def test_household_not_now_is_respected_until_the_next_review(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    plan, it = proposed_black(env)
    env[1].cancel_pending(it.id, NOW)
    assert plan.run_once(NOW + timedelta(hours=2)).proposals == 0
    assert plan.run_once(NOW + timedelta(hours=25)).proposals == 1


def test_household_snooze_holds_proposals_until_the_time_it_chose(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    plan, it = proposed_black(env)
    ledger = env[1]
    until = NOW + timedelta(days=3)
    ledger.snooze(it.id, until, NOW)
    assert plan.run_once(NOW + timedelta(hours=25)).proposals == 0  # past one review
    assert plan.run_once(until + timedelta(minutes=1)).proposals == 1


def test_cold_start_empty_stock_is_acted_on_in_every_mode(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    # One reading each, all empty: no rate to forecast from, yet nothing may stall.
    store, ledger, vendor = env
    store.write_batch([StateMessage(
        device_id="printer-1", seq=0, ts=NOW - timedelta(hours=2), kind=DeviceKind.PRINTER,
        consumables=[Consumable(id=cid, level=0.0, unit=Unit.PERCENT, capacity=100,
                                sku="TONER-TN2420") for cid in ("black", "cyan", "magenta")])],
        received_at=NOW.timestamp())
    auto(ledger, "printer-1/black")
    ledger.set_consent("printer-1/cyan", Mode.CONFIRM, None, T0)
    ledger.set_consent("printer-1/magenta", Mode.REMIND, None, T0)
    report = planner(store, ledger, vendor).run_once(NOW)
    assert report.forecasts["printer-1/black"].level == 0.0
    assert (report.announced, report.proposals, report.reminders) == (1, 1, 1)
    assert {i.consumable: i.state for i in ledger.intents()} == {
        "printer-1/black": State.QUEUED, "printer-1/cyan": State.PROPOSED}
    assert [r.consumable for r in ledger.reminders()] == ["printer-1/magenta"]


def _order(ledger: Ledger, key: str, sent: datetime, delivered: datetime | None) -> None:
    """An order of TONER-TN2420 sent at ``sent`` and delivered at ``delivered`` (None:
    still placed, expected two days after it was sent)."""
    from agent.consent import Proposal
    it = ledger.create_intent(Proposal(key, "shop", "TONER-TN2420", 1, 1, Decimal("54.90"),
                                       "toner", "EUR"), Mode.CONFIRM, State.QUEUED, sent)
    grant = ledger.set_consent(key, Mode.CONFIRM, None, sent)
    assert ledger.mark_sending(it.id, grant, sent, sent + timedelta(minutes=5), grant)
    ledger.mark_placed(it.id, VendorAnswer(id=f"o{it.id}", status="accepted",
                                           total=Decimal("54.90"),
                                           expected_delivery=sent + timedelta(days=2)),
                       sent, sent + timedelta(hours=1))
    if delivered is not None:
        ledger.update_status(it.id, "delivered", None, delivered, None, delivered)


def test_lead_time_is_learned_from_our_delivered_orders_and_overdue_stays_pending(
        env: tuple[Store, Ledger, FakeVendor]) -> None:
    from agent.app.planner import learned_lead, our_deliveries
    store, ledger, vendor = env
    offer = vendor.client().catalog("TONER-TN2420")
    prior = learned_lead(ledger, "TONER-TN2420", offer)
    assert (prior.mean_days, prior.observed) == (2.0, ())
    for k in range(4):  # the vendor says two days; it takes nine
        sent = T0 + timedelta(days=10 * k)
        _order(ledger, "printer-1/black", sent, sent + timedelta(days=9))
    _order(ledger, "printer-1/black", NOW - timedelta(days=5), None)  # overdue by three days
    lead = learned_lead(ledger, "TONER-TN2420", offer)
    assert lead.observed == (9.0, 9.0, 9.0, 9.0)
    assert lead.mean_days == pytest.approx(5.5, abs=0.1) and lead.quantile(0.95) == 9.0
    dels = our_deliveries(ledger, "printer-1/black", NOW)
    assert [d.pending for d in dels] == [False] * 4 + [True]
    assert dels[-1].ts < NOW  # overdue: pending, not delivered


def test_the_pass_learns_the_low_threshold_stores_it_and_says_so(
        env: tuple[Store, Ledger, FakeVendor], caplog: pytest.LogCaptureFixture) -> None:
    from agent.domain import CoarseState
    from agent.forecast.learn import PRIOR_CYCLES
    from agent.storage.learned import load_learned
    store, ledger, vendor = env
    # Three cartridges, each falling 4 % a day; this printer says LOW at 12 %, not 5 %.
    msgs = []
    t = NOW - timedelta(days=80)
    seq = 0
    for cycle in range(3):
        for level in range(100, (-1 if cycle < 2 else 19), -4):
            state = CoarseState.LOW if level <= 12 else CoarseState.OK
            msgs.append(StateMessage(device_id="printer-1", seq=seq, ts=t,
                                     kind=DeviceKind.PRINTER,
                                     consumables=[Consumable(id="black", level=float(level),
                                                             unit=Unit.PERCENT, capacity=100,
                                                             sku="TONER-TN2420", state=state)]))
            seq += 1
            t += timedelta(days=1)
    store.write_batch(msgs, received_at=NOW.timestamp())
    ledger.set_consent("printer-1/black", Mode.CONFIRM, None, T0)
    with caplog.at_level(logging.INFO, logger="agent.app.planner"):
        planner(store, ledger, vendor).run_once(t)
    rows = {r.name: r for r in load_learned(ledger.conn, "consumable:printer-1/black")}
    assert rows["low_level"].cycles == 2 and rows["low_level"].prior == 5.0
    w = PRIOR_CYCLES  # the declared 5 % counts as this many cycles
    assert rows["low_level"].value == pytest.approx((5.0 * w + 2 * 12.0) / (w + 2))
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("decision ")]
    assert f"learned LOW at {rows['low_level'].value:.3g} from 2 cycles" in line
