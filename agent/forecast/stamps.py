"""Epoch seconds of reading times, kept per consumable from one forecast to the next.

An aware ``datetime.timestamp()`` costs about ten dictionary look-ups (its ``datetime``
arithmetic runs in Python integers), and a forecast takes a few hundred of them, of
readings it mostly saw the day before. The table maps each time to exactly what
``timestamp()`` gives for it (a pure function of the time's value: equal times, equal
seconds), so a number taken from it is the same float.
"""

from __future__ import annotations

from datetime import datetime

STAMPS_KEPT = 2048  # times kept at most (the fit's thinned readings are ~400)


class EpochSeconds(dict[datetime, float]):
    """``table[ts]`` is ``ts.timestamp()``, worked out the first time it is asked for.
    Only aware times belong here (a naive one's seconds depend on the local zone);
    every reading's is, as readings are compared with an aware ``now``."""

    __slots__ = ()

    def __missing__(self, ts: datetime) -> float:
        secs = self[ts] = ts.timestamp()
        return secs

    def bound(self) -> EpochSeconds:
        """Itself, emptied first once it holds :data:`STAMPS_KEPT` times (a year of
        readings passes through a consumable's table)."""
        if len(self) >= STAMPS_KEPT:
            self.clear()
        return self
