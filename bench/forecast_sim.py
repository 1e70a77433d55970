"""One closed-loop simulated run: a household, one policy, a year of hourly readings.

Every hour the simulator advances, readings reach the "agent" (late ones late), and due
deliveries are handed to the device; once a day (06:00 UTC) the policy reviews every
orderable item. Orders arrive after a lead time drawn from the scenario's model, and
the delivery refills the device (or waits on the shelf, as the device decides).
"""

from __future__ import annotations

import bisect
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent.domain import CoarseState
from agent.forecast import Away, Delivery, Observation, to_days
from agent.forecast.series import merge_intervals, overlap
from agent.policy import LeadTime
from bench.forecast_policies import ItemView
from bench.forecast_scenarios import Family, Item
from firmware_sim.household.scenario import Household

HOUR = timedelta(hours=1)
REVIEW_HOUR = 6
KEEP_EVERY = timedelta(minutes=55)
# Like the store: readings older than a few weeks are thinned to one per six hours.
COMPACT_AFTER = timedelta(days=35)
COMPACT_EVERY = timedelta(hours=6)
YEAR_END_REPEATS = 20


@dataclass
class ItemResult:
    """Metrics of one item in one run (raw lists; aggregation happens later)."""

    family: str
    seed: int
    item: str
    perishable: bool
    days: float
    stockout_days: float = 0.0
    orders: int = 0
    packs: int = 0
    artifact_orders: int = 0
    use: float = 0.0
    pack_size: float = 1.0
    packs_per_order: int = 1
    supply_at_arrival: list[float] = field(default_factory=list)
    # (ordered, arrived) epoch days of each delivered order: cycle service (issue 18)
    cycles: list[tuple[float, float]] = field(default_factory=list)
    spare_orders: int = 0  # ordered while a delivered pack waited on the shelf
    stockouts: list[tuple[float, float]] = field(default_factory=list)  # epoch days
    tte_pairs: list[tuple[float, float]] = field(default_factory=list)  # (actual, predicted)
    decide_seconds: float = 0.0
    decide_calls: int = 0
    year_end_ms: float | None = None  # one decision with the whole run's readings
    trace: dict[str, Any] | None = None


def _observation(ts: datetime, c: dict[str, Any]) -> Observation:
    counters = c.get("counters") or {}
    counter = next(iter(counters.values())) if counters else None
    state = c.get("state")
    return Observation(ts, c.get("level"), CoarseState(state) if state else None, counter)


def run(family: Family, seed: int, days: int, policy: Any, keep_trace: bool = False,
        ) -> list[ItemResult]:
    """Simulate ``days`` of one family/seed under ``policy``; metrics per item."""
    scn, items = family.build(seed)
    hh = Household.from_scenario(scn, seed)
    start = hh.start
    end = start + timedelta(days=days)
    lead = LeadTime(hh.lead_time.mean_days, hh.lead_time.sd_days)
    lead_rng = random.Random(seed * 7919 + 17)
    away = [Away(a, b) for a, b in hh.usage.away]
    away_days = merge_intervals([(to_days(a), to_days(b)) for a, b in hh.usage.away])
    devices = {d.device_id: d for d in hh.devices}
    keys = [(it.device_id, it.consumable_id) for it in items]
    obs: dict[tuple[str, str], list[Observation]] = {k: [] for k in keys}
    dels: dict[tuple[str, str], list[Delivery]] = {k: [] for k in keys}
    pending: list[tuple[datetime, tuple[str, str], int, Delivery]] = []
    # Lead times the agent saw (its order to the delivery), per item: what a gateway
    # learns from the vendor's delivered orders.
    leads: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    sent: dict[tuple[str, str], list[datetime]] = {k: [] for k in keys}
    res = {k: ItemResult(family.name, seed, f"{k[0]}/{k[1]}", it.spec.perishable, days,
                         pack_size=it.spec.pack_size, packs_per_order=it.packs_per_order)
           for k, it in zip(keys, items, strict=True)}
    hours: list[float] = []
    dev_level: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    cum: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    home_rate = dict.fromkeys(keys, 0.0)
    predictions: dict[tuple[str, str], list[tuple[float, float]]] = {k: [] for k in keys}
    marks: dict[tuple[str, str], dict[str, list[Any]]] = {
        k: {"orders": [], "arrivals": [], "bands": []} for k in keys}
    compacted = dict.fromkeys(keys, 0)
    t = start
    while t <= end:
        hh.advance(t)
        truths = {dev_id: dev.truth() for dev_id, dev in devices.items()}
        for due in [p for p in pending if p[0] <= t]:
            pending.remove(due)
            arrival, key, packs, expected = due
            tr = truths[key[0]][key[1]]
            rate = home_rate[key]
            if rate > 0:
                res[key].supply_at_arrival.append((tr.level + tr.spare) / rate)
            devices[key[0]].deliver(key[1], packs, arrival)
            lst = dels[key]
            lst[lst.index(expected)] = Delivery(arrival, packs)
            ordered = expected.ts - timedelta(days=lead.mean_days)
            leads[key].append((arrival - ordered) / timedelta(days=1))
            res[key].cycles.append((to_days(ordered), to_days(arrival)))
            marks[key]["arrivals"].append(to_days(arrival))
        for dev_id, dev in devices.items():
            for _, payload in dev.poll(t):
                ts = payload["ts"]
                for c in payload["consumables"]:
                    key = (dev_id, c["id"])
                    lst = obs.get(key)
                    # Like a downsampling store: at most one reading an hour per item.
                    if lst is not None and (not lst or ts - lst[-1].ts >= KEEP_EVERY
                                            or ts < lst[-1].ts):
                        lst.append(_observation(ts, c))
        hours.append(to_days(t))
        for key in keys:
            tr = truths[key[0]][key[1]]
            if tr.rate_per_day > 0:
                home_rate[key] = tr.rate_per_day
            lv = dev_level[key]
            cu = cum[key]
            cu.append((cu[-1] + max(0.0, lv[-1] - tr.level)) if lv else 0.0)
            lv.append(tr.level)
        if t.hour == REVIEW_HOUR and t > start:
            for key in keys:
                compacted[key] = _compact(obs[key], compacted[key], t - COMPACT_AFTER)
            for key, it in zip(keys, items, strict=True):
                tr = truths[key[0]][key[1]]
                view = ItemView(t, it.spec, it.packs_per_order, lead, obs[key], dels[key],
                                away, tr.level + tr.spare, home_rate[key],
                                lead_history=leads[key], sent=sent[key])
                if policy.name == "oracle":
                    view.batches = [(b.amount, None if b.expires is None else to_days(b.expires))
                                    for b in devices[key[0]].stocks[key[1]].batches]
                # CPU time of this thread: the machine is shared, wall time would be noise.
                t0 = time.thread_time()
                dec = policy.decide(view)
                r = res[key]
                r.decide_seconds += time.thread_time() - t0
                r.decide_calls += 1
                if dec.tte[1] is not None:
                    predictions[key].append((to_days(t), dec.tte[1]))
                if keep_trace:
                    marks[key]["bands"].append((to_days(t), *dec.tte))
                if dec.packs > 0:
                    r.orders += 1
                    r.packs += dec.packs
                    if tr.level + tr.spare > 0.5 * tr.capacity:
                        r.artifact_orders += 1
                    r.spare_orders += tr.spare > 0
                    lt = hh.lead_time_days(tr.sku, lead_rng)
                    expected = Delivery(t + timedelta(days=lead.mean_days), dec.packs,
                                        pending=True)
                    dels[key].append(expected)
                    sent[key].append(t)
                    pending.append((t + timedelta(days=lt), key, dec.packs, expected))
                    marks[key]["orders"].append(to_days(t))
        t += HOUR
    if policy.name == "agent":
        _time_year_end(policy, items, keys, obs, dels, away, lead, end, res)
    for key in keys:
        dev = devices[key[0]]
        r = res[key]
        for begin, stop in dev.stockouts(key[1]):
            stop = min(stop or end, end)
            begin = max(begin, start)
            if stop > begin:
                # Only time at home counts: an empty fridge harms nobody on holiday.
                gone = overlap(to_days(begin), to_days(stop), away_days)
                r.stockout_days += (stop - begin) / timedelta(days=1) - gone
                # The cycles are judged on the same time at home: a fridge that empties
                # while the household is away failed nobody's cycle.
                r.stockouts += at_home(to_days(begin), to_days(stop), away_days)
        r.use = cum[key][-1]
        r.tte_pairs = _tte_pairs(hours, dev_level[key], cum[key], predictions[key])
        if keep_trace:
            step = 6
            actual = [(b[0], _actual_tte(hours, dev_level[key], cum[key], b[0]))
                      for b in marks[key]["bands"]]
            r.trace = {"t": hours[::step], "level": dev_level[key][::step], **marks[key],
                       "actual": [(t, a) for t, a in actual if a is not None]}
    return list(res.values())


def at_home(begin: float, stop: float, away: list[tuple[float, float]],
            ) -> list[tuple[float, float]]:
    """The parts of ``[begin, stop]`` (epoch days) outside the merged ``away`` intervals."""
    out = []
    for a, b in away:
        if b <= begin or a >= stop:
            continue
        if a > begin:
            out.append((begin, a))
        begin = max(begin, b)
    if stop > begin:
        out.append((begin, stop))
    return out


def _time_year_end(policy: Any, items: list[Item], keys: list[tuple[str, str]],
                   obs: dict[tuple[str, str], list[Observation]],
                   dels: dict[tuple[str, str], list[Delivery]], away: list[Away],
                   lead: LeadTime, end: datetime, res: dict[tuple[str, str], ItemResult],
                   ) -> None:
    """CPU time of one forecast and decision with all the readings of the run, fitted
    afresh each time (a policy's fit memos would make every repeat after the first a
    cache hit)."""
    forget = getattr(policy, "forget_fits", lambda: None)
    for key, it in zip(keys, items, strict=True):
        view = ItemView(end, it.spec, it.packs_per_order, lead, obs[key], dels[key], away)
        t0 = time.thread_time()
        for _ in range(YEAR_END_REPEATS):
            forget()
            policy.decide(view)
        res[key].year_end_ms = (time.thread_time() - t0) / YEAR_END_REPEATS * 1000.0


def _compact(lst: list[Observation], done: int, cutoff: datetime) -> int:
    """Thin ``lst[done:]`` before ``cutoff`` in place; returns the new compacted length."""
    end = bisect.bisect_left(lst, cutoff, lo=done, key=lambda o: o.ts)
    if end <= done:
        return done
    kept = lst[:done]
    last = kept[-1].ts if kept else None
    for o in lst[done:end]:
        if last is None or o.ts - last >= COMPACT_EVERY or o.ts < last:
            kept.append(o)
            last = o.ts
    n = len(kept)
    lst[:end] = kept
    return n


def _actual_tte(hours: list[float], level: list[float], cum: list[float], t: float,
                ) -> float | None:
    """Days from ``t`` until the stock in the device at ``t`` was used up (None if not
    within the run): later deliveries do not count."""
    i = bisect.bisect_left(hours, t)
    if i >= len(hours) or level[i] <= 0:
        return None
    j = bisect.bisect_left(cum, cum[i] + level[i] - 1e-9, lo=i)
    return hours[j] - hours[i] if j < len(cum) else None


def _tte_pairs(hours: list[float], level: list[float], cum: list[float],
               preds: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(actual, predicted) days to empty for each prediction whose run-out was seen."""
    out = []
    for t, pred in preds:
        actual = _actual_tte(hours, level, cum, t)
        if actual is not None:
            out.append((actual, pred))
    return out
