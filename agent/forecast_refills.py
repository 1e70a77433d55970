"""Refills, deliveries and spoilage: what raised the level, and what is still usable.

Pure helpers for :mod:`agent.forecast`. ``obs`` is always sorted by time.
"""

from __future__ import annotations

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
    """``(time, amount)`` if ``window`` (newest first: after2, after, low, before,
    before2) shows a refill: ``after`` well above the level before it, confirmed by
    ``after2``. A dip of one or two readings just before (the jug lifted out while the
    new one goes in) is skipped: the rise is measured from the reading before the dip."""
    after2, after, low, before, before2 = (w[1] for w in window[:5])
    if after is None or low is None:
        return None
    base = low
    for b in (before, before2):
        if b is not None and b - base > tol:
            base = b
    if after - base <= tol or (after2 is not None and after2 - base <= tol):
        return None
    return window[1][0], after - base


def refills(obs: list[Observation], spec: ConsumableSpec, stop: datetime,
            first_only: bool = False) -> list[tuple[datetime, float]]:
    """Refills and replacements after ``stop``, newest first, as ``(time, amount)``:
    level jumps (see :func:`_jump_at`) or a state going from LOW/EMPTY back to OK (one
    pack). Scans back from the newest reading, so ``first_only`` is cheap."""
    tol = refill_tol(spec)
    # The placeholder stands for "no reading yet after the newest": a jump there counts.
    window: list[Point] = [(stop, None)]
    later_state: Observation | None = None
    out: list[tuple[datetime, float]] = []
    for o in reversed(obs):
        if o.ts < stop:
            break
        if o.level is not None:
            window.append((o.ts, o.level))
            if len(window) > 5:
                window.pop(0)
            hit = _jump_at(window, tol) if len(window) == 5 else None
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
    for k in range(max(0, len(window) - 6), len(window) - 4):
        hit = _jump_at(window[k:k + 5], tol)
        if hit is not None:
            out.append(hit)
    return out[:1] if first_only else out


def spare_packs(obs: list[Observation], spec: ConsumableSpec,
                deliveries: Sequence[Delivery], now: datetime) -> float:
    """Our delivered packs that have not shown up in the device yet (a cartridge waits on
    the shelf until the one in the printer is empty). ``obs`` is sorted by time.

    Newest delivery first; once one has shown up, older ones are taken as used."""
    past = sorted((d for d in deliveries if now - SPARE_DAYS <= d.ts <= now), key=_TS)
    spare = 0.0
    for d in reversed(past):
        if refills(obs, spec, d.ts - timedelta(hours=1), first_only=True):
            break
        spare += d.packs
    return spare


def fresh_batches(obs: list[Observation], spec: ConsumableSpec, now: datetime,
                  level: float) -> list[tuple[float, float]] | None:
    """A perishable's stock split into batches by refill, oldest first, as ``(days until
    it spoils, amount)``; None when not perishable or no refill was seen within its life.

    FIFO: the newest refills make up the top of the current level. Stock older than every
    refill seen is taken to spoil with the oldest batch seen."""
    if not spec.perishable or spec.shelf_life_days is None:
        return None
    life = timedelta(days=spec.shelf_life_days)
    found = refills(obs, spec, now - life)
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
