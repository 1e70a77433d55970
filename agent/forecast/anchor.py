"""Where a page counter counts from: the newest moment a printer's level is known.

Pure helpers for :mod:`agent.forecast.estimate`. ``obs`` is always sorted by time.
The scan runs back from the newest reading to the last replacement, often months of
hourly readings; :class:`AnchorMemo` (kept per consumable in the forecast's memo) lets
the next review stop where the readings it scans are the ones the last scan read.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

from agent.domain import CoarseState
from agent.forecast.refills import LOW_STATES

if TYPE_CHECKING:
    from agent.forecast.types import ConsumableSpec, Observation

DAY = 86_400.0
_TS = attrgetter("ts")
Anchor = tuple[float, float, float | None]  # (time in days, level, counter then)


@dataclass(slots=True)
class AnchorMemo:
    """The readings the last :func:`anchor` scan decided on: from the reading it found
    its anchor at (the first reading, if it found none) to the newest, with the spec
    figures it used and its answer."""

    tail: list[Observation] | None = None
    figures: tuple[float, float] = (0.0, 0.0)  # (capacity, LOW level)
    found: Anchor | None = None
    # Where in ``tail`` its newest reading with a level, and with a state, is (-1: none).
    newest: tuple[int, int] = (-1, -1)


def anchor(obs: list[Observation], spec: ConsumableSpec,
           memo: AnchorMemo | None = None) -> Anchor | None:
    """A moment the level is known, for a counter to count from: ``(time, level,
    counter then)`` at the newest replacement (full) or start of LOW, whichever is
    later. The counter is the one read just before a replacement (pages printed on the
    old cartridge are not counted against the new one twice: a slight overcount).

    With ``memo`` the answer is the same; the scan stops once both readings it compares
    against are among those the last scan read, and before them (see :func:`_known`):
    from there on it would read what that scan read, in the same state."""
    figures = (spec.capacity, spec.low_level)
    start, stop, kept = _known(obs, figures, memo)
    old_level, old_state = (-1, -1) if memo is None else memo.newest
    later: Observation | None = None
    later_state: Observation | None = None
    later_i = later_state_i = -1  # their indices in ``obs`` (-1: none yet)
    first_i = first_state_i = -1  # the newest of each kind: the first the scan met
    tol = 0.3 * spec.capacity
    found: Anchor | None = None
    i = len(obs)
    while i > 0:
        i -= 1
        if (start <= i < stop and (later_i < stop if later_i >= 0 else old_level <= i - start)
                and (later_state_i < stop if later_state_i >= 0
                     else old_state <= i - start)):
            # Each neighbour is the one the last scan had there too, or there is none, for
            # it as for this one: the rest is the last scan's, and so is its answer.
            found = kept
            first_i = first_i if first_i >= 0 else start + old_level
            first_state_i = first_state_i if first_state_i >= 0 else start + old_state
            i = start
            break
        o = obs[i]
        if o.level is not None:
            if later is not None and later.level is not None and later.level - o.level > tol:
                found = (o.ts.timestamp() / DAY * 0.5 + later.ts.timestamp() / DAY * 0.5,
                         spec.capacity, _counter(o))
                break
            if later is None:
                first_i = i
            later, later_i = o, i
        if o.state is not None and o.state is not CoarseState.UNKNOWN:
            if later_state is not None:
                was_low = o.state in LOW_STATES
                is_low = later_state.state in LOW_STATES
                if was_low and not is_low:
                    found = (o.ts.timestamp() / DAY * 0.5
                             + later_state.ts.timestamp() / DAY * 0.5,
                             spec.capacity, _counter(o))
                    break
                if is_low and not was_low:
                    found = (later_state.ts.timestamp() / DAY, spec.low_level,
                             _counter(later_state))
                    break
            if later_state is None:
                first_state_i = i
            later_state, later_state_i = o, i
    if memo is not None:
        i = max(i, 0)
        memo.tail, memo.figures, memo.found = obs[i:], figures, found
        memo.newest = (first_i - i if first_i >= 0 else -1,
                       first_state_i - i if first_state_i >= 0 else -1)
    return found


def _known(obs: list[Observation], figures: tuple[float, float],
           memo: AnchorMemo | None) -> tuple[int, int, Anchor | None]:
    """``(start, stop, answer)``: the last scan gave ``answer`` at the first of the
    readings it decided on (``memo.tail``), and ``obs[start:stop]`` equals the first
    ``stop - start`` of them, reading for reading (the readings after may differ:
    newer ones came, older ones were thinned); ``stop`` is 0 when none is left, or when
    that scan found no anchor and ``obs`` holds older readings than it read.

    Where both readings the scan compares against lie within ``obs[start:stop]``, the
    last scan had the same ones there (each is the nearest newer reading of its kind),
    so it goes on as that scan went on, to the same answer. Where a kind has no newer
    reading, it had none either only if all of ``memo.tail`` is still there."""
    if memo is None or not memo.tail or memo.figures != figures:
        return 0, 0, None
    tail = memo.tail
    start = bisect.bisect_left(obs, tail[0].ts, key=_TS)
    if memo.found is None and start > 0:
        return 0, 0, None
    return start, start + _common(obs, start, tail), memo.found


def _common(obs: list[Observation], start: int, tail: list[Observation]) -> int:
    """The length of the common start of ``obs[start:]`` and ``tail``: equal slices
    compare at C speed (the same reading objects), doubling then halving the span."""
    limit = min(len(obs) - start, len(tail))
    if obs[start:start + limit] == tail[:limit]:
        return limit
    good, step = 0, 1  # obs[start:start + good] == tail[:good]
    while good + step <= limit and (obs[start + good:start + good + step]
                                    == tail[good:good + step]):
        good += step
        step *= 2
    while step > 1:  # the first difference is within the next ``step``
        step //= 2
        if (good + step <= limit and obs[start + good:start + good + step]
                == tail[good:good + step]):
            good += step
    return good


def _counter(o: Observation) -> float | None:
    return None if o.counter is None else float(o.counter)
