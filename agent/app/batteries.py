"""Battery groups: one order per battery type with cells for every device due soon.

The foreign reader feeds ``z2m-batteries/<type>`` with the lowest level of the adopted
Zigbee2MQTT devices of that type (:mod:`agent.sources.reader`); the household gives that
one consumable a consent. Its own forecast says when the *first* cell dies; how many
packs to buy needs the members: this pass (a :data:`agent.app.planner.CandidateHook`)
replaces the group's plan with one built from every member's forecast:

- a member is *due* when its own latest safe order moment falls within
  ``battery_window_days`` (cells keep for years, so a month's worth in one pack is
  cheaper than an order per device);
- cells already on the shelf (our delivered cells minus the replacements the member
  readings have shown since, each a level jump) go to the earliest due members first;
- the group orders now when a member not covered by the shelf must be ordered for now,
  ``ceil(cells due - shelf, cells per pack)`` packs, the pack size from
  ``[sources.zigbee2mqtt.battery_skus]``, else the adoption's ``--pack-size``, else the
  catalog's ``pack_size``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from agent.app.history import HISTORY
from agent.app.planner import (
    Candidate,
    Planner,
    PlanReport,
    learned_lead,
    spec_of,
)
from agent.config import Zigbee2MqttSettings
from agent.domain import ConsumableKey, DeviceKind, Unit
from agent.forecast import Away
from agent.forecast.refills import refills
from agent.policy import ReorderPlan, plan_reorder
from agent.sources.reader import BATTERY_GROUP_DEVICE, group_consumable
from agent.sources.zigbee2mqtt import bridge
from agent.sources.zigbee2mqtt.batteries import cells
from agent.storage.ledger import State
from agent.storage.rows import consumable_key
from agent.storage.sources import SourceStore

# Our delivered cells older than the readings the planner reads are taken as used.
SHELF_HORIZON = HISTORY
# What a member's battery gauge reports (a percent), whatever device it sits in.
_MEMBER_SPEC = spec_of(Unit.PERCENT, None, DeviceKind.OTHER, None)


@dataclass(slots=True, frozen=True)
class Member:
    key: str  # DEVICE/CONSUMABLE of one adopted device
    cid: int | None  # its consumables row (None: no reading yet)
    cells: int  # cells one replacement takes


@dataclass(slots=True, frozen=True)
class BatteryGroup:
    key: str  # z2m-batteries/<type>
    battery_type: str
    members: tuple[Member, ...]
    pack_size: int | None  # cells per pack; None: the catalog's


def battery_groups(db_path: Path | str, z2m: Zigbee2MqttSettings,
                   cids: Mapping[str, int]) -> dict[str, BatteryGroup]:
    """The battery groups of the adopted Zigbee2MQTT devices, by group key; ``cids`` maps
    consumable keys to their rows."""
    members: dict[str, list[Member]] = {}
    packs: dict[str, int] = {}
    with SourceStore(db_path) as db:
        entities = {e.key: e for e in db.entities(bridge.SOURCE)}
        for a in db.adoptions():
            e = entities.get(a.key)
            if a.source != bridge.SOURCE or e is None or e.battery_type is None or e.removed:
                continue
            key = str(ConsumableKey(a.device_id, a.consumable_id))
            members.setdefault(e.battery_type, []).append(
                Member(key, cids.get(key), cells(e.model)))
            if a.pack_size:
                packs.setdefault(e.battery_type, a.pack_size)
    out = {}
    for cell, ms in members.items():
        key = str(ConsumableKey(BATTERY_GROUP_DEVICE, group_consumable(cell)))
        pack = z2m.battery_skus[cell].pack_size if cell in z2m.battery_skus else packs.get(cell)
        out[key] = BatteryGroup(key, cell, tuple(sorted(ms, key=lambda m: m.key)), pack)
    return out


class BatteryPlans:
    """The planner hook: rewrites each battery group's candidate (see the module doc)."""

    def __init__(self, db_path: Path | str, z2m: Zigbee2MqttSettings) -> None:
        self.db_path = db_path
        self.z2m = z2m
        self.window = timedelta(days=z2m.battery_window_days)

    def __call__(self, planner: Planner, cands: list[Candidate], report: PlanReport,
                 now: datetime, away: Sequence[Away]) -> None:
        ours = [c for c in cands if c.consumable.device_id == BATTERY_GROUP_DEVICE]
        if not ours:
            return
        cids = {consumable_key(r): r.cid for r in planner.store.consumables(counts=False)}
        groups = battery_groups(self.db_path, self.z2m, cids)
        for c in ours:
            group = groups.get(c.key)
            if group is not None:
                c.plan = self.plan(planner, c, group, report, now, away)
                c.packs = c.plan.packs if c.plan.order_now else 0

    def plan(self, planner: Planner, c: Candidate, group: BatteryGroup, report: PlanReport,
             now: datetime, away: Sequence[Away]) -> ReorderPlan:
        lead = learned_lead(planner.ledger, c.sku, c.offer)
        spec = _MEMBER_SPEC
        due: list[tuple[datetime, bool, Member]] = []
        for m in group.members:
            fc = report.forecasts.get(m.key)
            if fc is None:
                continue
            p = plan_reorder(fc, spec, now, lead, review_interval=planner.review_interval,
                             service_level=planner.service_level, away=away)
            if p.order_now or (p.latest_order_at is not None
                               and p.latest_order_at <= now + self.window):
                due.append((p.latest_order_at or now, p.order_now, m))
        due.sort(key=lambda d: (d[0], d[2].key))
        per_pack = group.pack_size or (c.offer.pack_size if c.offer else 1)
        shelf = self.shelf(planner, group, per_pack, now)
        left, uncovered = shelf, []
        for at, urgent, m in due:
            if left >= m.cells:
                left -= m.cells
            else:
                uncovered.append((at, urgent, m))
        need = sum(m.cells for _, _, m in uncovered)
        packs = max(1, math.ceil(need / per_pack))
        what = (f"{sum(m.cells for _, _, m in due)} {group.battery_type} cells for "
                f"{len(due)} of {len(group.members)} devices due within "
                f"{self.window.days} days, {shelf} on the shelf")
        if any(urgent for _, urgent, _ in uncovered):
            arrival = now + timedelta(days=lead.mean_days)
            return dataclasses.replace(
                c.plan, order_now=True, packs=packs, expected_arrival=arrival,
                latest_order_at=now,
                reason=f"{what}: {packs} pack(s) of {per_pack} now")
        # Due soon, not yet: it may join another order's basket, with its own packs.
        first = uncovered[0][0] if uncovered else None
        return dataclasses.replace(
            c.plan, order_now=False, packs=packs if uncovered else 0, latest_order_at=first,
            reason=f"{what}: no member needs a cell ordered yet")

    def shelf(self, planner: Planner, group: BatteryGroup, per_pack: int,
              now: datetime) -> int:
        """Our delivered cells not yet in a device: delivered within the horizon, less the
        replacements (level jumps) the members have shown since the first of them."""
        delivered = [it for it in planner.ledger.intents([State.DELIVERED], group.key)
                     if it.delivered_at is not None and it.delivered_at >= now - SHELF_HORIZON]
        if not delivered:
            return 0
        since = min(it.delivered_at or now for it in delivered)
        total = sum(it.quantity for it in delivered) * per_pack
        spec = _MEMBER_SPEC
        used = 0
        for m in group.members:
            if m.cid is not None:
                obs = planner.observations(m.cid, now)
                used += m.cells * len(refills(obs, spec, since - timedelta(hours=1)))
        return max(0, total - used)
