"""A decision pass that keeps its forecast fits decides exactly as one that keeps nothing.

Two identical households (two database files) live through the same ten days: readings
arrive (not from every device every pass), our orders are placed and delivered, consent
changes, away periods are added and removed, a learned value changes, and passes run
every few hours across day and week boundaries, with quiet passes minutes apart between.
One planner keeps a :class:`HistoryCache` (and with it each consumable's forecast fit)
from pass to pass; the other reads and fits everything each pass. At every pass the
forecasts, the plan report, the decision log lines and the ledger (intents, reminders,
learned rows, the audit chain) are equal, and the cached planner fitted again only the
consumables whose inputs changed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agent.app.history import HistoryCache
from agent.app.planner import Planner, default_spec
from agent.consent import Mandate, Mode, Proposal
from agent.domain import CoarseState, DeviceKind, Unit
from agent.forecast import ConsumableSpec
from agent.storage.learned import LearnedRow, load_learned, save_learned
from agent.storage.ledger import Ledger, State, VendorAnswer
from agent.storage.rows import ConsumableRow
from agent.storage.store import Store
from agent.vendor.client import CatalogItem
from agent.wire.device import Consumable, StateMessage
from tests.vendor_fake import T0, FakeVendor

START = T0 + timedelta(days=60, minutes=17)  # passes never sit on a reading's hour
DEVICES = ("printer-1", "printer-2", "fridge-1")
# The milk scale's reading before the pass of step 15 jumps and the next one (step 17)
# undoes it: a spike, until one of our deliveries is recorded just before the jump.
JUMP_AT = START + timedelta(hours=15 * 3, minutes=-7)


def spec_for(row: ConsumableRow, offer: CatalogItem | None) -> ConsumableSpec:
    """Counted pages for printer-1, so its toners take the counter's path."""
    spec = default_spec(row, offer)
    if row.device_id == "printer-1":
        spec = dataclasses.replace(spec, yield_per_pack=3000.0)
    return spec


def state(device: str, seq: int, at: datetime) -> StateMessage:
    """Toners with a page counter, a 10 %-step gauge and a LOW flag, a milk scale."""
    day = (at - T0) / timedelta(days=1)
    if device == "printer-1":
        cons = [Consumable(id=c, level=round(100 - (day * rate) % 95, 1), unit=Unit.PERCENT,
                           capacity=100, sku="TONER-TN2420",
                           counters={"pages": int(day * 40 * rate)})
                for c, rate in (("black", 2.0), ("cyan", 1.3))]
    elif device == "printer-2":
        level = 100 - (day * 1.7) % 95
        cons = [Consumable(id="drum", level=float(round(level, -1)), unit=Unit.PERCENT,
                           capacity=100, sku="TONER-TN2420",
                           state=CoarseState.LOW if level < 15 else CoarseState.OK)]
    else:
        level = round(2000 - (day * 260) % 1800, 1) + (600 if at == JUMP_AT else 0)
        cons = [Consumable(id="milk", level=level, unit=Unit.GRAMS, capacity=2000,
                           sku="MILK-1L")]
    kind = DeviceKind.FRIDGE if device == "fridge-1" else DeviceKind.PRINTER
    return StateMessage(device_id=device, seq=seq, ts=at, kind=kind, consumables=cons)


class Household:
    """One database with its store, ledger and vendor, and the planner that decides."""

    def __init__(self, path: Path, cached: bool) -> None:
        self.store = Store(path)
        self.ledger = Ledger.open(path)
        self.vendor = FakeVendor()
        self.history = HistoryCache() if cached else None
        self.seq = dict.fromkeys(DEVICES, 0)

    def close(self) -> None:
        self.ledger.close()
        self.store.close()

    def report(self, device: str, at: datetime) -> None:
        self.seq[device] += 1
        self.store.write_batch([state(device, self.seq[device], at)],
                               received_at=at.timestamp())

    def fits(self) -> dict[int, int]:
        assert self.history is not None
        return {cid: m.fits for cid, m in self.history.fits.items()}

    def decide(self, now: datetime, caplog: pytest.LogCaptureFixture) -> tuple[object, ...]:
        """One pass; everything it decided, logged and wrote, for comparison."""
        caplog.clear()
        report = Planner(self.store, self.ledger, self.vendor.client().catalog,
                         vendor_name="shop", spec_for=spec_for,
                         history=self.history).run_once(now)
        lines = [r.getMessage() for r in caplog.records if r.name == "agent.app.planner"]
        # Idempotency keys are random per household; everything else must match.
        audit = [(a.kind, a.consumable,
                  {k: v for k, v in a.fields().items() if k not in ("idem_key", "key")})
                 for a in self.ledger.audit_records()]
        intents = [dataclasses.replace(it, idem_key="") for it in self.ledger.intents()]
        return (report, lines, intents, self.ledger.reminders(),
                load_learned(self.ledger.conn), audit)


def place(ledger: Ledger, key: str, sku: str, at: datetime) -> int:
    """An order sent and accepted at ``at``, expected two days later."""
    it = ledger.create_intent(Proposal(key, "shop", sku, 1, 1, Decimal("9.90"), "item", "EUR"),
                              Mode.CONFIRM, State.QUEUED, at)
    grant = ledger.set_consent(key, Mode.CONFIRM, None, at)
    assert ledger.mark_sending(it.id, grant, at, at + timedelta(minutes=5), grant)
    ledger.mark_placed(it.id, VendorAnswer(id=f"o{it.id}", status="accepted",
                                           total=Decimal("9.90"),
                                           expected_delivery=at + timedelta(days=2)),
                       at, at + timedelta(minutes=10))
    return it.id


Event = Callable[[Household, datetime], None]

AUTO = Mandate(skus=("TONER-TN2420",), max_unit_price=Decimal("60"), max_quantity=2,
               monthly_budget=Decimal("200"))


def _events() -> dict[int, list[Event]]:
    """What happens in both households before the pass of each step."""
    def consent(key: str, mode: Mode, mandate: Mandate | None = None) -> Event:
        return lambda h, now: None if h.ledger.set_consent(key, mode, mandate, now) else None

    def away(days_from: float, days: float) -> Event:
        return lambda h, now: None if h.ledger.add_away(
            now + timedelta(days=days_from), now + timedelta(days=days_from + days),
            "trip", "cli", now) else None

    def home_again(h: Household, now: datetime) -> None:
        for away_id, *_ in h.ledger.away_periods()[:1]:
            h.ledger.remove_away(away_id, now)

    def order_milk(h: Household, now: datetime) -> None:
        place(h.ledger, "fridge-1/milk", "MILK-1L", now)

    def milk_delivered(h: Household, now: datetime) -> None:
        # Told late: it came in just before the jump (a refill then, not a spike).
        [it] = h.ledger.intents([State.PLACED], "fridge-1/milk")
        h.ledger.update_status(it.id, "delivered", None, JUMP_AT - timedelta(minutes=30),
                               None, now)

    def learned_yield(h: Household, now: datetime) -> None:
        # More cycles than the readings show: kept, and the spec plans with it.
        save_learned(h.ledger.conn, [LearnedRow("consumable:printer-1/cyan", "yield_per_pack",
                                                2400.0, 3000.0, 9)], now)

    return {
        0: [consent("printer-1/black", Mode.CONFIRM), consent("fridge-1/milk", Mode.REMIND)],
        3: [consent("printer-2/drum", Mode.AUTO, AUTO)],
        6: [away(2.0, 4.0)],
        9: [order_milk],
        12: [consent("printer-1/cyan", Mode.AUTO, AUTO)],
        15: [away(-6.0, 3.0)],  # a trip that already happened: use stopped then
        17: [milk_delivered],
        21: [learned_yield],
        24: [home_again],
        27: [consent("printer-1/black", Mode.MONITOR)],
        30: [away(-1.0, 2.0)],  # away now
    }


def test_cached_passes_decide_exactly_as_uncached_ones_and_refit_only_what_changed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cached, fresh = Household(tmp_path / "a.db", True), Household(tmp_path / "b.db", False)
    events = _events()
    try:
        for h in (cached, fresh):
            at = T0
            while at < START - timedelta(hours=1):  # two months, every two hours
                for device in DEVICES:
                    h.report(device, at)
                at += timedelta(hours=2)
        now = START
        refits = quiet = 0
        with caplog.at_level(logging.INFO, logger="agent.app.planner"):
            for step in range(36):  # ten days: 3-hour passes, each with two soon after
                for h in (cached, fresh):
                    for i, device in enumerate(DEVICES):
                        if (step + i) % 3:  # not every device every pass
                            h.report(device, now - timedelta(minutes=7))
                assert cached.decide(now, caplog) == fresh.decide(now, caplog), step
                # Minutes later (no window edge crosses a reading): the household acts,
                # or nothing happens and not a single forecast is fitted again.
                before = cached.fits()
                later = now + timedelta(minutes=9)
                for h in (cached, fresh):
                    for event in events.get(step, []):
                        event(h, later - timedelta(minutes=1))
                assert cached.decide(later, caplog) == fresh.decide(later, caplog), step
                if step not in events:
                    assert cached.fits() == before, step
                    quiet += 1
                # One device reports: only its consumables are fitted again.
                before = cached.fits()
                lone = DEVICES[step % 3]
                for h in (cached, fresh):
                    h.report(lone, later + timedelta(minutes=1))
                later += timedelta(minutes=4)
                assert cached.decide(later, caplog) == fresh.decide(later, caplog), step
                cids = {r.cid for r in cached.store.consumables(counts=False)
                        if r.device_id == lone}
                changed = {c for c, n in cached.fits().items() if n != before.get(c, 0)}
                assert changed == cids, step
                refits += len(changed)
                now += timedelta(hours=3)
    finally:
        cached.close()
        fresh.close()
    assert quiet == 36 - len(events) and refits >= 36


def test_a_kept_fit_gives_way_to_each_input_that_changes_it() -> None:
    """Readings, spec, away and our deliveries each change the fit: a memo kept across
    them gives what a fresh forecast gives, fitting again each time."""
    from agent.forecast import Away, Delivery, FitMemo, Observation, forecast
    t0 = START - timedelta(days=12)
    jump = t0 + timedelta(days=11, hours=5)
    obs = [Observation(t0 + timedelta(hours=k), 2000.0 - 6.0 * k % 1800
                       + (600.0 if t0 + timedelta(hours=k) == jump else 0.0))
           for k in range(12 * 24)]
    spec = ConsumableSpec(unit=Unit.GRAMS, capacity=2000.0, pack_size=2000.0)
    trip = [Away(t0 + timedelta(days=2), t0 + timedelta(days=4))]
    ours = [Delivery(jump - timedelta(minutes=30))]  # the jump is a refill, not a spike
    wider = dataclasses.replace(spec, capacity=2500.0)
    # Each step changes one input (away, our deliveries, spec, readings); the last none.
    steps = [(obs, spec, (), ()), (obs, spec, trip, ()), (obs, spec, trip, ours),
             (obs, wider, trip, ours), (obs[:-5], wider, trip, ours),
             (obs[:-5], wider, trip, ours)]
    memo = FitMemo()
    fits = []
    for o, s, away, dels in steps:
        kept = forecast(o, s, START, away=away, deliveries=dels, memo=memo)
        assert kept == forecast(o, s, START, away=away, deliveries=dels)
        fits.append(memo.fit)
    assert memo.fits == 5  # the last step changed nothing
    assert all(a != b for a, b in zip(fits[:5], fits[1:5], strict=False))  # each one did
