"""What the forecast reads of each consumable, kept between decision passes.

The decision pass used to re-read four months of readings per consumable every pass
(two GROUP BY scans, ~5 ms each with a year stored). The window it reads has edges
aligned to :data:`COARSE_BUCKET` (:func:`window`), so every bucket is whole and the
aggregates stay exact as ``now`` moves: the last reading of a six-hour bucket is the last
of its hourly buckets. :class:`HistoryCache` keeps each consumable's thinned rows and,
each pass, re-reads only the hours that changed: readings appended to the recent tier
since its last look, and whatever a fold or a downsample touched (``history_marks``,
one generation per consumable). A cold cache builds each consumable once.

It also keeps each consumable's last forecast fit (:class:`agent.forecast.FitMemo`): the
forecast redoes the fit only when its inputs changed (the readings in its windows, the
spec, our deliveries, the away periods) and redoes only what moves with ``now`` (the
level since the newest reading, the demand curve, the run-out quantiles) every pass.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agent.domain import CoarseState
from agent.forecast import FitMemo, Observation
from agent.storage.rows import ReadingRow
from agent.storage.store import Store

# Four months, hourly for the last five weeks and one reading per six hours before (the
# resolution bench/forecast.py validates the forecast at).
HISTORY = timedelta(days=120)
FINE_HISTORY = timedelta(days=35)
FINE_BUCKET = timedelta(hours=1)
COARSE_BUCKET = timedelta(hours=6)
_FINE_S = FINE_BUCKET.total_seconds()
_COARSE_S = COARSE_BUCKET.total_seconds()


def window(now: datetime) -> tuple[float, float]:
    """(since, fine_since) of the history read at ``now``, each a whole coarse bucket."""
    t = now.timestamp()
    return (math.floor((t - HISTORY.total_seconds()) / _COARSE_S) * _COARSE_S,
            math.floor((t - FINE_HISTORY.total_seconds()) / _COARSE_S) * _COARSE_S)


def to_observations(rows: list[ReadingRow]) -> list[Observation]:
    return [Observation(datetime.fromtimestamp(r.ts, UTC), r.level,
                        CoarseState(r.state) if r.state else None, r.counter)
            for r in rows]


def read_history(store: Store, cid: int, now: datetime) -> list[Observation]:
    """The forecast's history of one consumable read from the database (no cache)."""
    since, fine_since = window(now)
    return to_observations(store.history(cid, since, fine_since, fine_bucket_s=_FINE_S,
                                         coarse_bucket_s=_COARSE_S))


@dataclass(slots=True)
class _Entry:
    since: float
    fine_since: float
    gen: int
    coarse: list[Observation]  # last reading of each coarse bucket in [since, fine_since)
    fine: list[Observation]  # last reading of each hour from fine_since on
    fine_ts: list[float]  # their epoch seconds (bisect)
    dirty_from: float = math.inf  # oldest reading changed since the rows were read


@dataclass(slots=True)
class HistoryCache:
    """Thinned history per consumable, refreshed by :meth:`sync` once per pass."""

    entries: dict[int, _Entry] = field(default_factory=dict)
    fold_gen: int | None = None
    last_id: int = 0  # newest readings_recent row seen
    marks: dict[int, tuple[int, float]] = field(default_factory=dict)  # as last synced
    reads: int = 0  # consumables read whole from the database (cold, or after a downsample)
    tail_reads: int = 0  # consumables whose newest hours were read again
    fits: dict[int, FitMemo] = field(default_factory=dict)  # the forecast's, per consumable

    def sync(self, store: Store) -> None:
        """Mark what changed in the database since the last look."""
        changes = store.history_changes(self.last_id)
        if changes.marks.get(0, (0, 0.0))[0] != self.fold_gen:
            changes = store.history_changes(0)  # ids restart after a fold: all are new
        self.fold_gen = changes.marks.get(0, (0, 0.0))[0]
        self.last_id = changes.top_id
        self.marks = changes.marks
        for cid, entry in self.entries.items():
            low = changes.fresh.get(cid, math.inf)
            gen, low_ts = changes.marks.get(cid, (0, -math.inf))
            if gen != entry.gen:  # one fold: from its oldest row; more: all of it
                low = min(low, low_ts if gen == entry.gen + 1 else -math.inf)
                entry.gen = gen
            entry.dirty_from = min(entry.dirty_from, low)

    def observations(self, store: Store, cid: int, now: datetime) -> list[Observation]:
        """Exactly :func:`read_history` at ``now``, re-reading only what changed."""
        since, fine_since = window(now)
        entry = self.entries.get(cid)
        if (entry is None or since < entry.since or fine_since < entry.fine_since
                or entry.dirty_from < entry.fine_since):
            entry = self._build(store, cid, since, fine_since)
        elif entry.dirty_from < math.inf:
            hour = math.floor(entry.dirty_from / _FINE_S) * _FINE_S
            cut = bisect_left(entry.fine_ts, hour)
            rows = store.history(cid, hour, hour, fine_bucket_s=_FINE_S,
                                 coarse_bucket_s=_FINE_S)
            entry.fine[cut:] = to_observations(rows)
            entry.fine_ts[cut:] = [r.ts for r in rows]
            entry.dirty_from = math.inf
            self.tail_reads += 1
        if fine_since > entry.fine_since:
            self._advance(entry, fine_since)
        if since > entry.since:
            entry.coarse = [o for o in entry.coarse if o.ts.timestamp() >= since]
            entry.since = since
        return entry.coarse + entry.fine

    def fit_memo(self, cid: int) -> FitMemo:
        """The slot of one consumable's forecast fit, kept across passes."""
        return self.fits.setdefault(cid, FitMemo())

    def _build(self, store: Store, cid: int, since: float, fine_since: float) -> _Entry:
        rows = store.history(cid, since, fine_since, fine_bucket_s=_FINE_S,
                             coarse_bucket_s=_COARSE_S)
        split = bisect_left([r.ts for r in rows], fine_since)
        # The generation of the last sync: a fold since then shows at the next one.
        entry = _Entry(since, fine_since, self.marks.get(cid, (0, 0.0))[0],
                       to_observations(rows[:split]), to_observations(rows[split:]),
                       [r.ts for r in rows[split:]])
        self.entries[cid] = entry
        self.reads += 1
        return entry

    @staticmethod
    def _advance(entry: _Entry, fine_since: float) -> None:
        """Move hours older than ``fine_since`` to the coarse part: the last of each bucket."""
        cut = bisect_left(entry.fine_ts, fine_since)
        last: dict[int, Observation] = {}
        for ts, obs in zip(entry.fine_ts[:cut], entry.fine[:cut], strict=True):
            last[int(ts // _COARSE_S)] = obs  # hours in time order: the last one wins
        entry.coarse += last.values()
        del entry.fine[:cut], entry.fine_ts[:cut]
        entry.fine_since = fine_since
