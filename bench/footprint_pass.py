"""The footprint benchmark's decision pass: uncached, cold cache, warm cache.

Read (store or :class:`agent.app.history.HistoryCache`), :func:`agent.forecast.forecast`
and :func:`agent.policy.plan_reorder` for 100 consumables, each stage timed; the
uncached pass is the reference the warm pass is compared with in the same run. With the
cache, each consumable's forecast fit is kept too (:class:`agent.forecast.FitMemo`) and
redone only when its inputs changed; ``fits`` counts the fits a pass computed. Wall time
and the pass's thread CPU time are both reported: the machine is shared.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.app.history import HistoryCache, read_history
from agent.domain import Unit
from agent.forecast import ConsumableSpec, forecast
from agent.policy import LeadTime, plan_reorder
from agent.storage.rows import ConsumableRow
from agent.storage.store import Store

LEAD = LeadTime(3.0, 1.0)


def spec_for(row: ConsumableRow) -> ConsumableSpec:
    unit = row.unit
    capacity = float(row.capacity or (100.0 if unit is Unit.PERCENT else 1.0))
    fridge = unit is Unit.GRAMS
    return ConsumableSpec(unit=unit, capacity=capacity, pack_size=capacity, perishable=fridge,
                          shelf_life_days=10.0 if fridge else None,
                          yield_per_pack=None if fridge else 3000.0)


def decision_pass(db: Path, now: datetime, count: int,
                  history: HistoryCache | None = None) -> dict[str, float]:
    """Read, forecast and plan ``count`` consumables; seconds per stage. With ``history``
    the reads go through the decision pass's cache (its sync counts as read time)."""
    read = fc_s = plan_s = 0.0
    orders = 0
    cpu0 = time.thread_time()
    with Store(db) as store:
        rows = store.consumables(counts=False)[:count]
        reads0 = (history.reads, history.tail_reads) if history else (0, 0)
        fits0 = sum(m.fits for m in history.fits.values()) if history else 0
        if history is not None:
            t0 = time.perf_counter()
            history.sync(store)
            read += time.perf_counter() - t0
        for row in rows:
            t0 = time.perf_counter()
            obs = (read_history(store, row.cid, now) if history is None
                   else history.observations(store, row.cid, now))
            t1 = time.perf_counter()
            spec = spec_for(row)
            fc = forecast(obs, spec, now,
                          memo=None if history is None else history.fit_memo(row.cid))
            t2 = time.perf_counter()
            plan = plan_reorder(fc, spec, now, LEAD)
            t3 = time.perf_counter()
            read, fc_s, plan_s = read + t1 - t0, fc_s + t2 - t1, plan_s + t3 - t2
            orders += plan.order_now
    cpu = time.thread_time() - cpu0
    whole, tails = ((history.reads - reads0[0], history.tail_reads - reads0[1]) if history
                    else (len(rows), 0))
    fits = sum(m.fits for m in history.fits.values()) - fits0 if history else len(rows)
    return {"consumables": len(rows), "read_s": read, "forecast_s": fc_s, "plan_s": plan_s,
            "total_s": read + fc_s + plan_s, "cpu_s": cpu, "order_now": orders,
            "whole_reads": whole, "tail_reads": tails, "fits": fits}


def cache_bytes(db: Path, now: datetime, count: int) -> int:
    """Python heap a full cache of ``count`` consumables holds, their history and their
    forecast fits (tracemalloc, untimed)."""
    tracemalloc.start()
    try:
        cache = HistoryCache()
        with Store(db) as store:
            cache.sync(store)
            base = tracemalloc.get_traced_memory()[0]
            for row in store.consumables(counts=False)[:count]:
                forecast(cache.observations(store, row.cid, now), spec_for(row), now,
                         memo=cache.fit_memo(row.cid))
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def decision_passes(db: Path, now: float, fresh_readings: Callable[[float], int]
                    ) -> dict[str, Any]:
    """The uncached pass (the reference), the cold cached pass, a warm pass five minutes
    later after ``fresh_readings(at)`` stored new readings (returns how many consumables
    got one), and a quiet warm pass five minutes after that with nothing new."""
    at = datetime.fromtimestamp(now, UTC)
    uncached = decision_pass(db, at, 100)
    cache = HistoryCache()
    cold = decision_pass(db, at, 100, cache)
    fresh = fresh_readings(now + 300)
    warm = decision_pass(db, at + timedelta(minutes=5), 100, cache)
    quiet = decision_pass(db, at + timedelta(minutes=10), 100, cache)
    return {"uncached": uncached, "cold": cold, "warm": warm, "quiet": quiet,
            "warm_new_consumables": fresh,
            "uncached_over_warm": uncached["total_s"] / warm["total_s"],
            "uncached_over_warm_cpu": uncached["cpu_s"] / warm["cpu_s"],
            "cache_mb": cache_bytes(db, at, 100) / 2**20}
