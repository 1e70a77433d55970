"""Decisions benchmark: reorder timing on households ``firmware_sim`` did not generate.

    python -m bench.decisions               # 8 scenarios x 10 seeds x 365 days
    python -m bench.decisions --quick       # 8 scenarios x 1 seed x 120 days (CI)

The households come from :mod:`bench.decisions_world` (its own assumptions, see there).
Daily review at 06:00; the agent is ``bench.forecast_policies.AgentPolicy`` (forecast,
learning from the readings and its own deliveries, plan_reorder at 0.98), fed only what
a gateway sees. References: order at 20 %, a reorder point tuned per scenario on
separate seeds (cost: 20 x stockout days + mean days of supply), and the oracle (true
stock, true rate). On a LOW-only printer a reorder point compares the level its page
counter implies (pages since the last replacement against the declared yield), and
orders at LOW before any replacement was seen. Inventory-matched: the reorder point run
at every threshold of the grid (10 % to 100 % of capacity, then 130-220 % of the level
plus what is on order) on
the same seeds, its stockouts interpolated at the agent's mean days of supply.
Writes ``bench/results/decisions.json`` and ``bench/results/decisions.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.domain import CoarseState
from agent.forecast import Delivery, Observation, to_days
from agent.forecast.refills import spare_packs
from agent.policy import LeadTime
from bench.common import cycle_served
from bench.decisions_world import HOUR, SCENARIOS, START, Scenario, World
from bench.forecast_policies import (
    AgentPolicy,
    Decision,
    ItemView,
    OraclePolicy,
    _current_level,
    _last_level,
    _last_low,
    _pending,
)
from bench.forecast_sim import _compact

RESULTS = Path(__file__).parent / "results"
# Up to 1.0 (order whenever nothing is on order), then above 1.0 on the inventory
# position (level plus packs on order, so a second order may go out while one is late):
# the grid must reach the agent's own inventory for the inventory-matched comparison
# (with heavy-tailed lead times one order at a time tops out below the agent's supply).
RP_GRID = (0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 0.9, 1.0, 1.3, 1.7, 2.2)
TUNE_SEEDS = (1001, 1002, 1003)
STALL_DAYS = 30.0
_LOW = (CoarseState.LOW, CoarseState.EMPTY)


class ReorderPoint:
    """Order when the reported level is at or below ``f`` of capacity (or LOW); above
    1.0, when the level plus the packs on order is (an inventory-position rule)."""

    def __init__(self, f: float, name: str | None = None) -> None:
        self.f = f
        self.name = name or f"reorder_point_{f:g}"

    def decide(self, view: ItemView) -> Decision:
        if self.f > 1.0:
            return self._by_position(view)
        level = _current_level(view)
        if isinstance(level, Decision):
            counted = _pages_level(view)
            if counted is None or level.packs > 0:
                return level
            level = counted
        return Decision(view.packs_per_order if level <= self.f * view.spec.capacity else 0)

    def _by_position(self, view: ItemView) -> Decision:
        """Level (or the page-counter level, or 0 at LOW) plus the packs ordered and not
        yet in the device, against ``f`` x capacity."""
        last = _last_level(view)
        if view.obs and view.obs[-1].level is None:
            counted = _pages_level(view)
            level = counted if counted is not None else (0.0 if _last_low(view) else None)
        else:
            level = None if last is None else last[1]
        if level is None:
            return Decision(0)
        on_order = sum(d.packs for d in view.deliveries if d.ts > view.now or d.pending)
        shelf = spare_packs(view.obs, view.spec, view.deliveries, view.now)
        position = level + (on_order + shelf) * view.spec.pack_size
        return Decision(view.packs_per_order if position <= self.f * view.spec.capacity else 0)


def _pages_level(view: ItemView) -> float | None:
    """A LOW-only printer's level from its page counter: pages since the newest
    replacement seen (LOW or EMPTY back to OK) against the declared yield, so a reorder
    point can be set on a printer that shows no level; None before any replacement, with
    something on order, or without a counter and a declared yield."""
    if (not view.spec.yield_per_pack or not view.obs or view.obs[-1].counter is None
            or view.obs[-1].level is not None or _pending(view)):
        return None
    later = None
    for o in reversed(view.obs):
        if o.state is None or o.state is CoarseState.UNKNOWN:
            continue
        if later is not None and o.state in _LOW and later.state not in _LOW:
            used = (view.obs[-1].counter or 0) - (later.counter or 0)
            return view.spec.capacity * max(0.0, 1.0 - used / view.spec.yield_per_pack)
        later = o
    return None


def _true_rate(w: World, t: float) -> float:
    rate = w.rate * (1.0 + w.trend * t / 365.0)
    if w.kind == "toner" and w.true_yield:
        return rate * 5 / 7 / w.true_yield * w.spec.capacity
    if w.kind == "cgm":
        return 0.1
    return rate



def _use_ahead(w: World, t: float, cache: dict[int, tuple[float, float]]
               ) -> list[tuple[float, float]]:
    """The day-by-day use an oracle knows is coming (see ``World.expected_use``), far
    enough ahead to pass the run-out of all it holds (cached per day: reviews are
    always at the same hour)."""
    out: list[tuple[float, float]] = []
    total = 0.0
    first = int(t)
    for k in range(first, first + 400):
        if k not in cache:
            cache[k] = w.expected_use(k + (t - first))
        out.append(cache[k])
        total += cache[k][0]
        if total > 2.0 * w.on_hand + 1.0 and len(out) >= 14:
            break
    return out


def run(scn: Scenario, seed: int, days: int, policy: Any) -> dict[str, Any]:
    """One scenario, one seed, one policy: metrics of its one item."""
    rng = random.Random(seed * 104_729 + zlib.crc32(scn.name.encode()) % 10_007)
    [w] = scn.build(rng)  # type: ignore[operator]
    lead_rng = random.Random(seed * 31 + 7)
    out_rng = random.Random(seed * 17 + 3)
    outages: list[tuple[float, float]] = []
    if scn.outages:
        for _ in range(4):
            a = out_rng.uniform(10, days - 5)
            outages.append((a, a + out_rng.uniform(1.0, 3.0)))
    lead = LeadTime(scn.lead.mean, scn.lead.sd)
    obs: list[Observation] = []
    held: list[Observation] = []
    dels: list[Delivery] = []
    leads: list[float] = []
    sent: list[datetime] = []  # when each of ``dels`` was ordered
    pending: list[tuple[float, float, int, Delivery]] = []  # (arrival, ordered, packs, exp)
    orders = spare_orders = 0
    supply: list[float] = []
    cycles: list[bool] = []
    last_arrival = 0.0
    decide_s = 0.0
    decide_n = 0
    compacted = 0
    days_ahead: dict[int, tuple[float, float]] = {}
    steps = days * 24
    for h in range(steps):
        t = h / 24.0
        ts = START + h * HOUR
        for due in [p for p in pending if p[0] <= t]:
            pending.remove(due)
            arrival, ordered, packs, expected = due
            # Cycles are cut at the hour the delivery lands (a stockout it ends closes then).
            cycles.append(cycle_served(w.stockouts, w.empty_since, last_arrival, t))
            last_arrival = t
            w.deliver(packs, t)
            dels[dels.index(expected)] = Delivery(ts, packs)
            leads.append(arrival - ordered)
        w.step(t)
        o = w.reading(ts, t)
        if any(a <= t < b for a, b in outages):
            held.append(o)
        else:
            if held:
                out_rng.shuffle(held)  # a late batch, out of order
                obs.extend(held)
                held = []
            obs.append(o)
        if ts.hour == 6 and h > 0:
            obs.sort(key=lambda x: x.ts)
            compacted = _compact(obs, compacted, ts - timedelta(days=35))
            rate = _true_rate(w, t)
            if rate > 0:
                supply.append(w.on_hand / rate)
            view = ItemView(ts, w.spec, w.packs_per_order, lead, obs, dels, [],
                            w.on_hand, rate, lead_history=leads, sent=sent)
            if policy.name == "oracle":
                view.batches = [(b[0], to_days(START) + b[1]) for b in w.batches] or [
                    (w.level, None)]
                view.true_use = _use_ahead(w, t, days_ahead)
            t0 = time.thread_time()
            dec = policy.decide(view)
            decide_s += time.thread_time() - t0
            decide_n += 1
            if dec.packs > 0:
                orders += 1
                spare_orders += w.kind == "toner" and w.shelf > 0
                lt = scn.lead.draw(lead_rng)
                exp = Delivery(ts + timedelta(days=lead.mean_days), dec.packs, pending=True)
                dels.append(exp)
                sent.append(ts)
                pending.append((t + lt, t, dec.packs, exp))
    stretches = list(w.stockouts) + ([(w.empty_since, steps / 24)] if w.empty_since is not None
                                     else [])
    years = days / 365.0
    return {
        "stockout_days": w.stockout_hours / 24 / years,
        "orders": orders / years,
        "spare_orders": spare_orders / years,
        "supply_days": sum(supply) / len(supply) if supply else 0.0,
        "cycles": len(cycles),
        "cycle_service": (sum(cycles) / len(cycles)) if cycles else None,
        "stalled": any(b - a >= STALL_DAYS for a, b in stretches),
        "decide_ms": decide_s / max(decide_n, 1) * 1000,
        "learned_leads": len(leads),
    }


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _agg(runs: list[dict[str, Any]]) -> dict[str, Any]:
    svc = [r["cycle_service"] for r in runs if r["cycle_service"] is not None]
    cyc = sum(r["cycles"] for r in runs)
    good = sum(r["cycle_service"] * r["cycles"] for r in runs if r["cycle_service"] is not None)
    return {
        "stockout_days_per_item_year": round(_mean([r["stockout_days"] for r in runs]), 2),
        "orders_per_item_year": round(_mean([r["orders"] for r in runs]), 1),
        "spare_orders_per_item_year": round(_mean([r["spare_orders"] for r in runs]), 2),
        "supply_days_mean": round(_mean([r["supply_days"] for r in runs]), 2),
        "cycle_service": round(good / cyc, 3) if cyc else None,
        "cycle_service_runs_mean": round(_mean(svc), 3) if svc else None,
        "stalled_runs": sum(r["stalled"] for r in runs),
        "decide_ms": round(_mean([r["decide_ms"] for r in runs]), 3),
        "runs": len(runs),
    }


def _tune(scn: Scenario, days: int) -> float:
    """The reorder point with the least 20 x stockout days + days of supply on the
    tuning seeds (never the evaluation seeds)."""
    best, best_cost = RP_GRID[0], float("inf")
    for f in RP_GRID:
        rs = [run(scn, s, days, ReorderPoint(f)) for s in TUNE_SEEDS]
        cost = 20 * _mean([r["stockout_days"] for r in rs]) + _mean(
            [r["supply_days"] for r in rs])
        if cost < best_cost:
            best, best_cost = f, cost
    return best


def _at_supply(curve: list[tuple[float, float]], supply: float) -> float | None:
    """Stockouts of the reorder point interpolated at ``supply`` days (None: outside)."""
    pts = sorted(curve)
    for (s0, o0), (s1, o1) in zip(pts, pts[1:], strict=False):
        if s0 <= supply <= s1:
            return o0 if s1 == s0 else o0 + (o1 - o0) * (supply - s0) / (s1 - s0)
    return None


def evaluate(scn: Scenario, seeds: list[int], days: int) -> dict[str, Any]:
    tuned = _tune(scn, days)
    pols: list[Any] = [AgentPolicy(), ReorderPoint(0.2, "order_at_20pct"),
                       ReorderPoint(tuned, "tuned_reorder_point"), OraclePolicy()]
    out: dict[str, Any] = {"tuned_fraction": tuned}
    for pol in pols:
        runs = []
        for s in seeds:
            p = AgentPolicy() if pol.name == "agent" else pol  # fresh learning per run
            runs.append(run(scn, s, days, p))
        out[pol.name] = _agg(runs)
    curve = []
    for f in RP_GRID:
        agg = _agg([run(scn, s, days, ReorderPoint(f)) for s in seeds])
        curve.append((agg["supply_days_mean"], agg["stockout_days_per_item_year"]))
    out["reorder_point_curve"] = curve
    out["rp_stockouts_at_agent_supply"] = _at_supply(curve, out["agent"]["supply_days_mean"])
    return out


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, r in res.items():
        a, o, rp = r["agent"], r["oracle"], r["tuned_reorder_point"]
        limit = 3 * o["stockout_days_per_item_year"] + 0.5
        matched = r["rp_stockouts_at_agent_supply"]
        checks = [
            ("no_stalled_runs", a["stalled_runs"] == 0, f"{a['stalled_runs']}"),
            ("stockouts_within_3x_oracle_plus_0.5", a["stockout_days_per_item_year"] <= limit,
             f"{a['stockout_days_per_item_year']} <= {limit:.2f}"),
            ("fewer_stockouts_than_tuned_rp_at_equal_or_lower_inventory",
             a["stockout_days_per_item_year"] <= rp["stockout_days_per_item_year"]
             and a["supply_days_mean"] <= rp["supply_days_mean"] or (
                 matched is not None and a["stockout_days_per_item_year"] <= matched),
             f"agent {a['stockout_days_per_item_year']} at {a['supply_days_mean']} d; tuned "
             f"{rp['stockout_days_per_item_year']} at {rp['supply_days_mean']} d; "
             f"matched {matched if matched is None else round(matched, 2)}"),
            ("cycle_service_at_least_0.95", (a["cycle_service"] or 1.0) >= 0.95,
             f"{a['cycle_service']}"),
            ("spare_orders_at_most_0.5", a["spare_orders_per_item_year"] <= 0.5,
             f"{a['spare_orders_per_item_year']}"),
            ("decide_under_1ms", a["decide_ms"] < 1.0, f"{a['decide_ms']}"),
        ]
        rows += [{"scenario": name, "target": c, "met": ok, "detail": d} for c, ok, d in checks]
    return rows


def markdown(res: dict[str, Any], tg: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Decisions benchmark ({meta['seeds']} seeds x {meta['days']} days)", "",
             "| scenario | policy | stockout d/item-yr | cycle service | orders/yr | "
             "spare orders/yr | days of supply | stalled | ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        for pol in ("agent", "order_at_20pct", "tuned_reorder_point", "oracle"):
            a = r[pol]
            label = pol + (f" ({r['tuned_fraction']:g})" if pol == "tuned_reorder_point" else "")
            lines.append(f"| {name} | {label} | {a['stockout_days_per_item_year']} | "
                         f"{a['cycle_service']} | {a['orders_per_item_year']} | "
                         f"{a['spare_orders_per_item_year']} | {a['supply_days_mean']} | "
                         f"{a['stalled_runs']} | {a['decide_ms']} |")
    lines += ["", "| scenario | target | met | detail |", "|---|---|---|---|"]
    lines += [f"| {t['scenario']} | {t['target']} | {'yes' if t['met'] else '**NO**'} | "
              f"{t['detail']} |" for t in tg]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.decisions", description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--scenarios", default="")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    seeds, days = (1, 120) if args.quick else (args.seeds, args.days)
    chosen = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios.split(",")]
    t0 = time.time()
    res = {}
    for scn in chosen:
        res[scn.name] = evaluate(scn, list(range(seeds)), days)
        print(f"{scn.name}: agent {res[scn.name]['agent']['stockout_days_per_item_year']} d, "
              f"oracle {res[scn.name]['oracle']['stockout_days_per_item_year']} d", flush=True)
    tg = targets(res)
    meta = {"seeds": seeds, "days": days, "wall_seconds": round(time.time() - t0, 1),
            "command": "python -m bench.decisions " + " ".join(sys.argv[1:] if argv is None
                                                                else argv),
            "descriptions": {s.name: s.description for s in chosen}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decisions.json").write_text(json.dumps(
        {"meta": meta, "summary": res, "targets": tg}, indent=1))
    (args.out / "decisions.md").write_text(markdown(res, tg, meta))
    print(markdown(res, tg, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
