"""Supplies that last several refills: a wearer's insulin vial, a box of sensors, batteries.

The forecast counts a delivered pack as on the shelf until the next refill shows up in
the device (:func:`agent.forecast.refills.spare_packs`): right for a toner cartridge,
wrong for a 1,000-unit insulin vial that fills a 200-unit reservoir five times, or a
4-pack of pump batteries. For the consumables of a Nightscout wearer (``ns-…``), this
planner hook (:data:`agent.app.planner.CandidateHook`) keeps the amount instead: our
deliveries (packs x what one pack holds) less a whole refill for every refill the readings
have shown since the first of them; while that covers a refill, no order goes out.

What one pack holds, in the consumable's unit: the catalog's ``pack_size`` items, each a
whole life for a consumable in days (a sensor: its life) or in percent (a battery: a full
charge), else ``pack_size`` units (insulin units).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

from agent.app.history import HISTORY
from agent.app.planner import (
    Candidate,
    CandidateHook,
    Planner,
    PlanReport,
    default_spec,
)
from agent.domain import Unit
from agent.forecast import Away, ConsumableSpec
from agent.forecast.refills import refills
from agent.storage.ledger import State
from agent.storage.rows import ConsumableRow, consumable_key
from agent.vendor.client import CatalogItem

PREFIX = "ns-"


def wearer_spec(row: ConsumableRow, offer: CatalogItem | None) -> ConsumableSpec:
    """:func:`default_spec`, except that a wearer's reservoir (units) is refilled a
    reservoir at a time from a pack that holds several (a vial), not a pack at a time."""
    spec = default_spec(row, offer)
    if row.device_id.startswith(PREFIX) and row.unit is Unit.COUNT and row.capacity:
        capacity = float(row.capacity)
        return dataclasses.replace(spec, capacity=capacity, pack_size=capacity)
    return spec


class ShelfPlans:
    """Holds back the order of a wearer's consumable while our deliveries still cover a
    refill (see the module doc)."""

    def __call__(self, planner: Planner, cands: list[Candidate], report: PlanReport,
                 now: datetime, away: Sequence[Away]) -> None:
        # Due ones, and those that would join another order's basket (due within days).
        ours = [c for c in cands if c.consumable.device_id.startswith(PREFIX)
                and c.offer is not None
                and (c.plan.order_now or c.plan.latest_order_at is not None)]
        if not ours:
            return
        rows = {consumable_key(r): r for r in planner.store.consumables(counts=False)}
        for c in ours:
            row = rows.get(c.key)
            if row is None:
                continue
            spec = wearer_spec(row, c.offer)
            shelf = self.shelf(planner, c, row, spec.capacity if row.unit in (
                Unit.DAYS, Unit.PERCENT) else 1.0, now)
            refill = spec.capacity
            if shelf >= refill:
                c.plan = dataclasses.replace(  # and no joining another order's basket
                    c.plan, order_now=False, packs=0, latest_order_at=None,
                    reason=f"{shelf:g} {row.unit} of our deliveries still on the shelf "
                           f"(a refill takes {refill:g}); {c.plan.reason}")
                c.packs = 0

    @staticmethod
    def shelf(planner: Planner, c: Candidate, row: ConsumableRow, per_item: float,
              now: datetime) -> float:
        """Delivered amount within the readings' horizon, less the refills seen since."""
        assert c.offer is not None
        delivered = [it for it in planner.ledger.intents([State.DELIVERED], c.key)
                     if it.delivered_at is not None and it.delivered_at >= now - HISTORY]
        if not delivered:
            return 0.0
        since = min(it.delivered_at or now for it in delivered)
        total = sum(it.quantity for it in delivered) * c.offer.pack_size * per_item
        spec = wearer_spec(row, c.offer)
        # Each refill counts whole (a sensor, a battery, a full reservoir): the rise the
        # readings show misses what was used between the last reading and the refill,
        # and an estimate too high would leave the wearer without.
        found = refills(planner.observations(row.cid, now), spec, since - timedelta(hours=1))
        return max(0.0, total - len(found) * spec.capacity)


def chain(*hooks: CandidateHook) -> CandidateHook:
    """Several planner hooks, in order."""

    def run(planner: Planner, cands: list[Candidate], report: PlanReport, now: datetime,
            away: Sequence[Away]) -> None:
        for hook in hooks:
            hook(planner, cands, report, now, away)

    return run
