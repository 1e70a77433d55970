"""The decision pass: readings to forecast to reorder timing to consent to a ledger row.

For every consumable with a consent other than ``monitor`` (:meth:`Planner.run_once`):
load its readings, our expected deliveries and the away periods, run
:func:`agent.forecast.forecast` and :func:`agent.policy.plan_reorder`, then by mode
write a reminder (``remind``), a proposal (``confirm``) or an announced intent (``auto``
inside the mandate, else a proposal with the reasons). Nothing here calls
``place_order``: the outbox dispatcher does, after the pre-notice.

Consolidation: when one consumable of a vendor orders now, the others of that vendor
whose last safe order moment falls within ``consolidate_window`` join it; if the basket
is still under the vendor's free-shipping threshold, consumables due within
``free_shipping_slack`` join too, but only when together they reach the threshold (so
the shipping fee is actually saved).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from agent.app.history import HISTORY, HistoryCache, read_history
from agent.app.learning import apply_learning
from agent.consent import (
    Mandate,
    Mode,
    Proposal,
    Verdict,
    authorize,
    first_allowed,
)
from agent.domain import ConsumableKey, DeviceKind, Unit
from agent.errors import VendorError
from agent.forecast import Away, ConsumableSpec, Delivery, Forecast, Observation, forecast
from agent.logs import canonical
from agent.policy import LeadTime, ReorderPlan, plan_reorder
from agent.sources.calendar.away import away_periods
from agent.storage.ledger import LIVE, Consent, Intent, Ledger, State
from agent.storage.rows import ConsumableRow
from agent.storage.store import Store, consumable_key
from agent.vendor.client import CatalogItem

log = logging.getLogger(__name__)

DEFAULT_PRE_NOTICE = timedelta(hours=6)
DEFAULT_CONSOLIDATE_WINDOW = timedelta(days=3)
DEFAULT_FREE_SHIPPING_SLACK = timedelta(days=7)
DEFAULT_LEAD = LeadTime(3.0, 1.0)
DEFAULT_SHELF_LIFE_DAYS = 7.0
# After the household cancels a placed order, the consumable is left alone this long
# (unless the household sets its consent again); then the forecast decides again.
DEFAULT_CANCEL_HOLD = timedelta(days=7)

CARE_TIPS = {
    "printer": "if prints look streaky, run the printer's cleaning cycle before replacing",
    "fridge": "check best-before dates when the delivery arrives",
    "wearable": "change the sensor at the same time of day to keep readings steady",
}

Catalog = Callable[[str], CatalogItem]
SpecFor = Callable[[ConsumableRow, CatalogItem | None], ConsumableSpec]
# Runs after every consumable was considered, before consolidation: may rewrite plans
# from other consumables' forecasts (agent.app.batteries: a battery type's devices).
CandidateHook = Callable[["Planner", list["Candidate"], "PlanReport", datetime,
                          Sequence[Away]], None]


@dataclass(slots=True, kw_only=True)
class Candidate:
    consumable: ConsumableKey
    kind: str
    mode: Mode
    mandate: Mandate | None
    grant_audit: int
    sku: str | None
    offer: CatalogItem | None
    plan: ReorderPlan
    packs: int = 0
    lead: LeadTime | None = None

    @property
    def key(self) -> str:
        """The ledger's name of the consumable (``device/consumable``)."""
        return str(self.consumable)


@dataclass(slots=True)
class PlanReport:
    considered: int = 0
    reminders: int = 0
    proposals: int = 0
    announced: int = 0
    joined: list[str] = field(default_factory=list)
    forecasts: dict[str, Forecast] = field(default_factory=dict)  # every consumable, by key


def default_spec(row: ConsumableRow, offer: CatalogItem | None) -> ConsumableSpec:
    """A spec from what the device reported and the catalog's pack (:func:`spec_of`)."""
    return spec_of(row.unit, row.capacity, row.device_kind, offer)


def spec_of(unit: Unit, capacity: float | None, kind: DeviceKind,
            offer: CatalogItem | None) -> ConsumableSpec:
    """A percent gauge is refilled whole by one pack; gram and millilitre scales take the
    catalog's pack size when its unit matches; a life in days (a CGM sensor, a robot's
    brush) is restored whole by each item of a pack; fridge contents are perishable."""
    capacity = float(capacity or (100.0 if unit is Unit.PERCENT else 1.0))
    pack = capacity
    if offer is not None and unit is not Unit.PERCENT:
        pack = float(offer.pack_size) * (capacity if unit is Unit.DAYS else 1.0)
    perishable = kind is DeviceKind.FRIDGE
    return ConsumableSpec(unit=unit, capacity=max(capacity, pack), pack_size=pack,
                          perishable=perishable,
                          shelf_life_days=DEFAULT_SHELF_LIFE_DAYS if perishable else None)


def observations(store: Store, cid: int, now: datetime) -> list[Observation]:
    """What the forecast reads of one consumable: :data:`HISTORY`, thinned in SQL (no
    cache: :meth:`Planner.observations` reads through the service's cache)."""
    return read_history(store, cid, now)


def our_deliveries(ledger: Ledger, key: str, now: datetime) -> list[Delivery]:
    """Our orders of one consumable from their first send: delivered ones, and ``pending``
    ones still on order (overdue once the expected date has passed, never on the shelf).
    The vendor may leave ``expected_delivery`` out (docs/vendor-api.yaml): such an order
    still counts, as due ``now``. A delivery older than the readings the forecast reads
    (:data:`HISTORY`) is left out: the refill that used it is no longer in view, so it
    would count as a pack still on the shelf (a robot's brush fitted five months ago)."""
    out = []
    for it in ledger.intents([State.SENDING, State.PLACED, State.LOST, State.DELIVERED], key):
        if it.state is State.DELIVERED:
            if it.delivered_at is not None and it.delivered_at >= now - HISTORY:
                out.append(Delivery(it.delivered_at, float(it.quantity)))
        else:
            out.append(Delivery(it.expected_delivery or now, float(it.quantity), pending=True))
    return out


def observed_leads(ledger: Ledger, sku: str) -> list[float]:
    """Lead times in days (sent to delivered) of our delivered orders of ``sku``, any
    consumable: what this household's vendor actually took, newest 50."""
    days = [(it.delivered_at - it.first_sent_at) / timedelta(days=1)
            for it in ledger.intents([State.DELIVERED])
            if it.sku == sku and it.delivered_at is not None and it.first_sent_at is not None]
    return [d for d in days if d >= 0][-50:]


def learned_lead(ledger: Ledger, sku: str | None, offer: CatalogItem | None) -> LeadTime:
    """The vendor's declared lead time (the prior) moved by the delivered orders."""
    if offer is None or sku is None:
        return DEFAULT_LEAD
    prior = LeadTime(offer.lead_time_days, offer.lead_time_sd_days)
    return LeadTime.learned(prior, observed_leads(ledger, sku))


class Planner:
    """One decision pass over every consumable; ``run_once(now)`` is the scheduler job."""

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        catalog: Catalog,
        *,
        vendor_name: str,
        pre_notice: timedelta = DEFAULT_PRE_NOTICE,
        consolidate_window: timedelta = DEFAULT_CONSOLIDATE_WINDOW,
        free_shipping_slack: timedelta = DEFAULT_FREE_SHIPPING_SLACK,
        review_interval: timedelta = timedelta(days=1),
        service_level: float = 0.98,
        spec_for: SpecFor = default_spec,
        cancel_hold: timedelta = DEFAULT_CANCEL_HOLD,
        adjust: CandidateHook | None = None,
        history: HistoryCache | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.catalog = catalog
        self.vendor_name = vendor_name
        self.pre_notice = pre_notice
        self.consolidate_window = consolidate_window
        self.free_shipping_slack = free_shipping_slack
        self.review_interval = review_interval
        self.service_level = service_level
        self.spec_for = spec_for
        self.cancel_hold = cancel_hold
        self.adjust = adjust
        self.history = history  # kept by the service across passes; None: read each time
        self._unpriced: dict[str, str] = {}  # per pass: SKU -> why the catalog was silent

    def run_once(self, now: datetime) -> PlanReport:
        """Decide for every consumable at ``now`` and write the outcomes to the ledger.

        Every consumable is forecast (monitored ones too: dashboards show their days
        left); one canonical ``decision`` line per consumable says what came of it.
        """
        report = PlanReport()
        if self.history is not None:
            self.history.sync(self.store)
        self._unpriced = {}  # SKU -> why the catalog did not answer, this pass
        self.ledger.expire_mandates(now)
        away = away_periods(self.ledger)
        candidates = []
        for row in self.store.consumables(counts=False):
            cand = self._consider(row, now, away, report)
            if cand is not None:
                report.considered += 1
                candidates.append(cand)
        if self._unpriced:
            # One line per pass, not one per consumable: a vendor that is down is one fact.
            canonical(log, "planner.catalog_unavailable", level=logging.WARNING,
                      skus=",".join(sorted(self._unpriced)),
                      reason=next(iter(self._unpriced.values())))
        if self.adjust is not None:
            self.adjust(self, candidates, report, now, away)
        chosen = self._basket(candidates, now, report)
        for cand in candidates:
            if cand in chosen:
                self._act(cand, now, report)
            else:
                canonical(log, "decision", consumable=cand.key, decision="none",
                          reason=cand.plan.reason, mode=cand.mode.value)
        return report

    def outlook(self, now: datetime) -> dict[str, Forecast]:
        """Forecasts of every consumable at ``now``, without deciding or calling the vendor."""
        if self.history is not None:
            self.history.sync(self.store)
        away = away_periods(self.ledger)
        return {consumable_key(row): self._forecast(row, None, now, away)
                for row in self.store.consumables(counts=False)}

    def observations(self, cid: int, now: datetime) -> list[Observation]:
        """One consumable's history for the forecast (through the cache when there is one)."""
        if self.history is None:
            return read_history(self.store, cid, now)
        return self.history.observations(self.store, cid, now)

    # ---- one consumable ----------------------------------------------------------

    def _forecast(self, row: ConsumableRow, offer: CatalogItem | None, now: datetime,
                  away: list[Away], obs: list[Observation] | None = None,
                  spec: ConsumableSpec | None = None) -> Forecast:
        deliveries = our_deliveries(self.ledger, consumable_key(row), now)
        memo = None if self.history is None else self.history.fit_memo(row.cid)
        return forecast(self.observations(row.cid, now) if obs is None else obs,
                        self.spec_for(row, offer) if spec is None else spec, now,
                        deliveries=deliveries, away=away, memo=memo)

    def _skip_reason(self, key: str, consent: Consent | None, now: datetime) -> str | None:
        """Why this pass leaves the consumable alone (None: decide)."""
        if consent is None or consent.mode is Mode.MONITOR:
            return "monitor only"
        live = self.ledger.intents(LIVE, key)
        if live:
            # On order until the vendor says delivered, cancelled or rejected, whatever
            # optional fields (dates) it left out: at most one live order per need.
            return f"order {live[0].id} is {live[0].state.value}: already on order"
        cancelled = self.ledger.household_cancelled_since(key, now - self.cancel_hold)
        if cancelled is not None and consent.updated_at <= cancelled:
            return (f"the household cancelled a placed order at {cancelled:%Y-%m-%d %H:%M} "
                    "UTC; held until it sets consent again or the hold ends")
        until = self.ledger.snoozed_until(key)
        if until is not None and now < until:
            return f"snoozed by the household until {until:%Y-%m-%d %H:%M} UTC"
        if self.ledger.declined_since(key, now - self.review_interval):
            return "declined by the household since the last review"
        return None

    def _consider(self, row: ConsumableRow, now: datetime, away: list[Away],
                  report: PlanReport) -> Candidate | None:
        key = consumable_key(row)
        consent = self.ledger.consent(key)
        mode = consent.mode if consent is not None else Mode.MONITOR
        skip = self._skip_reason(key, consent, now)
        if consent is None or skip is not None:
            report.forecasts[key] = self._forecast(row, None, now, away)
            canonical(log, "decision", consumable=key, decision="none", reason=skip,
                      mode=mode.value)
            return None
        blocked = self.ledger.blocked_skus(key)
        sku = first_allowed(consent.mandate, [row.sku] if row.sku else [], blocked)
        offer = self._offer(sku)
        lead = learned_lead(self.ledger, sku, offer)
        obs = self.observations(row.cid, now)
        spec, service, note = apply_learning(self.ledger, key, self.spec_for(row, offer), obs,
                                             sku, lead, self.service_level, now, away)
        fc = report.forecasts[key] = self._forecast(row, offer, now, away, obs, spec)
        max_packs = (consent.mandate.max_quantity
                     if consent.mode is Mode.AUTO and consent.mandate else None)
        plan = plan_reorder(fc, spec, now, lead, review_interval=self.review_interval,
                            service_level=service, away=away, max_packs=max_packs)
        if note:
            plan = dataclasses.replace(plan, reason=f"{plan.reason}; learned {note}")
        if sku is None and plan.order_now and blocked:
            self.ledger.remind(key, "choose_product", "every allowed product is blocked; "
                               "choose a new one with replenish consent set", now)
        return Candidate(consumable=row.key, kind=row.device_kind.value, mode=consent.mode,
                         mandate=consent.mandate, grant_audit=consent.audit_id, sku=sku,
                         offer=offer, plan=plan, packs=plan.packs if plan.order_now else 0,
                         lead=lead)

    def _offer(self, sku: str | None) -> CatalogItem | None:
        if sku is None:
            return None
        try:
            return self.catalog(sku)
        except VendorError as err:
            self._unpriced.setdefault(sku, str(err))
            return None

    # ---- consolidation -----------------------------------------------------------

    def _basket(self, cands: list[Candidate], now: datetime,
                report: PlanReport) -> list[Candidate]:
        """The consumables to act on now: the due ones plus those that join them."""
        due = [c for c in cands if c.plan.order_now]
        orderable = [c for c in cands if not c.plan.order_now and c.offer is not None
                     and c.mode in (Mode.AUTO, Mode.CONFIRM)
                     and c.plan.latest_order_at is not None]
        if not any(c.mode in (Mode.AUTO, Mode.CONFIRM) and c.offer for c in due):
            return due
        orderable.sort(key=lambda c: c.plan.latest_order_at or now)
        chosen = list(due)
        for c in orderable:
            if (c.plan.latest_order_at or now) <= now + self.consolidate_window:
                c.packs = max(1, c.plan.packs)
                chosen.append(c)
                report.joined.append(c.key)
        rest = [c for c in orderable if c not in chosen
                and (c.plan.latest_order_at or now) <= now + self.free_shipping_slack]
        threshold = next((c.offer.free_shipping_threshold for c in chosen
                          if c.offer and c.offer.free_shipping_threshold is not None), None)
        if threshold is not None:
            total = sum((self._cost(c) for c in chosen if c.mode is not Mode.REMIND),
                        Decimal(0))
            extra: list[Candidate] = []
            for c in rest:
                if total >= threshold:
                    break
                c.packs = max(1, c.plan.packs)
                extra.append(c)
                total += self._cost(c)
            if total >= threshold and extra:
                chosen += extra
                report.joined += [c.key for c in extra]
        return chosen

    @staticmethod
    def _cost(c: Candidate) -> Decimal:
        return c.offer.price * max(1, c.packs) if c.offer else Decimal(0)

    # ---- outcome -----------------------------------------------------------------

    def _act(self, c: Candidate, now: datetime, report: PlanReport) -> None:
        if c.mode is Mode.REMIND or c.offer is None or c.sku is None:
            when = c.plan.latest_order_at or now
            tip = CARE_TIPS.get(c.kind, "")
            message = f"reorder {c.sku or c.key} by {when:%Y-%m-%d %H:%M} UTC ({c.plan.reason})"
            fresh = self.ledger.remind(c.key, "reorder",
                                       message + (f"; tip: {tip}" if tip else ""), now)
            report.reminders += fresh
            canonical(log, "decision", consumable=c.key, sku=c.sku, decision="remind",
                      reason=c.plan.reason, outcome="reminded" if fresh else "already_reminded",
                      mode=c.mode.value)
            return
        o = c.offer
        proposal = Proposal(c.key, self.vendor_name, c.sku, max(1, c.packs), o.pack_size,
                            o.price, o.name, o.currency)
        spent = self.ledger.spent_this_month(c.key, now)
        auth = authorize(c.mandate, c.mode, proposal, o, spent, now)
        lead = (c.lead.quantile(0.5), c.lead.quantile(0.9)) if c.lead else None
        it: Intent | None = None
        if auth.verdict is Verdict.PLACE:
            it = self.ledger.create_intent(proposal, Mode.AUTO, State.QUEUED, now,
                                           send_after=now + self.pre_notice,
                                           reason=c.plan.reason, allowed_by=c.grant_audit,
                                           lead=lead)
            report.announced += 1
            decision, outcome, reason = "order", "announced", c.plan.reason
        elif auth.verdict is Verdict.PROPOSE:
            reason = c.plan.reason if c.mode is Mode.CONFIRM else f"{auth.why}; {c.plan.reason}"
            it = self.ledger.create_intent(proposal, Mode.CONFIRM, State.PROPOSED, now,
                                           reason=reason, lead=lead)
            report.proposals += 1
            decision, outcome = "propose", "proposed"
        else:
            decision, outcome, reason = "none", auth.verdict.value, auth.why
        canonical(log, "decision", consumable=c.key, sku=c.sku, decision=decision,
                  reason=reason, quantity=proposal.quantity,
                  audit_id=it.audit_id if it else None, outcome=outcome, mode=c.mode.value)
