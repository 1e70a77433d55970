"""Refills, deliveries and spoilage: what raised the level, and what is still usable.

Pure helpers for :mod:`agent.forecast`. ``obs`` is always sorted by time.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING

from agent.forecast_project import DemandCurve
from agent.protocol import CoarseState

if TYPE_CHECKING:
    from agent.forecast import ConsumableSpec, Delivery, Observation

LOW_STATES = (CoarseState.LOW, CoarseState.EMPTY)
SPARE_DAYS = timedelta(days=180)  # a delivered pack older than this is surely in use
_TS = attrgetter("ts")
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


def _jump_at(window: list[Point], tol: float) -> tuple[datetime, float] | None:
    """``(time, amount)`` if ``window`` (newest first: after3, after2, after, low, before,
    before2) shows a refill: ``after`` well above the level before it, confirmed by
    ``after2`` or ``after3``. A dip of one or two readings (the jug lifted out while the
    new one goes in) is skipped on either side: the rise is measured from the reading
    before the dip, and one low reading after the rise does not undo it."""
    after3, after2, after, low, before, before2 = (w[1] for w in window[:6])
    if after is None or low is None:
        return None
    base = low
    for b in (before, before2):
        if b is not None and b - base > tol:
            base = b
    if after - base <= tol:
        return None
    confirm = [a for a in (after2, after3) if a is not None]
    if confirm and max(confirm) - base <= tol:
        return None
    return window[2][0], after - base


def refills(obs: list[Observation], spec: ConsumableSpec, stop: datetime,
            first_only: bool = False) -> list[tuple[datetime, float]]:
    """Refills and replacements after ``stop``, newest first, as ``(time, amount)``:
    level jumps (see :func:`_jump_at`) or a state going from LOW/EMPTY back to OK (one
    pack). Scans back from the newest reading, so ``first_only`` is cheap."""
    tol = refill_tol(spec)
    # Placeholders stand for "no reading yet after the newest": a jump there counts.
    window: list[Point] = [(stop, None), (stop, None)]
    later_state: Observation | None = None
    out: list[tuple[datetime, float]] = []
    extra = 0  # readings older than ``stop``: only the level before the first refill
    for o in reversed(obs):
        if o.ts < stop and o.level is not None:
            extra += 1
            if extra > 3:
                break
        if o.level is not None:
            window.append((o.ts, o.level))
            if len(window) > 6:
                window.pop(0)
            after = window[2][1] if len(window) == 6 else None
            # Cheap test first: a refill needs ``after`` well above the reading before it.
            hit = (_jump_at(window, tol) if after is not None and window[3][1] is not None
                   and after - window[3][1] > tol and window[2][0] >= stop else None)
            if hit is not None:
                out.append(hit)
                if first_only:
                    return out
        if o.state is not None and o.state is not CoarseState.UNKNOWN:
            if (o.state in LOW_STATES and later_state is not None
                    and later_state.state not in LOW_STATES):
                out.append((later_state.ts, spec.pack_size))
                if first_only:
                    return out
            later_state = o
    # The oldest readings scanned have no predecessors to rule out a dip.
    window += [(stop, None), (stop, None)]
    for k in range(max(0, len(window) - 7), len(window) - 5):
        hit = _jump_at(window[k:k + 6], tol)
        if hit is not None and hit[0] >= stop:
            out.append(hit)
    return out[:1] if first_only else out


def _empty_now(obs: list[Observation], spec: ConsumableSpec) -> datetime | None:
    """If the device has read empty for the last day: a day before the newest reading."""
    if not obs:
        return None
    since = obs[-1].ts - timedelta(days=1)
    seen = False
    for o in reversed(obs):
        if o.ts < since:
            return since if seen else None
        if o.level is not None and o.level > 0.02 * spec.capacity:
            return None
        if o.state is not None and o.state not in (CoarseState.EMPTY, CoarseState.UNKNOWN):
            return None
        seen = seen or o.level is not None or o.state is CoarseState.EMPTY
    return None


def first_refill_after(obs: list[Observation], spec: ConsumableSpec, at: datetime,
                       ) -> datetime | None:
    """The first refill seen at or after ``at`` (scanning forward: a delivery usually
    shows up within the hour, so this stops early), or None."""
    tol = refill_tol(spec)
    i = bisect.bisect_left(obs, at, key=_TS)
    j = i
    before = 0
    while j > 0 and before < 3:  # the readings just before give the level it rose from
        j -= 1
        before += obs[j].level is not None
    pts: list[Point] = []
    was_low: bool | None = None
    for o in obs[j:]:
        if o.level is not None:
            pts.append((o.ts, o.level))
            n = len(pts)
            if n >= 4:
                after, low = pts[n - 3], pts[n - 4]
                if (after[0] >= at and after[1] is not None and low[1] is not None
                        and after[1] - low[1] > tol):
                    hit = _jump_at(_newest_first(pts, n, 0), tol)
                    if hit is not None:
                        return hit[0]
        if o.state is not None and o.state is not CoarseState.UNKNOWN:
            is_low = o.state in LOW_STATES
            if was_low and not is_low and o.ts >= at:
                return o.ts
            was_low = is_low
    for pad in (1, 2):  # the newest one or two readings have fewer after them
        n = len(pts)
        if n - 3 + pad >= 1 and pts[n - 3 + pad][0] >= at:
            hit = _jump_at(_newest_first(pts, n, pad), tol)
            if hit is not None:
                return hit[0]
    return None


def _newest_first(pts: list[Point], n: int, pad: int) -> list[Point]:
    """Six points ending at ``pts[n - 1]``, newest first, with ``pad`` empty placeholders
    in front (no reading yet) and at the back (no reading before)."""
    head: list[Point] = [(pts[-1][0], None)] * pad
    body = pts[max(0, n - 6 + pad):n][::-1]
    tail: list[Point] = [(pts[0][0], None)] * (6 - pad - len(body))
    return head + body + tail


def spare_packs(obs: list[Observation], spec: ConsumableSpec,
                deliveries: Sequence[Delivery], now: datetime,
                known: tuple[datetime, list[tuple[datetime, float]]] | None = None) -> float:
    """Our delivered packs that have not shown up in the device yet (a cartridge waits on
    the shelf until the one in the printer is empty). ``obs`` is sorted by time;
    ``known`` optionally gives ``(since, refills found since)`` to save a scan.

    Newest delivery first: it has shown up once any refill followed it, however long it
    waited on the shelf; older ones are then taken as used."""
    past = sorted((d for d in deliveries if now - SPARE_DAYS <= d.ts <= now), key=_TS)
    spare = 0.0
    empty = _empty_now(obs, spec)
    for d in reversed(past):
        if empty is not None and d.ts < empty:
            break  # empty for a day since it came: it is not on the shelf (any more)
        since = d.ts - timedelta(hours=1)
        if known is not None and since >= known[0]:
            seen = any(t >= since for t, _ in known[1])
        else:
            seen = first_refill_after(obs, spec, since) is not None
        if seen:
            break
        spare += d.packs
    return spare


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
