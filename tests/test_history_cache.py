"""The decision pass's history cache gives exactly what a fresh read gives.

A year of readings, then passes hour by hour while new readings arrive (some late, some
for only one consumable), across folds of the recent tier and the retention job's
downsampling: every pass, :meth:`HistoryCache.observations` equals
:func:`read_history`, and the forecast built from it equals the uncached forecast.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.app.history import COARSE_BUCKET, HistoryCache, read_history, window
from agent.domain import DeviceKind, Unit
from agent.forecast import ConsumableSpec, forecast
from agent.storage.store import Store
from agent.wire.device import Consumable, StateMessage

NOW = datetime(2026, 11, 1, 5, 17, tzinfo=UTC)  # not on a bucket edge
SPEC = ConsumableSpec(unit=Unit.GRAMS, capacity=2000.0, pack_size=2000.0)


def level(device: int, t: float) -> float:
    """A sawtooth: a jug used up over 6-9 days, then replaced."""
    period = (6 + device) * 86_400.0
    return round(2000.0 - 1800.0 * ((t % period) / period), 1)


def message(device: int, seq: int, t: float) -> StateMessage:
    return StateMessage.model_construct(
        device_id=f"fridge-{device}", seq=seq, ts=datetime.fromtimestamp(t, UTC),
        kind=DeviceKind.FRIDGE, fw=None,
        consumables=[Consumable.model_construct(id="milk", sku=None, level=level(device, t),
                                                unit=Unit.GRAMS, capacity=2000.0, state=None,
                                                counters=None)])


def year_of_history(store: Store, end: float) -> dict[int, int]:
    """Hourly readings for a year, then every 10 minutes for the last four days."""
    seqs = {}
    for d in range(3):
        times = [*range(int(end - 365 * 86_400), int(end - 4 * 86_400), 3600),
                 *range(int(end - 4 * 86_400), int(end), 600)]
        store.write_batch([message(d, i, float(t)) for i, t in enumerate(times, 1)],
                          received_at=end)
        seqs[d] = len(times)
    store.fold_recent()
    return seqs


def test_cached_history_equals_a_fresh_read_across_folds_and_compaction(
        tmp_path: Path) -> None:
    with Store(tmp_path / "agent.db") as store:
        seqs = year_of_history(store, NOW.timestamp())
        cids = [r.cid for r in store.consumables(counts=False)]
        cache = HistoryCache()
        now = NOW
        compacted = folded = 0
        for step in range(60):  # 15 hours in 15-minute passes, past two 6-hour edges
            now += timedelta(minutes=15)
            t = now.timestamp()
            if step % 3 != 2:  # most passes: new readings, not always from every device
                for d in range(3 if step % 2 else 1):
                    seqs[d] += 1
                    store.write_batch([message(d, seqs[d], t - 60)], received_at=t)
            if step % 7 == 3:  # a late reading, hours old, sorted in behind cached hours
                seqs[1] += 1
                store.write_batch([message(1, seqs[1], t - 5 * 3600 - 30)], received_at=t)
            if step % 8 == 5:
                folded += store.fold_recent()
            if step == 30:
                before = store.reading_count()
                store.compact(now, raw_days=2)
                compacted = before - store.reading_count()
            cache.sync(store)
            for cid in cids:
                cached = cache.observations(store, cid, now)
                fresh = read_history(store, cid, now)
                assert cached == fresh, f"step {step}, consumable {cid}"
                assert forecast(cached, SPEC, now) == forecast(fresh, SPEC, now)
        assert folded > 0 and compacted > 0, "the run must cross a fold and a compaction"
        # Whole reads: the cold pass and after the downsample; the rest reads new hours.
        assert cache.reads == 2 * len(cids), cache.reads
        assert 0 < cache.tail_reads < len(cids) * 60


def test_a_warm_pass_with_nothing_new_reads_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.db") as store:
        year_of_history(store, NOW.timestamp())
        cids = [r.cid for r in store.consumables(counts=False)]
        cache = HistoryCache()
        cache.sync(store)
        cold = [cache.observations(store, cid, NOW) for cid in cids]
        assert (cache.reads, cache.tail_reads) == (len(cids), 0)
        cache.sync(store)
        later = NOW + timedelta(minutes=5)
        assert [cache.observations(store, cid, later) for cid in cids] == cold
        assert (cache.reads, cache.tail_reads) == (len(cids), 0)


def test_the_window_edges_are_whole_coarse_buckets() -> None:
    since, fine_since = window(NOW)
    bucket = COARSE_BUCKET.total_seconds()
    assert since % bucket == 0 and fine_since % bucket == 0
    assert math.isclose((NOW.timestamp() - fine_since) / 86_400, 35, abs_tol=0.25)
    assert math.isclose((NOW.timestamp() - since) / 86_400, 120, abs_tol=0.25)
