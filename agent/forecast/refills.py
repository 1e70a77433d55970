"""Refills, deliveries and spoilage: what raised the level, and what is still usable.

Pure helpers for :mod:`agent.forecast`. ``obs`` is always sorted by time.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import compress, count, repeat
from operator import attrgetter, le, not_, sub
from typing import TYPE_CHECKING

from agent.domain import CoarseState
from agent.forecast.project import DemandCurve

if TYPE_CHECKING:
    from agent.forecast.types import ConsumableSpec, Delivery, Observation

LOW_STATES = (CoarseState.LOW, CoarseState.EMPTY)
SPARE_DAYS = timedelta(days=180)  # a delivered pack older than this is surely in use
_NEXT = timedelta(seconds=1)  # the next refill after one found
PUT_AWAY = timedelta(hours=2)  # a delivered pack that fits is in the device by then
_TS = attrgetter("ts")
SCAN_KEPT = 4096  # levels a memo keeps of a scan that has not found its refill yet
Point = tuple[datetime, float | None]  # (ts, level), level None for "no reading"


def low_signal(obs: list[Observation]) -> bool:
    """Whether the newest informative reading says LOW or EMPTY."""
    for o in reversed(obs):
        if o.state is not None and o.state is not CoarseState.UNKNOWN:
            return o.state in LOW_STATES
        if o.level is not None:
            return False
    return False


def refill_tol(spec: ConsumableSpec) -> float:
    """Rise that counts as a refill: above scale noise, yet below what one pack adds even
    if part of it is used at once (a box of sensors arrives while one is due: the count
    rises by two, not three)."""
    return min(max(0.3 * spec.pack_size, 0.08 * spec.capacity), 0.6 * spec.pack_size)


def _jump(pts: list[Point], a: int, tol: float) -> float | None:
    """The amount of a refill at ``pts[a]`` (time-ordered levels), or None.

    ``pts[a]`` must be well above the reading before it, and one of the next three
    readings must confirm it (none yet: accepted). A dip of one or two readings on
    either side (a jug lifted out while new milk goes in) is skipped: the rise is
    measured from the reading before the dip."""
    after = pts[a][1]
    low = pts[a - 1][1]
    if after is None or low is None or after - low <= tol:
        return None
    base = low
    for k in (a - 2, a - 3):
        if k >= 0:
            b = pts[k][1]
            if b is not None and b - base > tol:
                base = b
    if after - base <= tol:
        return None
    later = [p[1] for p in pts[a + 1:a + 4] if p[1] is not None]
    if later and max(later) - base <= tol:
        return None
    return after - base


def refills(obs: list[Observation], spec: ConsumableSpec, stop: datetime,
            first_only: bool = False) -> list[tuple[datetime, float]]:
    """Refills and replacements after ``stop``, newest first, as ``(time, amount)``:
    level jumps (see :func:`_jump`) or a state going from LOW/EMPTY back to OK (one
    pack). Scans back from the newest reading, so ``first_only`` is cheap."""
    tol = refill_tol(spec)
    start = bisect.bisect_left(obs, stop, key=_TS)
    recent = obs[start:]
    out: list[tuple[datetime, float]] = []
    later_state: Observation | None = None
    for o in reversed([o for o in recent
                       if o.state is not None and o.state is not CoarseState.UNKNOWN]):
        if (o.state in LOW_STATES and later_state is not None
                and later_state.state not in LOW_STATES):
            out.append((later_state.ts, spec.pack_size))
            if first_only:
                return out
        later_state = o
    # The levels after ``stop`` and the (up to) three before it: a refill's rise is
    # measured from the readings before it.
    before: list[Point] = []
    k = start
    while k > 0 and len(before) < 3:
        k -= 1
        if obs[k].level is not None:
            before.append((obs[k].ts, obs[k].level))
    before.reverse()
    pts: list[Point] = [*before, *[(o.ts, o.level) for o in recent if o.level is not None]]
    vals = [p[1] for p in pts]
    # Only a rise above the tolerance can be a refill (the first test of :func:`_jump`,
    # taken here for every reading at once).
    rises = list(compress(count(1), map(not_, map(le, map(sub, vals[1:], vals), repeat(tol)))))
    found: list[tuple[datetime, float]] = []
    for a in reversed(rises):
        if a < len(before):
            break
        amount = _jump(pts, a, tol)
        if amount is not None:
            found.append((pts[a][0], amount))
            if first_only:
                break
    out = sorted(out + found, reverse=True)
    return out[:1] if first_only else out


class RefillMemo:
    """The scans :func:`first_refill_after` made in one forecast, for the next: per
    ``(at, tolerance, pack)``, the readings a scan read (from the three before ``at``)
    and where it stood after them. Kept per consumable by the forecast's memo; a scan
    goes on from where it stood only while those readings are still the same, and each
    forecast keeps only the scans it asked for."""

    __slots__ = ("last", "now")

    def __init__(self) -> None:
        self.last: dict[tuple[datetime, float, float], _Scan] = {}
        self.now: dict[tuple[datetime, float, float], _Scan] = {}

    def start(self) -> RefillMemo:
        """A new forecast: what the last one asked is what this one may reuse."""
        self.last, self.now = self.now, {}
        return self


@dataclass(slots=True)
class _Scan:
    """A forward scan of :func:`first_refill_after`: the readings it read, the levels
    among them, the last state, how many candidates it decided, and the refill a
    candidate with three readings after it (or a state back from LOW) showed."""

    read: list[Observation]
    pts: list[Point] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)  # the levels of ``pts``
    was_low: bool | None = None
    checked: int = 0  # candidates before this index have been decided
    decided: tuple[datetime, float] | None = None


def first_refill_after(obs: list[Observation], spec: ConsumableSpec, at: datetime,
                       memo: RefillMemo | None = None) -> tuple[datetime, float] | None:
    """The first refill seen at or after ``at`` and its amount (a state back from LOW:
    one pack), scanning forward (a delivery usually shows up within the hour, so this
    stops early), or None. With ``memo`` the answer is the same: a scan that read the
    same readings last time goes on from where it stood (what it decided rests on them
    alone; only the newest readings, with fewer than three after, are judged again)."""
    tol = refill_tol(spec)
    i = bisect.bisect_left(obs, at, key=_TS)
    j = i
    before = 0
    while j > 0 and before < 3:  # the readings just before give the level it rose from
        j -= 1
        before += obs[j].level is not None or obs[j].state is not None
    key = (at, tol, spec.pack_size)
    scan = None if memo is None else memo.last.get(key)
    if scan is None or obs[j:j + len(scan.read)] != scan.read:
        scan = _Scan([])
    if memo is not None:
        memo.now[key] = scan
    if scan.decided is None:
        _advance(scan, obs, j, at, tol, spec.pack_size)
    if scan.decided is not None:
        return scan.decided
    pts = scan.pts
    for a in range(max(scan.checked, 1), len(pts)):  # the newest, with fewer after
        if pts[a][0] >= at:
            amount = _jump(pts, a, tol)
            if amount:
                return pts[a][0], amount
    return None


def _advance(scan: _Scan, obs: list[Observation], j: int, at: datetime, tol: float,
             pack: float) -> None:
    """Go on with ``scan`` (of ``obs`` from ``j``) over the readings after those it
    read, until one decides a refill or none is left."""
    pts, vals, was_low, checked = scan.pts, scan.vals, scan.was_low, scan.checked
    for k in range(j + len(scan.read), len(obs)):
        o = obs[k]
        if o.level is not None:
            pts.append((o.ts, o.level))
            vals.append(o.level)
            # Decide a candidate once three readings follow it; only a rise above the
            # tolerance can be one (the first test of :func:`_jump`, taken here).
            while checked < len(pts) - 3:
                if (checked >= 1 and not vals[checked] - vals[checked - 1] <= tol
                        and pts[checked][0] >= at):
                    amount = _jump(pts, checked, tol)
                    if amount:
                        _decide(scan, obs[j:k + 1], (pts[checked][0], amount))
                        return
                checked += 1
        if o.state is not None and o.state is not CoarseState.UNKNOWN:
            is_low = o.state in LOW_STATES
            if was_low and not is_low and o.ts >= at:
                _decide(scan, obs[j:k + 1], (o.ts, pack))
                return
            was_low = is_low
    scan.read, scan.was_low, scan.checked = obs[j:], was_low, checked
    if len(pts) > SCAN_KEPT:  # too long to keep (months of minute readings): done again
        scan.read = obs[j:j]
        scan.pts, scan.vals, scan.was_low, scan.checked = [], [], None, 0


def _decide(scan: _Scan, read: list[Observation], refill: tuple[datetime, float]) -> None:
    """The scan found ``refill`` after reading ``read``: only they are kept."""
    scan.read, scan.decided = read, refill
    scan.pts, scan.vals = [], []


def _empty_now(obs: list[Observation], spec: ConsumableSpec) -> datetime | None:
    """If the device has read empty for the last day: a day before the newest reading.

    A gauge that rounds reads 0 % with a few percent left; while its counter still
    moves (pages printed) it is not empty, and a cartridge waiting on the shelf is
    still waiting."""
    if not obs:
        return None
    since = obs[-1].ts - timedelta(days=1)
    seen = False
    counters: list[int] = []
    for o in reversed(obs):
        if o.ts < since:
            if len(counters) >= 2 and counters[0] > counters[-1]:
                return None
            return since if seen else None
        if o.level is not None and o.level > 0.02 * spec.capacity:
            return None
        if o.state is not None and o.state not in (CoarseState.EMPTY, CoarseState.UNKNOWN):
            return None
        if o.counter is not None:
            counters.append(o.counter)
        seen = seen or o.level is not None or o.state is CoarseState.EMPTY
    return None


def spare_packs(obs: list[Observation], spec: ConsumableSpec,
                deliveries: Sequence[Delivery], now: datetime,
                known: tuple[datetime, list[tuple[datetime, float]]] | None = None,
                memo: RefillMemo | None = None) -> float:
    """Our delivered packs that have not shown up in the device yet (a cartridge waits on
    the shelf until the one in the printer is empty). ``obs`` is sorted by time;
    ``known`` optionally gives ``(since, refills found since)`` to save a scan.

    Newest delivery first: each shows up as a refill after it, however long it waited
    on the shelf, one refill per delivery: two cartridges delivered around one
    replacement leave one on the shelf, not none (bench-decisions: a late order and its
    reorder both came; the one replacement between them counted for both, and a third
    cartridge was ordered with one waiting). Once two in a row have shown up, older
    ones are taken as used.

    A refill holds as many deliveries as its rise holds packs: two orders that came
    within the hour are one rise of two packs, not one shown and one on the shelf
    (bench-forecast, step change: a jug "waiting" for ten days while the milk ran out).
    A pack waits outside only while it does not fit: in a device that holds several
    packs, one the device had room for is in it even if no rise showed it (milk thrown
    out as the new jug went in). A perishable pack not seen within its shelf life is not
    waiting either: it has spoiled."""
    oldest = now - SPARE_DAYS
    if spec.perishable and spec.shelf_life_days:
        oldest = max(oldest, now - timedelta(days=spec.shelf_life_days))
    past = sorted((d for d in deliveries if oldest <= d.ts <= now and not d.pending),
                  key=_TS)
    spare = 0.0
    empty = _empty_now(obs, spec)
    # Refills matched to newer deliveries: packs claimed out of the packs their rise holds.
    claimed: dict[datetime, tuple[float, float]] = {}
    matched_before = False
    for d in reversed(past):
        if empty is not None and d.ts < empty:
            break  # empty for a day since it came: it is not on the shelf (any more)
        since = d.ts - timedelta(hours=1)
        shown = _unclaimed(obs, spec, since, d.packs, claimed, known, memo)
        if shown is None and not _went_in(obs, spec, d):
            spare += d.packs
            matched_before = False
            continue
        if matched_before:
            break
        matched_before = True
    return spare


def _went_in(obs: list[Observation], spec: ConsumableSpec, d: Delivery) -> bool:
    """Whether the first level reading from :data:`PUT_AWAY` after delivery ``d`` had
    room for its packs in a device that holds several (a one-pack device, a printer,
    takes the next only once empty)."""
    if spec.capacity < 2.0 * spec.pack_size:
        return False
    i = bisect.bisect_left(obs, d.ts + PUT_AWAY, key=_TS)
    first = next((o.level for o in obs[i:] if o.level is not None), None)
    return first is not None and first + d.packs * spec.pack_size <= spec.capacity + 1e-9


def _unclaimed(obs: list[Observation], spec: ConsumableSpec, since: datetime, packs: float,
               claimed: dict[datetime, tuple[float, float]],
               known: tuple[datetime, list[tuple[datetime, float]]] | None,
               memo: RefillMemo | None = None) -> datetime | None:
    """The first refill from ``since`` with room for ``packs`` more (a refill takes one
    delivery however small its rise, more while its rise holds their packs), claimed
    for them in ``claimed`` (time -> packs its rise holds, packs claimed); or None."""
    pack = spec.pack_size
    if known is not None and since >= known[0]:
        found: list[tuple[datetime, float]] = sorted(x for x in known[1] if x[0] >= since)
    else:
        found = []
        got = first_refill_after(obs, spec, since, memo)
        while got is not None:
            found.append(got)
            t, _ = got
            if t not in claimed or _room(claimed[t], packs):
                break
            got = first_refill_after(obs, spec, t + _NEXT, memo)
    for t, amount in found:
        holds, taken = claimed.get(t, (max(1.0, round(amount / pack)) if pack > 0 else 1.0,
                                       0.0))
        if taken == 0 or _room((holds, taken), packs):
            claimed[t] = (holds, taken + packs)
            return t
    return None


def _room(claim: tuple[float, float], packs: float) -> bool:
    """Whether a refill whose rise holds ``claim[0]`` packs, ``claim[1]`` of them
    claimed, holds ``packs`` more."""
    return claim[1] + packs <= claim[0] + 1e-9


def fresh_batches(found: list[tuple[datetime, float]], life: timedelta, now: datetime,
                  level: float) -> list[tuple[float, float]] | None:
    """A perishable's stock split into batches by the refills ``found`` within its shelf
    ``life`` (newest first), oldest batch first, as ``(days until it spoils, amount)``;
    None when no refill was seen.

    FIFO: the newest refills make up the top of the current level. Stock older than every
    refill seen is taken to spoil with the oldest batch seen."""
    if not found:
        return None
    day = timedelta(days=1)
    batches: list[tuple[float, float]] = []
    left = level
    for t, amount in found:
        take = min(left, amount)
        batches.append((max(0.0, (t + life - now) / day), take))
        left -= take
        if left <= 0:
            break
    if left > 0:
        batches.append((batches[-1][0], left))
    batches.reverse()
    return batches


def usable_level(batches: list[tuple[float, float]], curve: DemandCurve) -> float:
    """How much of the stock gets used before it spoils, at the expected use."""
    used = 0.0
    for expires_in, amount in batches:
        demand = curve.at(expires_in)[0] - used
        used += min(amount, max(0.0, demand))
    return used
